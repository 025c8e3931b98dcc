package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/telegate/telegate/e2e/webclient"
)

// attackDemo starts one demo for a group of attacks and signs a patient, a
// clinician and an admin in, each in their own cookie jar.
type attackDemo struct {
	*demo
	patient, clinician, admin *browser
}

func startAttackDemo(t *testing.T) *attackDemo {
	t.Helper()
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	a := &attackDemo{demo: d}
	for _, u := range []struct {
		b    **browser
		user string
	}{{&a.patient, "patient@demo.test"}, {&a.clinician, "clinician@demo.test"}, {&a.admin, "admin@demo.test"}} {
		b := newBrowser(t, d)
		if resp, body := b.signIn(d.Base(), "/", u.user, "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("sign-in as %s: %d %.300s", u.user, resp.StatusCode, body)
		}
		*u.b = b
	}
	return a
}

// logLines is what the process logged, without the banner (which names
// the demo users on purpose).
func logLines(d *demo) string {
	var b strings.Builder
	for _, l := range strings.Split(d.Output(), "\n") {
		if strings.HasPrefix(l, "time=") || strings.HasPrefix(l, "{") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// rootPool trusts the demo's local CA root.
func rootPool(t testing.TB, d *demo) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(d.dataDir, "ca", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in root.pem")
	}
	return pool
}

// dialTLS opens a raw TLS connection to the demo's public listener with
// SNI serverName, offering the ALPN protocols protos.
func dialTLS(t testing.TB, d *demo, serverName string, protos ...string) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", d.port),
		&tls.Config{ServerName: serverName, RootCAs: rootPool(t, d), NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawExchange writes raw on a fresh HTTP/1.1 TLS connection and returns
// the response status (0 if none came) and whether the server closed the
// connection afterwards.
func rawExchange(t testing.TB, d *demo, raw string) (status int, body string, closed bool) {
	t.Helper()
	c := dialTLS(t, d, "localhost", "http/1.1")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, "", true
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", true
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return resp.StatusCode, string(b), closed
}

// attackBoundary is the multipart boundary of TestAttackRequests' bodies.
const (
	attackBoundary  = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
	attackMultipart = "multipart/form-data; boundary=" + attackBoundary
)

// attackPart is one multipart part with the Content-Disposition given.
func attackPart(disposition string) string {
	return "--" + attackBoundary + "\r\nContent-Disposition: " + disposition + "\r\n\r\nDELETE\r\n"
}

// TestAttackRequests sends hostile requests through the real binary and
// asserts what the client sees and, through the demo app's JSON view,
// what the upstream saw. Reserved headers are stripped whatever their
// spelling (docs/architecture.md principle 3); paths that cannot be normalised are
// refused with 400 (principle 1); a Host that is not the TLS server name
// is refused with 421 (RFC 9110 §15.5.20).
func TestAttackRequests(t *testing.T) {
	a := startAttackDemo(t)
	type who int
	const (
		anon who = iota
		patient
		clinician
	)
	cases := []struct {
		name    string
		as      who
		method  string
		path    string
		host    string
		hdr     map[string]string
		body    string // sent as application/x-www-form-urlencoded when set
		ctype   string // the body's Content-Type instead
		status  int
		subject string // when status is 200: the subject the upstream saw
		route   string // when status is 200: the route the upstream saw
	}{
		{name: "X-Forwarded-User spoof", as: patient, path: "/", hdr: map[string]string{"X-Forwarded-User": "admin@demo.test"}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "underscore subject spoof", as: patient, path: "/", hdr: map[string]string{"X_Telegate_Subject": "admin@demo.test"}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "dotted assertion spoof", as: patient, path: "/", hdr: map[string]string{"X.Telegate.Assertion": "eyJhbGciOiJub25lIn0.e30."}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "assertion spoof", as: patient, path: "/", hdr: map[string]string{"X-Telegate-Assertion": "eyJhbGciOiJub25lIn0.e30."}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "anonymous subject spoof on public", as: anon, path: "/public/", hdr: map[string]string{"X-Telegate-Subject": "admin@demo.test", "X-Forwarded-User": "admin@demo.test"}, status: 200, subject: "", route: ""},
		{name: "X-Original-URL to admin", as: patient, path: "/", hdr: map[string]string{"X-Original-URL": "/admin/", "X-Rewrite-URL": "/admin/"}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "X-Forwarded-Host", as: patient, path: "/", hdr: map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "10.0.0.1"}, status: 200, subject: "patient@demo.test", route: "home"},
		{name: "method override never reaches the upstream", as: patient, path: "/", hdr: map[string]string{"X-HTTP-Method-Override": "DELETE"}, status: 403},
		{name: "dot-dot from public to admin", as: patient, path: "/public/../admin/", status: 400},
		{name: "encoded dot-dot", as: patient, path: "/public/%2e%2e/admin/", status: 400},
		{name: "encoded slash", as: patient, path: "/public%2f..%2fadmin/", status: 400},
		{name: "encoded backslash", as: patient, path: "/public/%5c..%5cadmin/", status: 400},
		{name: "raw backslash", as: patient, path: "/public/..\\admin/", status: 400},
		{name: "empty segment", as: patient, path: "/public//admin/", status: 400},
		{name: "NUL", as: patient, path: "/public/%00", status: 400},
		{name: "path parameter", as: patient, path: "/admin;x=1/", status: 400},
		{name: "dot segment", as: patient, path: "/public/./x", status: 400},
		{name: "telegate dot-dot", as: patient, path: "/.telegate/../admin/", status: 400},
		{name: "percent-encoded admin", as: patient, path: "/%61dmin/", status: 403},
		{name: "admin without slash", as: patient, path: "/admin", status: 403},
		{name: "clinic as patient", as: patient, path: "/clinic/", status: 403},
		{name: "double-encoded dot-dot", as: patient, path: "/public/%252e%252e/admin/", status: 400},
		// letter case: another route's prefix in other case
		{name: "clinic prefix in upper case", as: patient, path: "/CLINIC/", status: 400},
		{name: "admin prefix in mixed case", as: patient, path: "/Admin/x", status: 400},
		{name: "telegate prefix in other case", as: patient, path: "/.TELEGATE/login", status: 400},
		{name: "dotless i in the admin prefix", as: patient, path: "/adm%C4%B1n/", status: 400},
		{name: "dotted capital I in the clinic prefix", as: patient, path: "/cl%C4%B0nic/", status: 400},
		// segments servers trim or rewrite
		{name: "trailing dot", as: patient, path: "/admin./", status: 400},
		{name: "encoded space at a segment's end", as: patient, path: "/admin%20/", status: 400},
		{name: "encoded tab", as: patient, path: "/admin%09/", status: 400},
		{name: "encoded semicolon", as: patient, path: "/admin%3B/", status: 400},
		{name: "encoded question mark", as: patient, path: "/public/%3F/../admin/", status: 400},
		{name: "encoded percent", as: patient, path: "/public/%25", status: 400},
		{name: "NTFS directory stream", as: patient, path: "/admin::$INDEX_ALLOCATION/", status: 400},
		// Unicode
		{name: "overlong slash", as: patient, path: "/public/%C0%AF../admin/", status: 400},
		{name: "surrogate", as: patient, path: "/public/%ED%A0%80", status: 400},
		{name: "fullwidth admin", as: patient, path: "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/", status: 400},
		{name: "fullwidth solidus", as: patient, path: "/public%EF%BC%8F..%EF%BC%8Fadmin/", status: 400},
		{name: "ligature", as: patient, path: "/public/%EF%AC%81le", status: 400},
		{name: "zero-width space", as: patient, path: "/admin%E2%80%8B/", status: 400},
		{name: "no-break space", as: patient, path: "/admin%C2%A0/", status: 400},
		{name: "bidi override", as: patient, path: "/public/%E2%80%AEx", status: 400},
		{name: "soft hyphen", as: patient, path: "/ad%C2%ADmin/", status: 400},
		{name: "NFKC text passes", as: patient, path: "/caf%C3%A9", status: 200, subject: "patient@demo.test", route: "home"},
		// method overrides
		{name: "_method in the query", as: patient, path: "/?_method=DELETE", status: 400},
		{name: "_METHOD in the query", as: patient, path: "/?_METHOD=DELETE", status: 400},
		{name: "encoded _method in the query", as: patient, path: "/?%5Fmethod=DELETE", status: 400},
		{name: "_method in a form body", as: patient, method: http.MethodPost, path: "/", body: "a=1&_method=DELETE", status: 400},
		{name: "_method cut by NUL in the query", as: patient, path: "/?_method%00x=DELETE", status: 400},
		{name: "_method in a JSON body", as: patient, method: http.MethodPost, path: "/", ctype: "application/json", body: `{"a":1,"_method":"DELETE"}`, status: 400},
		{name: "method in lower case", as: patient, method: "post", path: "/", body: "a=1", status: 400},
		{name: "encoded _method in a form body", as: patient, method: http.MethodPost, path: "/", body: "%5Fmethod=DELETE", status: 400},
		{name: "_METHOD in a form body", as: patient, method: http.MethodPost, path: "/", body: "_METHOD=DELETE", status: 400},
		{name: "_method in a multipart body", as: patient, method: http.MethodPost, path: "/", ctype: attackMultipart, body: attackPart(`form-data; name="_method"`) + "--" + attackBoundary + "--\r\n", status: 400},
		{name: "_METHOD in a multipart body, header in lower case", as: patient, method: http.MethodPost, path: "/", ctype: attackMultipart,
			body: "--" + attackBoundary + "\r\ncontent-disposition: form-data; name=_METHOD\r\n\r\nDELETE\r\n--" + attackBoundary + "--\r\n", status: 400},
		{name: "_method as a multipart file part", as: patient, method: http.MethodPost, path: "/", ctype: attackMultipart, body: attackPart(`form-data; name="_method"; filename="m.txt"`) + "--" + attackBoundary + "--\r\n", status: 400},
		{name: "a multipart body without _method passes", as: patient, method: http.MethodPost, path: "/", ctype: attackMultipart, body: attackPart(`form-data; name="method"`) + "--" + attackBoundary + "--\r\n",
			status: 200, subject: "patient@demo.test", route: "home"},
		{name: "_method after a stray multipart delimiter", as: patient, method: http.MethodPost, path: "/", ctype: attackMultipart,
			body: attackPart(`form-data; name="a"`) + "--" + attackBoundary + "--\r\n" + attackPart(`form-data; name="_method"`) + "--" + attackBoundary + "--\r\n", status: 400},
		{name: "foreign Host", as: patient, path: "/", host: "evil.example", status: 421},
		{name: "IP Host with SNI localhost", as: anon, path: "/public/", host: "127.0.0.1", status: 421},
		{name: "admin metrics not on public listener", as: clinician, path: "/metrics", status: 200, subject: "clinician@demo.test", route: "home"},
		{name: "admin readyz not on public listener", as: anon, path: "/readyz", status: 302},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b *browser
			switch tc.as {
			case patient:
				b = &browser{t: t, c: a.patient.c, accept: a.patient.accept}
			case clinician:
				b = &browser{t: t, c: a.clinician.c, accept: a.clinician.accept}
			default:
				b = newBrowser(t, a.demo)
			}
			u := a.Base() + tc.path
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var form io.Reader
			if tc.body != "" {
				form = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(method, a.Base()+"/", form)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				ctype := tc.ctype
				if ctype == "" {
					ctype = "application/x-www-form-urlencoded"
				}
				req.Header.Set("Content-Type", ctype)
			}
			// Opaque keeps the path byte for byte as written.
			req.URL.Opaque = tc.path
			req.Header.Set("Accept", "application/json")
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.hdr {
				req.Header[k] = []string{v}
			}
			resp, body := b.do(b.noRedirect(), req)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d\n%.300s", method, u, resp.StatusCode, tc.status, body)
			}
			if tc.status >= 400 {
				if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
					t.Errorf("refusal does not carry its request id %q: %.300s", rid, body)
				}
				for _, leak := range []string{"goroutine", ".go:", "panic", "runtime error", "127.0.0.1:"} {
					if strings.Contains(string(body), leak) {
						t.Errorf("error page leaks %q: %.300s", leak, body)
					}
				}
				if strings.Contains(string(body), `"subject"`) {
					t.Errorf("a refused request reached the upstream: %.300s", body)
				}
				return
			}
			if tc.status != http.StatusOK {
				return
			}
			v := decodeView(t, body)
			if v.Subject != tc.subject || v.Route != tc.route {
				t.Errorf("upstream saw subject %q route %q, want %q %q", v.Subject, v.Route, tc.subject, tc.route)
			}
			if strings.Contains(string(body), "# HELP") {
				t.Errorf("public listener served metrics")
			}
		})
	}
}

