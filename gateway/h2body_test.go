package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestRegression_HTTP2BodiesAsHTTP1: over HTTP/2 a body is judged as over
// HTTP/1.1 whether the stream declares its length, streams it, or ends at
// HEADERS: a method override in it is refused before the upstream sees a
// byte, an empty or absent body passes as empty, an ordinary body arrives
// whole; and bytes sent past a declared content-length of 0 never reach
// the upstream.
func TestRegression_HTTP2BodiesAsHTTP1(t *testing.T) {
	t.Parallel()
	s := kindGateway(t)
	var h2only http.Protocols
	h2only.SetHTTP2(true)
	tr := &http.Transport{Protocols: &h2only, ForceAttemptHTTP2: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dialTLS(t, appHost, "h2"), nil
		}}
	t.Cleanup(tr.CloseIdleConnections)
	const urlenc = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, ctype, body string
		streamed                  bool // no content-length: the body is read as DATA frames come
		status                    int
	}{
		{"GET without body", http.MethodGet, "", "", false, 200},
		{"POST ended at HEADERS, form type", http.MethodPost, urlenc, "", false, 200},
		{"POST ended at HEADERS, no type", http.MethodPost, "", "", false, 200},
		{"form body with override", http.MethodPost, urlenc, "a=1&_method=DELETE", false, 400},
		{"streamed form body with override", http.MethodPost, urlenc, "a=1&_method=DELETE", true, 400},
		{"untyped body with override", http.MethodPost, "", "_method=PUT", false, 400},
		{"JSON body with override", http.MethodPost, "application/json", `{"_method":"PUT"}`, true, 400},
		{"streamed empty body", http.MethodPost, urlenc, "", true, 200},
		{"ordinary form body", http.MethodPost, urlenc, "a=1&b=2", false, 200},
		{"streamed ordinary form body", http.MethodPost, urlenc, "a=1&b=2", true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := "h2-" + tc.name
			var body io.Reader
			if tc.body != "" || tc.streamed {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, "https://"+appHost+"/public/a", body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.streamed {
				req.Body, req.ContentLength = io.NopCloser(body), -1
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			req.Header.Set("X-Case", mark)
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.ProtoMajor != 2 {
				t.Fatalf("answered over %s, want HTTP/2", res.Proto)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			var seen []seenRequest
			for _, r := range s.rec.all() {
				if r.Header.Get("X-Case") == mark {
					seen = append(seen, r)
				}
			}
			switch {
			case tc.status != 200 && len(seen) != 0:
				t.Errorf("upstream received the refused request (body %q)", seen[0].Body)
			case tc.status == 200 && len(seen) != 1:
				t.Errorf("upstream received %d requests, want 1", len(seen))
			case tc.status == 200 && seen[0].Body != tc.body:
				t.Errorf("upstream received body %q, want %q", seen[0].Body, tc.body)
			}
		})
	}

	t.Run("DATA past a declared content-length of 0", func(t *testing.T) {
		fr, answer, status := h2Raw(t, s)
		// A POST whose HEADERS declares no body but does not end the stream.
		var b strings.Builder
		enc := hpack.NewEncoder(&b)
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"}, {Name: ":authority", Value: appHost}, {Name: ":path", Value: "/public/a"},
			{Name: "content-type", Value: urlenc}, {Name: "content-length", Value: "0"}, {Name: "x-case", Value: "h2-declared-0"}} {
			_ = enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(b.String()), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteData(1, true, []byte("a=1&_method=DELETE")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-status:
		case <-answer:
		case <-time.After(3 * time.Second):
		}
		time.Sleep(200 * time.Millisecond) // a request already sent upstream is recorded by now
		for _, r := range s.rec.all() {
			if r.Header.Get("X-Case") == "h2-declared-0" && r.Body != "" {
				t.Errorf("upstream received %q past a declared length of 0", r.Body)
			}
		}
	})
}
