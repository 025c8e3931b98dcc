package gateway

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
)

// connInfo is what the listener knows about one connection, attached to
// every request's context (ConnContext).
type connInfo struct {
	// tls is the connection's TLS state (r.TLS for HTTP/1 connections
	// served through the listener's wrapper).
	tls *tls.ConnectionState
	// h1 marks an HTTP/1 connection read through the framing scanner.
	h1 bool
	// h2 is the stream budget of an HTTP/2 connection (nil otherwise).
	h2 *h2Guard
	// served counts requests handed to the chain on this connection.
	served atomic.Int64

	mu          sync.Mutex
	poisonIndex int64
	poisonWhy   string
}

type connInfoKey struct{}

// poison marks request head number idx (1-based) and every later one on
// the connection as refused, for reason.
func (ci *connInfo) poison(idx int64, reason string) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if ci.poisonIndex == 0 || idx < ci.poisonIndex {
		ci.poisonIndex, ci.poisonWhy = idx, reason
	}
}

// poisoned returns the first refused head index (0: none) and the reason.
func (ci *connInfo) poisoned() (int64, string) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.poisonIndex, ci.poisonWhy
}
