package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// lockedLog is a log destination safe for concurrent writes.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRegression_ServerLogNamesNoClient: the lines net/http and the HTTP/2
// server write themselves (a panic in a handler, a bad connection
// preface) reach the log with the client's address replaced by its
// pseudonym — IPv4, IPv6 in brackets, IPv4-mapped — like every other
// ordinary log line (docs/architecture.md principle 6).
func TestRegression_ServerLogNamesNoClient(t *testing.T) {
	t.Parallel()
	var out lockedLog
	s := serveTestGateway(t, func(_ *config.Config, o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&out, nil))
	})
	key := s.g.pseudoKey
	for _, addr := range []string{"203.0.113.7:51234", "[2001:db8::7]:443", "[::ffff:198.51.100.9]:8443"} {
		s.g.errorLog().Printf("http: panic serving %s: runtime error", addr)
		ap := netip.MustParseAddrPort(addr)
		if got := out.String(); strings.Contains(got, ap.Addr().String()) || strings.Contains(got, ap.Addr().Unmap().String()) ||
			!strings.Contains(got, audit.Pseudonym(key, ap.Addr())) {
			t.Errorf("%s: log %q", addr, got)
		}
	}
	// A real one: an HTTP/2 connection whose preface is not one.
	c := s.dialTLS(t, appHost, "h2")
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(out.String(), "preface") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := out.String()
	var warn []string // the lines net/http wrote
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "level=WARN") {
			warn = append(warn, l)
		}
	}
	got = strings.Join(warn, "\n")
	if !strings.Contains(got, "preface") {
		t.Fatalf("no preface error logged: %q", got)
	}
	local := c.LocalAddr().String()
	host, _, _ := strings.Cut(local, ":")
	if strings.Contains(got, local) || strings.Contains(got, host+":") {
		t.Errorf("the HTTP/2 server's line names the client %s: %q", local, got)
	}
}

// TestRegression_AdminRefusesNamedHosts: POST /reload on the admin
// listener answers only requests addressed to an IP address or localhost;
// a page whose own name was rebound to the listener's address (DNS
// rebinding) is same-origin to itself and would get past the cross-origin
// check. The read-only endpoints take any Host (probes name their
// targets).
func TestRegression_AdminRefusesNamedHosts(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{"POST", "/reload", "evil.example:9090", http.StatusMisdirectedRequest},
		{"POST", "/reload", "rebind.attacker.test", http.StatusMisdirectedRequest},
		{"POST", "/reload", "127.0.0.1:9090", http.StatusNotFound}, // no Reload in this gateway: past the Host check
		{"POST", "/reload", "[::1]:9090", http.StatusNotFound},
		{"GET", "/metrics", "prometheus-target.hospital.internal:9090", http.StatusOK},
		{"GET", "/healthz", "127.0.0.1:9090", http.StatusOK},
		{"GET", "/healthz", "localhost:9090", http.StatusOK},
		{"GET", "/healthz", "[::1]:9090", http.StatusOK},
		{"GET", "/healthz", "10.1.2.3", http.StatusOK},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+s.admin+tc.path, nil)
		req.Host = tc.host
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s Host %s: %d, want %d", tc.method, tc.path, tc.host, resp.StatusCode, tc.want)
		}
	}
}

// TestRegression_PlainHTTPOnTheHTTPSPortIsTold: an HTTP request sent
// without TLS to the HTTPS listener gets a 400 saying to use https —
// whatever its method — instead of an empty reply, like every other
// refusal: with a request id (header and page) and an audit record of
// reason tls:plain-http; anything else that is not TLS is simply closed.
func TestRegression_PlainHTTPOnTheHTTPSPortIsTold(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	for _, tc := range []struct {
		req  string
		told bool
	}{
		{"GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n", true},
		{"POST /clinic/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", true},
		{"HEAD / HTTP/1.0\r\n\r\n", true},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"\x00\x01binary garbage", false},
	} {
		c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte(tc.req))
		b, _ := io.ReadAll(c)
		c.Close()
		got := string(b)
		head := strings.HasPrefix(tc.req, "HEAD ")
		if told := strings.HasPrefix(got, "HTTP/1.") && strings.Contains(got, " 400 ") && (head || strings.Contains(got, "https://")); told != tc.told {
			t.Errorf("%q: answer %q", tc.req[:8], got)
		}
		if !tc.told {
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err != nil {
			t.Errorf("%q: %v", tc.req[:8], err)
			continue
		}
		rid := resp.Header.Get("X-Request-Id")
		if rid == "" || (!head && !strings.Contains(got[strings.Index(got, "\r\n\r\n"):], rid)) {
			t.Errorf("%q: no request id in header and page: %q", tc.req[:8], got)
			continue
		}
		e, ok := s.audit.find(rid)
		if !ok || e.Status != http.StatusBadRequest || e.Reason != string(scope.ReasonPlainHTTP) || e.Decision != "deny" {
			t.Errorf("%q: audit record %+v (found %v), want 400 deny %s", tc.req[:8], e, ok, scope.ReasonPlainHTTP)
		}
	}
}

// TestRegression_PathsStayOutOfTheLog: the path of a request names
// patients and records (/Patient/123, a visit's id), so the ordinary
// request log line never holds it — served, refused, not found, or
// bounced off an upstream that is down — while the audit trail keeps it
// under the same request id.
func TestRegression_PathsStayOutOfTheLog(t *testing.T) {
	t.Parallel()
	var out lockedLog
	tg := newTestGateway(t, func(_ *config.Config, o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&out, nil))
	})
	c := tg.client(tg.ts.Listener.Addr().String())
	for _, p := range []string{
		"/public/Patient/mrn-50117",          // served
		"/admin/Patient/mrn-50118",           // refused: no identity
		"/nowhere/Patient/mrn-50119",         // no route
		"/down/Observation/mrn-50120/vitals", // the upstream is down
	} {
		resp, err := c.Get("https://" + appHost + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		resp.Body.Close()
		rid := resp.Header.Get("X-Request-Id")
		mark := p[strings.LastIndex(p, "mrn-"):][:9]
		deadline := time.Now().Add(3 * time.Second)
		for !strings.Contains(out.String(), rid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := out.String(); !strings.Contains(got, rid) {
			t.Errorf("%s (%d): no log line for request %s", p, resp.StatusCode, rid)
		} else if strings.Contains(got, mark) {
			t.Errorf("%s (%d): the log holds the path: %q", p, resp.StatusCode, got)
		}
		if e, ok := tg.audit.find(rid); !ok || e.Path != p {
			t.Errorf("%s: the trail's record of request %s has path %q", p, rid, e.Path)
		}
	}
}
