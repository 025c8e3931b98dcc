package media

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/scope"
)

// Participant states.
const (
	stateWaiting  = "waiting"
	stateAdmitted = "admitted"
	stateDeclined = "declined"
	stateRemoved  = "removed"
	// stateLeft: a waiting participant whose waiting-room page was not
	// heard from for visits.waiting_grace (tab closed, device gone). It
	// is off the clinician's list; opening the link or the page again
	// puts them back in the waiting room.
	stateLeft = "left"
)

// awayAfter is how long a waiting participant's page may go unheard
// before the clinician sees them as away: the waiting room asks for the
// visit every 2 s (app.js), so three polls missed.
const awayAfter = 6 * time.Second

// seenWriteEvery is how often at most a waiting participant's presence
// (participant.Seen) is written to the visit store: a third of awayAfter,
// so a page that asks every few seconds never reads as away.
const seenWriteEvery = awayAfter / 3

// Participant roles within a visit.
const (
	roleHost  = "host"
	roleGuest = "guest"
)

// visit is one visit's state; it is stored (sealed) in visits.db. Guarded by
// Service.mu.
type visit struct {
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	OwnerIss      string    `json:"owner_iss"`
	OwnerSub      string    `json:"owner_sub"`
	Cap           int       `json:"cap"`
	Scheduled     time.Time `json:"scheduled,omitzero"`
	Created       time.Time `json:"created"`
	InviteExpires time.Time `json:"invite_expires"`
	// InviteGen is the generation of the visit's current invite link
	// (see invite.go): a link of another generation is refused.
	InviteGen    int            `json:"invite_gen,omitempty"`
	Started      time.Time      `json:"started,omitzero"`
	EndsAt       time.Time      `json:"ends_at,omitzero"`
	Ended        time.Time      `json:"ended,omitzero"`
	EndReason    string         `json:"end_reason,omitempty"`
	Participants []*participant `json:"participants"`
	// GuestLinks are the visit's guest links (guest.go): outstanding ones,
	// and the used ones that say who used them.
	GuestLinks []*guestLink `json:"guest_links,omitempty"`
	// Clinic is the visits.alert_webhooks clinic told of arrivals in its
	// waiting room ("" none), chosen at creation from the creating
	// clinician's groups.
	Clinic string `json:"clinic,omitempty"`
}

// participant is one person in a visit, keyed by (Iss, Sub).
type participant struct {
	ID   string `json:"id"`
	Iss  string `json:"iss"`
	Sub  string `json:"sub"`
	Name string `json:"name"`
	Role string `json:"role"`
	// Label is what a guest who joined with a guest link is in the visit
	// (interpreter, family, clinician, other); "" for the host and the
	// patient (see labelOf).
	Label   string    `json:"label,omitempty"`
	State   string    `json:"state"`
	Joined  time.Time `json:"joined"`
	Decided time.Time `json:"decided,omitzero"`
	// FP, Ufrag and Pwd are the DTLS fingerprints (RFC 8122 §5) and ICE
	// credentials (RFC 8839 §5.4) of the participant's last accepted SDP.
	FP    []string `json:"fp,omitempty"`
	Ufrag []string `json:"ufrag,omitempty"`
	Pwd   []string `json:"pwd,omitempty"`

	// Seen is when the participant's waiting-room page last asked for
	// the visit (or the participant joined). It is stored, at most every
	// seenWriteEvery, so that every node sharing the visit sees the same
	// presence.
	Seen time.Time `json:"seen,omitzero"`

	// HungUp is set when an admitted participant hangs up (signaling
	// "bye") and cleared when their page connects to the call again: the
	// difference between one who left the call and one whose signaling is
	// only away for now (signalJoin's welcome). Stored, so every node's
	// welcome says the same.
	HungUp bool `json:"hung_up,omitempty"`

	// allowance is the participant's signaling allowance
	// (visits.message_rate, visits.message_burst), shared by its
	// successive sockets so that reconnecting does not refill it. Not
	// stored: a restart refills it.
	allowance *allowance
}

func (v *visit) active() bool { return v.Ended.IsZero() }

func (v *visit) participant(pid string) *participant {
	for _, p := range v.Participants {
		if p.ID == pid {
			return p
		}
	}
	return nil
}

func (v *visit) byIdentity(id *scope.Identity) *participant {
	if id == nil || id.Subject == "" {
		return nil
	}
	for _, p := range v.Participants {
		if p.Iss == id.Issuer && p.Sub == id.Subject {
			return p
		}
	}
	return nil
}