// TestAttackConnectionNomination: a client that names telegate's
// assertion, Authorization or Cookie in its Connection field (RFC 9110
// §7.6.1) cannot have them dropped on the way: the upstream still sees
// the signed-in user (the Caddy hop-by-hop advisory).
func TestAttackConnectionNomination(t *testing.T) {
	a := startAttackDemo(t)
	cookie := a.patient.cookie(a.Base(), sessionCookie).Value
	raw := "GET / HTTP/1.1\r\nHost: " + strings.TrimPrefix(a.Base(), "https://") + "\r\nAccept: application/json\r\n" +
		"Cookie: " + sessionCookie + "=" + cookie + "\r\nConnection: keep-alive, X-Telegate-Assertion, Authorization, Cookie, X-Request-Id\r\n\r\n"
	status, body, _ := rawExchange(t, a.demo, raw)
	if status != http.StatusOK {
		t.Fatalf("status %d\n%.300s", status, body)
	}
	if v := decodeView(t, []byte(body)); v.Subject != "patient@demo.test" || !v.Authenticated {
		t.Errorf("upstream saw %+v, want the patient", v)
	}
}

// TestAttackRawHTTP1 writes malformed or ambiguous HTTP/1.1 requests
// byte for byte over TLS: request smuggling (RFC 9112 §6.3, §11.2),
// obs-fold (RFC 9112 §5.2), duplicate Host (RFC 9112 §3.2), a fragment in
// the target (RFC 9112 §3.2) and whitespace before the colon (RFC 9112
// §5.1) each get 400 and a closed connection, never a route.
func TestAttackRawHTTP1(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	host := fmt.Sprintf("localhost:%d", d.port)
	cases := []struct {
		name, raw string
	}{
		{"CL and TE", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"},
		{"TE and CL", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nG"},
		{"two Content-Length", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1\r\nContent-Length: 30\r\n\r\nx"},
		{"Content-Length list", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1, 30\r\n\r\nx"},
		{"TE obfuscated", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
		{"TE with space before colon", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"},
		{"obs-fold", "GET /public/ HTTP/1.1\r\nHost: " + host + "\r\nX-Folded: a\r\n b\r\n\r\n"},
		{"obs-fold of TE", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"},
		{"duplicate Host", "GET /public/ HTTP/1.1\r\nHost: " + host + "\r\nHost: evil.example\r\n\r\n"},
		{"no Host", "GET /public/ HTTP/1.1\r\n\r\n"},
		{"fragment in target", "GET /public/x#/../../admin/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"absolute-form to another host", "GET https://evil.example/admin/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"NUL in a field value", "GET /public/ HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\x00b\r\n\r\n"},
		{"space in target", "GET /public/ x HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"chunk size overflow", "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body, closed := rawExchange(t, d, tc.raw)
			if status != http.StatusBadRequest && status != http.StatusMisdirectedRequest && status != http.StatusNotImplemented {
				t.Errorf("status %d, want 400\n%.300s", status, body)
			}
			if !closed {
				t.Errorf("connection left open after a refused request (status %d)", status)
			}
			if strings.Contains(body, `"subject"`) {
				t.Errorf("the upstream answered: %.300s", body)
			}
		})
	}
}

// TestAttackSmuggledSecondRequest: a body that hides a second request
// behind CL/TE disagreement never reaches the admin route; the client
// sees one 400 and the connection ends.
func TestAttackSmuggledSecondRequest(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	host := fmt.Sprintf("localhost:%d", d.port)
	smuggled := "GET /admin/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	raw := "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + fmt.Sprint(5+len(smuggled)) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	c := dialTLS(t, d, "localhost", "http/1.1")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(c)
	if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 || !strings.HasPrefix(string(all), "HTTP/1.1 400") {
		t.Errorf("want exactly one 400 response, got %d responses:\n%.600s", n, all)
	}
}

// TestAttackLimits: oversized header sections get 431 (RFC 6585 §5),
// slow header sections are cut off by the read-header timeout, TLS below
// 1.2 is refused (RFC 8996), and HTTP/2 rapid reset (CVE-2023-44487)
// ends in GOAWAY and a closed connection.
func TestAttackLimits(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	host := fmt.Sprintf("localhost:%d", d.port)

	t.Run("oversized header", func(t *testing.T) {
		t.Parallel()
		raw := "GET /public/ HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"
		status, body, _ := rawExchange(t, d, raw)
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("70 KiB header: %d, want 431\n%.200s", status, body)
		}
	})

	t.Run("oversized header over h2", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, d)
		req := mustRequest(t, "GET", d.Base()+"/public/", "application/json")
		req.Header.Set("X-Big", strings.Repeat("a", 70<<10))
		resp, body, err := b.c.Do(nil, req)
		if err == nil && resp.StatusCode == http.StatusOK {
			t.Errorf("70 KiB header over h2 reached the upstream: %.200s", body)
		}
	})

	t.Run("slow headers", func(t *testing.T) {
		t.Parallel()
		c := dialTLS(t, d, "localhost", "http/1.1")
		if _, err := io.WriteString(c, "GET /public/ HTTP/1.1\r\nHost: "+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(12 * time.Second))
		_, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open %v after an unfinished header section", time.Since(start))
		}
		t.Logf("closed after %v", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		t.Parallel()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", d.port),
			&tls.Config{ServerName: "localhost", RootCAs: rootPool(t, d), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})

	t.Run("HTTP/2 CONTINUATION flood", func(t *testing.T) {
		// CVE-2024-27316 and kin: a header block that never ends must not
		// be buffered without bound; the server closes the connection.
		t.Parallel()
		c := dialTLS(t, d, "localhost", "h2")
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/public/"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		closed := make(chan error, 1)
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, err := fr.ReadFrame(); err != nil {
					closed <- err
					return
				}
			}
		}()
		werr := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true})
		hb.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("a", 8000)})
		for i := 0; i < 2000 && werr == nil; i++ { // 16 MB of header block, never ended
			werr = fr.WriteContinuation(1, false, hb.Bytes())
		}
		select {
		case err := <-closed:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after an endless header block: %v", err)
			}
		case <-time.After(11 * time.Second):
			t.Fatal("connection still open after an endless header block")
		}
		if werr == nil {
			t.Errorf("the server read 16 MB of CONTINUATION frames without closing")
		}
	})

	t.Run("HTTP/2 rapid reset", func(t *testing.T) {
		t.Parallel()
		c := dialTLS(t, d, "localhost", "h2")
		if c.ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatal("h2 not negotiated")
		}
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/public/rr"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		block := hb.Bytes()
		done := make(chan struct {
			goaway bool
			err    error
		}, 1)
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			goaway := false
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					done <- struct {
						goaway bool
						err    error
					}{goaway, err}
					return
				}
				if _, ok := f.(*http2.GoAwayFrame); ok {
					goaway = true
				}
			}
		}()
		var werr error
		for i := uint32(0); i < 3000 && werr == nil; i++ {
			id := 2*i + 1
			werr = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
			if werr == nil {
				werr = fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}
		select {
		case r := <-done:
			var ne net.Error
			if errors.As(r.err, &ne) && ne.Timeout() {
				t.Fatalf("connection not closed after rapid reset: %v", r.err)
			}
			if !r.goaway {
				t.Errorf("connection closed without GOAWAY")
			}
		case <-time.After(11 * time.Second):
			t.Fatal("connection still open after rapid reset")
		}
	})
}

