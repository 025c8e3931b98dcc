package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/scope"
)

// pipeline writes reqs at once on one connection and reads the answers.
func (s *served) pipeline(t *testing.T, reqs ...string) []int {
	t.Helper()
	c := s.dialTLS(t, appHost, "http/1.1")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var codes []int
	for range reqs {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	return codes
}

func TestPipelinedRequests(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	const h = "Host: " + appHost + "\r\n"
	cases := []struct {
		name string
		reqs []string
		want []int
	}{
		{"keep-alive with bodies", []string{
			"POST /public/a HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello",
			"GET /public/b HTTP/1.1\r\n" + h + "\r\n",
			"POST /public/c HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nGET",
		}, []int{200, 200, 200}},
		// The classic CL.TE desync: the smuggled request hides in the
		// first one's body. The first is refused, nothing after it runs.
		{"CL.TE smuggling", []string{
			"POST /public/a HTTP/1.1\r\n" + h + "Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/x HTTP/1.1\r\n" + h + "\r\n",
		}, []int{400}},
		{"smuggled second request", []string{
			"GET /public/a HTTP/1.1\r\n" + h + "\r\n",
			"POST /public/b HTTP/1.1\r\n" + h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"GET /public/c HTTP/1.1\r\n" + h + "\r\n",
		}, []int{200, 400}},
		{"chunked body ends the connection", []string{
			"POST /public/a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			"GET /public/b HTTP/1.1\r\n" + h + "\r\n",
		}, []int{200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := s.pipeline(t, tc.reqs...)
			if len(got) != len(tc.want) {
				t.Fatalf("answers %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("answers %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestCheckHead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		head, reason string
		cl           int64
		stop         bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, false},
		{"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", "", 12, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", "", 0, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "", 0, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "cl-te", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", "content-length", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", "content-length", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer-encoding", 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "duplicate-host", 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", "obs-fold", 0, false},
		{"GET / HTTP/1.1\nHost: a\r\n\r\n", "bare-lf", 0, false},
		{"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", "authority", 0, false},
		{"GET http://A.:80/x HTTP/1.1\r\nHost: a\r\n\r\n", "", 0, false},
		{"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "target-form", 0, false},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "asterisk-form", 0, false},
		{"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", "request-line", 0, false},
		{"GET / HTTP/1.1\r\nnocolon\r\n\r\n", "field", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", "field", 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent Length: 5\r\n\r\n", "field", 0, false},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "request-line", 0, false},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "request-line", 0, false},
	}
	for _, tc := range cases {
		v := checkHead([]byte(tc.head))
		want := scope.Reason("")
		if tc.reason != "" {
			want = scope.Reason("framing:" + tc.reason)
		}
		if v.reason != want || !(want == "" || want.Declared()) || v.contentLength != tc.cl || v.stop != tc.stop {
			t.Errorf("checkHead(%q) = %+v, want reason %q cl %d stop %v", tc.head, v, tc.reason, tc.cl, tc.stop)
		}
	}
}

// scanAll feeds in through an h1Conn in chunks of size n and returns what
// net/http would read.
func scanAll(in string, n int) (string, *connInfo) {
	a, b := net.Pipe()
	info := &connInfo{h1: true}
	h := newH1Conn(b, info, 1<<10, nil)
	go func() {
		for i := 0; i < len(in); i += n {
			a.Write([]byte(in[i:min(i+n, len(in))]))
		}
		a.Close()
	}()
	out, _ := io.ReadAll(h)
	return string(out), info
}

// FuzzH1Scanner: whatever the input and however it is split, the scanner
// releases either the input unchanged or a prefix of it followed by the
// stand-in request, and marks the connection in the second case.
func FuzzH1Scanner(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a\r\n\r\n", uint8(3))
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n", uint8(7))
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", uint8(1))
	f.Add("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", uint8(100))
	f.Fuzz(func(t *testing.T, in string, split uint8) {
		out, info := scanAll(in, int(split)+1)
		idx, _ := info.poisoned()
		if strings.HasSuffix(out, standIn) && idx > 0 {
			if !strings.HasPrefix(in, strings.TrimSuffix(out, standIn)) {
				t.Fatalf("released bytes are not a prefix of the input")
			}
			return
		}
		if out != in && !strings.HasPrefix(in, out) {
			t.Fatalf("released %q for %q", out, in)
		}
	})
}