func (v *visit) count(state string) int {
	n := 0
	for _, p := range v.Participants {
		if p.State == state {
			n++
		}
	}
	return n
}

func (v *visit) ownedBy(id *scope.Identity) bool {
	return id != nil && id.Subject != "" && v.OwnerIss == id.Issuer && v.OwnerSub == id.Subject
}

// canManage: the owning clinician, or any clinician with AllowAnyClinician.
func (s *Service) canManage(v *visit, id *scope.Identity) bool {
	if !id.HasRole("clinician") {
		return false
	}
	return v.ownedBy(id) || s.cfg.AllowAnyClinician
}

// apiError is an error with the status and a short audit reason.
type apiError struct {
	status int
	reason string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, reason, msg string) *apiError {
	return &apiError{status: status, reason: reason, msg: msg}
}

// displayName takes the OIDC "name" claim (OIDC Core §5.1), cleaned and
// capped at 80 characters; "" when there is none. A participant without a
// name is called by their role in each reader's language (the visit
// page's nameOf), never by a word stored here in one language.
func displayName(id *scope.Identity) string {
	n, _ := id.Claims["name"].(string)
	return cleanText(n, 80)
}

// cleanText drops control and format characters, collapses space, and caps
// the result at max runes.
func cleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	var b strings.Builder
	n := 0
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf) {
			continue
		}
		if unicode.IsSpace(r) {
			if space {
				continue
			}
			space = true
			r = ' '
		} else {
			space = false
		}
		if n == max {
			break
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// auditVisit records one visit.* decision. Names and titles never go in.
func (s *Service) auditVisit(r *http.Request, typ string, id *scope.Identity, visitID, pid, decision, reason string) {
	e := audit.Event{Type: typ, Decision: decision, Reason: reason, Attrs: map[string]string{}}
	if visitID != "" {
		e.Attrs["visit"] = visitID
	}
	if pid != "" {
		e.Attrs["participant"] = pid
	}
	ctx := context.Background()
	if r != nil {
		ctx = r.Context()
		e.Method = r.Method
		e.Path = r.URL.Path
		if sc := scope.From(ctx); sc != nil {
			e.RequestID = sc.RequestID
			e.RouteID = sc.RouteID
			if sc.Path != "" {
				e.Path = sc.Path
			}
			if sc.ClientAddr.IsValid() {
				e.Client = sc.ClientAddr.String()
			}
		}
	}
	if id != nil {
		e.Issuer, e.Subject = id.Issuer, id.Subject
	}
	s.record(ctx, e)
}

// createParams are the validated inputs of a new visit.
type createParams struct {
	Title        string
	Scheduled    time.Time
	Participants int
	OwnerIss     string
	OwnerSub     string
	OwnerName    string
	// Clinic is the alert webhook's clinic (alerts.clinicOf).
	Clinic string
}

// create adds a visit owned by p.Owner with the owner admitted as host.
func (s *Service) create(p createParams) (*visit, string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "", fail(http.StatusServiceUnavailable, "closed", "visits are shutting down; try again")
	}
	v := &visit{
		ID:            newID(),
		Title:         p.Title,
		OwnerIss:      p.OwnerIss,
		OwnerSub:      p.OwnerSub,
		Cap:           p.Participants,
		Scheduled:     p.Scheduled,
		Created:       now,
		InviteExpires: inviteExpiry(now, p.Scheduled, s.cfg.InviteTTL),
		InviteGen:     1,
		Clinic:        p.Clinic,
	}
	v.Participants = []*participant{{
		ID: newID(), Iss: p.OwnerIss, Sub: p.OwnerSub, Name: p.OwnerName,
		Role: roleHost, State: stateAdmitted, Joined: now, Decided: now,
	}}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := s.store.create(ctx, v, quota{open: s.cfg.MaxVisits, perOwner: s.cfg.MaxVisitsPerOwner}); err != nil {
		return nil, "", s.storeFailure(v.ID, quotaError(err))
	}
	s.visits[v.ID] = v
	return v, signInvite(s.invite, v.ID, v.InviteGen, v.InviteExpires), nil
}

// inviteExpiry is InviteTTL after now, or after the scheduled time when the
// visit is scheduled later.
func inviteExpiry(now, scheduled time.Time, ttl time.Duration) time.Time {
	base := now
	if scheduled.After(now) {
		base = scheduled
	}
	return base.Add(ttl).Truncate(time.Second)
}

