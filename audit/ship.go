package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/telegate/telegate/config"
)

// Shipping. The trail is its own durable queue: each target (syslog,
// https) keeps a cursor, the Position after the last record it delivered,
// in <Dir>/<target>.cursor, replaced atomically and fsynced after every
// acknowledged delivery. A target that is down is retried with a wait
// doubling from the interval up to RetryMax; nothing is dropped, and
// records go out in chain order. A record whose delivery was not
// acknowledged is sent again, so a receiver sees each record at least
// once and keeps it once by its chain position (node, seq): the syslog
// messages carry it in their structured data, the AuditEvents in
// FHIRChainExtension and in their id (FHIRID, PUT at AuditEvent/<id>).
//
// Acknowledgement: for HTTPS, a 2xx answer whose batch-response entries
// (when it returns a Bundle) are all 2xx. Syslog over TLS (RFC 5425) has
// no acknowledgement of its own, so a batch counts as delivered ("shipped",
// the cursor moves past it) when all three hold within the timeout: the
// TLS write of the whole batch returned; the receiving host's TCP has
// acknowledged every byte of it (the socket's send queue is empty,
// SIOCOUTQ — on Linux; elsewhere this step is skipped); and the server had
// not closed or reset the connection a moment (syslogProbe) later. A
// receiver that stops reading, or a host or path that is gone, leaves
// bytes unacknowledged, and the batch is sent again on a new connection.
// What this cannot see is a receiver process that took the bytes into
// its host and then failed before storing them: only a protocol with
// receipts (the HTTPS target) could.

// ShipOptions configure StartShipper.
type ShipOptions struct {
	// File is the trail to ship (audit.file; its rotated segment files
	// beside it are read too).
	File string
	// EncryptionKey opens sealed segment files (audit.encryption_key_file);
	// nil for plain files.
	EncryptionKey []byte
	// Dir holds the cursors (config.AuditShipDirInDataDir in the data
	// directory).
	Dir string
	// Node is the node id the records are sent under (NodeID).
	Node string
	// Ship is the configuration (defaults applied, validated).
	Ship config.AuditShip
	// Logger receives delivery failures (never record contents); nil:
	// slog.Default().
	Logger *slog.Logger
}

// Shipper ships a trail's records to its targets until Close.
type Shipper struct {
	targets []*shipTarget
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// syslogProbe is how long the syslog target waits, after writing a
// batch, for the server to close or reset the connection before the
// batch counts as delivered.
const syslogProbe = 50 * time.Millisecond

// maxAnswerBytes bounds the answer of an HTTPS receiver that is read.
const maxAnswerBytes = 1 << 20

// sender delivers a batch of records to one receiver.
type sender interface {
	send(ctx context.Context, recs []Record) error
	close()
}

// shipTarget is one target's loop state.
type shipTarget struct {
	name   string
	cursor string
	s      sender
	o      ShipOptions
	m      *FHIRMapper
	pos    Position
	// acked is pos.Seq for other goroutines; shipped counts records
	// delivered since start; failures the failed deliveries in a row.
	acked, shipped, failures atomic.Uint64
}

// StartShipper starts one goroutine per configured target. Each first
// reads its cursor (none: the start of the trail) and checks that the
// trail continues from it.
// Errors: a CA or client certificate file that cannot be read; a cursor
// file that cannot be read or parsed.
func StartShipper(o ShipOptions) (*Shipper, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var targets []*shipTarget
	if sl := o.Ship.Syslog; sl.Addr != "" {
		tc, err := clientTLS(sl.CAFile, sl.CertFile, sl.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit: ship.syslog: %w", err)
		}
		tc.ServerName = sl.ServerName
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(sl.Addr)
		}
		targets = append(targets, &shipTarget{name: "syslog", s: &syslogSender{addr: sl.Addr, tls: tc, node: o.Node, app: sl.AppName, timeout: o.Ship.Timeout}})
	}
	if h := o.Ship.HTTPS; h.URL != "" {
		tc, err := clientTLS(h.CAFile, h.CertFile, h.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit: ship.https: %w", err)
		}
		hs := &httpsSender{url: h.URL, client: &http.Client{Timeout: o.Ship.Timeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true,
			TLSHandshakeTimeout: o.Ship.Timeout, ResponseHeaderTimeout: o.Ship.Timeout, MaxIdleConns: 1}}}
		targets = append(targets, &shipTarget{name: "https", s: hs})
		hs.t = targets[len(targets)-1]
	}
	sh := &Shipper{targets: targets}
	for _, t := range targets {
		t.o, t.m = o, &FHIRMapper{Node: o.Node}
		t.cursor = filepath.Join(o.Dir, t.name+".cursor")
		b, err := os.ReadFile(t.cursor)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("audit: shipping cursor: %w", err)
		default:
			if err := json.Unmarshal(b, &t.pos); err != nil {
				return nil, fmt.Errorf("audit: shipping cursor %s: %w", t.cursor, err)
			}
			t.acked.Store(t.pos.Seq)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh.cancel = cancel
	for _, t := range targets {
		sh.wg.Add(1)
		go func() {
			defer sh.wg.Done()
			t.run(ctx)
		}()
	}
	return sh, nil
}