// TestAttackWebSocketSignal: the visit's signaling WebSocket needs a
// session (401), a same-origin Origin (RFC 6455 §10.2: 403 for a foreign,
// null or missing one) and admission to the visit (403).
func TestAttackWebSocketSignal(t *testing.T) {
	a := startAttackDemo(t)
	id := createVisit(t, a.clinician, a.Base())
	cases := []struct {
		name   string
		b      *browser
		origin string
		status int
	}{
		{"no session", nil, a.Base(), http.StatusUnauthorized},
		{"foreign Origin", a.clinician, "https://evil.example", http.StatusForbidden},
		{"null Origin", a.clinician, "null", http.StatusForbidden},
		{"no Origin", a.clinician, "", http.StatusForbidden},
		{"http Origin", a.clinician, strings.Replace(a.Base(), "https:", "http:", 1), http.StatusForbidden},
		{"other port Origin", a.clinician, "https://localhost:1", http.StatusForbidden},
		{"patient not admitted", a.patient, a.Base(), http.StatusForbidden},
		{"host admitted", a.clinician, a.Base(), http.StatusSwitchingProtocols},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cookie string
			if tc.b != nil {
				cookie = tc.b.cookie(a.Base(), sessionCookie).Value
			}
			c := dialTLS(t, a.demo, "localhost", "http/1.1")
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			raw := "GET /.telegate/visits/" + id + "/signal HTTP/1.1\r\nHost: " + strings.TrimPrefix(a.Base(), "https://") +
				"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			if tc.origin != "" {
				raw += "Origin: " + tc.origin + "\r\n"
			}
			if cookie != "" {
				raw += "Cookie: " + sessionCookie + "=" + cookie + "\r\n"
			}
			if _, err := io.WriteString(c, raw+"\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("upgrade: %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// createVisit creates a visit as b (a clinician) and returns its id.
func createVisit(t *testing.T, b *browser, base string) string {
	t.Helper()
	id, _ := visitPost(t, b, base, "/.telegate/visits", map[string]any{"title": "attack", "participants": 2})["id"].(string)
	if id == "" {
		t.Fatal("no visit id")
	}
	return id
}

// TestAttackCSRF: sign-out and the visits API refuse cross-site requests
// (Fetch Metadata, Origin: RFC 6454 §7), and the session survives them.
func TestAttackCSRF(t *testing.T) {
	a := startAttackDemo(t)
	before := countVisits(t, a.clinician, a.Base())
	cases := []struct {
		name   string
		b      *browser
		path   string
		ctype  string
		body   string
		hdr    map[string]string
		status int
	}{
		{"sign-out from a foreign Origin", a.patient, "/.telegate/logout", "application/x-www-form-urlencoded", "rd=%2F", map[string]string{"Origin": "https://evil.example"}, 403},
		{"sign-out cross-site fetch metadata", a.patient, "/.telegate/logout", "application/x-www-form-urlencoded", "rd=%2F", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"sign-out null Origin", a.patient, "/.telegate/logout", "application/x-www-form-urlencoded", "", map[string]string{"Origin": "null"}, 403},
		{"create visit from a foreign Origin", a.clinician, "/.telegate/visits", "application/json", `{"title":"x"}`, map[string]string{"Origin": "https://evil.example", "X-Telegate-CSRF": "1"}, 403},
		{"create visit without the CSRF header", a.clinician, "/.telegate/visits", "application/json", `{"title":"x"}`, map[string]string{"Origin": a.Base()}, 403},
		{"create visit as a text/plain form", a.clinician, "/.telegate/visits", "text/plain", `{"title":"x"}`, map[string]string{"Origin": "https://evil.example"}, 403},
		{"create visit as a patient", a.patient, "/.telegate/visits", "application/json", `{"title":"x"}`, map[string]string{"Origin": a.Base(), "X-Telegate-CSRF": "1"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, a.Base()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			req.Header.Set("Accept", "application/json")
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			b := &browser{t: t, c: tc.b.c, accept: tc.b.accept}
			resp, body := b.do(b.noRedirect(), req)
			if resp.StatusCode != tc.status {
				t.Errorf("%d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			// The session is still there.
			resp, body = b.do(b.noRedirect(), mustRequest(t, "GET", a.Base()+"/", "application/json"))
			if resp.StatusCode != http.StatusOK || !decodeView(t, body).Authenticated {
				t.Errorf("after the refused request the session is gone: %d", resp.StatusCode)
			}
		})
	}
	if after := countVisits(t, a.clinician, a.Base()); after != before {
		t.Errorf("visits went from %d to %d after refused requests", before, after)
	}
}

func countVisits(t *testing.T, b *browser, base string) int {
	t.Helper()
	resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", base+"/.telegate/visits", "application/json"))
	if resp.StatusCode != 200 {
		t.Fatalf("list visits: %d %.200s", resp.StatusCode, body)
	}
	return strings.Count(string(body), `"status":`)
}

// signInUntilCallback walks the sign-in up to the gateway's callback and
// returns the callback URL without opening it.
func signInUntilCallback(t *testing.T, b *browser, base, rd, user string) string {
	t.Helper()
	var callback string
	hc := *b.c.HTTP
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.Path, "/.telegate/callback/") {
			callback = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, body := b.do(&hc, mustRequest(t, "GET", base+"/.telegate/login?rd="+url.QueryEscape(rd), "text/html"))
	m := regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %d %.300s", resp.StatusCode, body)
	}
	action, err := resp.Request.URL.Parse(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"username": {user}, "password": {"demo"}}
	if id := regexp.MustCompile(`<input type="hidden" name="id" value="([^"]*)"`).FindSubmatch(body); id != nil {
		form.Set("id", string(id[1]))
	}
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.do(&hc, req)
	if callback == "" {
		t.Fatal("the identity provider did not send the browser to the callback")
	}
	return callback
}

// sessionSetCookie returns the Set-Cookie line for the session cookie.
func sessionSetCookie(resp *http.Response) string {
	for _, l := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, sessionCookie+"=") {
			return l
		}
	}
	return ""
}

// TestAttackSignInFlow: the callback needs the state cookie of the browser
// that started the sign-in (RFC 6749 §10.12), a code works once (RFC 6749
// §4.1.2), a session cookie planted before sign-in does not survive it
// (session fixation, OWASP ASVS V3.2.1), and the session cookie is
// __Host-, Secure, HttpOnly and SameSite (RFC 6265bis §4.1.3).
func TestAttackSignInFlow(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))

	t.Run("fixation, flags and replay", func(t *testing.T) {
		b := newBrowser(t, d)
		base, _ := url.Parse(d.Base() + "/")
		const planted = "plantedBeforeSignInplantedBeforeSignIn1234"
		b.c.Jar.SetCookies(base, []*http.Cookie{{Name: sessionCookie, Value: planted, Path: "/", Secure: true}})
		cb := signInUntilCallback(t, b, d.Base(), "/clinic/", "clinician@demo.test")

		resp, _ := b.do(b.noRedirect(), mustRequest(t, "GET", cb, "text/html"))
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/clinic/" {
			t.Fatalf("callback: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		sc := sessionSetCookie(resp)
		for _, attr := range []string{"; Path=/", "; Secure", "; HttpOnly", "; SameSite="} {
			if !strings.Contains(sc, attr) {
				t.Errorf("session cookie lacks %q: %s", attr, sc)
			}
		}
		if strings.Contains(strings.ToLower(sc), "domain=") {
			t.Errorf("__Host- cookie with a Domain: %s", sc)
		}
		if got := b.cookie(d.Base(), sessionCookie); got == nil || got.Value == planted {
			t.Errorf("the planted session cookie survived sign-in")
		}
		// The planted value opens nothing.
		other := newBrowser(t, d)
		req := mustRequest(t, "GET", d.Base()+"/clinic/", "application/json")
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: planted})
		if resp, _ := other.do(other.noRedirect(), req); resp.StatusCode != http.StatusFound {
			t.Errorf("planted cookie: %d, want 302 to sign in", resp.StatusCode)
		}

		// Replaying the callback in the same browser, and in another.
		resp, _ = b.do(b.noRedirect(), mustRequest(t, "GET", cb, "text/html"))
		if resp.StatusCode != http.StatusBadRequest || sessionSetCookie(resp) != "" {
			t.Errorf("replayed callback: %d %q, want 400 and no session", resp.StatusCode, sessionSetCookie(resp))
		}
		resp, _ = other.do(other.noRedirect(), mustRequest(t, "GET", cb, "text/html"))
		if resp.StatusCode != http.StatusBadRequest || sessionSetCookie(resp) != "" {
			t.Errorf("callback in another browser: %d, want 400 and no session", resp.StatusCode)
		}
	})

	t.Run("callback in the victim's browser", func(t *testing.T) {
		// Login CSRF: the attacker's callback URL opened by a victim who
		// has a sign-in of their own pending.
		attacker := newBrowser(t, d)
		cb := signInUntilCallback(t, attacker, d.Base(), "/", "patient@demo.test")
		victim := newBrowser(t, d)
		victim.do(victim.noRedirect(), mustRequest(t, "GET", d.Base()+"/.telegate/login?rd=/", "text/html"))
		resp, _ := victim.do(victim.noRedirect(), mustRequest(t, "GET", cb, "text/html"))
		if resp.StatusCode != http.StatusBadRequest || sessionSetCookie(resp) != "" {
			t.Errorf("foreign callback: %d, want 400 and no session", resp.StatusCode)
		}
	})

	t.Run("callback without state", func(t *testing.T) {
		b := newBrowser(t, d)
		for _, q := range []string{"?code=abc&state=xyz", "?code=abc", "?state=xyz", "?error=access_denied&state=xyz", ""} {
			resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/.telegate/callback/demo"+q, "text/html"))
			if resp.StatusCode != http.StatusBadRequest || sessionSetCookie(resp) != "" {
				t.Errorf("callback %q: %d, want 400 and no session", q, resp.StatusCode)
			}
			if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
				t.Errorf("callback %q: error page lacks the request id", q)
			}
		}
		resp, _ := b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/.telegate/callback/nosuch?code=a&state=b", "text/html"))
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("callback of an unknown provider: %d", resp.StatusCode)
		}
	})
}

