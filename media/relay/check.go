package relay

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"time"
)

// A connection check is a visit of its own on the relay with exactly two
// participants, CheckCaller and CheckCallee: the pre-call check of a
// waiting-room page connects two of its own peer connections to each other
// through the relay, and each of their allocations may reach only the
// other's (the peer filter's one rule, unchanged: the other admitted
// participants of the same visit). Its id is "check-" and 26 random
// base32 letters, which no visit id of the media plane (26 letters, no
// "-") can be, so a check never shares a visit with a call. It is not an
// ended visit afterwards (nothing enters the relay's ended-visit table):
// once it ends its credentials are refused as never admitted (403).
const (
	CheckCaller = "a"
	CheckCallee = "b"

	// MaxChecks is how many checks a relay runs at once.
	MaxChecks = 256
	// MaxCheckTTL bounds a check's lifetime.
	MaxCheckTTL = 2 * time.Minute
)

// ErrTooManyChecks is StartCheck's answer when MaxChecks are running.
var ErrTooManyChecks = errors.New("relay: too many connection checks at once")

var checkEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// StartCheck opens a connection check for ttl (at most MaxCheckTTL) and
// returns the credentials of its two participants, valid for new
// allocations until the check ends, and end, which ends it earlier (safe
// to call more than once). When the check ends its allocations are closed
// at once. Fails with ErrTooManyChecks at MaxChecks.
func (s *Server) StartCheck(ttl time.Duration) (caller, callee Credential, end func(), err error) {
	ttl = min(max(ttl, time.Second), MaxCheckTTL)
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return Credential{}, Credential{}, nil, err
	}
	id := "check-" + checkEncoding.EncodeToString(b)
	s.mu.Lock()
	if s.checks >= MaxChecks {
		s.mu.Unlock()
		return Credential{}, Credential{}, nil, ErrTooManyChecks
	}
	if len(s.visits) >= maxVisits {
		s.mu.Unlock()
		return Credential{}, Credential{}, nil, ErrTooManyChecks
	}
	s.checks++
	s.visits[id] = &visitState{parts: map[string]*participant{
		CheckCaller: {allocs: make(map[*allocation]struct{})},
		CheckCallee: {allocs: make(map[*allocation]struct{})},
	}}
	s.mu.Unlock()

	exp := time.Unix(s.now().Add(ttl).Unix(), 0).UTC()
	mint := func(pid string) Credential {
		u := FormatUsername(exp, id, pid)
		return Credential{Username: u, Password: Password(s.secrets[0], u), Expires: exp}
	}
	done := make(chan struct{})
	end = func() {
		s.mu.Lock()
		select {
		case <-done:
			s.mu.Unlock()
			return
		default:
		}
		close(done)
		s.checks--
		victims := s.dropVisitLocked(id)
		s.mu.Unlock()
		for _, a := range victims {
			a.close(reasonVisitEnded)
		}
	}
	time.AfterFunc(ttl, end) // a no-op once ended earlier
	return mint(CheckCaller), mint(CheckCallee), end, nil
}
