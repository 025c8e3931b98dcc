package relay

// visitState is the relay's view of one visit: its admitted participants.
type visitState struct {
	parts map[string]*participant
	count int // live allocations + reservations
}

// participantKey names a participant of a visit in the relay's tables
// keyed per participant (allocation rate, removals).
func participantKey(visitID, participantID string) string {
	return visitID + "\x00" + participantID
}

type participant struct {
	allocs map[*allocation]struct{}
	count  int // live allocations + reservations
}

// Admit lets participantID of visitID make allocations with its
// credentials. Ids that fail ValidID, visits that have ended, and visits or
// participants past the relay's table caps are ignored (fail closed).
func (s *Server) Admit(visitID, participantID string) {
	if !ValidID(visitID) || !ValidID(participantID) {
		s.log.Warn("relay: admit with an invalid id ignored")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Contains(visitID) {
		s.log.Warn("relay: admit into an ended visit ignored")
		return
	}
	v := s.visits[visitID]
	if v == nil {
		if len(s.visits) >= maxVisits {
			s.log.Warn("relay: visit table full, admit ignored")
			return
		}
		v = &visitState{parts: make(map[string]*participant)}
		s.visits[visitID] = v
	}
	if v.parts[participantID] == nil {
		if len(v.parts) >= maxParticipants {
			s.log.Warn("relay: participant table of visit full, admit ignored")
			return
		}
		v.parts[participantID] = &participant{allocs: make(map[*allocation]struct{})}
	}
	s.removed.Remove(participantKey(visitID, participantID))
	s.recomputeLocked(visitID)
}

// Remove revokes participantID of visitID: its allocations are closed
// before Remove returns (so well within one second) and new ones are
// refused until it is admitted again (401, a stale credential: see
// revokedLocked).
func (s *Server) Remove(visitID, participantID string) {
	s.mu.Lock()
	if ValidID(visitID) && ValidID(participantID) {
		s.removed.Add(participantKey(visitID, participantID), struct{}{})
	}
	var victims []*allocation
	if v := s.visits[visitID]; v != nil {
		if p := v.parts[participantID]; p != nil {
			for a := range p.allocs {
				victims = append(victims, a)
			}
			delete(v.parts, participantID)
			v.count -= p.count
			s.total -= p.count
			p.count = 0
			p.allocs = map[*allocation]struct{}{}
		}
		if len(v.parts) == 0 {
			delete(s.visits, visitID)
		}
		s.recomputeLocked(visitID)
	}
	s.mu.Unlock()
	for _, a := range victims {
		a.close(reasonRevoked)
	}
}

// EndVisit revokes every participant of visitID; the visit cannot be
// admitted into again.
func (s *Server) EndVisit(visitID string) {
	s.mu.Lock()
	s.ended.Add(visitID, struct{}{})
	victims := s.dropVisitLocked(visitID)
	s.mu.Unlock()
	for _, a := range victims {
		a.close(reasonVisitEnded)
	}
}

// dropVisitLocked takes visitID out of the relay's tables and returns its
// allocations, for the caller to close once s.mu is released.
func (s *Server) dropVisitLocked(visitID string) []*allocation {
	var victims []*allocation
	if v := s.visits[visitID]; v != nil {
		for _, p := range v.parts {
			for a := range p.allocs {
				victims = append(victims, a)
			}
			p.allocs = map[*allocation]struct{}{}
		}
		s.total -= v.count
		delete(s.visits, visitID)
	}
	return victims
}

// revokedLocked reports whether the participant's credentials are stale:
// its visit has ended or it was removed and not admitted again. An
// Allocate with such a credential is answered 401 with a fresh NONCE and
// REALM (RFC 8489 §9.2.4), so a client fetches new credentials instead of
// giving up as on 403.
func (s *Server) revokedLocked(visitID, participantID string) bool {
	return s.ended.Contains(visitID) || s.removed.Contains(participantKey(visitID, participantID))
}

// admittedLocked reports whether the participant may allocate.
func (s *Server) admittedLocked(visitID, participantID string) (*visitState, *participant) {
	v := s.visits[visitID]
	if v == nil {
		return nil, nil
	}
	p := v.parts[participantID]
	if p == nil {
		return nil, nil
	}
	return v, p
}