// TestAttackOpenRedirect: the return path after sign-in and after sign-out
// never leaves the gateway's origin (OWASP Unvalidated Redirects).
func TestAttackOpenRedirect(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	gw := strings.TrimPrefix(d.Base(), "https://")
	hostile := []string{
		"//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/%09/evil.example",
		"javascript:alert(1)", "\\\\evil.example", "https:evil.example", "/%5Cevil.example", "/%252F%252Fevil.example",
		"/..//evil.example", "///evil.example", "/\t/evil.example", "http://localhost@evil.example/",
	}
	// stay follows redirects only to the gateway and the demo provider.
	stay := func(b *browser) *http.Client {
		hc := *b.c.HTTP
		hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != gw && req.URL.Hostname() != "127.0.0.1" {
				return http.ErrUseLastResponse
			}
			return nil
		}
		return &hc
	}
	for _, rd := range hostile {
		t.Run("sign-in rd="+rd, func(t *testing.T) {
			b := newBrowser(t, d)
			b.c.HTTP = stay(b)
			resp, _ := b.signIn(d.Base(), "/.telegate/login?rd="+url.QueryEscape(rd), "patient@demo.test", "demo")
			if resp.Request.URL.Host != gw || resp.StatusCode/100 == 3 {
				t.Errorf("after sign-in: %d at %s Location %q", resp.StatusCode, resp.Request.URL, resp.Header.Get("Location"))
			}
		})
	}
	// A same-origin return path is kept, query and all.
	b := newBrowser(t, d)
	resp, _ := b.signIn(d.Base(), "/.telegate/login?rd="+url.QueryEscape("/clinic/?x=1"), "clinician@demo.test", "demo")
	if got := resp.Request.URL.RequestURI(); resp.StatusCode != http.StatusOK || got != "/clinic/?x=1" {
		t.Errorf("sign-in with rd=/clinic/?x=1: %d at %s", resp.StatusCode, got)
	}
	for _, rd := range hostile {
		t.Run("sign-out rd="+rd, func(t *testing.T) {
			b := newBrowser(t, d)
			b.signIn(d.Base(), "/", "patient@demo.test", "demo")
			b.c.HTTP = stay(b)
			resp, _ := b.post(d.Base()+"/.telegate/logout", url.Values{"rd": {rd}}, http.Header{"Origin": {d.Base()}})
			if resp.Request.URL.Host != gw || resp.StatusCode/100 == 3 {
				t.Errorf("after sign-out: %d at %s Location %q", resp.StatusCode, resp.Request.URL, resp.Header.Get("Location"))
			}
		})
	}
}

