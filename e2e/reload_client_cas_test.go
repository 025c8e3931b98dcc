package e2e

import (
	"bufio"
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
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// clientCAsConfig is a configuration whose routes /carts/ and, for
// WebSockets, /carts-live/ take only devices (see runWithDevOP for %[1]…%[7]): %[8]s is the client_cas list,
// %[9]s the route's client_cert, %[10]s the upstream, %[11]d the
// plain-HTTP listener's port, %[12]d the relay's dedicated TLS port and
// %[13]s the lowest TLS version.
var clientCAsConfig = runConfig{
	HTTPListen: "127.0.0.1:%[11]d",
	TLS:        "  min_version: \"%[13]s\"\n",
	Providers: `  - id: dev
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[6]s
`,
	Sections: "client_cas:\n%[8]s\n",
	Routes: `  - id: carts
    path: /carts/
    upstream: %[10]s
    client_cert: %[9]s
    identity_headers: true
    policy:
      allow:
        - authenticated: true
  - id: carts-live
    path: /carts-live/
    upstream: %[10]s
    websocket: true
    client_cert: %[9]s
    policy:
      allow:
        - authenticated: true
`,
	Relay:     true,
	RelayMore: "  tls_listen: 127.0.0.1:%[12]d\n  unauthenticated_rate: {rate: 1000, burst: 1000}\n",
}.String()

// deviceCA is a CA that signs the client certificates of connected
// medical devices, its certificate in a PEM file.
type deviceCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newDeviceCA(t *testing.T, dir, name string) *deviceCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &deviceCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// pemBytes is the CA's certificate as PEM.
func (ca *deviceCA) pemBytes() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue returns a client certificate (clientAuth) for the device name.
func (ca *deviceCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// deviceUpstream is the devices' upstream: it echoes a WebSocket's
// messages, and answers any other request with the subject the gateway
// named (identity_headers) as JSON.
func deviceUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"subject": r.Header.Get("X-Telegate-Subject")})
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // the gateway checked the Origin
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, b) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// clientCAsNode is a running node of clientCAsConfig and what its tests
// drive it with.
type clientCAsNode struct {
	t                   *testing.T
	d                   *demo
	rewrite             func(string, ...any)
	upstream            string
	httpPort, turnsPort int
	roots               *x509.CertPool
	gen                 int
}

// caEntry is one client_cas list item.
func caEntry(id, file string) string { return fmt.Sprintf("  - id: %s\n    ca_file: %s\n", id, file) }

func startClientCAsNode(t *testing.T, cas, clientCert string) *clientCAsNode {
	t.Helper()
	n := &clientCAsNode{t: t, upstream: deviceUpstream(t), httpPort: freePort(t), turnsPort: freePort(t), gen: 1}
	n.d, n.rewrite = startWithDevOP(t, clientCAsConfig, cas, clientCert, n.upstream, n.httpPort, n.turnsPort, "1.2")
	n.roots = rootPool(t, n.d)
	return n
}

// write rewrites the configuration file.
func (n *clientCAsNode) write(cas, clientCert, minVersion string) {
	n.rewrite(clientCAsConfig, cas, clientCert, n.upstream, n.httpPort, n.turnsPort, minVersion)
}

// reload asks for a reload that must take effect as the next generation.
func (n *clientCAsNode) reload() {
	n.t.Helper()
	n.gen++
	if st, body := reloadNow(n.t, n.d); st != http.StatusOK || !strings.Contains(body, fmt.Sprintf("generation %d\n", n.gen)) {
		n.t.Fatalf("reload: %d %q, want generation %d", st, body, n.gen)
	}
}

// refused asks for a reload that must be refused naming field at a line
// of the file; the running generation stays.
func (n *clientCAsNode) refused(field string) {
	n.t.Helper()
	st, body := reloadNow(n.t, n.d)
	n.t.Logf("refused: %s", body)
	if st != http.StatusConflict || !strings.Contains(body, field) || !strings.Contains(body, "telegate.yaml:") {
		n.t.Fatalf("reload: %d %q, want 409 naming %s with file:line", st, body, field)
	}
	if r := readyz(n.t, n.d); !strings.Contains(r, fmt.Sprintf(`"generation":%d,`, n.gen)) {
		n.t.Fatalf("readyz %q, want generation %d still running", r, n.gen)
	}
}

// device is a connected medical device: an HTTP client that presents its
// certificate whatever CAs the server names (as many devices do) and keeps
// its connection alive between requests.
type device struct {
	n      *clientCAsNode
	name   string
	client *http.Client
	tr     *http.Transport
}

