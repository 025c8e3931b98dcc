package gateway

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/telegate/telegate/scope"
)

// h1Conn is an HTTP/1 connection read through a framing scanner. It holds
// back each request head until the head is complete, checks it, and hands
// it to net/http only when it is unambiguous. A head that is not (Content-
// Length with Transfer-Encoding, a Transfer-Encoding other than one
// "chunked", several Content-Length fields, obs-fold, bare LF, a duplicate
// Host, an absolute-form target whose authority differs from Host, the
// asterisk form) is replaced by a stand-in request, marked on the
// connection's connInfo, and answered 400 with the request id by the chain
// (canonicalise); nothing after it is read. RFC 9112 §6.1 requires closing
// the connection after such a request; net/http alone keeps it open for
// Content-Length with chunked, and accepts obs-fold.
//
// Bodies are followed by Content-Length; after a chunked body or an
// upgrade the scanner stops and the connection ends with that exchange.
type h1Conn struct {
	net.Conn
	info     *connInfo
	maxHead  int
	mu       sync.Mutex
	pending  []byte // bytes released to net/http but not yet read
	head     []byte // bytes of an incomplete head, held back
	bodyLeft int64
	heads    int64
	stopped  bool // scanning ended (chunked body, upgrade, oversize)
	dead     bool // poisoned: the stand-in was released, then EOF
	rerr     error
	rbuf     []byte

	// onClose, when set, runs once at the first Close.
	onClose   func()
	closeOnce sync.Once
	// heard is set once the client has sent a byte after the handshake.
	heard atomic.Bool
}

// standIn replaces a refused head; the chain answers it 400.
const standIn = "GET / HTTP/1.1\r\nHost: refused.invalid\r\nConnection: close\r\n\r\n"

// newH1Conn scans the HTTP/1.1 heads on c; maxHead is
// server.max_header_bytes.
func newH1Conn(c net.Conn, info *connInfo, maxHead int, prefix []byte) *h1Conn {
	h := &h1Conn{Conn: c, info: info, maxHead: maxHead}
	h.heard.Store(len(prefix) > 0)
	h.feed(prefix)
	return h
}

// Close implements net.Conn.
func (h *h1Conn) Close() error {
	if h.onClose != nil {
		h.closeOnce.Do(h.onClose)
	}
	return h.Conn.Close()
}

// Read implements net.Conn.
func (h *h1Conn) Read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.pending) == 0 {
		if h.rerr != nil {
			err := h.rerr
			h.rerr = nil
			return 0, err
		}
		if h.rbuf == nil {
			h.rbuf = make([]byte, 16<<10)
		}
		buf := h.rbuf
		dead := h.dead
		h.mu.Unlock()
		n, err := h.Conn.Read(buf)
		if n > 0 {
			h.heard.Store(true)
		}
		h.mu.Lock()
		if dead {
			// After the stand-in the client's bytes are dropped; reads
			// block like a silent client until a deadline or close.
			if err != nil {
				return 0, err
			}
			continue
		}
		h.feed(buf[:n])
		if err != nil && len(h.pending) == 0 {
			return 0, err
		}
		if err != nil {
			h.rerr = err
		}
	}
	n := copy(p, h.pending)
	h.pending = h.pending[n:]
	return n, nil
}

// feed scans b and moves what may be released into pending.
func (h *h1Conn) feed(b []byte) {
	for len(b) > 0 && !h.dead {
		switch {
		case h.stopped:
			h.pending = append(h.pending, b...)
			return
		case h.bodyLeft > 0:
			n := int64(len(b))
			if n > h.bodyLeft {
				n = h.bodyLeft
			}
			h.pending = append(h.pending, b[:n]...)
			h.bodyLeft -= n
			b = b[n:]
		default:
			h.head = append(h.head, b...)
			b = nil
			end := headEnd(h.head)
			if end > h.maxHead || end < 0 && len(h.head) > h.maxHead {
				// A head past the cap is refused like any other (431 by
				// the chain, RFC 6585 §5), not by net/http's bare page.
				h.heads++
				h.info.poisonHead(h.heads, scope.ReasonFramingHeaderTooLarge, h.head)
				h.pending = append(h.pending, standIn...)
				h.head = nil
				h.dead = true
				return
			}
			if end < 0 {
				return
			}
			head, rest := h.head[:end], h.head[end:]
			h.head = nil
			h.heads++
			v := checkHead(head)
			if v.reason != "" {
				h.info.poisonHead(h.heads, v.reason, head)
				h.pending = append(h.pending, standIn...)
				h.dead = true
				return
			}
			h.pending = append(h.pending, head...)
			switch {
			case v.stop:
				// Nothing after this exchange is scanned: a later request
				// on this connection is refused.
				h.stopped = true
				h.info.poison(h.heads+1, scope.ReasonFramingUnscanned)
			case v.contentLength > 0:
				h.bodyLeft = v.contentLength
			}
			b = append([]byte(nil), rest...)
		}
	}
}