// TestAttackLeaksAndAudit runs hostile requests, then checks that the
// process's log holds no cookie, code, state, token, e-mail address or
// query string (docs/architecture.md principle 6), that the audit trail has a record
// for each refusal, and that `telegate audit verify` notices one edited
// byte.
func TestAttackLeaksAndAudit(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	cb := signInUntilCallback(t, b, d.Base(), "/clinic/?secretq=needle1", "clinician@demo.test")
	b.do(nil, mustRequest(t, "GET", cb, "application/json"))
	sess := b.cookie(d.Base(), sessionCookie)
	if sess == nil {
		t.Fatal("no session")
	}
	cbu, _ := url.Parse(cb)
	code, state := cbu.Query().Get("code"), cbu.Query().Get("state")

	var refused []string
	for _, p := range []string{"/admin/?needle2=x", "/public/../admin/", "/public/?id=" + url.QueryEscape("1' OR '1'='1 needle3"), "/admin/Patient/mrn-4471-pathmark"} {
		req := mustRequest(t, "GET", d.Base()+"/", "application/json")
		req.URL.Opaque = p
		req.Header.Set("X-Forwarded-User", "needle4@evil.example")
		resp, _ := b.do(b.noRedirect(), req)
		if resp.StatusCode < 400 {
			t.Fatalf("%s: %d, want a refusal", p, resp.StatusCode)
		}
		refused = append(refused, resp.Header.Get("X-Request-Id"))
	}
	resp, _ := b.do(b.noRedirect(), mustRequest(t, "GET", cb, "application/json")) // replayed code
	refused = append(refused, resp.Header.Get("X-Request-Id"))
	req := mustRequest(t, "GET", d.Base()+"/", "application/json")
	req.Host = "evil.example"
	resp, _ = b.do(b.noRedirect(), req)
	refused = append(refused, resp.Header.Get("X-Request-Id"))
	visitSecrets := runVisitWithRelay(t, d, b)
	time.Sleep(300 * time.Millisecond)

	secrets := map[string]string{
		"session cookie": sess.Value, "code": code, "state value": state, "state=": "state=", "code=": "code=",
		"id_token": "id_token", "access_token": "access_token", "e-mail address": "@demo.test", "spoofed header": "needle4",
		"query string": "needle", "sign-in query": "secretq", "password field": "password=", "SDP line": "v=0",
	}
	// Paths name patients and records: the log keeps none (the trail
	// does, access-controlled).
	secretsInLog := map[string]string{"a path's patient id": "mrn-4471-pathmark", "the sign-in path": "/clinic/"}
	for k, v := range visitSecrets {
		secrets[k] = v
	}
	logs := logLines(d)
	for name, secret := range secretsInLog {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %s (%q)", name, secret)
		}
	}
	for name, secret := range secrets {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s (%q)", name, secret)
		}
	}

	trail := filepath.Join(d.dataDir, "audit", "audit.log")
	raw, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	for _, rid := range refused {
		if rid == "" || !strings.Contains(string(raw), `"request_id":"`+rid+`"`) {
			t.Errorf("no audit record for refused request %q", rid)
		}
	}
	d.Stop()
	// The whole audit output — the trail and its exports — holds none of
	// it either (the e-mail address is no secret of the trail's: the
	// demo's subjects are the users' addresses).
	delete(secrets, "e-mail address")
	for out, text := range auditOutputs(t, d.dataDir, "signin", "request", "inspect", "visit.create", "relay.allocation") {
		for name, secret := range secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("the %s holds the %s (%q)", out, name, secret)
			}
		}
	}

	key := filepath.Join(d.dataDir, "keys", "audit.key")
	if out, err := runBinary(t, "audit", "verify", "--file", trail, "--key-file", key); err != nil {
		t.Fatalf("audit verify of the untouched trail: %v\n%s", err, out)
	}
	i := bytes.Index(raw, []byte(`"status":4`))
	if i < 0 {
		t.Fatal("no refusal in the trail")
	}
	edited := bytes.Clone(raw)
	edited[i+len(`"status":4`)] ^= 1 // 403 → 413 and so on
	bad := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(bad, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runBinary(t, "audit", "verify", "--file", bad, "--key-file", key)
	if err == nil || !strings.Contains(out, "BROKEN") {
		t.Errorf("audit verify of an edited trail passed:\n%s", out)
	}
}

