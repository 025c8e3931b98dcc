package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/pion/turn/v5"

	"github.com/telegate/telegate/audit"
)

// tupleKey names an allocation's 5-tuple: the listening socket (index into
// the guards) and the client's transport address.
type tupleKey struct {
	listener int
	src      netip.AddrPort
}

// ticket is a quota reservation made when pion asks the QuotaHandler, and
// consumed when it asks for the relay socket right after.
type ticket struct {
	user     Username
	username string
	key      tupleKey
	vs       *visitState
	p        *participant
	deadline time.Time
}

// allocation is telegate's record of one pion allocation.
type allocation struct {
	s           *Server
	username    string
	visit       string
	participant string
	vs          *visitState
	p           *participant
	key         tupleKey
	transport   string
	relay       *relayAddr
	port        uint16
	local       netip.AddrPort // bound socket
	advertised  netip.AddrPort // XOR-RELAYED-ADDRESS
	advUDP      *net.UDPAddr   // advertised, as shown to pion
	conn        *relayConn
	peers       atomic.Pointer[peerSet]
	created     time.Time
	once        sync.Once
	// sent is when the client last relayed media through the allocation
	// (DTLS, SRTP or SRTCP: a first byte past 3, RFC 7983 §7; the STUN
	// checks browsers keep sending on an old pair do not count; Unix ns,
	// set at most every sentGrain): a call that moved to another relay
	// leaves it idle.
	sent atomic.Int64
}

// sentGrain is how stale allocation.sent may be: the packet path stores
// it only when it is older than that.
const sentGrain = int64(100 * time.Millisecond)

// peerSet is what an allocation may reach: the relayed addresses of the
// other admitted participants of its visit.
type peerSet struct {
	ips map[netip.Addr]struct{}         // advertised IPs (permissions are per IP, RFC 8656 §9)
	out map[netip.AddrPort]*allocation  // advertised or local address → sibling
	in  map[netip.AddrPort]*net.UDPAddr // sibling local socket → advertised address shown to pion
	adv map[netip.AddrPort]struct{}     // advertised addresses (CreatePermission, ChannelBind)
}

var emptyPeers = &peerSet{}

// permitIP decides a CreatePermission peer (RFC 8656 §9): "" or the denial
// reason.
func (a *allocation) permitIP(ip netip.Addr) string {
	ps := a.peers.Load()
	if ps == nil {
		ps = emptyPeers
	}
	if _, ok := ps.ips[ip.WithZone("")]; ok {
		return ""
	}
	if a.s.deny.denied(ip) {
		return "deny_list"
	}
	return "not_in_visit"
}

// permitAddr decides a ChannelBind peer: the exact relayed transport
// address of a sibling.
func (a *allocation) permitAddr(ap netip.AddrPort) string {
	ps := a.peers.Load()
	if ps == nil {
		ps = emptyPeers
	}
	if _, ok := ps.adv[ap]; ok {
		return ""
	}
	if a.s.deny.denied(ap.Addr()) {
		return "deny_list"
	}
	return "not_in_visit"
}

// recomputeLocked rebuilds the peer sets of every allocation of visitID.
func (s *Server) recomputeLocked(visitID string) {
	v := s.visits[visitID]
	if v == nil {
		return
	}
	var all []*allocation
	for _, p := range v.parts {
		for a := range p.allocs {
			all = append(all, a)
		}
	}
	for _, a := range all {
		ps := &peerSet{
			ips: map[netip.Addr]struct{}{},
			out: map[netip.AddrPort]*allocation{},
			in:  map[netip.AddrPort]*net.UDPAddr{},
			adv: map[netip.AddrPort]struct{}{},
		}
		for _, b := range all {
			if b.participant == a.participant || b.local.Addr().Is4() != a.local.Addr().Is4() {
				continue
			}
			ps.ips[b.advertised.Addr()] = struct{}{}
			ps.adv[b.advertised] = struct{}{}
			ps.out[b.advertised] = b
			ps.out[b.local] = b
			ps.in[b.local] = b.advUDP
		}
		a.peers.Store(ps)
	}
}

// relayGen implements turn.RelayAddressGenerator: UDP relay sockets only,
// bound to the configured relay address from the port pool.
type relayGen struct{ s *Server }

var (
	errNoTicket       = errors.New("relay: no allocation reservation")
	errNoFamily       = errors.New("relay: no relay address of the requested family")
	errNoPort         = errors.New("relay: no free relay port")
	errTCPUnsupported = errors.New("relay: TCP relaying (RFC 6062) is not offered")
	errConnClosed     = errors.New("relay: the TURN-over-TLS connection closed")
)

