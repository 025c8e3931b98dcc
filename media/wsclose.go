package media

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// closeGrace is how long a signaling socket that is being closed waits,
// after sending its close frame, for the client's close frame (RFC 6455
// §7.1.1); then its TCP connection is closed whatever the client does.
const closeGrace = 250 * time.Millisecond

// closeDeadline bounds a signaling socket's whole close, counted from the
// decision to close it (visit ended, participant removed, session ended,
// rule broken): the last message, the close frame and closeGrace. At the
// deadline the TCP connection is closed even when the client is not
// reading at all and a write is stuck.
const closeDeadline = 500 * time.Millisecond

// restartCloseDeadline is closeDeadline for the sockets of a node that is
// restarting (status 1001, going away): the visit goes on and the page
// reconnects, so its close frame, which says why, is given longer to be
// read and answered — still within the second every socket of a visit has
// to be gone in.
const restartCloseDeadline = 800 * time.Millisecond

// wsConn is a server-side WebSocket and the TCP (or TLS) connection under
// it, so that closing it never depends on the client answering.
type wsConn struct {
	*websocket.Conn
	tcp     net.Conn
	tcpOnce sync.Once
	gone    chan struct{} // closed once tcp is closed
}

// hijackWriter is the ResponseWriter handed to websocket.Accept: it
// hijacks as the wrapped writer does and keeps the connection.
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker through http.ResponseController, so
// that the writers the gateway wraps around w (Unwrap) are honoured.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.conn = c
	}
	return c, brw, err
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// acceptWS upgrades r (websocket.Accept, which answers the refusals) and
// returns the socket with its connection.
func acceptWS(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*wsConn, error) {
	hw := &hijackWriter{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, opts)
	if err != nil {
		return nil, err
	}
	if hw.conn == nil {
		_ = c.CloseNow()
		return nil, errors.New("media: the WebSocket upgrade did not hijack the connection")
	}
	return &wsConn{Conn: c, tcp: hw.conn, gone: make(chan struct{})}, nil
}

// closeTCP closes the connection under the socket at once. Safe to call
// more than once and from any goroutine.
func (c *wsConn) closeTCP() {
	c.tcpOnce.Do(func() {
		_ = c.tcp.Close()
		close(c.gone)
	})
}

// closeWithGrace sends a close frame with code and reason, waits up to
// grace for the client's close frame, and then closes the TCP connection:
// a client that ignores the close handshake keeps its connection for at
// most grace (plus the time the close frame takes to write, which the
// caller bounds with closeTCP).
func (c *wsConn) closeWithGrace(code websocket.StatusCode, reason string, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		_ = c.Close(code, reason)
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	c.closeTCP()
}