// Close stops shipping (a delivery under way is abandoned and sent again
// at the next start) and waits for the targets' goroutines.
func (sh *Shipper) Close() {
	sh.cancel()
	sh.wg.Wait()
	for _, t := range sh.targets {
		t.s.close()
	}
}

// Shipped is the chain position up to which target ("syslog", "https")
// has delivered, and whether that target is configured.
func (sh *Shipper) Shipped(target string) (uint64, bool) {
	for _, t := range sh.targets {
		if t.name == target {
			return t.acked.Load(), true
		}
	}
	return 0, false
}

// run ships until ctx ends.
func (t *shipTarget) run(ctx context.Context) {
	wait := time.Duration(0)
	primed := false
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return
		}
		if !primed {
			// The mapper learns the configuration hashes of the records
			// already shipped.
			if err := t.prime(); err != nil {
				t.fail(err)
				wait = t.backoff(wait)
				continue
			}
			primed = true
		}
		n, err := t.once(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			t.fail(err)
			wait = t.backoff(wait)
		case n == t.o.Ship.Batch:
			wait = 0
		default:
			wait = t.o.Ship.Interval
		}
	}
}

func (t *shipTarget) backoff(wait time.Duration) time.Duration {
	return min(max(2*wait, t.o.Ship.Interval), t.o.Ship.RetryMax)
}

func (t *shipTarget) fail(err error) {
	if t.failures.Add(1) == 1 || t.failures.Load()%10 == 0 {
		t.o.Logger.Warn("audit records not shipped yet; retrying", "target", t.name, "after_seq", t.pos.Seq, "failures", t.failures.Load(), "err", err)
	}
}

// prime reads the trail up to the cursor, checking that it continues to
// it, so the mapper knows each generation's hash.
func (t *shipTarget) prime() error {
	if t.pos.Seq == 0 {
		return nil
	}
	end, err := t.trail().ReadFrom(Position{}, int(t.pos.Seq), func(rec Record, _ Position) error {
		t.m.Observe(rec)
		return nil
	})
	if err != nil {
		return err
	}
	if end.Seq != t.pos.Seq || end.Hash != t.pos.Hash {
		return fmt.Errorf("%w: the trail ends at record %d before the shipping cursor %s (record %d)", ErrNotAtPosition, end.Seq, t.cursor, t.pos.Seq)
	}
	t.pos = end // names its file (Position.File)
	return nil
}

// once ships the next batch, if any, and returns its size.
func (t *shipTarget) once(ctx context.Context) (int, error) {
	var (
		recs []Record
		last Position
	)
	_, err := t.trail().ReadFrom(t.pos, t.o.Ship.Batch, func(rec Record, next Position) error {
		recs, last = append(recs, rec), next
		return nil
	})
	if err == nil && len(recs) > 0 {
		// Only records on disk leave the node: a copy must never hold a
		// record that a crash of the machine could take from the trail
		// (its chain would then go on with another record at that seq).
		// Rotated files were synced when they were rotated.
		err = syncFile(t.o.File)
	}
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	// A delivery under way finishes (within the timeout) even when the
	// shipper is closing: cut off after the receiver kept the batch but
	// before its answer, the batch would be sent again at the next start.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.o.Ship.Timeout)
	err = t.s.send(sctx, recs)
	cancel()
	if err != nil {
		return 0, err
	}
	if err := writeCursor(t.cursor, last); err != nil {
		return 0, fmt.Errorf("write the shipping cursor: %w", err)
	}
	for _, r := range recs {
		t.m.Observe(r)
	}
	t.pos = last
	t.acked.Store(last.Seq)
	if t.failures.Swap(0) > 0 {
		t.o.Logger.Info("audit shipping resumed", "target", t.name, "seq", last.Seq)
	}
	t.shipped.Add(uint64(len(recs)))
	return len(recs), nil
}

// trail is the trail the target ships.
func (t *shipTarget) trail() Trail {
	return Trail{File: t.o.File, EncryptionKey: t.o.EncryptionKey}
}

// syncFile fsyncs the file at path; a file that does not exist (rotated
// away meanwhile, and synced then) is no error.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// writeCursor replaces the cursor file with pos, durably.
func writeCursor(path string, pos Position) error {
	b, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	return writeFileSynced(filepath.Dir(path), filepath.Base(path), append(b, '\n'), 0o600)
}

// clientTLS is a TLS 1.2+ client configuration trusting caFile (system
// roots when "") with an optional client certificate.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := config.ReadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// syslogSender writes RFC 5424 messages with RFC 5425 octet-counting
// framing over one TLS connection, redialled after any failure.
type syslogSender struct {
	addr      string
	tls       *tls.Config
	node, app string
	timeout   time.Duration
	conn      *tls.Conn
	buf       bytes.Buffer
}

