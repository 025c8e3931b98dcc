// Package admission decides which TCP connections a listener keeps, so
// that one client address cannot take every slot of a listener: it is the
// one admission mechanism of every telegate listener (the HTTPS listener
// and the TURN-over-TLS connections multiplexed on it, the dedicated TURN
// TLS listener, the plain-HTTP redirect listener and the admin listener).
//
// A Controller counts each listener's connections in two states:
//
//   - pending: accepted, the handshake not finished (for TLS: the TLS
//     handshake; for plain HTTP: the first bytes of a request). A pending
//     connection must send its first byte within Limits.FirstByteTimeout
//     and finish its handshake within Limits.HandshakeTimeout, or it is
//     closed.
//   - established: the handshake done, either active (a request or a
//     stream in flight, a WebSocket, a TURN session) or idle (a keep-alive
//     connection waiting for its next request).
//
// Connections are grouped by source: an IPv4 address, or an IPv6 /64
// (RFC 6177; an IPv4-mapped IPv6 address, RFC 4291 §2.5.5.2, counts as
// its IPv4 address). Each source may hold at most MaxPendingPerSource
// pending and MaxConnsPerSource established connections; the listener
// as a whole at most MaxPending pending and MaxConns connections in all.
// A newcomer is not refused while something older can make room:
//
//   - its source at MaxPendingPerSource: the source's own oldest pending
//     connection is closed;
//   - its source at MaxConnsPerSource: the source's oldest idle
//     connection is closed, and if none is idle the newcomer is refused;
//   - MaxPending reached: the oldest pending connection of the source
//     that holds the most pending connections is closed (so a flood of
//     connections that never finish their handshake evicts itself, not
//     the client that is about to finish);
//   - MaxConns reached: an idle connection is closed first (the oldest of
//     the source with the most connections), else a pending one as
//     above, and only when every connection is active is the newcomer
//     refused.
//
// The per-source table holds only sources with at least one connection,
// so it is bounded by MaxConns.
//
// Use: wrap a listener with Controller.Listen; tell the controller what
// became of each accepted connection with HandshakeDone, Idle and Active
// (functions that accept the admitted connection or any wrapper of it
// that exposes it through a NetConn method, such as *tls.Conn), or, for
// an http.Server, install ConnState. Closing the connection (any wrapper)
// releases its slot.
package admission

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/config"
)

// Limits are a Controller's caps. Every field must be positive;
// per-source caps at most the listener-wide ones, MaxPending at most
// MaxConns and FirstByteTimeout at most HandshakeTimeout (Check).
type Limits struct {
	// MaxPending caps connections whose handshake is not finished, on the
	// whole listener.
	MaxPending int
	// MaxPendingPerSource caps them per source (IPv4 address, IPv6 /64).
	MaxPendingPerSource int
	// MaxConns caps every connection of the listener, pending,
	// active and idle.
	MaxConns int
	// MaxConnsPerSource caps established connections (active and idle)
	// per source.
	MaxConnsPerSource int
	// FirstByteTimeout is how long a new connection may take to send its
	// first byte (of a TLS ClientHello, or of a plain-HTTP request).
	FirstByteTimeout time.Duration
	// HandshakeTimeout is how long it may take, from accept, to finish
	// its handshake.
	HandshakeTimeout time.Duration
}

// LimitsOf converts the configuration's connections block.
func LimitsOf(c config.Connections) Limits {
	return Limits{
		MaxPending: c.MaxPending, MaxPendingPerSource: c.MaxPendingPerSource,
		MaxConns: c.MaxConns, MaxConnsPerSource: c.MaxConnsPerSource,
		FirstByteTimeout: c.FirstByteTimeout, HandshakeTimeout: c.HandshakeTimeout,
	}
}

