package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/config"
)

// loopbackCert is a self-signed certificate for 127.0.0.1, and the file
// holding it as the CA the shipper trusts.
func loopbackCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siem.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"siem.test"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, ca
}

// loopbackAddr is a loopback address with a port free now.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// store is an idempotent receiver's store: records kept once by chain
// position, with every delivery counted.
type store struct {
	mu         sync.Mutex
	lines      map[uint64]string // seq → what identifies the record (line or hash)
	order      []uint64          // seqs in order of first arrival
	deliveries int
	problems   []string
}

func (s *store) add(seq uint64, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[uint64]string{}
	}
	s.deliveries++
	if old, ok := s.lines[seq]; ok {
		if old != v {
			s.problems = append(s.problems, fmt.Sprintf("record %d delivered again with other content", seq))
		}
		return
	}
	if seq != uint64(len(s.order))+1 {
		s.problems = append(s.problems, fmt.Sprintf("record %d arrived after %d: out of order or a record lost", seq, len(s.order)))
	}
	s.lines[seq] = v
	s.order = append(s.order, seq)
}

func (s *store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// syslogReceiver is an RFC 5425 server on a fixed loopback address that
// can be taken down (listener and connections closed) and up again.
type syslogReceiver struct {
	store
	t     *testing.T
	addr  string
	cert  tls.Certificate
	ln    net.Listener
	conns map[net.Conn]bool
	cmu   sync.Mutex
	// cutAfter, when > 0, closes each of the first cuts connections
	// after that many messages (what was in flight after them is lost on
	// the wire).
	cutAfter, cuts int
	// rcvbuf, when > 0, is the receive buffer (SO_RCVBUF) of its sockets;
	// while stall is open (not closed), each connection completes its
	// TLS handshake and then reads nothing, as a receiver that stopped
	// taking records.
	rcvbuf int
	stall  chan struct{}
}

func (r *syslogReceiver) up() {
	r.t.Helper()
	lc := net.ListenConfig{}
	if r.rcvbuf > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error { return setRcvbuf(c, r.rcvbuf) }
	}
	tln, err := lc.Listen(context.Background(), "tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	ln := tls.NewListener(tln, &tls.Config{Certificates: []tls.Certificate{r.cert}, MinVersion: tls.VersionTLS12})
	r.cmu.Lock()
	r.ln, r.conns = ln, map[net.Conn]bool{}
	r.cmu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.cmu.Lock()
			r.conns[c] = true
			r.cmu.Unlock()
			go r.serve(c)
		}
	}()
}

func (r *syslogReceiver) serve(c net.Conn) {
	defer c.Close()
	if r.stall != nil {
		if err := c.(*tls.Conn).Handshake(); err != nil {
			return
		}
		<-r.stall
	}
	n, cut := 0, false
	r.mu.Lock()
	cutAfter := 0
	if r.cuts > 0 {
		r.cuts--
		cutAfter = r.cutAfter
	}
	r.mu.Unlock()
	p := octetcounting.NewParser(syslog.WithListener(func(res *syslog.Result) {
		if cut {
			return // what was in flight when the receiver closed
		}
		if res.Error != nil {
			r.mu.Lock()
			r.problems = append(r.problems, "unparsable syslog message: "+res.Error.Error())
			r.mu.Unlock()
			return
		}
		m := res.Message.(*rfc5424.SyslogMessage)
		sd := (*m.StructuredData)[SyslogSDID]
		seq, err := strconv.ParseUint(sd["seq"], 10, 64)
		if err != nil || m.Message == nil || *m.Facility != 13 {
			r.mu.Lock()
			r.problems = append(r.problems, fmt.Sprintf("message without chain position or line: %+v", sd))
			r.mu.Unlock()
			return
		}
		r.add(seq, *m.Message)
		if n++; n == cutAfter {
			cut = true
			c.Close()
		}
	}))
	p.Parse(c)
}

func (r *syslogReceiver) down() {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		for c := range r.conns {
			c.Close()
		}
		r.ln = nil
	}
}

