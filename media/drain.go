package media

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/scope"
)

// The drain of a node's calls (SIGTERM, or POST /drain on the admin
// listener), in order:
//
//  1. The node's relay is marked draining in Redis (Drain): no new visit
//     is given it.
//  2. Calls in progress run on — signaling sockets open, the relay's
//     allocations kept — until none is left on this node or
//     visits.drain_timeout has passed.
//  3. Every visit the node's relay still carries is moved to another
//     node's relay (relayOf: compare and set in Redis, "moved" on the
//     bus), and its pages, on whatever node their sockets are, are told
//     "relay-moved": they fetch fresh ICE servers and restart ICE toward
//     the new relay while the old one still carries the call. New
//     Allocates of a moved visit here are answered 300 ALTERNATE-SERVER.
//  4. This node's signaling sockets close with 1001; their pages
//     reconnect (through the load balancer, to another node) and resume.
//  5. The node waits until its relay relays the moved calls' media no
//     more — the pages restarted ICE toward the new relay — or the
//     deadline (server.shutdown_timeout from the start of the drain, less
//     a second for closing), then Drained is closed. A call that could
//     not move ends with the node.
//
// On one node (no Redis) there is nowhere to move to: step 3 does
// nothing and the calls end with the node.

// activeReporter is a Relay that lists the visits it carries
// (*relay.Server.ActiveVisits).
type activeReporter interface {
	ActiveVisits(since time.Time) []string
}

// drainState is the drain's part of a Service.
type drainState struct {
	once sync.Once
	// over is closed when this node's signaling sockets are to close
	// (step 4); done when the drain has finished (step 5).
	over, done chan struct{}
}

// drainPoll is how often the drain looks whether calls are left.
const drainPoll = 100 * time.Millisecond

// BeginDrain starts the drain of this node's calls (see above) and
// returns at once; Drained is closed when it is over. deadline is when
// the node has to be gone. Safe to call more than once (later calls do
// nothing).
func (s *Service) BeginDrain(deadline time.Time) {
	s.drain.once.Do(func() {
		if err := s.Drain(); err != nil {
			s.log.Warn("marking the node draining in Redis failed", "err", err)
		}
		go s.drainCalls(deadline)
	})
}

// Drained is closed once a drain begun with BeginDrain is over: the
// node's calls have ended or moved and its relay carries nothing more
// (or the deadline came).
func (s *Service) Drained() <-chan struct{} { return s.drain.done }

func (s *Service) drainCalls(deadline time.Time) {
	defer close(s.drain.done)
	began := time.Now()
	until := began.Add(s.cfg.DrainTimeout)
	s.log.Info("draining calls", "sockets", s.socketsHere(), "relayed", len(s.carried()), "run_on", s.cfg.DrainTimeout.String())
	wait := func(until time.Time, busy func() bool) {
		for time.Now().Before(until) && busy() {
			select {
			case <-s.stop:
				return
			case <-time.After(drainPoll):
			}
		}
	}
	wait(until, func() bool { return s.socketsHere() > 0 || len(s.carried()) > 0 })
	moved := s.moveCalls()
	if len(moved) > 0 {
		// The notices go out before the sockets here close.
		wait(time.Now().Add(time.Second), func() bool { return true })
	}
	close(s.drain.over)
	// The moved calls leave this relay; those that could not move end
	// with the node.
	relaying := func() int {
		n := 0
		for _, vid := range s.carried(time.Now().Add(-movedIdle)) {
			if moved[vid] {
				n++
			}
		}
		return n
	}
	left := deadline.Add(-time.Second)
	wait(left, func() bool { return relaying() > 0 })
	s.log.Info("calls drained", "moved", len(moved), "still_relaying", relaying(),
		"took", time.Since(began).Round(time.Millisecond).String())
}

// socketsHere counts this node's signaling sockets.
func (s *Service) socketsHere() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.npeers
}