// Check returns an error naming the first field out of range.
func (l Limits) Check() error {
	switch {
	case l.MaxPending <= 0, l.MaxPendingPerSource <= 0, l.MaxConns <= 0, l.MaxConnsPerSource <= 0:
		return errors.New("admission: every cap must be positive")
	case l.FirstByteTimeout <= 0, l.HandshakeTimeout <= 0:
		return errors.New("admission: timeouts must be positive")
	case l.MaxPendingPerSource > l.MaxPending:
		return errors.New("admission: MaxPendingPerSource exceeds MaxPending")
	case l.MaxConnsPerSource > l.MaxConns:
		return errors.New("admission: MaxConnsPerSource exceeds MaxConns")
	case l.MaxPending > l.MaxConns:
		return errors.New("admission: MaxPending exceeds MaxConns")
	case l.FirstByteTimeout > l.HandshakeTimeout:
		return errors.New("admission: FirstByteTimeout exceeds HandshakeTimeout")
	}
	return nil
}

// Reason says why a connection was closed or refused by the controller.
type Reason string

// The reasons of an Event.
const (
	// SourcePending: the source's pending cap; its oldest pending
	// connection was closed.
	SourcePending Reason = "source_pending"
	// SourceConns: the source's established cap; its oldest idle
	// connection was closed, or, with none idle, the newcomer refused.
	SourceConns Reason = "source_conns"
	// PendingFull: the listener's pending cap; the oldest pending
	// connection of the source with the most was closed.
	PendingFull Reason = "pending_full"
	// ConnsFull: the listener's connection cap; an idle or pending
	// connection was closed, or, with every connection active, the
	// newcomer refused.
	ConnsFull Reason = "conns_full"
	// FirstByte: no byte within FirstByteTimeout.
	FirstByte Reason = "first_byte_timeout"
	// Handshake: the handshake not finished within HandshakeTimeout.
	Handshake Reason = "handshake_timeout"
)

// Event is one connection closed or refused by a Controller. It names no
// address: it is for metrics and ordinary logs.
type Event struct {
	Reason Reason
	// Refused is true when the newcomer itself was turned away, false
	// when an older connection was closed to make room or timed out.
	Refused bool
	// Idle is true when the closed connection was an idle one.
	Idle bool
}

// Options configure New.
type Options struct {
	Limits
	// OnEvent, when set, is called (outside the controller's lock, on the
	// accepting or a timer goroutine) for every connection the
	// controller closes or refuses. It must not block.
	OnEvent func(Event)
}

// Controller admits the connections of one listener (see the package
// documentation). It is safe for concurrent use.
type Controller struct {
	lim     Limits
	onEvent func(Event)

	mu      sync.Mutex
	sources map[netip.Prefix]*source
	nPend   int
	nConns  int
	seq     uint64
	idle    connList // slot 1: idle connections, oldest first, across sources
	// early and late are the pending connections, oldest first, across
	// sources (slot 1, which a pending connection does not use for idle):
	// early those before their first-byte deadline or that had sent
	// nothing by it, late those that had and wait for their handshake
	// deadline. One timer, sweep, serves both: it is armed for the
	// earliest deadline (due) while either holds a connection (armed).
	early, late connList
	sweep       *time.Timer
	armed       bool
	due         time.Time
}

type source struct {
	key     netip.Prefix
	pending connList // slot 0: pending connections, oldest first
	idle    connList // slot 0: idle connections, oldest first
	nEst    int      // established: active and idle
}

func (s *source) total() int { return s.pending.Len() + s.nEst }

// New returns a Controller with o's limits, or an error from
// Limits.Check.
func New(o Options) (*Controller, error) {
	if err := o.Limits.Check(); err != nil {
		return nil, err
	}
	ctl := &Controller{lim: o.Limits, onEvent: o.OnEvent, sources: map[netip.Prefix]*source{},
		idle: connList{k: 1}, early: connList{k: 1}, late: connList{k: 1}}
	ctl.sweep = time.AfterFunc(time.Hour, ctl.expire)
	ctl.sweep.Stop()
	return ctl, nil
}

// Stats are a Controller's counts at one moment.
type Stats struct {
	// Pending, Active and Idle count the listener's connections by state.
	Pending, Active, Idle int
	// Sources is the number of sources with at least one connection.
	Sources int
}

// Stats returns the current counts.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Pending: c.nPend, Active: c.nConns - c.nPend - c.idle.Len(), Idle: c.idle.Len(), Sources: len(c.sources)}
}