// SyslogSDID is the SD-ID of the structured data element of every
// shipped syslog message (RFC 5424 §6.3.2; 32473 is the enterprise
// number RFC 5612 reserves for documentation): its parameters node, seg,
// seq and hash are the record's chain position, and the MSG is the
// record's line as in the trail (seq, prev, mac), so the copy verifies.
const SyslogSDID = "telegate@32473"

func (s *syslogSender) send(ctx context.Context, recs []Record) error {
	s.buf.Reset()
	for _, r := range recs {
		m, err := syslogMessage(r, s.node, s.app)
		if err != nil {
			return err
		}
		s.buf.WriteString(strconv.Itoa(len(m)))
		s.buf.WriteByte(' ')
		s.buf.WriteString(m)
	}
	if s.conn == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: s.timeout}, Config: s.tls}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return err
		}
		s.conn = c.(*tls.Conn)
	}
	deadline, _ := ctx.Deadline()
	_ = s.conn.SetWriteDeadline(deadline)
	conn := s.conn
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })() // Close does not wait out a stuck write
	if _, err := s.conn.Write(s.buf.Bytes()); err != nil {
		s.close()
		return err
	}
	if err := waitAcked(ctx, s.conn.NetConn()); err != nil {
		s.close()
		return fmt.Errorf("the syslog server did not acknowledge the batch: %w", err)
	}
	// RFC 5425 servers send nothing: a read that times out means the
	// connection is still open; anything else (EOF, reset, data) that it
	// is not, and the batch is sent again on a new one.
	_ = s.conn.SetReadDeadline(time.Now().Add(syslogProbe))
	var one [1]byte
	_, err := s.conn.Read(one[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	s.close()
	if err == nil {
		err = errors.New("the syslog server sent data")
	}
	return fmt.Errorf("the syslog connection closed after the write: %w", err)
}

// waitAcked waits until the peer's TCP has acknowledged every byte
// written to c (unacked), polling with a wait doubling from 100 µs to
// 10 ms, until ctx ends; on a system that does not say, it returns at
// once.
func waitAcked(ctx context.Context, c net.Conn) error {
	wait := 100 * time.Microsecond
	for {
		n, ok := unacked(c)
		if !ok || n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%d bytes still unacknowledged: %w", n, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

func (s *syslogSender) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// syslogMessage is the RFC 5424 message of r: facility 13 (log audit),
// severity 4 (warning) for a denial and 6 (informational) otherwise,
// TIMESTAMP the record's time, HOSTNAME the node, MSGID the record type,
// the chain position in SyslogSDID and the line as MSG.
func syslogMessage(r Record, node, app string) (string, error) {
	sev := uint8(6)
	if r.Event.Decision == "deny" {
		sev = 4
	}
	m := &rfc5424.SyslogMessage{}
	m.SetPriority(13*8 + sev)
	m.SetVersion(1)
	m.SetTimestamp(r.Event.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	m.SetHostname(printable(node, 255))
	m.SetAppname(app)
	m.SetProcID(strconv.Itoa(os.Getpid()))
	m.SetMsgID(printable(r.Event.Type, 32))
	m.SetParameter(SyslogSDID, "node", node)
	m.SetParameter(SyslogSDID, "seg", strconv.FormatUint(r.Segment, 10))
	m.SetParameter(SyslogSDID, "seq", strconv.FormatUint(r.Seq, 10))
	m.SetParameter(SyslogSDID, "hash", r.Hash)
	m.SetMessage(string(r.Raw))
	s, err := m.String()
	if err != nil {
		return "", fmt.Errorf("audit: syslog message of record %d: %w", r.Seq, err)
	}
	return s, nil
}

// printable is s with every byte outside PRINTUSASCII (RFC 5424 §6) made
// "_", cut to n bytes; "-" for "".
func printable(s string, n int) string {
	s = strings.Map(func(c rune) rune {
		if c < 33 || c > 126 {
			return '_'
		}
		return c
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	if s == "" {
		return "-"
	}
	return s
}

// httpsSender POSTs FHIR batch Bundles.
type httpsSender struct {
	url    string
	client *http.Client
	t      *shipTarget
}

func (h *httpsSender) send(ctx context.Context, recs []Record) error {
	events := make([]AuditEvent, 0, len(recs))
	for _, r := range recs {
		// Observe as mapped, so a config.apply in this batch stamps the
		// records after it; once repeats it harmlessly after delivery.
		h.t.m.Observe(r)
		events = append(events, h.t.m.AuditEvent(r))
	}
	body, err := MarshalBundle(BundleBatch, events, time.Now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the FHIR endpoint answered %s", resp.Status)
	}
	var br struct {
		ResourceType string
		Entry        []struct{ Response struct{ Status string } }
	}
	if json.Unmarshal(answer, &br) == nil && br.ResourceType == "Bundle" {
		for i, e := range br.Entry {
			if !strings.HasPrefix(e.Response.Status, "2") {
				return fmt.Errorf("the FHIR endpoint refused entry %d (record %d): %.40q", i, recs[min(i, len(recs)-1)].Seq, e.Response.Status)
			}
		}
	}
	return nil
}

func (h *httpsSender) close() { h.client.CloseIdleConnections() }