// carried lists the visits this node's relay carries: with allocations,
// or (since set) with an allocation that relayed a packet since then.
func (s *Service) carried(since ...time.Time) []string {
	a, ok := s.relay.(activeReporter)
	if !ok {
		return nil
	}
	var t time.Time
	if len(since) > 0 {
		t = since[0]
	}
	return a.ActiveVisits(t)
}

// movedIdle is how long the allocations of a moved call have to relay
// nothing before the call counts as gone from this node's relay (the
// pages restarted ICE toward the new one; browsers keep the old
// allocations alive a while).
const movedIdle = 2 * time.Second

// moveCalls moves every visit this node's relay carries to another
// node's relay and tells their pages; it returns those that moved.
func (s *Service) moveCalls() map[string]bool {
	moved := map[string]bool{}
	if s.bus == nil {
		return moved
	}
	for _, vid := range s.carried() {
		ctx, cancel := storeCtx()
		node, _, err := s.bus.relayOf(ctx, vid, "")
		cancel()
		if err != nil {
			s.log.Warn("moving a call off the draining relay failed", "visit", vid, "err", err)
			continue
		}
		if node == "" || node == s.bus.node {
			continue // no other relay can take it
		}
		s.relayMoved(vid)
		s.bus.publish(s.bus.allChan(), envelope{Kind: "relay-moved", Visit: vid})
		moved[vid] = true
	}
	return moved
}

// relayMoved tells this node's sockets of vid that the visit's relay
// moved: the pages fetch fresh ICE servers and restart ICE.
func (s *Service) relayMoved(vid string) {
	s.mu.Lock()
	socks := peersOf(s.rooms[vid], "")
	s.mu.Unlock()
	msg := mustJSON(serverMsg{Type: "relay-moved"})
	for _, p := range socks {
		p.enqueue(msg, nil)
	}
}

// drainWatch closes p with 1001 once the node's calls are over (step 4),
// draining being the gateway's drain signal (scope.Scope.Draining):
// at once with visits.drain_timeout 0, otherwise when the drain moves
// the calls (or, should BeginDrain never be called, after
// visits.drain_timeout and a margin).
func (s *Service) drainWatch(p *peer, draining <-chan struct{}) {
	select {
	case <-draining:
	case <-p.done:
		return
	}
	if s.cfg.DrainTimeout > 0 {
		select {
		case <-s.drain.over:
		case <-time.After(s.cfg.DrainTimeout + 5*time.Second):
		case <-p.done:
			return
		}
	}
	p.shutdown(statusGoingAway, restartReason, nil)
}

// refuseWhileDraining returns the gateway's drain signal of r
// (scope.Scope.Draining; nil when there is none) for drainWatch, and
// answers 503 (Retry-After 2 s, "restarting") and reports false when the
// node is already draining: no new socket opens on a node going away.
func refuseWhileDraining(w http.ResponseWriter, r *http.Request) (<-chan struct{}, bool) {
	var draining <-chan struct{}
	if sc := scope.From(r.Context()); sc != nil {
		draining = sc.Draining
	}
	if isClosed(draining) {
		w.Header().Set("Retry-After", "2")
		writeError(w, r, fail(http.StatusServiceUnavailable, "restarting", restartReason))
		return nil, false
	}
	return draining, true
}

// probeTimeout bounds one liveness probe of another node's relay.
const probeTimeout = 600 * time.Millisecond

// probeRelay reports whether the relay at addr answers a STUN Binding
// request (RFC 8489 §6) within probeTimeout (two tries). A dead node's
// port answers ICMP port unreachable, which ends the probe at once.
func probeRelay(addr netip.AddrPort) bool {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return false
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 2 {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if err != nil {
			return false
		}
		if _, err := c.Write(m.Raw); err != nil {
			return false
		}
		_ = c.SetReadDeadline(time.Now().Add(probeTimeout / 2))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break // try again
				}
				return false // refused: nothing listens there
			}
			r := stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if r.Decode() == nil && r.TransactionID == m.TransactionID {
				return true
			}
		}
	}
	return false
}