// fhirReceiver is an HTTPS FHIR endpoint on a fixed loopback address that
// keeps AuditEvents by id and can be taken down and up again.
type fhirReceiver struct {
	store
	t    *testing.T
	addr string
	cert tls.Certificate
	srv  *http.Server
	smu  sync.Mutex
	// fail, when set, answers each request with it instead of storing.
	fail func() (status int, body string)
}

func (r *fhirReceiver) up() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{r.cert}}, ErrorLog: nil}
	r.smu.Lock()
	r.srv = srv
	r.smu.Unlock()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
}

func (r *fhirReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if r.fail != nil {
		if st, b := r.fail(); st != 0 {
			w.WriteHeader(st)
			io.WriteString(w, b)
			return
		}
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	if probs := validate("Bundle", bundleDef(BundleBatch), doc); len(probs) > 0 {
		r.mu.Lock()
		r.problems = append(r.problems, "invalid Bundle: "+strings.Join(probs, "; "))
		r.mu.Unlock()
		http.Error(w, "invalid", 400)
		return
	}
	var b struct {
		Entry []struct {
			Resource AuditEvent
			Request  BundleRequest
		}
	}
	_ = json.Unmarshal(body, &b)
	var resp strings.Builder
	resp.WriteString(`{"resourceType":"Bundle","type":"batch-response","entry":[`)
	for i, e := range b.Entry {
		ch := e.Resource.Extension[0].Extension
		if e.Request.URL != "AuditEvent/"+e.Resource.ID {
			r.mu.Lock()
			r.problems = append(r.problems, "entry not PUT at its id: "+e.Request.URL)
			r.mu.Unlock()
		}
		r.add(*ch[2].ValueDecimal, ch[3].ValueString)
		if i > 0 {
			resp.WriteByte(',')
		}
		resp.WriteString(`{"response":{"status":"201 Created"}}`)
	}
	resp.WriteString("]}")
	w.Header().Set("Content-Type", "application/fhir+json")
	io.WriteString(w, resp.String())
}

func (r *fhirReceiver) down() {
	r.smu.Lock()
	defer r.smu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// shipFixture is a trail being written, its two receivers and the
// shipper between them.
type shipFixture struct {
	t      *testing.T
	dir    string
	log    *Log
	logOpt Options
	syslog *syslogReceiver
	fhir   *fhirReceiver
	ship   *Shipper
	shipO  ShipOptions
	n      int
}

func newShipFixture(t *testing.T) *shipFixture {
	cert, ca := loopbackCert(t)
	dir := t.TempDir()
	skey, _ := newSignerKey(t, "telegate-audit/node-s")
	fx := &shipFixture{t: t, dir: dir,
		logOpt: Options{File: filepath.Join(dir, "audit", "audit.log"), Key: bytes.Repeat([]byte("s"), 32), CheckpointDir: filepath.Join(dir, "ck"),
			CheckpointKey: skey, Logger: quietLogger()},
		syslog: &syslogReceiver{t: t, addr: loopbackAddr(t), cert: cert},
		fhir:   &fhirReceiver{t: t, addr: loopbackAddr(t), cert: cert},
	}
	fx.shipO = ShipOptions{File: fx.logOpt.File, Dir: config.AuditShipDirIn(dir), Node: "node-s", Logger: quietLogger(),
		Ship: config.AuditShip{
			Syslog:   config.AuditSyslog{Addr: fx.syslog.addr, CAFile: ca, AppName: "telegate"},
			HTTPS:    config.AuditHTTPS{URL: "https://" + fx.fhir.addr + "/fhir", CAFile: ca},
			Interval: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Batch: 7, Timeout: 2 * time.Second,
		}}
	fx.openLog()
	t.Cleanup(func() {
		if fx.ship != nil {
			fx.ship.Close()
		}
		if fx.log != nil {
			fx.log.Close()
		}
		fx.syslog.down()
		fx.fhir.down()
	})
	return fx
}

func (fx *shipFixture) openLog() {
	l, err := OpenTrail(fx.logOpt)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.log = l
	fx.log.SetGeneration(1)
	fx.record(1, Event{Type: "config.apply", Decision: "allow", Reason: "start", Generation: 1, Attrs: map[string]string{"hash": "h1"}})
}

// record writes k records (e, or requests).
func (fx *shipFixture) record(k int, e ...Event) {
	for range k {
		fx.n++
		ev := Event{Type: "request", RequestID: fmt.Sprintf("r%d", fx.n), RouteID: "clinic", Method: "GET", Path: "/clinic/", Status: 200,
			Client: "192.0.2.1", Decision: "allow"}
		if len(e) > 0 {
			ev = e[0]
		}
		if err := fx.log.Commit(context.Background(), ev); err != nil {
			fx.t.Fatal(err)
		}
	}
}

func (fx *shipFixture) startShipper() {
	sh, err := StartShipper(fx.shipO)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.ship = sh
}

// restart stops the shipper and the trail and opens both again, as a
// restart of telegate does.
func (fx *shipFixture) restart() {
	fx.ship.Close()
	if err := fx.log.Close(); err != nil {
		fx.t.Fatal(err)
	}
	fx.openLog()
	fx.startShipper()
}

// waitAll waits until the receivers of targets ("syslog", "https"; none:
// both) hold every record of the trail.
func (fx *shipFixture) waitAll(what string, targets ...string) {
	fx.t.Helper()
	if len(targets) == 0 {
		targets = []string{"syslog", "https"}
	}
	done := func() bool {
		for _, tg := range targets {
			if (tg == "syslog" && fx.syslog.count() != fx.n) || (tg == "https" && fx.fhir.count() != fx.n) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if done() {
			return
		}
	}
	fx.t.Fatalf("%s: syslog holds %d, https %d of %d records", what, fx.syslog.count(), fx.fhir.count(), fx.n)
}

// check compares what the receivers hold with the trail: every record,
// once, in order, the syslog copy the line itself and the FHIR copy its
// hash.
func (fx *shipFixture) check(targets ...string) {
	fx.t.Helper()
	r, err := Trail{File: fx.logOpt.File, EncryptionKey: fx.logOpt.EncryptionKey}.Open()
	if err != nil {
		fx.t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		fx.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != fx.n {
		fx.t.Fatalf("the trail holds %d records, %d written", len(lines), fx.n)
	}
	for _, name := range targets {
		s := &fx.syslog.store
		if name == "https" {
			s = &fx.fhir.store
		}
		s.mu.Lock()
		for _, p := range s.problems {
			fx.t.Errorf("%s: %s", name, p)
		}
		if len(s.order) != fx.n {
			fx.t.Errorf("%s: %d records, want %d", name, len(s.order), fx.n)
		}
		for i, l := range lines {
			want := l
			if name == "https" {
				want = lineHash([]byte(l))
			}
			if got := s.lines[uint64(i+1)]; got != want {
				fx.t.Errorf("%s: record %d is %q, want %q", name, i+1, got, want)
				break
			}
		}
		fx.t.Logf("%s: %d records in %d deliveries", name, len(s.order), s.deliveries)
		s.mu.Unlock()
	}
}

// TestShipping_ReceiverDownThenUp: records written while the syslog-TLS
// and the HTTPS receiver are down, while they go down in the middle,
// and across a restart of the trail and the shipper, all arrive at both,
// each once (kept by chain position), in order.
func TestShipping_ReceiverDownThenUp(t *testing.T) {
	fx := newShipFixture(t)
	fx.startShipper()
	fx.record(30)
	time.Sleep(300 * time.Millisecond)
	if fx.syslog.count() != 0 || fx.fhir.count() != 0 {
		t.Fatal("records arrived at receivers that are down")
	}
	if f := shipMetric(t, fx.ship, "telegate_edge_audit_ship_failures", "syslog"); f < 1 {
		t.Errorf("a target that is down shows %v failures", f)
	}
	fx.syslog.up()
	fx.fhir.up()
	fx.waitAll("after the receivers came up")

	// Down in the middle of a stream of records.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			fx.record(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	fx.syslog.down()
	fx.fhir.down()
	<-done
	time.Sleep(200 * time.Millisecond)
	fx.syslog.up()
	fx.fhir.up()
	fx.waitAll("after the receivers went down during writes")

	// Down across a restart of telegate.
	fx.syslog.down()
	fx.fhir.down()
	fx.record(9)
	fx.restart()
	fx.record(12)
	fx.syslog.up()
	fx.fhir.up()
	fx.waitAll("after a restart")
	fx.check("syslog", "https")
	// The cursors follow the receivers once each delivery is confirmed.
	for _, tg := range []string{"syslog", "https"} {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if seq, _ := fx.ship.Shipped(tg); seq == uint64(fx.n) {
				break
			}
		}
		if p := shipMetric(t, fx.ship, "telegate_edge_audit_ship_position", tg); p != float64(fx.n) {
			t.Errorf("%s: position metric %v, want %d", tg, p, fx.n)
		}
	}
}

// TestRegression_ShippingAcrossSegmentFiles: a trail that rotates into
// segment files while it is shipped — plain or sealed at rest, with the
// receivers down across a rotation and telegate restarted after one — is
// shipped whole, every record once and in order: a cursor in the open file
// is found again in the segment file it was rotated into.
func TestRegression_ShippingAcrossSegmentFiles(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			fx := newShipFixture(t)
			fx.log.Close()
			fx.logOpt.RotateSize = 4 << 10 // a few records a file
			if sealed {
				fx.logOpt.EncryptionKey = bytes.Repeat([]byte("k"), EncryptionKeySize)
				fx.shipO.EncryptionKey = fx.logOpt.EncryptionKey
			}
			fx.openLog()
			fx.syslog.up()
			fx.fhir.up()
			fx.startShipper()
			for range 6 {
				fx.record(7)
				time.Sleep(15 * time.Millisecond)
			}
			fx.waitAll("while the trail rotates")
			fx.syslog.down()
			fx.fhir.down()
			fx.record(40) // several rotations while nothing is delivered
			fx.syslog.up()
			fx.fhir.up()
			fx.waitAll("after rotations with the receivers down")
			fx.record(5)
			fx.restart()
			fx.record(30)
			fx.waitAll("after a restart")
			files, err := Trail{File: fx.logOpt.File}.Files()
			if err != nil || len(files) < 4 {
				t.Fatalf("the trail rotated into %d files (%v): the test shows nothing", len(files), err)
			}
			fx.check("syslog", "https")
		})
	}
}