// iceURLs creates a visit as the clinician and returns the ICE server
// URLs the gateway hands the admitted host.
func iceURLs(t *testing.T, a *attackDemo) []string {
	t.Helper()
	id := createVisit(t, a.clinician, a.Base())
	resp, body := a.clinician.do(a.clinician.noRedirect(), mustRequest(t, "GET", a.Base()+"/.telegate/visits/"+id+"/ice", "application/json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ice: %d %.300s", resp.StatusCode, body)
	}
	var urls []string
	for _, m := range regexp.MustCompile(`"(turns?:[^"]+)"`).FindAllSubmatch(body, -1) {
		urls = append(urls, string(m[1]))
	}
	if len(urls) == 0 {
		t.Fatalf("no TURN URLs in %s", body)
	}
	return urls
}

// dialTurns opens a TLS connection for the turns: URL raw (RFC 7065) as
// a browser makes it (webclient.TURNAddr: the URL's host as the server
// name, no SNI for an IP literal, RFC 6066 §3), verified against the
// local CA. A URL that does not name loopback fails the test.
func dialTurns(t *testing.T, d *demo, raw string) (*tls.Conn, error) {
	t.Helper()
	return dialTurnsWith(t, d, raw, &net.Dialer{Timeout: 5 * time.Second})
}