func (relayGen) Validate() error { return nil }

func (relayGen) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPUnsupported
}

func (relayGen) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPUnsupported
}

func (g relayGen) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	s.mu.Lock()
	t := s.tickets[c.UserID]
	delete(s.tickets, c.UserID)
	if t == nil {
		s.mu.Unlock()
		return nil, nil, errNoTicket
	}
	if vs, p := s.admittedLocked(t.user.Visit, t.user.Participant); vs != t.vs || p != t.p || p == nil {
		s.unreserveLocked(t.user.Visit, t.user.Participant, t.vs, t.p)
		s.mu.Unlock()
		s.denyAllocation(t.username, t.user, t.key, "not-admitted")
		return nil, nil, errNoTicket
	}
	s.mu.Unlock()

	fail := func(err error) (net.PacketConn, net.Addr, error) {
		s.mu.Lock()
		s.unreserveLocked(t.user.Visit, t.user.Participant, t.vs, t.p)
		s.mu.Unlock()
		s.m.total("error")
		return nil, nil, err
	}
	ra := s.relay4
	if c.Network == "udp6" {
		ra = s.relay6
	}
	if ra == nil {
		return fail(errNoFamily)
	}
	var pc net.PacketConn
	var port uint16
	for range 16 {
		p, ok := ra.pool.take()
		if !ok {
			return fail(errNoPort)
		}
		conn, err := net.ListenUDP(c.Network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ra.local, p)))
		if err != nil {
			ra.pool.put(p)
			continue
		}
		pc, port = conn, p
		break
	}
	if pc == nil {
		return fail(errNoPort)
	}
	a := &allocation{
		s:           s,
		username:    t.username,
		visit:       t.user.Visit,
		participant: t.user.Participant,
		vs:          t.vs,
		p:           t.p,
		key:         t.key,
		transport:   "udp",
		relay:       ra,
		port:        port,
		local:       netip.AddrPortFrom(ra.local, port),
		advertised:  netip.AddrPortFrom(ra.advertised, port),
		created:     s.now(),
	}
	if t.key.listener == s.muxID {
		a.transport = "tls"
	}
	a.advUDP = net.UDPAddrFromAddrPort(a.advertised)
	bw := s.limits()
	a.conn = &relayConn{
		PacketConn: pc,
		a:          a,
		up:         rate.NewLimiter(bw.bandwidth, bw.burst),
		down:       rate.NewLimiter(bw.bandwidth, bw.burst),
		inbox:      make(chan inPacket, inboxLen),
		done:       make(chan struct{}),
	}
	a.peers.Store(emptyPeers)
	s.mu.Lock()
	if vs, p := s.admittedLocked(a.visit, a.participant); vs != a.vs || p != a.p || p == nil {
		// Revoked while the socket was being bound.
		s.mu.Unlock()
		_ = pc.Close()
		ra.pool.put(port)
		s.denyAllocation(t.username, t.user, t.key, "not-admitted")
		return nil, nil, errNoTicket
	}
	// The reservation becomes the allocation: counts stay as they are.
	a.p.allocs[a] = struct{}{}
	if old := s.byTuple[a.key]; old != nil {
		go old.close("replaced")
	}
	s.byTuple[a.key] = a
	s.recomputeLocked(a.visit)
	if l := s.limits(); l != bw {
		// SetLimits ran meanwhile (it stores under mu).
		for _, r := range []*rate.Limiter{a.conn.up, a.conn.down} {
			r.SetLimit(l.bandwidth)
			r.SetBurst(l.burst)
		}
	}
	s.mu.Unlock()

	s.m.active.Inc()
	s.m.total("created")
	s.record(audit.Event{
		Type:     "relay.allocation",
		Client:   a.key.src.Addr().String(),
		Decision: "allow",
		Reason:   "created",
		Attrs: map[string]string{
			"event": "created", "visit": a.visit, "participant": a.participant,
			"transport": a.transport, "relay": a.advertised.String(),
		},
	})
	s.log.Debug("relay allocation created", "visit", a.visit, "participant", a.participant, "client", s.pseudonym(a.key.src.Addr()), "transport", a.transport)
	if a.transport == "tls" && !s.mux.allocated(a.key.src) {
		// The connection closed while the allocation was being made (its
		// own end, the allocate deadline, or eviction): its cleanup may
		// have run before the allocation was registered.
		a.close("connection-closed")
		return nil, nil, errConnClosed
	}
	go a.conn.readSocket()
	var ret net.PacketConn = a.conn
	if s.wrapRelay != nil {
		ret = s.wrapRelay(ret)
	}
	return ret, net.UDPAddrFromAddrPort(a.advertised), nil
}