// reissue replaces the visit's invite link: the fresh token is of the
// next generation, so every earlier link is refused from now on (people
// already waiting or admitted stay).
func (s *Service) reissue(id *scope.Identity, visitID string) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		exp time.Time
		gen int
	)
	_, err := s.change(visitID, func(v *visit) error {
		if err := s.mayManage(v, id); err != nil {
			return err
		}
		// A new link replaces every earlier one (InviteGen), even one
		// that would expire later.
		exp = inviteExpiry(s.now(), v.Scheduled, s.cfg.InviteTTL)
		v.InviteExpires, v.InviteGen = exp, v.InviteGen+1
		gen = v.InviteGen
		return nil
	})
	if err != nil {
		return "", time.Time{}, unknownVisit(err, http.StatusNotFound, "no such visit")
	}
	return signInvite(s.invite, visitID, gen, exp), exp, nil
}

// mayManage checks that v is active and id may manage it.
func (s *Service) mayManage(v *visit, id *scope.Identity) error {
	if !s.canManage(v, id) {
		return fail(http.StatusForbidden, "not-owner", "only the clinician who created this visit can do that")
	}
	if !v.active() {
		return fail(http.StatusGone, "ended", "this visit has ended")
	}
	return nil
}

// join puts id in the waiting room of the invite's visit, or returns its
// existing place.
//
// arrived reports whether id entered the waiting room now (first, or back
// after leaving), which the clinic's alert webhook is told of.
func (s *Service) join(id *scope.Identity, token string) (v *visit, p *participant, arrived bool, err error) {
	now := s.now()
	inv, err := parseInvite(s.invite, token, now)
	if err != nil {
		reason := "invite-malformed"
		switch err {
		case errInviteExpired:
			reason = "invite-expired"
		case errInviteSignature:
			reason = "invite-signature"
		}
		return nil, nil, false, fail(http.StatusForbidden, reason, err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err = s.change(inv.Visit, func(v *visit) error {
		p, arrived = nil, false
		if !v.active() {
			return fail(http.StatusGone, "ended", "this visit has ended")
		}
		// Someone already waiting or admitted keeps their place whichever
		// link they open again; a replaced link lets nobody new in.
		if p = v.byIdentity(id); p != nil {
			switch p.State {
			case stateWaiting, stateAdmitted:
				if now.Sub(p.Seen) < seenWriteEvery {
					return errNoChange
				}
				p.Seen = now
				return nil
			case stateLeft:
				if inv.Gen == v.InviteGen {
					if err := s.backToWaiting(v, p, now); err != nil {
						return err
					}
					arrived = true
					return nil
				}
			default:
				return fail(http.StatusForbidden, p.State, "you cannot join this visit")
			}
		}
		if inv.Gen != v.InviteGen {
			p = nil
			return fail(http.StatusForbidden, "invite-replaced", errInviteReplaced.Error())
		}
		if err := s.addWaiting(v, id, now, &p); err != nil {
			return err
		}
		arrived = true
		return nil
	})
	if v == nil {
		return nil, nil, false, unknownVisit(err, http.StatusGone, "this visit no longer exists")
	}
	if err != nil {
		arrived = false
	}
	return v, p, arrived, err
}

// addWaiting adds id to v's waiting room (in *out) within the
// participant cap and the waiting-room bound.
func (s *Service) addWaiting(v *visit, id *scope.Identity, now time.Time, out **participant) error {
	if err := s.waitingRoomOpen(v); err != nil {
		return err
	}
	// Bound the record: drop the oldest declined or removed entries.
	if len(v.Participants) >= v.Cap+s.cfg.MaxWaiting+16 {
		for i, p := range v.Participants {
			if p.State == stateDeclined || p.State == stateRemoved || p.State == stateLeft {
				v.Participants = append(v.Participants[:i], v.Participants[i+1:]...)
				break
			}
		}
	}
	p := &participant{
		ID: newID(), Iss: id.Issuer, Sub: id.Subject, Name: displayName(id),
		Role: roleGuest, State: stateWaiting, Joined: now, Seen: now,
	}
	v.Participants = append(v.Participants, p)
	*out = p
	return nil
}

// waitingRoomOpen says whether v takes one more person into its waiting
// room: 409 "full" when the participant cap is reached, 409
// "waiting-room-full" at visits.max_waiting. Everyone who enters the
// waiting room passes it: a newcomer (addWaiting) and anyone coming back
// after they had left (backToWaiting).
func (s *Service) waitingRoomOpen(v *visit) error {
	if v.count(stateAdmitted) >= v.Cap {
		return fail(http.StatusConflict, "full", fullMessage(v))
	}
	if v.count(stateWaiting) >= s.cfg.MaxWaiting {
		return fail(http.StatusConflict, "waiting-room-full", "the waiting room is full; try again later")
	}
	return nil
}

// backToWaiting puts p, who had left v's waiting room, back in it, within
// waitingRoomOpen.
func (s *Service) backToWaiting(v *visit, p *participant, now time.Time) error {
	if err := s.waitingRoomOpen(v); err != nil {
		return err
	}
	p.State, p.Seen = stateWaiting, now
	return nil
}

// decide applies admit, decline or remove to participant pid.
func (s *Service) decide(id *scope.Identity, visitID, pid, action string) error {
	var after func()
	err := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, err := s.change(visitID, func(v *visit) error {
			after = nil
			if err := s.mayManage(v, id); err != nil {
				return err
			}
			return s.apply(v, pid, action, &after)
		})
		return unknownVisit(err, http.StatusNotFound, "no such visit")
	}()
	if err == nil && after != nil {
		after()
	}
	if err == nil {
		// Out of the waiting room: its chat is over, on every node.
		s.chatOver(visitID, pid)
		s.bus.chatLeft(visitID, pid)
	}
	return err
}

// apply makes action's change to participant pid of v, setting *after to
// what must follow once the change is stored (relay, sockets).
func (s *Service) apply(v *visit, pid, action string, after *func()) error {
	p := v.participant(pid)
	if p == nil {
		return fail(http.StatusNotFound, "unknown-participant", "no such participant")
	}
	now := s.now()
	switch action {
	case "admit":
		if p.State == stateAdmitted {
			return errNoChange
		}
		if p.State != stateWaiting {
			return fail(http.StatusConflict, "not-waiting", "this participant is not waiting")
		}
		if v.count(stateAdmitted) >= v.Cap {
			return fail(http.StatusConflict, "full", fullMessage(v))
		}
		p.State, p.Decided = stateAdmitted, now
		if v.Started.IsZero() {
			v.Started = now
			v.EndsAt = now.Add(s.cfg.MaxDuration)
		}
		*after = func() { s.relay.Admit(v.ID, p.ID) }
	case "decline":
		if p.State == stateDeclined {
			return errNoChange
		}
		if p.State != stateWaiting && p.State != stateLeft {
			return fail(http.StatusConflict, "not-waiting", "this participant is not waiting")
		}
		p.State, p.Decided = stateDeclined, now
	case "remove":
		if p.Role == roleHost {
			return fail(http.StatusConflict, "host", "the host cannot be removed; end the visit instead")
		}
		if p.State == stateRemoved {
			return errNoChange
		}
		if p.State != stateAdmitted && p.State != stateWaiting {
			return fail(http.StatusConflict, "not-present", "this participant is not in the visit")
		}
		p.State, p.Decided = stateRemoved, now
		sock := s.rooms[v.ID][p.ID]
		vid := v.ID
		*after = func() {
			s.relay.Remove(vid, pid)
			s.bus.removed(vid, pid)
			if sock != nil {
				sock.shutdown(statusRemoved, "removed from the visit", serverMsg{Type: "removed"})
			}
		}
	default:
		return fail(http.StatusNotFound, "unknown-action", "no such action")
	}
	return nil
}

// fullMessage says why v takes nobody more: its cap counts everyone
// admitted, the clinician and every guest included.
func fullMessage(v *visit) string {
	return "this visit is full: it is for " + strconv.Itoa(v.Cap) + " people at once, the clinician and any guests included"
}

// seenBy notes that p's own page asked for the visit: a waiting
// participant is present, and one who had left is back in the waiting
// room. It returns v as stored after that. Caller holds s.mu.
func (s *Service) seenBy(v *visit, p *participant) *visit {
	now := s.now()
	back := p.State == stateLeft && v.active()
	if !back && now.Sub(p.Seen) < seenWriteEvery {
		return v
	}
	nv, err := s.change(v.ID, func(v *visit) error {
		q := v.participant(p.ID)
		if q == nil || (q.State != stateWaiting && q.State != stateLeft) {
			return errNoChange
		}
		if q.State == stateLeft {
			// Back only while the visit runs and its waiting room has
			// room; otherwise the page goes on seeing "left".
			if !v.active() || s.backToWaiting(v, q, now) != nil {
				return errNoChange
			}
			return nil
		}
		q.Seen = now
		return nil
	})
	if err != nil && !errors.Is(err, errNoChange) || nv == nil {
		return v
	}
	return nv
}

// present reports whether waiting participant p's page was heard from
// within awayAfter. Caller holds s.mu.
func (s *Service) present(p *participant) bool {
	return s.now().Sub(p.Seen) < awayAfter
}

// end ends visitID on behalf of id.
func (s *Service) end(id *scope.Identity, visitID string) error {
	s.mu.Lock()
	v, err := s.lookup(visitID)
	switch {
	case err != nil:
		s.mu.Unlock()
		return err
	case v == nil:
		s.mu.Unlock()
		return fail(http.StatusNotFound, "unknown-visit", "no such visit")
	case !s.canManage(v, id) && !id.HasRole("service"):
		s.mu.Unlock()
		return fail(http.StatusForbidden, "not-owner", "only the clinician who created this visit can end it")
	case !v.active():
		s.mu.Unlock()
		return nil
	}
	after, err := s.endLocked(v, "ended")
	s.mu.Unlock()
	after()
	return err
}

// endLocked marks v ended and returns what to do after unlocking: revoke
// the relay and close the visit's sockets. Caller holds s.mu.
func (s *Service) endLocked(v *visit, reason string) (func(), error) {
	now := s.now()
	_, err := s.change(v.ID, func(v *visit) error {
		if !v.active() {
			return errNoChange
		}
		v.Ended, v.EndReason = now, reason
		return nil
	})
	if err != nil && !errors.Is(err, errVisitNotFound) {
		// Not stored: end it on this node all the same (fail closed).
		v.Ended, v.EndReason = now, reason
	}
	var socks []*peer
	for _, p := range s.rooms[v.ID] {
		socks = append(socks, p)
	}
	chats := s.closeChatsLocked(v.ID, "")
	vid := v.ID
	return func() {
		s.relay.EndVisit(vid)
		s.bus.ended(vid)
		for _, p := range socks {
			p.shutdown(statusEnded, "the visit has ended", serverMsg{Type: "ended"})
		}
		for _, p := range chats {
			p.shutdown(statusEnded, "the visit has ended", chatServerMsg{Type: "error", Error: "ended"})
		}
	}, err
}

// sweepLoop ends visits past their maximum duration and deletes ended
// visits past retention, every interval.
func (s *Service) sweepLoop(interval time.Duration) {
	defer s.sweepers.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// dropAbsentLocked moves the waiting participants of v whose page went
// unheard for visits.waiting_grace to stateLeft. Caller holds s.mu.
func (s *Service) dropAbsentLocked(v *visit, now time.Time) {
	gone := func(p *participant) bool {
		seen := p.Seen
		if seen.IsZero() {
			seen = p.Joined
		}
		return p.State == stateWaiting && now.Sub(seen) >= s.cfg.WaitingGrace
	}
	if !slices.ContainsFunc(v.Participants, gone) {
		return
	}
	_, _ = s.change(v.ID, func(v *visit) error {
		changed := false
		for _, p := range v.Participants {
			if gone(p) {
				p.State, changed = stateLeft, true
			}
		}
		if !changed {
			return errNoChange
		}
		return nil
	})
}

// sweep runs one expiry pass at s.now().
func (s *Service) sweep() {
	now := s.now()
	var afters []func()
	var ended []string
	s.mu.Lock()
	if s.store.shared() && now.Sub(s.refreshed) >= time.Minute {
		s.refreshed = now
		s.refresh()
	}
	for id, v := range s.visits {
		if v.active() {
			s.dropAbsentLocked(v, now)
		}
		switch {
		case !v.active():
			if now.Sub(v.Ended) >= s.cfg.Retention {
				ctx, cancel := storeCtx()
				err := s.store.delete(ctx, id)
				cancel()
				if err != nil {
					s.log.Error("visit store delete failed", "visit", id, "err", err)
					continue
				}
				delete(s.visits, id)
			}
		case !v.EndsAt.IsZero() && !now.Before(v.EndsAt):
			a, _ := s.endLocked(v, "max-duration")
			afters = append(afters, a)
			ended = append(ended, id)
		case v.Started.IsZero() && !now.Before(v.InviteExpires.Add(s.cfg.MaxDuration)):
			a, _ := s.endLocked(v, "lapsed")
			afters = append(afters, a)
			ended = append(ended, id)
		}
	}
	s.mu.Unlock()
	for _, a := range afters {
		a()
	}
	for _, id := range ended {
		s.auditVisit(nil, "visit.end", nil, id, "", "allow", "expired")
	}
}