// dialTurnsWith is dialTurns with the dialer nd (a source address, socket
// options).
func dialTurnsWith(t *testing.T, d *demo, raw string, nd *net.Dialer) (*tls.Conn, error) {
	t.Helper()
	name, addr, err := webclient.TURNAddr(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tls.DialWithDialer(nd, "tcp", addr, &tls.Config{ServerName: name, RootCAs: rootPool(t, d)})
}

// TestRegression_TurnsURLHandshake: every turns: URL (RFC 7065) the demo
// hands a participant must complete a TLS handshake as a browser makes
// it: to the URL's host, with that host as the server name (no SNI for an
// IP literal, RFC 6066 §3), verified against the local CA, and then answer
// a STUN Binding request (RFC 8489 §6).
func TestRegression_TurnsURLHandshake(t *testing.T) {
	a := startAttackDemo(t)
	for _, raw := range iceURLs(t, a) {
		if !strings.HasPrefix(raw, "turns:") {
			continue
		}
		c, err := dialTurns(t, a.demo, raw)
		if err != nil {
			t.Errorf("%s: TLS handshake: %v", raw, err)
			continue
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		// Binding request: type 0x0001, length 0, magic cookie, transaction id.
		req := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		buf := make([]byte, 512)
		if _, err := c.Write(req); err != nil {
			t.Errorf("%s: %v", raw, err)
		} else if n, err := c.Read(buf); err != nil || n < 20 || buf[0] != 1 || buf[1] != 1 {
			t.Errorf("%s: no Binding success response: %v %x", raw, err, buf[:n])
		}
		c.Close()
	}
}

// TestRegression_HeaderTooLargeRequestID: requests that net/http itself
// refuses before the gateway's handler runs (an oversized header section,
// RFC 6585 §5; a Host field with userinfo or a path, RFC 9112 §3.2) are
// refusals like any other: the page carries the request id and the
// security headers (docs/architecture.md "Conventions") and the audit trail records them.
func TestRegression_HeaderTooLargeRequestID(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	host := strings.TrimPrefix(d.Base(), "https://")
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"oversized header", "GET /public/ HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431},
		{"Host with userinfo", "GET /public/ HTTP/1.1\r\nHost: x@" + host + "\r\n\r\n", 400},
		{"Host with a path", "GET /public/ HTTP/1.1\r\nHost: " + host + "/admin\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLS(t, d, "localhost", "http/1.1")
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			rid := resp.Header.Get("X-Request-Id")
			if rid == "" || !strings.Contains(string(body), rid) {
				t.Errorf("%d without its request id (header %q): %q", tc.status, rid, body)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%d without the security headers: %v", tc.status, resp.Header)
			}
			time.Sleep(300 * time.Millisecond)
			trail, _ := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log"))
			if rid == "" || !bytes.Contains(trail, []byte(rid)) {
				t.Errorf("no audit record for the %d", tc.status)
			}
		})
	}
}