// device returns a client for cert; h2 chooses HTTP/2 over HTTP/1.1.
func (n *clientCAsNode) device(cert tls.Certificate, h2 bool) *device {
	tc := &tls.Config{RootCAs: n.roots, ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	n.t.Cleanup(tr.CloseIdleConnections)
	return &device{n: n, name: cert.Leaf.DNSNames[0], tr: tr, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// deviceAnswer is what a device's request got.
type deviceAnswer struct {
	err       error
	status    int
	proto     int // HTTP major version
	reused    bool
	subject   string
	requestID string
}

// get sends GET /carts/ on the device's kept connection (or a new one).
func (dv *device) get() deviceAnswer {
	dv.n.t.Helper()
	var a deviceAnswer
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
	req, err := http.NewRequest("GET", dv.n.d.Base()+"/carts/", nil)
	if err != nil {
		dv.n.t.Fatal(err)
	}
	resp, err := dv.client.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a.status, a.proto, a.requestID = resp.StatusCode, resp.ProtoMajor, resp.Header.Get("X-Request-Id")
	var v struct {
		Subject string `json:"subject"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &v) == nil {
		a.subject = v.Subject
	}
	return a
}

// accepted fails the test unless the device is answered 200 as itself,
// over HTTP/2 or HTTP/1.1 as it asked; reused: on the connection it kept.
func (dv *device) accepted(why string, reused bool) {
	dv.n.t.Helper()
	a := dv.get()
	wantProto := 1
	if dv.tr.ForceAttemptHTTP2 {
		wantProto = 2
	}
	switch {
	case a.err != nil:
		dv.n.t.Errorf("%s: %s refused: %v", why, dv.name, a.err)
	case a.status != http.StatusOK || a.subject != dv.name:
		dv.n.t.Errorf("%s: %s got %d as %q, want 200 as itself", why, dv.name, a.status, a.subject)
	case a.proto != wantProto:
		dv.n.t.Errorf("%s: %s answered over HTTP/%d, want HTTP/%d (ALPN)", why, dv.name, a.proto, wantProto)
	case a.reused != reused:
		dv.n.t.Errorf("%s: %s connection reused %v, want %v", why, dv.name, a.reused, reused)
	}
}

// refusedOnItsConnection fails the test unless the device's request on
// the connection it kept is answered 403 and the refusal is in the audit
// trail.
func (dv *device) refusedOnItsConnection(why string) {
	dv.n.t.Helper()
	a := dv.get()
	if a.err != nil || !a.reused || a.status != http.StatusForbidden {
		dv.n.t.Errorf("%s: %s on its kept connection: reused %v, %d %v, want 403", why, dv.name, a.reused, a.status, a.err)
		return
	}
	dv.n.audited(why, a.requestID, http.StatusForbidden)
}

// refusedAtHandshake fails the test unless a new connection of the device
// fails its TLS handshake: the server's alert names the certificate (in
// TLS 1.3 the client reads it after sending its certificate), and no
// request gets through.
func (dv *device) refusedAtHandshake(why string) {
	dv.n.t.Helper()
	dv.tr.CloseIdleConnections()
	tc := dv.tr.TLSClientConfig.Clone()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", dv.n.d.port), tc)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		dv.n.t.Errorf("%s: %s's new connection: %v, want the handshake refused with a certificate alert", why, dv.name, err)
	}
	if a := dv.get(); a.err == nil {
		dv.n.t.Errorf("%s: %s's new connection answered %d, want its handshake refused", why, dv.name, a.status)
	}
}

// live opens the device's WebSocket to /carts-live/ (over HTTP/1.1, a
// connection of its own) and returns a function that sends one message
// and reads its echo within 5 s: an error once the gateway closed it.
func (dv *device) live() func() error {
	dv.n.t.Helper()
	tr := dv.tr.Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	dv.n.t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	dv.n.t.Cleanup(cancel)
	base := dv.n.d.Base()
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	c, _, err := websocket.Dial(dctx, "wss"+strings.TrimPrefix(base, "https")+"/carts-live/vitals",
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		dv.n.t.Fatalf("%s: WebSocket: %v", dv.name, err)
	}
	dv.n.t.Cleanup(func() { c.CloseNow() })
	return func() error {
		// Generous: a read that times out closes the WebSocket, which
		// would read as the gateway closing it.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		if err := c.Write(rctx, websocket.MessageText, []byte("spo2 97")); err != nil {
			return err
		}
		_, _, err := c.Read(rctx)
		return err
	}
}

// closedSoon reports whether echo fails within 2 s (the gateway closes the
// upstream side, then the client's).
func closedSoon(echo func() error) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if echo() != nil {
			return true
		}
	}
	return false
}

// audited fails the test unless the trail has the request's record with
// status and a deny decision.
func (n *clientCAsNode) audited(why, requestID string, status int) {
	n.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		raw, _ := os.ReadFile(filepath.Join(n.d.dataDir, "audit", "audit.log"))
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct {
				Type      string `json:"type"`
				RequestID string `json:"request_id"`
				Status    int    `json:"status"`
				Decision  string `json:"decision"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type == "request" && e.RequestID == requestID && requestID != "" {
				if e.Status != status || e.Decision != "deny" {
					n.t.Errorf("%s: audit record %+v, want status %d, deny", why, e, status)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Errorf("%s: no audit record for request %q", why, requestID)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReloadClientCAs: a hospital rotates the CA of its connected devices
// without a restart. A reload that adds a CA admits its devices from
// their first connection while the old CA's devices go on; one that
// removes a CA refuses its devices' new connections at the handshake and
// the next request on a connection they kept (403, audited), and their
// WebSockets are closed, while the remaining CA's stay open; a reload
// whose CA file is bad is refused with its field and line, and every
// device goes on as before.
func TestReloadClientCAs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caA, caB := newDeviceCA(t, dir, "carts-2025"), newDeviceCA(t, dir, "carts-2027")
	certA, certB := caA.issue(t, "cart-a.devices.test"), caB.issue(t, "cart-b.devices.test")
	n := startClientCAsNode(t, caEntry("carts-2025", caA.file), "[carts-2025]")

	// Generation 1: only CA A.
	a1, a2 := n.device(certA, true), n.device(certA, false)
	a1.accepted("CA A configured", false)
	a2.accepted("CA A configured", false)
	aLive := a2.live()
	b := n.device(certB, true)
	b.refusedAtHandshake("CA B not configured yet")

	// Generation 2: CA B added beside A.
	n.write(caEntry("carts-2025", caA.file)+caEntry("carts-2027", caB.file), "[carts-2025, carts-2027]", "1.2")
	n.reload()
	b.accepted("CA B added", false)
	b.accepted("CA B added", true)
	bLive := b.live()
	if closedSoon(aLive) {
		t.Error("CA B added: the WebSocket of CA A's device was closed")
	}
	a1.accepted("CA B added", true)
	a2.accepted("CA B added", true)

	// A bad CA file (a device certificate, not a CA) for a third CA:
	// refused at its field, generation 2 serves on.
	bad := filepath.Join(dir, "not-a-ca.pem")
	if err := os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certA.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	n.write(caEntry("carts-2025", caA.file)+caEntry("carts-2027", caB.file)+caEntry("carts-spare", bad),
		"[carts-2025, carts-2027, carts-spare]", "1.2")
	n.refused("client_cas[2].ca_file")
	// A CA file that is not there at all.
	n.write(caEntry("carts-2025", caA.file)+caEntry("carts-2027", filepath.Join(dir, "missing.pem")), "[carts-2025, carts-2027]", "1.2")
	n.refused("client_cas[1].ca_file")
	a1.accepted("bad CA files refused", true)
	b.accepted("bad CA files refused", true)
	fresh := n.device(certA, true)
	fresh.accepted("bad CA files refused: A's new connection", false)

	// Generation 3: CA A removed (compromised).
	n.write(caEntry("carts-2027", caB.file), "[carts-2027]", "1.2")
	n.reload()
	a1.refusedOnItsConnection("CA A removed, HTTP/2")
	a2.refusedOnItsConnection("CA A removed, HTTP/1.1")
	a1.refusedAtHandshake("CA A removed")
	n.device(certA, false).refusedAtHandshake("CA A removed")
	b.accepted("CA A removed", true)
	n.device(certB, false).accepted("CA A removed: B over HTTP/1.1", false)
	if !closedSoon(aLive) {
		t.Error("CA A removed: the WebSocket of its device stays open")
	}
	if closedSoon(bLive) {
		t.Error("CA A removed: the WebSocket of CA B's device was closed")
	}
}

// TestRegression_ReloadHalfAppliesClientTrust: a reload that changes the
// device CAs changes every part that trusts them, or none. Members:
//
//   - the CA file of an id replaced in place (the configuration text
//     unchanged): the handshake takes the new CA's devices, and so does
//     the identity mapping, which must not keep the old pool (the new
//     device answered as itself, the old one's kept connection refused
//     and its WebSocket closed);
//   - a session ticket (RFC 8446 §2.2) issued under a CA the reload
//     removed resumes nothing: the handshake is refused like a full one;
//   - the per-handshake configuration keeps each listener's ALPN: HTTP/2
//     on the HTTPS listener, TURN over TLS on it ("stun.turn") and on the
//     relay's dedicated TLS listener;
//   - tls.min_version reloads on both TLS listeners alike;
//   - the plain-HTTP redirect listener answers as before.
func TestRegression_ReloadHalfAppliesClientTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caA, caB := newDeviceCA(t, dir, "carts-old"), newDeviceCA(t, dir, "carts-new")
	certA, certB := caA.issue(t, "cart-a.devices.test"), caB.issue(t, "cart-b.devices.test")
	bundle := filepath.Join(dir, "carts.pem")
	if err := os.WriteFile(bundle, caA.pemBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startClientCAsNode(t, caEntry("carts", bundle), "[carts]")

	// turn sends a STUN Binding (RFC 8489 §6.2.2) over TLS to port with
	// ALPN protos and TLS versions up to maxV.
	turn := func(port int, protos []string, maxV uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
			&tls.Config{ServerName: "localhost", RootCAs: n.roots, NextProtos: protos, MaxVersion: maxV})
		if err != nil {
			return err
		}
		defer c.Close()
		if len(protos) > 0 && c.ConnectionState().NegotiatedProtocol != protos[0] {
			return fmt.Errorf("negotiated %q, want %q", c.ConnectionState().NegotiatedProtocol, protos[0])
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = turnwire.NewStream(c, "", "").Raw(stun.TransactionID, stun.BindingRequest)
		return err
	}
	redirect := func(why string) {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(fmt.Sprintf("http://localhost:%d/carts/", n.httpPort))
		if err != nil {
			t.Errorf("%s: plain HTTP: %v", why, err)
			return
		}
		resp.Body.Close()
		if want := fmt.Sprintf("https://localhost:%d/carts/", n.d.port); resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s: plain HTTP answered %d %q, want 308 to %s", why, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	listeners := func(why string, maxV uint16) {
		t.Helper()
		if err := turn(n.d.port, []string{"stun.turn"}, maxV); err != nil {
			t.Errorf("%s: TURN over TLS on the HTTPS listener: %v", why, err)
		}
		if err := turn(n.turnsPort, nil, maxV); err != nil {
			t.Errorf("%s: TURN over TLS on the relay's listener: %v", why, err)
		}
		redirect(why)
	}

	// Generation 1: the bundle holds CA old.
	a := n.device(certA, true)
	a.accepted("bundle of CA old", false)
	aLive := a.live()
	listeners("generation 1", 0)
	// A device that resumes its TLS sessions: the second connection
	// resumes (so the refusal below is the resumption's).
	cache := tls.NewLRUClientSessionCache(4)
	resumer := func() (bool, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", n.d.port),
			&tls.Config{ServerName: "localhost", RootCAs: n.roots, ClientSessionCache: cache, NextProtos: []string{"http/1.1"},
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certA, nil }})
		if err != nil {
			return false, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		// A request and its answer: the session ticket (sent after the
		// handshake in TLS 1.3) is read with it.
		if _, err := io.WriteString(c, "GET /carts/ HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return false, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return c.ConnectionState().DidResume, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return c.ConnectionState().DidResume, fmt.Errorf("status %d", resp.StatusCode)
		}
		return c.ConnectionState().DidResume, nil
	}
	if _, err := resumer(); err != nil {
		t.Fatalf("resuming device, first connection: %v", err)
	}
	if resumed, err := resumer(); err != nil || !resumed {
		t.Fatalf("resuming device, second connection: resumed %v, %v; want a resumed session", resumed, err)
	}

	// Generation 2: the same file, now holding CA new; the configuration
	// text is unchanged.
	if err := os.WriteFile(bundle, caB.pemBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n.reload()
	n.device(certB, true).accepted("bundle replaced: CA new's device", false)
	a.refusedOnItsConnection("bundle replaced: CA old's kept connection")
	if !closedSoon(aLive) {
		t.Error("bundle replaced: the WebSocket of CA old's device stays open")
	}
	if resumed, err := resumer(); resumed || err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("bundle replaced: CA old's device with its session ticket: resumed %v, %v; want no resumption and the handshake refused", resumed, err)
	}
	listeners("generation 2", 0)

	// Generation 3: TLS 1.3 only, on both TLS listeners.
	n.write(caEntry("carts", bundle), "[carts]", "1.3")
	n.reload()
	listeners("TLS 1.3 only", tls.VersionTLS13)
	if err := turn(n.d.port, []string{"stun.turn"}, tls.VersionTLS12); err == nil {
		t.Error("TLS 1.3 only: the HTTPS listener took TLS 1.2")
	}
	if err := turn(n.turnsPort, nil, tls.VersionTLS12); err == nil {
		t.Error("TLS 1.3 only: the relay's listener took TLS 1.2")
	}
	n.device(certB, true).accepted("TLS 1.3 only: CA new's device", false)
}