// unreserveLocked gives back one reservation if the participant is still
// the registered one (Remove and EndVisit already gave back theirs).
func (s *Server) unreserveLocked(visit, part string, vs *visitState, p *participant) {
	if s.visits[visit] != vs || vs == nil || vs.parts[part] != p || p == nil {
		return
	}
	p.count--
	vs.count--
	s.total--
}

func (s *Server) expireTicketsLocked(now time.Time) {
	for id, t := range s.tickets {
		if now.After(t.deadline) {
			delete(s.tickets, id)
			s.unreserveLocked(t.user.Visit, t.user.Participant, t.vs, t.p)
		}
	}
}

// Reasons an allocation is closed for by a decision of the visit: its
// participant was removed (or signed out), or its visit ended.
const (
	reasonRevoked    = "revoked"
	reasonVisitEnded = "visit-ended"
)

// close ends the allocation once: the relay socket is closed (pion then
// drops its allocation), the port returns to the pool, quotas are given
// back and the visit's peer sets are rebuilt. A TURN-over-TLS
// connection carrying it is closed when reason is reasonRevoked or
// reasonVisitEnded, and otherwise is left without an allocation
// (streamMux.released).
func (a *allocation) close(reason string) {
	a.once.Do(func() {
		s := a.s
		close(a.conn.done)
		_ = a.conn.PacketConn.Close()
		a.relay.pool.put(a.port)
		s.mu.Lock()
		if s.byTuple[a.key] == a {
			delete(s.byTuple, a.key)
		}
		if _, ok := a.p.allocs[a]; ok {
			delete(a.p.allocs, a)
			s.unreserveLocked(a.visit, a.participant, a.vs, a.p)
		}
		s.recomputeLocked(a.visit)
		s.mu.Unlock()
		if a.transport == "tls" {
			// The TURN-over-TLS connection outlives no revocation, and
			// without an allocation it is one that never allocated.
			s.mux.released(a.key.src, reason == reasonRevoked || reason == reasonVisitEnded)
		}
		s.m.active.Dec()
		s.record(audit.Event{
			Type:     "relay.allocation",
			Client:   a.key.src.Addr().String(),
			Decision: "allow",
			Reason:   reason,
			Attrs: map[string]string{
				"event": "closed", "visit": a.visit, "participant": a.participant,
				"transport": a.transport, "relay": a.advertised.String(),
				"duration_s": fmt.Sprintf("%.0f", s.now().Sub(a.created).Seconds()),
			},
		})
	})
}

// lookup returns the allocation of a 5-tuple, or nil.
func (s *Server) lookup(k tupleKey) *allocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byTuple[k]
}

// closeTuple closes the allocation of a 5-tuple, if any.
func (s *Server) closeTuple(k tupleKey, reason string) {
	if a := s.lookup(k); a != nil {
		a.close(reason)
	}
}

// denyAllocation records a refused Allocate.
func (s *Server) denyAllocation(username string, u Username, k tupleKey, reason string) {
	s.m.total(strings.ReplaceAll(reason, "-", "_"))
	s.record(audit.Event{
		Type:     "relay.allocation",
		Client:   k.src.Addr().String(),
		Decision: "deny",
		Reason:   reason,
		Attrs: map[string]string{
			"event": "denied", "visit": u.Visit, "participant": u.Participant,
		},
	})
	s.log.Info("relay allocation denied", "reason", reason, "visit", u.Visit, "participant", u.Participant, "client", s.pseudonym(k.src.Addr()))
}

// relayConn is what pion reads and writes an allocation's relayed
// traffic through. It forwards packets unchanged (the payload is
// DTLS-SRTP end to end) and enforces, per packet, the peer set and the
// bandwidth cap in each direction.
//
// Every peer an allocation may reach is a sibling allocation of this relay,
// so a datagram for a sibling is handed straight to the sibling's inbox
// instead of crossing the loopback between two relay sockets: two system
// calls fewer per packet, and no hairpin through a NAT when relay
// addresses are announced as external addresses. The relay socket stays
// bound (it holds the relayed transport address); what arrives on it is
// dropped unless it comes from a sibling's relay socket.
type relayConn struct {
	net.PacketConn // the relay socket
	a              *allocation
	up, down       *rate.Limiter
	inbox          chan inPacket
	done           chan struct{}
	// stalled: a hand-over waited handOverWait in vain and the inbox has
	// not been read since; until it is, a full inbox drops at once.
	stalled atomic.Bool
}

type inPacket struct {
	buf  *[]byte
	n    int
	from *net.UDPAddr
}

