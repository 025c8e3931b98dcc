package relay

import (
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

// Load is the relay's load for relay choice across nodes: its live
// allocations plus those being set up.
func (s *Server) Load() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
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