// SourceOf is the source a remote address counts against: the IPv4
// address as a /32, an IPv6 address's /64 (an IPv4-mapped address as its
// IPv4 /32). An address that is not IP (a Unix socket) is the zero
// prefix, one source for all.
func SourceOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch t := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(t.IP)
	default:
		if a == nil {
			return netip.Prefix{}
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	return sourceOfIP(ip)
}

// sourceOfIP is SourceOf for an IP address (the zero Addr: the zero
// prefix).
func sourceOfIP(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.WithZone("").Prefix(64)
		return p
	}
	return netip.Prefix{}
}

type connState uint8

const (
	statePending connState = iota
	stateActive
	stateIdle
	stateClosed
)

// Conn is an admitted connection, as Listener.Accept returns it. Its
// Close releases its slot; the package functions HandshakeDone, Idle and
// Active report its progress.
type Conn struct {
	net.Conn
	ctl   *Controller
	src   *source
	state connState // under ctl.mu
	links [2]link   // under ctl.mu: in src.pending or src.idle (0), in ctl.idle (1)
	heard atomic.Bool
	once  sync.Once
	seq   uint64    // admission order
	at    time.Time // admission time: the deadlines run from it
	late  bool      // under ctl.mu: in ctl.late, not ctl.early
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Read notes the first byte (FirstByteTimeout) and reads from the
// underlying connection.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.heard.Load() {
		c.heard.Store(true)
	}
	return n, err
}

// CloseWrite shuts down the writing side when the underlying connection
// can (net/http uses it for a graceful close).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close releases the connection's slot and closes it.
func (c *Conn) Close() error {
	c.ctl.mu.Lock()
	c.ctl.releaseLocked(c)
	c.ctl.mu.Unlock()
	return c.closeSocket()
}

func (c *Conn) closeSocket() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.Conn.Close()
	})
	return err
}

// releaseLocked takes c out of every count; it is idempotent.
func (ctl *Controller) releaseLocked(c *Conn) {
	s := c.src
	switch c.state {
	case stateClosed:
		return
	case statePending:
		s.pending.Remove(c)
		ctl.unlistPendingLocked(c)
		ctl.nPend--
	case stateIdle:
		s.idle.Remove(c)
		ctl.idle.Remove(c)
		s.nEst--
	case stateActive:
		s.nEst--
	}
	c.state = stateClosed
	ctl.nConns--
	if s.total() == 0 {
		delete(ctl.sources, s.key)
	}
}

// victim is a connection closed to make room, and why.
type victim struct {
	c  *Conn
	ev Event
}

// admit counts raw as a new pending connection of its source, closing
// older connections to make room as the package documentation says. It
// returns nil when raw was refused (and closed).
func (ctl *Controller) admit(raw net.Conn) *Conn {
	key := SourceOf(raw.RemoteAddr())
	var out []victim
	ctl.mu.Lock()
	s := ctl.sources[key]
	if s == nil {
		s = &source{key: key}
	}
	lim := ctl.lim
	refuse := Reason("")
	if s.nEst >= lim.MaxConnsPerSource {
		if e := s.idle.Front(); e != nil {
			out = append(out, ctl.evictLocked(e, SourceConns))
		} else {
			refuse = SourceConns
		}
	}
	if refuse == "" && s.pending.Len() >= lim.MaxPendingPerSource {
		out = append(out, ctl.evictLocked(s.pending.Front(), SourcePending))
	}
	if refuse == "" && ctl.nPend >= lim.MaxPending {
		if v := ctl.heaviestPendingLocked(); v != nil {
			out = append(out, ctl.evictLocked(v, PendingFull))
		}
	}
	if refuse == "" && ctl.nConns >= lim.MaxConns {
		if v := ctl.roomLocked(); v != nil {
			out = append(out, ctl.evictLocked(v, ConnsFull))
		} else {
			refuse = ConnsFull
		}
	}
	var c *Conn
	if refuse == "" {
		ctl.sources[key] = s // again, in case an eviction emptied it
		ctl.seq++
		c = &Conn{Conn: raw, ctl: ctl, src: s, state: statePending, seq: ctl.seq, at: time.Now()}
		s.pending.PushBack(c)
		ctl.early.PushBack(c)
		ctl.nPend++
		ctl.nConns++
		if d := c.at.Add(lim.FirstByteTimeout); !ctl.armed || d.Before(ctl.due) {
			ctl.armLocked(d, c.at)
		}
	}
	ctl.mu.Unlock()
	for _, v := range out {
		_ = v.c.closeSocket()
		ctl.emit(v.ev)
	}
	if c == nil {
		_ = raw.Close()
		ctl.emit(Event{Reason: refuse, Refused: true})
	}
	return c
}