// headEnd returns the index just past the blank line that ends the
// request head (CRLF CRLF, or a bare-LF variant, which checkHead refuses),
// skipping leading empty lines (RFC 9112 §2.2), or -1.
func headEnd(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	for j := i; j < len(b); j++ {
		if b[j] != '\n' {
			continue
		}
		// b[j] ends a line; is the next line empty?
		k := j + 1
		if k < len(b) && b[k] == '\r' {
			k++
		}
		if k < len(b) && b[k] == '\n' {
			return k + 1
		}
	}
	return -1
}

type headVerdict struct {
	reason        scope.Reason
	contentLength int64
	stop          bool
}

// checkHead checks one request head (request line and fields).
func checkHead(head []byte) headVerdict {
	head = bytes.TrimLeft(head, "\r\n")
	var v headVerdict
	lines := bytes.Split(head, []byte("\n"))
	// The last two elements are the blank line's pieces.
	var (
		target          string
		hosts           []string
		cls             []string
		tes             []string
		upgrade, connUp bool
		method          string
	)
	for i, ln := range lines {
		if i == len(lines)-1 {
			break // after the final LF
		}
		if len(ln) == 0 || ln[len(ln)-1] != '\r' {
			return headVerdict{reason: scope.ReasonFramingBareLF}
		}
		ln = ln[:len(ln)-1]
		if len(ln) == 0 {
			continue // the blank line
		}
		if i == 0 {
			parts := strings.Split(string(ln), " ")
			if len(parts) != 3 || !isToken(parts[0]) || parts[1] == "" ||
				(parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
				return headVerdict{reason: scope.ReasonFramingRequestLine}
			}
			method, target = parts[0], parts[1]
			continue
		}
		if ln[0] == ' ' || ln[0] == '\t' {
			return headVerdict{reason: scope.ReasonFramingObsFold}
		}
		name, value, ok := bytes.Cut(ln, []byte(":"))
		if !ok || !isToken(string(name)) {
			return headVerdict{reason: scope.ReasonFramingField}
		}
		val := strings.TrimSpace(string(value))
		switch strings.ToLower(string(name)) {
		case "host":
			hosts = append(hosts, val)
		case "content-length":
			cls = append(cls, val)
		case "transfer-encoding":
			tes = append(tes, val)
		case "upgrade":
			upgrade = true
		case "connection":
			for _, t := range strings.Split(val, ",") {
				if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
					connUp = true
				}
			}
		}
	}
	switch {
	case len(hosts) > 1:
		return headVerdict{reason: scope.ReasonFramingDuplicateHost}
	case len(hosts) == 1 && !validHostField(hosts[0]):
		return headVerdict{reason: scope.ReasonFramingHost}
	case len(cls) > 0 && len(tes) > 0:
		return headVerdict{reason: scope.ReasonFramingCLTE}
	case len(tes) > 1 || len(tes) == 1 && !strings.EqualFold(tes[0], "chunked"):
		return headVerdict{reason: scope.ReasonFramingTE}
	case len(cls) > 1:
		return headVerdict{reason: scope.ReasonFramingContentLength}
	case target == "*":
		return headVerdict{reason: scope.ReasonFramingAsteriskForm}
	}
	if len(cls) == 1 {
		n, err := strconv.ParseInt(cls[0], 10, 64)
		if err != nil || n < 0 || cls[0][0] == '+' {
			return headVerdict{reason: scope.ReasonFramingContentLength}
		}
		v.contentLength = n
	}
	if target != "" && target[0] != '/' {
		// absolute-form (RFC 9112 §3.2.2): the authority must be Host.
		rest, ok := strings.CutPrefix(strings.ToLower(target), "https://")
		if !ok {
			rest, ok = strings.CutPrefix(strings.ToLower(target), "http://")
		}
		if !ok || len(hosts) != 1 {
			return headVerdict{reason: scope.ReasonFramingTargetForm}
		}
		auth, _, _ := strings.Cut(rest, "/")
		auth, _, _ = strings.Cut(auth, "?")
		a, err1 := CanonicalHost(auth)
		b, err2 := CanonicalHost(hosts[0])
		if err1 != nil || err2 != nil || a != b {
			return headVerdict{reason: scope.ReasonFramingAuthority}
		}
	}
	if len(tes) == 1 || upgrade || connUp || method == "CONNECT" {
		v.stop = true
	}
	return v
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2): field
// names and methods.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHostField reports whether a Host field value is a host with an
// optional port (RFC 9110 §7.2): no userinfo, path, or other delimiters.
func validHostField(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsAny(v, "@/\\?#%") {
		return false
	}
	_, err := CanonicalHost(v)
	return err == nil
}
