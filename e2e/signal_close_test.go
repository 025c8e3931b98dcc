package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRegression_SignalingCloseIgnoredThroughTheNode: through the real
// node (TLS, the gateway's connection handling, sign-in sessions), a
// signaling client that ignores the close handshake loses its TCP
// connection within 1 s when the clinician ends the visit, when the
// clinician removes it, and when it signs out.
func TestRegression_SignalingCloseIgnoredThroughTheNode(t *testing.T) {
	a := startAttackDemo(t)
	base := a.Base()
	// ignoring opens the patient's signaling socket on a raw TLS
	// connection that will never answer a close frame.
	ignoring := func(id string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c := dialTLS(t, a.demo, "localhost", "http/1.1")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		raw := "GET /.telegate/visits/" + id + "/signal HTTP/1.1\r\nHost: " + strings.TrimPrefix(base, "https://") +
			"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" +
			"\r\nOrigin: " + base + "\r\nCookie: " + sessionCookie + "=" + a.patient.cookie(base, sessionCookie).Value + "\r\n\r\n"
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		if op, p := wsFrame(t, br); op != 0x1 || !strings.Contains(string(p), `"welcome"`) {
			t.Fatalf("first message: %d %q", op, p)
		}
		return c, br
	}
	// gone reads until the connection ends, within 1 s of start, and
	// returns the close code the server sent.
	gone := func(who string, c net.Conn, br *bufio.Reader, start time.Time, want int) {
		t.Helper()
		_ = c.SetReadDeadline(start.Add(time.Second))
		code := 0
	read:
		for {
			op, p, err := readWSFrame(br)
			if err != nil {
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					t.Fatalf("%s: the TCP connection is still open 1 s after the decision (close frame %d)", who, code)
				case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
				default:
					t.Fatalf("%s: %v", who, err)
				}
				break read
			}
			if op == 0x8 && len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
		}
		if code != want {
			t.Errorf("%s: close code %d, want %d", who, code, want)
		}
		t.Logf("%s: TCP connection ended %v after the decision (close frame %d)", who, time.Since(start).Round(time.Millisecond), code)
	}

	ended, _ := admittedVisit(t, a)
	removed, pid := admittedVisit(t, a)
	signedOut, _ := admittedVisit(t, a)

	c, br := ignoring(ended)
	start := time.Now()
	visitPost(t, a.clinician, base, "/.telegate/visits/"+ended+"/end", nil)
	gone("visit ended", c, br, start, 4004)

	c, br = ignoring(removed)
	start = time.Now()
	visitPost(t, a.clinician, base, "/.telegate/visits/"+removed+"/remove", map[string]any{"participant": pid})
	gone("participant removed", c, br, start, 4003)

	c, br = ignoring(signedOut)
	start = time.Now()
	if resp, body := a.patient.post(base+"/.telegate/logout", url.Values{}, http.Header{"Origin": {base}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-out: %d %.300s", resp.StatusCode, body)
	}
	gone("signed out", c, br, start, 4005)
}

// wsFrame reads one server frame (unmasked) or fails the test.
func wsFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	op, p, err := readWSFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	return op, p
}

// readWSFrame reads one unmasked WebSocket frame (RFC 6455 §5.2): its
// opcode and payload.
func readWSFrame(br *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > 1<<20 {
		return 0, nil, errors.New("unexpected frame header")
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return h[0] & 0x0f, p, err
}
