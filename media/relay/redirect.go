package relay

import (
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// RedirectFunc tells, for a visit id, the relay that now serves the visit
// when it is another relay's (its UDP address, the one in its turn: URL),
// or false. It is asked only for an Allocate (never per packet) and must
// answer from memory: it runs on the relay's read loop.
type RedirectFunc func(visitID string) (netip.AddrPort, bool)

// SetRedirect sets the function asked for every new Allocate (nil: none).
// An Allocate of a visit that f says moved is answered 300 Try Alternate
// with ALTERNATE-SERVER at the visit's new relay (RFC 8656 §7.2 and §18,
// RFC 8489 §10 and §14.15), MESSAGE-INTEGRITY included: the client
// retries there. Allocations in progress are not touched.
func (s *Server) SetRedirect(f RedirectFunc) {
	if f == nil {
		s.redirect.Store(nil)
		return
	}
	s.redirect.Store(&f)
}

// LoadBitsPerUnit is the traffic that counts as one unit of Load: 1
// Mbit/s, about what one allocation of a video call carries.
const LoadBitsPerUnit = 1_000_000

// throughputTau is the time constant of Throughput's average: a change
// of traffic shows two thirds within 10 s.
const throughputTau = 10 * time.Second

// Load is the relay's load for relay choice across nodes, in units of
// one allocation: its live allocations plus those being set up
// (Allocations), plus the traffic it carries (Throughput) at one unit per
// LoadBitsPerUnit, rounded up — so a relay carrying heavy traffic for a
// few allocations counts as loaded as one holding many quiet ones.
func (s *Server) Load() int {
	return s.Allocations() + int(math.Ceil(s.Throughput()/LoadBitsPerUnit))
}

// Allocations is the number of live allocations plus those being set up.
func (s *Server) Allocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Throughput is the traffic the relay carries, in bits per second: the
// payload of the datagrams it relays (telegate_media_relay_bytes_total),
// as an exponentially weighted moving average with time constant 10 s
// (throughputTau), updated from the counter at each call (each
// registration heartbeat); 0 at the first call. Reading it costs nothing
// on the packet path, which only adds to a counter.
func (s *Server) Throughput() float64 {
	now := time.Now()
	n := s.m.carried.Load()
	s.tp.Lock()
	defer s.tp.Unlock()
	if !s.tp.at.IsZero() {
		if dt := now.Sub(s.tp.at); dt > 0 {
			rate := float64(n-s.tp.bytes) * 8 / dt.Seconds()
			alpha := 1 - math.Exp(-dt.Seconds()/throughputTau.Seconds())
			s.tp.bps += alpha * (rate - s.tp.bps)
		}
	}
	s.tp.at, s.tp.bytes = now, n
	return s.tp.bps
}

// redirectTo reports the alternate relay of visit, if it moved.
func (s *Server) redirectTo(visit string) (netip.AddrPort, bool) {
	f := s.redirect.Load()
	if f == nil {
		return netip.AddrPort{}, false
	}
	return (*f)(visit)
}

// tryAlternate answers m with 300 Try Alternate and ALTERNATE-SERVER to.
func (g *guardConn) tryAlternate(from net.Addr, m *stun.Message, to netip.AddrPort, key stun.MessageIntegrity) {
	g.send(from, m, true,
		&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: stun.CodeTryAlternate},
		&stun.AlternateServer{IP: net.IP(to.Addr().AsSlice()), Port: int(to.Port())},
		key,
	)
}

// ActiveVisits lists the visits with allocations (or reservations) on
// this relay, in no order: the calls a draining node has to move. With
// since set, only those with an allocation its client relayed media
// (not STUN) through since then (within 100 ms): the calls that have not
// yet moved away.
func (s *Server) ActiveVisits(since time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.visits))
	for id, v := range s.visits {
		if v.count == 0 {
			continue
		}
		if since.IsZero() {
			out = append(out, id)
			continue
		}
	parts:
		for _, p := range v.parts {
			for a := range p.allocs {
				if a.sent.Load() >= since.UnixNano() {
					out = append(out, id)
					break parts
				}
			}
		}
	}
	return out
}
