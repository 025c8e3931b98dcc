package gateway

import (
	"github.com/telegate/telegate/config"

	"strconv"
	"strings"
	"testing"
)

// TestAttackRequests sends each attack over a real TLS connection to the
// gateway on its Serve path and checks what the client got and what the
// upstream saw.
func TestAttackRequests(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	const h = "Host: " + appHost + "\r\n"
	const root = "Cookie: tg-test=root\r\n"
	noUpstream := func(t *testing.T, _ seenRequest, got bool) {
		if got {
			t.Errorf("upstream was reached")
		}
	}
	upstreamPath := func(want string) func(*testing.T, seenRequest, bool) {
		return func(t *testing.T, r seenRequest, got bool) {
			if !got {
				t.Fatalf("upstream not reached")
			}
			if r.RequestURI != want {
				t.Errorf("upstream saw %q, want %q", r.RequestURI, want)
			}
		}
	}
	noReserved := func(t *testing.T, r seenRequest, got bool) {
		if !got {
			t.Fatalf("upstream not reached")
		}
		for k, v := range r.Header {
			f := FoldHeaderName(k)
			switch f {
			case "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "x-request-id":
				if len(v) != 1 || strings.Contains(v[0], "6.6.6.6") || strings.Contains(v[0], "evil") {
					t.Errorf("upstream header %s = %q carries client input", k, v)
				}
				continue
			}
			if IsReservedHeader(k, config.DefaultAssertionHeader) {
				t.Errorf("upstream saw reserved header %s: %q", k, v)
			}
		}
		if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the TCP peer 127.0.0.1", got)
		}
	}
	cases := []struct {
		name     string
		req      string
		status   int
		closed   bool
		upstream func(*testing.T, seenRequest, bool)
	}{
		{"baseline", "GET /public/a HTTP/1.1\r\n" + h + "\r\n", 200, false, upstreamPath("/public/a")},
		{"spoofed X-Original-URL and X-Forwarded-Uri", "GET /public/a HTTP/1.1\r\n" + h +
			"X-Original-URL: /admin/x\r\nX-Forwarded-Uri: /admin/x\r\nX-Rewrite-URL: /admin/x\r\n\r\n", 200, false, noReserved},
		{"identity headers by case, _ and .", "GET /public/a HTTP/1.1\r\n" + h +
			"x-telegate-assertion: forged\r\nX_Telegate_Subject: root\r\nX.Telegate.Roles: admin\r\n" +
			"X-TELEGATE-SUBJECT: root\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n" +
			"x.forwarded.host: evil\r\nX-Real-IP: 6.6.6.6\r\nRemote-User: root\r\nRemote_User: root\r\n" +
			"X-Remote-User: root\r\nX-Auth-Request-User: root\r\nX_Auth_Request_Email: root@evil\r\n" +
			"Forwarded: for=6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\nX-Request-Id: evil\r\n\r\n",
			200, false, noReserved},
		{"Connection nominates telegate and end-to-end headers", "GET /admin/x HTTP/1.1\r\n" + h + root +
			"Authorization: Bearer keep-me\r\nX-App: keep-me\r\n" +
			"Connection: keep-alive, X-Telegate-Assertion, Authorization, X-App, X-Request-Id, X-Forwarded-For\r\n\r\n",
			200, false, func(t *testing.T, r seenRequest, got bool) {
				if !got {
					t.Fatal("upstream not reached")
				}
				for _, k := range []string{config.DefaultAssertionHeader, "Authorization", "X-App", "X-Request-Id", "X-Forwarded-For", "X-Telegate-Subject"} {
					if r.Header.Get(k) == "" {
						t.Errorf("upstream lost %s", k)
					}
				}
				if r.Header.Get("X-Telegate-Subject") != "root" || r.Header.Get("X-Telegate-Roles") != "admin" {
					t.Errorf("identity headers = %q %q", r.Header.Get("X-Telegate-Subject"), r.Header.Get("X-Telegate-Roles"))
				}
			}},
		// path tricks
		{"double slash", "GET //admin/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"dot-dot", "GET /public/../admin/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"dot", "GET /public/./a HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"encoded dot-dot", "GET /public/%2e%2e/admin/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"encoded dot-dot upper", "GET /public/%2E%2E/admin/x HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"dot-dot encoded slash", "GET /public/..%2fadmin/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"encoded slash", "GET /public/a%2Fb HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"encoded backslash", "GET /public/a%5cb HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"semicolon", "GET /public/a;jsessionid=1 HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"semicolon allowed", "GET /matrix/a;b=1 HTTP/1.1\r\n" + h + "\r\n", 200, false, upstreamPath("/matrix/a;b=1")},
		{"backslash", "GET /public\\..\\admin/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"NUL", "GET /public/a%00.html HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"encoded control", "GET /public/a%0d%0aSet-Cookie:x HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"fragment", "GET /public/a#/../../admin HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"upper case of another route's prefix", "GET /ADMIN/x HTTP/1.1\r\n" + h + root + "\r\n", 400, true, noUpstream},
		{"upper case of no route's prefix", "GET /ELSEWHERE/x HTTP/1.1\r\n" + h + root + "\r\n", 404, false, noUpstream},
		{"encoded unreserved is decoded", "GET /%61dmin/x HTTP/1.1\r\n" + h + root + "\r\n", 200, false, upstreamPath("/admin/x")},
		{"encoded unreserved needs the admin policy", "GET /%61dmin/x HTTP/1.1\r\n" + h + "\r\n", 302, false, noUpstream},
		{"tilde decoded, other encodings kept", "GET /public/%7euser/a%22b HTTP/1.1\r\n" + h + "\r\n", 200, false, upstreamPath("/public/~user/a%22b")},
		{"no policy admits nobody", "GET /nopolicy/x HTTP/1.1\r\n" + h + root + "\r\n", 403, false, noUpstream},
		{"wrong role", "GET /clinic/x HTTP/1.1\r\n" + h + root + "\r\n", 403, false, noUpstream},
		// hosts
		{"host upper case", "GET /public/a HTTP/1.1\r\nHost: APP.Example.TEST\r\n\r\n", 200, false, upstreamPath("/public/a")},
		{"host trailing dot", "GET /public/a HTTP/1.1\r\nHost: app.example.test.\r\n\r\n", 200, false, upstreamPath("/public/a")},
		{"host explicit port", "GET /public/a HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n", 200, false, upstreamPath("/public/a")},
		{"absolute-form same host", "GET https://app.example.test/public/a HTTP/1.1\r\n" + h + "\r\n", 200, false, upstreamPath("/public/a")},
		{"absolute-form other host", "GET https://evil.example.test/public/a HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"SNI differs from Host", "GET /public/a HTTP/1.1\r\nHost: other.example.test\r\n\r\n", 421, false, noUpstream},
		{"duplicate Host", "GET /public/a HTTP/1.1\r\n" + h + "Host: other.example.test\r\n\r\n", 400, true, noUpstream},
		{"health-check user agent on public route", "GET /public/a HTTP/1.1\r\n" + h + "User-Agent: kube-probe/1.30\r\n\r\n", 200, false, upstreamPath("/public/a")},
		{"health-check user agent gets no pass", "GET /admin/x HTTP/1.1\r\n" + h + "User-Agent: kube-probe/1.30\r\n\r\n", 302, false, noUpstream},
		{"healthz not public", "GET /healthz HTTP/1.1\r\n" + h + "User-Agent: kube-probe/1.30\r\n\r\n", 404, false, noUpstream},
		{"metrics not public", "GET /metrics HTTP/1.1\r\n" + h + "\r\n", 404, false, noUpstream},
		// query
		{"access_token in query", "GET /public/a?access_token=abc HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"too many query parameters", "GET /public/a?a=1&b=2&c=3&d=4&e=5&f=6 HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"query forwarded as sent", "GET /public/a?x=1&y=%41 HTTP/1.1\r\n" + h + "\r\n", 200, false, upstreamPath("/public/a?x=1&y=%41")},
		// smuggling and framing
		{"CL and TE", "POST /public/a HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true, noUpstream},
		{"TE chunked, identity", "POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, true, noUpstream},
		{"TE xchunked", "POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, true, noUpstream},
		{"TE twice", "POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, true, noUpstream},
		{"bare LF in chunk size", "POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, true, nil},
		{"space before colon", "POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", 400, true, noUpstream},
		{"obs-fold", "GET /public/a HTTP/1.1\r\n" + h + "X-A: b\r\n c\r\n\r\n", 400, true, noUpstream},
		{"bare LF in head", "GET /public/a HTTP/1.1\n" + h + "\r\n", 400, true, noUpstream},
		{"conflicting Content-Length", "POST /public/a HTTP/1.1\r\n" + h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, true, noUpstream},
		{"asterisk form", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n", 400, true, noUpstream},
		{"h2c prior knowledge over TLS", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, true, noUpstream},
		{"h2c upgrade", "GET /public/a HTTP/1.1\r\n" + h + "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 403, false, noUpstream},
		{"websocket on a non-websocket route", "GET /public/a HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example.test\r\n\r\n", 403, false, noUpstream},
		{"websocket with a foreign origin", "GET /ws/a HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\n\r\n", 403, false, noUpstream},
		{"body over the route limit", "POST /api/a HTTP/1.1\r\n" + h + "Content-Length: 17\r\n\r\n01234567890123456", 413, true, noUpstream},
		{"chunked body over the route limit", "POST /api/a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n11\r\n01234567890123456\r\n0\r\n\r\n", 413, true, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Mark the request so that what the upstream saw is found
			// even when it arrives after the client's answer.
			mark := strconv.Itoa(i)
			line, rest, _ := strings.Cut(tc.req, "\n")
			res := s.raw(t, line+"\nX-Case: "+mark+"\r\n"+rest, tc.closed)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d (body %q)", res.status, tc.status, res.body)
			}
			if tc.closed && !res.closed {
				t.Errorf("connection left open, want closed")
			}
			id := res.header.Get(RequestIDHeader)
			if id == "" {
				t.Errorf("no request id")
			}
			if res.status >= 400 && !strings.Contains(res.body, id) {
				t.Errorf("error page does not carry the request id: %q", res.body)
			}
			if e, ok := s.audit.find(id); !ok || e.Status != res.status || e.Type != "request" {
				t.Errorf("audit record %+v (found %v), want status %d", e, ok, res.status)
			}
			if tc.upstream != nil {
				var last seenRequest
				got := false
				for _, r := range s.rec.all() {
					if r.Header.Get("X-Case") == mark {
						last, got = r, true
					}
				}
				tc.upstream(t, last, got)
			}
		})
	}
}