// TestRegression_ShippingLostOrDuplicated: the ways a record could be
// lost or delivered twice — a syslog server that drops the connection
// after a few messages (the rest in flight), an HTTPS endpoint that
// fails, or accepts the Bundle but refuses an entry, a clean restart
// (acknowledged records must not be sent again), and a trail that no
// longer continues from the cursor (nothing shipped from a wrong place).
func TestRegression_ShippingLostOrDuplicated(t *testing.T) {
	t.Run("syslog connection cut in flight", func(t *testing.T) {
		fx := newShipFixture(t)
		fx.shipO.Ship.HTTPS = config.AuditHTTPS{}
		fx.syslog.cutAfter, fx.syslog.cuts = 3, 4
		fx.syslog.up()
		fx.startShipper()
		fx.record(40)
		fx.waitAll("delivery", "syslog")
		fx.check("syslog")
	})
	t.Run("syslog receiver that stops reading", func(t *testing.T) {
		// The batch fits this host's send buffer but not the receiver's
		// window: the TLS write returns and the connection stays open,
		// yet the receiver's TCP has not acknowledged the batch.
		if runtime.GOOS != "linux" {
			t.Skip("the send queue is read with SIOCOUTQ, on Linux")
		}
		fx := newShipFixture(t)
		fx.shipO.Ship.HTTPS = config.AuditHTTPS{}
		fx.shipO.Ship.Batch, fx.shipO.Ship.Timeout = 12, 300*time.Millisecond
		fx.syslog.rcvbuf, fx.syslog.stall = 1, make(chan struct{})
		fx.syslog.up()
		fx.record(30)
		fx.startShipper()
		time.Sleep(1200 * time.Millisecond)
		if seq, _ := fx.ship.Shipped("syslog"); seq != 0 {
			t.Errorf("records up to %d count as shipped to a receiver that read none of them", seq)
		}
		if f := shipMetric(t, fx.ship, "telegate_edge_audit_ship_failures", "syslog"); f < 1 {
			t.Errorf("a receiver that does not read shows %v failures", f)
		}
		close(fx.syslog.stall)
		fx.waitAll("once the receiver reads again", "syslog")
		fx.check("syslog")
	})
	t.Run("https failures and refused entries", func(t *testing.T) {
		fx := newShipFixture(t)
		fx.shipO.Ship.Syslog = config.AuditSyslog{}
		var mu sync.Mutex
		calls := 0
		fx.fhir.fail = func() (int, string) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			switch calls {
			case 1, 2:
				return 503, "busy"
			case 3:
				return 200, `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"500 Internal Server Error"}}]}`
			}
			return 0, ""
		}
		fx.fhir.up()
		fx.startShipper()
		fx.record(20)
		fx.waitAll("delivery", "https")
		fx.check("https")
		mu.Lock()
		if calls < 4 {
			t.Errorf("the endpoint was called %d times: the failures were not retried", calls)
		}
		mu.Unlock()
	})
	t.Run("clean restart sends nothing twice", func(t *testing.T) {
		fx := newShipFixture(t)
		fx.shipO.Ship.Syslog = config.AuditSyslog{}
		fx.fhir.up()
		fx.startShipper()
		fx.record(15)
		fx.waitAll("delivery", "https")
		fx.restart()
		fx.record(5)
		fx.waitAll("after the restart", "https")
		fx.fhir.mu.Lock()
		defer fx.fhir.mu.Unlock()
		if len(fx.fhir.order) != fx.n || fx.fhir.deliveries != fx.n || len(fx.fhir.problems) > 0 {
			t.Errorf("%d records in %d deliveries, want %d in %d; %v", len(fx.fhir.order), fx.fhir.deliveries, fx.n, fx.n, fx.fhir.problems)
		}
	})
	t.Run("trail replaced under the cursor", func(t *testing.T) {
		fx := newShipFixture(t)
		fx.shipO.Ship.Syslog = config.AuditSyslog{}
		fx.fhir.up()
		fx.startShipper()
		fx.record(10)
		fx.waitAll("delivery", "https")
		fx.ship.Close()
		fx.log.Close()
		fx.ship, fx.log = nil, nil
		// Another trail (another key, another history) at the same path.
		if err := os.Remove(fx.logOpt.File); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(fx.logOpt.CheckpointDir)
		var logs bytes.Buffer
		fx.shipO.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
		fx.logOpt.Key = bytes.Repeat([]byte("x"), 32)
		before := fx.n
		fx.openLog()
		fx.record(20)
		fx.startShipper()
		time.Sleep(500 * time.Millisecond)
		if got := fx.fhir.count(); got != before {
			t.Errorf("records of a trail that does not continue from the cursor were shipped: %d, had %d", got, before)
		}
		fx.ship.Close()
		fx.ship = nil
		if !strings.Contains(logs.String(), "does not continue") {
			t.Errorf("nothing logged about the trail that does not continue from the cursor:\n%s", logs.String())
		}
	})
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// shipMetric is the value of metric name for target, from sh's Collect.
func shipMetric(t *testing.T, sh *Shipper, name, target string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sh)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && m.GetLabel()[0].GetValue() == target {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{target=%q}", name, target)
	return 0
}
