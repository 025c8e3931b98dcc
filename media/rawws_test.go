package media

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawClient is a signaling client on a bare TCP connection: it speaks just
// enough RFC 6455 to upgrade, send masked text frames and read the
// server's frames, and it never answers a close frame (nor a ping).
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialRaw upgrades a signaling socket of visitID as user on a bare TCP
// connection. rcvbuf, when above zero, is the socket's receive buffer
// (SO_RCVBUF), so that a client that does not read stops the server's
// writes soon.
func (h *harness) dialRaw(user, visitID string, rcvbuf int) *rawClient {
	h.t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	addr := h.srv.Listener.Addr().String()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /.telegate/visits/" + visitID + "/signal HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" +
		"\r\nOrigin: " + h.srv.URL + "\r\nX-Test-User: " + user + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		h.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		h.t.Fatalf("raw upgrade as %s: %d", user, resp.StatusCode)
	}
	_ = c.SetDeadline(time.Time{})
	return &rawClient{t: h.t, c: c, br: br}
}

// send writes v as one masked text frame.
func (r *rawClient) send(v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	hdr := []byte{0x81}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	hdr = append(hdr, key[:]...)
	for i := range p {
		p[i] ^= key[i%4]
	}
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = r.c.Write(append(hdr, p...))
	return err
}

// frame reads one frame within timeout: its opcode and payload.
func (r *rawClient) frame(timeout time.Duration) (byte, []byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(timeout))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > 1<<21 {
		return 0, nil, fmt.Errorf("unexpected frame header % x (length %d)", h, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, p, nil
}

// errClosed is what msg returns for the server's close frame.
type errClosed struct {
	code   int
	reason string
}

func (e errClosed) Error() string { return fmt.Sprintf("close frame %d %q", e.code, e.reason) }

// msg reads the next text message within timeout, skipping pings; a close
// frame is an errClosed.
func (r *rawClient) msg(timeout time.Duration) (serverMsg, error) {
	for {
		op, p, err := r.frame(timeout)
		if err != nil {
			return serverMsg{}, err
		}
		switch op {
		case 0x1:
			var m serverMsg
			if err := json.Unmarshal(p, &m); err != nil {
				r.t.Fatalf("server sent non-JSON %q", p)
			}
			return m, nil
		case 0x8:
			ce := errClosed{}
			if len(p) >= 2 {
				ce.code, ce.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			return serverMsg{}, ce
		case 0x9, 0xa:
		default:
			return serverMsg{}, fmt.Errorf("unexpected opcode %d", op)
		}
	}
}

// gone reads (and drops) whatever the server still sends until its TCP
// connection ends, and reports the close frame seen (zero if none) and how
// long that took. It fails the test when the connection is still open
// after within.
func (r *rawClient) gone(within time.Duration) (errClosed, time.Duration) {
	r.t.Helper()
	return r.goneSince(time.Now(), within)
}

// goneSince is gone counting from start.
func (r *rawClient) goneSince(start time.Time, within time.Duration) (errClosed, time.Duration) {
	r.t.Helper()
	var ce errClosed
	for {
		_, err := r.msg(time.Until(start.Add(within)))
		var c errClosed
		switch {
		case errors.As(err, &c):
			ce = c // ignored: no close frame goes back
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
			return ce, time.Since(start)
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("the TCP connection is still open %v later (close frame seen: %v)", within, ce)
			}
			r.t.Fatalf("reading until the connection ends: %v", err)
		}
	}
}

// readUntil reads messages until one of type typ, within timeout.
func (r *rawClient) readUntil(typ string, timeout time.Duration) serverMsg {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := r.msg(time.Until(deadline))
		if err != nil {
			r.t.Fatalf("waiting for %q: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

// candidate is a candidate message to pid carrying seq, padded to about
// size bytes.
func candidate(pid string, seq, size int) map[string]any {
	c := fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.1 9 typ host", seq)
	if pad := size - len(c) - 20; pad > 0 {
		c += " generation 0 x " + strings.Repeat("a", pad)
	}
	return map[string]any{"type": "candidate", "to": pid, "candidate": map[string]any{"candidate": c, "sdpMid": "0"}}
}

// seqOf is the seq of a message made by candidate, or -1.
func seqOf(m serverMsg) int {
	var n int
	if m.Type != "candidate" || m.Candidate == nil {
		return -1
	}
	if _, err := fmt.Sscanf(m.Candidate.Candidate, "candidate:%d ", &n); err != nil {
		return -1
	}
	return n
}