const (
	// inboxLen bounds the datagrams queued for one client: with
	// maxDatagram buffers at most 24 × 1600 B = 37.5 KiB, which keeps an
	// allocation under 64 KiB even when its client falls behind.
	inboxLen = 24
	// handOverWait bounds how long a listener's reader waits for a full
	// inbox before dropping the datagram.
	handOverWait = 2 * time.Millisecond
	maxDatagram  = 1600
)

var packetPool = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
}

// deliver queues p for the allocation's client, as coming from from. Past
// the bandwidth cap, or with a full inbox, the datagram is dropped (UDP
// semantics).
func (c *relayConn) deliver(p []byte, from *net.UDPAddr) {
	if len(p) > maxDatagram {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	if !c.down.AllowN(time.Now(), len(p)) {
		c.a.s.m.drop("bandwidth")
		return
	}
	b := packetPool.Get().(*[]byte)
	n := copy(*b, p)
	pk := inPacket{buf: b, n: n, from: from}
	select {
	case c.inbox <- pk:
		c.a.s.m.packet(n)
		return
	default:
	}
	// The inbox is full. Its reader only writes datagrams (to a UDP
	// socket, or into a TURN-over-TLS connection's send queue, which never
	// waits for the client: streamConn.enqueue), so it is runnable but not
	// yet running: wait for it briefly rather than throw away a datagram
	// already read; the listening socket's buffer absorbs what arrives
	// meanwhile, and past overload the kernel drops there, before any work
	// is spent on it. The caller is the read loop of a listening socket
	// shared with other clients, so it never waits again for a reader that
	// already let a wait run out and has not taken a datagram since.
	if c.stalled.Load() {
		packetPool.Put(b)
		c.a.s.m.drop("queue_full")
		return
	}
	t := time.NewTimer(handOverWait)
	defer t.Stop()
	select {
	case c.inbox <- pk:
		c.a.s.m.packet(n)
	case <-c.done:
		packetPool.Put(b)
	case <-t.C:
		c.stalled.Store(true)
		packetPool.Put(b)
		c.a.s.m.drop("queue_full")
	}
}

// readSocket drains the relay socket: only datagrams from a sibling's
// relay socket are delivered, shown as from its advertised address.
func (c *relayConn) readSocket() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := c.PacketConn.ReadFrom(buf)
		if err != nil {
			return
		}
		ap, _ := addrPortOf(from)
		adv, ok := c.a.peers.Load().in[ap]
		if !ok {
			c.a.s.m.denial("ingress")
			continue
		}
		c.deliver(buf[:n], adv)
	}
}

// ReadFrom returns the next datagram from a sibling allocation, with the
// sender shown as its advertised relayed transport address.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-c.inbox:
		if c.stalled.Load() {
			c.stalled.Store(false)
		}
		n := copy(p, (*pk.buf)[:pk.n])
		packetPool.Put(pk.buf)
		return n, pk.from, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo hands p to a sibling allocation. Any other destination, or a
// packet past the bandwidth cap, is dropped silently (RFC 8656 §11.2: a
// Send indication has no response).
func (c *relayConn) WriteTo(p []byte, to net.Addr) (int, error) {
	ap, _ := addrPortOf(to)
	b, ok := c.a.peers.Load().out[ap]
	if !ok {
		c.a.s.m.denial("send")
		return len(p), nil
	}
	now := time.Now()
	if !c.up.AllowN(now, len(p)) {
		c.a.s.m.drop("bandwidth")
		return len(p), nil
	}
	if ns := now.UnixNano(); len(p) > 0 && p[0] > 3 && ns-c.a.sent.Load() > sentGrain {
		c.a.sent.Store(ns)
	}
	b.conn.deliver(p, c.a.advUDP)
	return len(p), nil
}

// Close ends the allocation (pion calls it when the allocation expires or
// is refreshed to zero).
func (c *relayConn) Close() error {
	c.a.close("ended")
	return nil
}

// portPool is the free relay ports of one relay address.
type portPool struct {
	mu   sync.Mutex
	free []uint16
}

func newPortPool(lo, hi uint16) *portPool {
	p := &portPool{free: make([]uint16, 0, int(hi)-int(lo)+1)}
	for v := int(lo); v <= int(hi); v++ {
		p.free = append(p.free, uint16(v))
	}
	return p
}

func (p *portPool) take() (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 {
		return 0, false
	}
	i := rand.IntN(n)
	v := p.free[i]
	p.free[i] = p.free[n-1]
	p.free = p.free[:n-1]
	return v, true
}

func (p *portPool) put(v uint16) {
	p.mu.Lock()
	p.free = append(p.free, v)
	p.mu.Unlock()
}

func (p *portPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
