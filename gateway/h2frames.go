package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// h2FrameBudget counts the HEADERS frames a client sends on an HTTP/2
// connection (RFC 9113 §4.1 frame layout, §6.2 HEADERS) as they are read,
// before the HTTP/2 server sees them, and spends one token of the
// connection's stream budget on each. A HEADERS frame past the budget is
// held back and the next read fails with ENHANCE_YOUR_CALM, so the server
// sends GOAWAY and closes the connection (CVE-2023-44487, rapid reset).
// Counting frames, not handler calls, catches streams reset before their
// handler ever starts. The connection preface (24 bytes, §3.4) is passed
// through first.
type h2FrameBudget struct {
	*tls.Conn // ConnectionState stays visible to the HTTP/2 server (r.TLS)
	guard     *h2Guard

	mu      sync.Mutex
	preface int    // preface bytes still to pass
	hdr     []byte // bytes of the frame header being read
	skip    int    // payload bytes of the current frame still to pass
	held    []byte // bytes read from the conn but not yet returned
	denied  bool
}

func newH2FrameBudget(c *tls.Conn, g *h2Guard) *h2FrameBudget {
	return &h2FrameBudget{Conn: c, guard: g, preface: len(http2.ClientPreface)}
}

// Read implements net.Conn.
func (f *h2FrameBudget) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied {
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if len(f.held) == 0 {
		f.mu.Unlock()
		n, err := f.Conn.Read(p)
		f.mu.Lock()
		if n == 0 {
			return 0, err
		}
		f.held = append(f.held[:0], p[:n]...)
	}
	// Pass bytes up to the first HEADERS frame the budget refuses.
	n := f.scan(f.held)
	copy(p, f.held[:n])
	f.held = f.held[n:]
	if n == 0 && f.denied {
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return n, nil
}

// scan walks b through the frame layout and returns how many of its bytes
// may be passed on; it marks the connection denied at a refused HEADERS.
func (f *h2FrameBudget) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch {
		case f.preface > 0:
			k := min(f.preface, len(b)-i)
			f.preface -= k
			i += k
		case f.skip > 0:
			k := min(f.skip, len(b)-i)
			f.skip -= k
			i += k
		default:
			start := i - len(f.hdr)
			k := min(9-len(f.hdr), len(b)-i)
			f.hdr = append(f.hdr, b[i:i+k]...)
			i += k
			if len(f.hdr) < 9 {
				continue
			}
			length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			typ := http2.FrameType(f.hdr[3])
			f.hdr = f.hdr[:0]
			if typ == http2.FrameHeaders && !f.guard.take() {
				f.denied = true
				return max(start, 0)
			}
			f.skip = length
		}
	}
	return i
}

// serveH2 is the HTTP/2 side of the public server: the connection goes to
// h2s through the frame budget of its connInfo (set by ConnContext).
//
//lint:ignore SA1019 net/http serves HTTP/2 only from a *tls.Conn; see publicServer
func serveH2(h2s *http2.Server) func(*http.Server, *tls.Conn, http.Handler) {
	type baseContexter interface{ BaseContext() context.Context }
	return func(hs *http.Server, c *tls.Conn, h http.Handler) {
		ctx := context.Background()
		if bc, ok := h.(baseContexter); ok {
			ctx = bc.BaseContext()
		}
		var conn net.Conn = c
		if ci, _ := ctx.Value(connInfoKey{}).(*connInfo); ci != nil && ci.h2 != nil {
			conn = newH2FrameBudget(c, ci.h2)
		}
		//lint:ignore SA1019 net/http serves HTTP/2 only from a *tls.Conn; see publicServer
		h2s.ServeConn(conn, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
}