// armLocked sets the sweep timer for due (now is the current time).
func (ctl *Controller) armLocked(due, now time.Time) {
	ctl.armed, ctl.due = true, due
	ctl.sweep.Reset(due.Sub(now))
}

// unlistPendingLocked takes the pending c out of early or late.
func (ctl *Controller) unlistPendingLocked(c *Conn) {
	if c.late {
		ctl.late.Remove(c)
	} else {
		ctl.early.Remove(c)
	}
}

// expire is the sweep timer's function: every pending connection past
// its first-byte deadline (FirstByteTimeout from accept) that has sent
// nothing is closed, one that has waits in late for its handshake
// deadline (HandshakeTimeout from accept), and one still pending past
// that is closed; then the timer is armed for the next deadline.
func (ctl *Controller) expire() {
	type closing struct {
		c   *Conn
		why Reason
	}
	var out []closing
	ctl.mu.Lock()
	now := time.Now()
	for c := ctl.early.Front(); c != nil && !now.Before(c.at.Add(ctl.lim.FirstByteTimeout)); c = ctl.early.Front() {
		if c.heard.Load() && now.Before(c.at.Add(ctl.lim.HandshakeTimeout)) {
			ctl.early.Remove(c)
			c.late = true
			ctl.late.PushBack(c)
			continue
		}
		why := FirstByte
		if c.heard.Load() {
			why = Handshake
		}
		ctl.releaseLocked(c)
		out = append(out, closing{c, why})
	}
	for c := ctl.late.Front(); c != nil && !now.Before(c.at.Add(ctl.lim.HandshakeTimeout)); c = ctl.late.Front() {
		ctl.releaseLocked(c)
		out = append(out, closing{c, Handshake})
	}
	ctl.armed = false
	var next time.Time
	if c := ctl.early.Front(); c != nil {
		next = c.at.Add(ctl.lim.FirstByteTimeout)
	}
	if c := ctl.late.Front(); c != nil && (next.IsZero() || c.at.Add(ctl.lim.HandshakeTimeout).Before(next)) {
		next = c.at.Add(ctl.lim.HandshakeTimeout)
	}
	if !next.IsZero() {
		ctl.armLocked(next, now)
	}
	ctl.mu.Unlock()
	for _, o := range out {
		_ = o.c.closeSocket()
		ctl.emit(Event{Reason: o.why})
	}
}

// evictLocked releases v and returns it to be closed outside the lock.
func (ctl *Controller) evictLocked(v *Conn, why Reason) victim {
	idle := v.state == stateIdle
	ctl.releaseLocked(v)
	return victim{c: v, ev: Event{Reason: why, Idle: idle}}
}

// heaviestPendingLocked is the oldest pending connection of the source
// with the most pending connections (ties: the older connection).
func (ctl *Controller) heaviestPendingLocked() *Conn {
	var best *Conn
	n := 0
	for _, s := range ctl.sources {
		if l := s.pending.Len(); l > 0 {
			f := s.pending.Front()
			if l > n || l == n && best != nil && f.older(best) {
				best, n = f, l
			}
		}
	}
	return best
}

// roomLocked is the connection to close when the listener is full: the
// oldest idle connection of the source with the most connections, else
// the oldest pending one of the source with the most pending, else nil.
func (ctl *Controller) roomLocked() *Conn {
	if ctl.idle.Len() > 0 {
		var best *source
		for _, s := range ctl.sources {
			if s.idle.Len() > 0 && (best == nil || s.total() > best.total()) {
				best = s
			}
		}
		return best.idle.Front()
	}
	return ctl.heaviestPendingLocked()
}

// older reports whether c was admitted before d.
func (c *Conn) older(d *Conn) bool { return c.seq < d.seq }

func (ctl *Controller) emit(e Event) {
	if ctl.onEvent != nil {
		ctl.onEvent(e)
	}
}
