package gateway

import (
	"bytes"
	"crypto/tls"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/telegate/telegate/scope"
)

// connInfo is what the listener knows about one connection, attached to
// every request's context (ConnContext).
type connInfo struct {
	// tls is the connection's TLS state (r.TLS for HTTP/1 connections
	// served through the listener's wrapper).
	tls *tls.ConnectionState
	// h1 marks an HTTP/1 connection read through the framing scanner.
	h1 bool
	// served counts requests handed to the chain on this connection.
	served atomic.Int64

	mu          sync.Mutex
	poisonIndex int64
	poisonWhy   scope.Reason
	// refusedMethod and refusedPath are what the refused head asked for
	// (sanitised; "" when not readable), for the audit record.
	refusedMethod, refusedPath string
}

type connInfoKey struct{}

// poison marks request head number idx (1-based) and every later one on
// the connection as refused, for reason.
func (ci *connInfo) poison(idx int64, reason scope.Reason) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if ci.poisonIndex == 0 || idx < ci.poisonIndex {
		ci.poisonIndex, ci.poisonWhy = idx, reason
	}
}

// poisonHead is poison for a head the scanner refused: it also keeps the
// head's method and path (without query) for the audit record, when they
// read as a token and an origin-form path of printable ASCII.
func (ci *connInfo) poisonHead(idx int64, reason scope.Reason, head []byte) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	method, rest, _ := bytes.Cut(bytes.TrimRight(line, "\r"), []byte(" "))
	target, _, _ := bytes.Cut(rest, []byte(" "))
	path, _, _ := bytes.Cut(target, []byte("?"))
	m, p := string(method), string(path)
	if len(m) == 0 || len(m) > 16 || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
		m = ""
	}
	if len(p) == 0 || len(p) > 256 || p[0] != '/' || strings.IndexFunc(p, func(c rune) bool { return c <= ' ' || c > '~' }) >= 0 {
		p = ""
	}
	ci.poison(idx, reason)
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if ci.poisonIndex == idx {
		ci.refusedMethod, ci.refusedPath = m, p
	}
}

// refusedHead returns the method and path kept by poisonHead.
func (ci *connInfo) refusedHead() (method, path string) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.refusedMethod, ci.refusedPath
}

// poisoned returns the first refused head index (0: none) and the reason.
func (ci *connInfo) poisoned() (int64, scope.Reason) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.poisonIndex, ci.poisonWhy
}
