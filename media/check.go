package media

import (
	"errors"
	"net/http"
	"time"

	"github.com/telegate/telegate/media/relay"
)

// The pre-call check (docs/visits.md, "The pre-call check"): a page in
// the waiting room connects two of its own peer connections to each other
// through the relay, to measure the path a call would take. Its relay
// credentials are not the participant's (those come only with admission,
// from /ice): POST /.telegate/visits/{id}/check opens a connection check
// on this node's relay — a relay visit of its own whose two participants
// reach only each other (relay.Server.StartCheck) — and answers
// checkJSON. It ends by itself after checkTTL; a participant starts at
// most one every checkEvery, and a new one ends the last.
const (
	checkTTL   = 45 * time.Second
	checkEvery = 5 * time.Second
)

// checkRelay is a Relay that runs connection checks (relay.Server).
type checkRelay interface {
	StartCheck(ttl time.Duration) (caller, callee Credential, end func(), err error)
}

// checkRun is a participant's last connection check.
type checkRun struct {
	started time.Time
	end     func()
}

// checkJSON is the answer of POST /.telegate/visits/{id}/check: the
// configurations of the check's two peer connections, caller and callee
// (RTCConfiguration subsets, relay only, as /ice answers, with the
// check's own credentials), and when the check ends.
type checkJSON struct {
	Caller  iceConfig `json:"caller"`
	Callee  iceConfig `json:"callee"`
	Expires time.Time `json:"expires"`
}

// handleCheck starts a pre-call check for a participant who waits in (or
// is admitted to) an active visit: 401 without identity, 403 without the
// CSRF header or for anyone else, 404/410 for an unknown or ended visit,
// 429 within checkEvery of the participant's last check, 503 when the
// relay runs too many checks.
func (s *Service) handleCheck(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	cr, ok := s.relay.(checkRelay)
	if !ok {
		writeError(w, r, fail(http.StatusServiceUnavailable, "relay", "the connection check is not available here"))
		return
	}
	vid := r.PathValue("id")
	s.mu.Lock()
	v, err := s.activeVisit(vid)
	var p *participant
	if err == nil {
		if p = v.byIdentity(id); p == nil || (p.State != stateWaiting && p.State != stateAdmitted) {
			err = fail(http.StatusForbidden, "not-waiting", "only someone in the waiting room can check their connection")
		}
	}
	if err != nil {
		s.mu.Unlock()
		var ae *apiError
		reason := "error"
		if errors.As(err, &ae) {
			reason = ae.reason
		}
		s.auditVisit(r, "visit.check", id, vid, "", "deny", reason)
		writeError(w, r, err)
		return
	}
	pid := p.ID
	key := vid + "\x00" + pid
	now := s.now()
	last := s.checks[key]
	if last != nil && now.Sub(last.started) < checkEvery {
		s.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		writeError(w, r, fail(http.StatusTooManyRequests, "rate", "a connection check is already under way; try again in a few seconds"))
		return
	}
	// Checks older than their lifetime have ended by themselves.
	for k, c := range s.checks {
		if now.Sub(c.started) > checkTTL {
			delete(s.checks, k)
		}
	}
	delete(s.checks, key)
	s.mu.Unlock()
	if last != nil {
		last.end()
	}
	caller, callee, end, err := cr.StartCheck(checkTTL)
	if err != nil {
		s.auditVisit(r, "visit.check", id, vid, pid, "deny", "capacity")
		w.Header().Set("Retry-After", "10")
		writeError(w, r, fail(http.StatusServiceUnavailable, "capacity", "the connection check is busy; try again shortly"))
		return
	}
	s.mu.Lock()
	if prev := s.checks[key]; prev != nil {
		// Another request of the same participant won meanwhile.
		s.mu.Unlock()
		end()
		w.Header().Set("Retry-After", "5")
		writeError(w, r, fail(http.StatusTooManyRequests, "rate", "a connection check is already under way; try again in a few seconds"))
		return
	}
	s.checks[key] = &checkRun{started: now, end: end}
	s.mu.Unlock()
	s.auditVisit(r, "visit.check", id, vid, pid, "allow", "")
	urls := s.iceURLs(r)
	conf := func(c Credential) iceConfig {
		return iceConfig{
			ICEServers:         []iceServer{{URLs: urls, Username: c.Username, Credential: c.Password}},
			ICETransportPolicy: "relay",
			Expires:            c.Expires,
		}
	}
	writeJSON(w, http.StatusOK, checkJSON{Caller: conf(caller), Callee: conf(callee), Expires: caller.Expires})
}

var _ checkRelay = (*relay.Server)(nil)