// TestRegression_TelegateNotFoundRequestID: an unknown path or method
// under /.telegate/ gets an error page that carries the request id, like
// every other refusal (docs/architecture.md "Conventions").
func TestRegression_TelegateNotFoundRequestID(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/.telegate/nonexistent"},
		{"GET", "/.telegate/callback/"},
		{"GET", "/.telegate/jwks.json/x"},
		{"GET", "/.telegate/visit/nosuch.js"},
		{"POST", "/.telegate/login"},
		{"POST", "/.telegate/signed-out"},
	} {
		req := mustRequest(t, tc.method, d.Base()+tc.path, "text/html")
		req.Header.Set("Origin", d.Base())
		resp, body := b.do(b.noRedirect(), req)
		if resp.StatusCode < 400 {
			t.Errorf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
			continue
		}
		if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
			t.Errorf("%s %s: %d page without its request id %q: %.200q", tc.method, tc.path, resp.StatusCode, rid, body)
		}
	}
}

// TestRegression_ScannerRefusalAuditMethod: a request the HTTP/1 scanner
// refuses (here CL+TE, RFC 9112 §6.3) is recorded with the method and
// path the client sent, not those of the stand-in request.
func TestRegression_ScannerRefusalAuditMethod(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	host := strings.TrimPrefix(d.Base(), "https://")
	c := dialTLS(t, d, "localhost", "http/1.1")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	raw := "POST /public/ HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	time.Sleep(300 * time.Millisecond)
	trail, _ := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log"))
	var rec string
	for _, l := range strings.Split(string(trail), "\n") {
		if rid != "" && strings.Contains(l, rid) {
			rec = l
		}
	}
	if rec == "" {
		t.Fatalf("no audit record for %q", rid)
	}
	if !strings.Contains(rec, `"method":"POST"`) || !strings.Contains(rec, `"path":"/public/"`) {
		t.Errorf("audit record does not name POST /public/: %s", rec)
	}
}

// TestRegression_InspectionArgumentLimit: an SQL injection in a request
// body is blocked however many harmless arguments come before it; the
// engine's argument cap (Coraza's ArgumentsLimit, 1000 by default) must
// not become a way around the Core Rule Set.
func TestRegression_InspectionArgumentLimit(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	const sqli = "1' OR '1'='1"
	form := func(n int) (string, string) {
		var s strings.Builder
		for i := range n {
			fmt.Fprintf(&s, "a%d=1&", i)
		}
		s.WriteString("id=" + url.QueryEscape(sqli))
		return "application/x-www-form-urlencoded", s.String()
	}
	jsonBody := func(n int) (string, string) {
		var s strings.Builder
		s.WriteString("{")
		for i := range n {
			fmt.Fprintf(&s, `"a%d":1,`, i)
		}
		s.WriteString(`"id":"` + sqli + `"}`)
		return "application/json", s.String()
	}
	for _, tc := range []struct {
		name string
		body func(int) (string, string)
		n    int
	}{
		{"form", form, 0}, {"form after 999", form, 999}, {"form after 1000", form, 1000}, {"form after 5000", form, 5000},
		{"json", jsonBody, 0}, {"json after 1000", jsonBody, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctype, body := tc.body(tc.n)
			req, err := http.NewRequest(http.MethodPost, d.Base()+"/public/", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Accept", "application/json")
			resp, out := b.do(b.noRedirect(), req)
			if resp.StatusCode == http.StatusOK || strings.Contains(string(out), `"subject"`) {
				t.Errorf("%d-argument %s body with an SQL injection reached the upstream: %d", tc.n, ctype, resp.StatusCode)
			}
		})
	}
}

// TestAttackForwardedForRateLimit: X-Forwarded-For and X-Real-IP from a
// client that is not a trusted proxy (the demo trusts none) change neither
// the rate-limit key nor the address the upstream is told (docs/architecture.md
// principle 3), so rotating them does not escape the per-client limit.
func TestAttackForwardedForRateLimit(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	limited := 0
	for i := range 400 {
		req := mustRequest(t, "GET", d.Base()+"/public/", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256))
		req.Header.Set("X-Real-IP", fmt.Sprintf("10.200.%d.%d", i/256, i%256))
		resp, _ := b.do(b.noRedirect(), req)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("400 requests with rotating X-Forwarded-For were never rate-limited")
	}
	trail, _ := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log"))
	if bytes.Contains(trail, []byte(`"client":"10.`)) {
		t.Errorf("the audit trail took a client-supplied X-Forwarded-For as the client address")
	}
}

// TestRegression_TwoTabSignIn: a browser that starts sign-in in two tabs
// (both sent to sign in after the session expired) and finishes the first
// one is signed in, not refused: each pending sign-in keeps its own state
// (RFC 6749 §10.12 binds state to the user agent, not to the latest tab).
func TestRegression_TwoTabSignIn(t *testing.T) {

	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	first := signInUntilCallback(t, b, d.Base(), "/clinic/", "clinician@demo.test")
	b.do(b.noRedirect(), mustRequest(t, "GET", d.Base()+"/.telegate/login?rd=/public/", "text/html")) // second tab
	resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", first, "text/html"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/clinic/" {
		t.Errorf("first tab's callback: %d Location %q\n%.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestAttackIdentity: attacks on identity against the real node. A flood
// of junk back-channel logout tokens from one source is answered 429 past
// the back-channel bucket (rate_limits.backchannel_logout, default burst
// 50) and never 2xx, while sign-in from the same address — whose own
// endpoints have their own bucket — still works.
func TestAttackIdentity(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	b := newBrowser(t, d)
	answers := map[int]int{}
	for i := range 80 {
		junk := "eyJhbGciOiJSUzI1NiIsImtpZCI6Imp1bmsifQ.eyJpYXQiOiIxNzAwMDAwMDAwIn0." + fmt.Sprint(i)
		resp, _ := b.post(d.Base()+"/.telegate/backchannel-logout/demo", url.Values{"logout_token": {junk}}, nil)
		answers[resp.StatusCode]++
	}
	for status := range answers {
		if status < 400 {
			t.Errorf("a junk logout token was answered %d", status)
		}
	}
	if answers[http.StatusTooManyRequests] < 80-50 {
		t.Errorf("80 junk logout tokens from one source answered %v, want 429 past the burst of 50", answers)
	}
	if resp, body := newBrowser(t, d).signIn(d.Base(), "/", "clinician@demo.test", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in during the flood: %d %.300s", resp.StatusCode, body)
	}
}
