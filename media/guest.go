package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telegate/telegate/scope"
)

// Guests are people the host brings into one visit besides the patient: an
// interpreter, a family member, a second clinician. The host issues a
// guest link (POST /.telegate/visits/{id}/guests) with a label saying what
// the guest is there as and, optionally, their name. A link
//
//   - names one visit and one stored link record (visit.GuestLinks), and is
//     signed: <visit id>.<link id>.<expiry, Unix seconds>.<base64url(HMAC-SHA256(key, "telegate-guest-v1\x00" + visit id + "." + link id + "." + expiry))>;
//   - is used up by the first person who joins with it: the redemption is
//     one visitStore.update, so of any number of concurrent redemptions on
//     any number of nodes exactly one gets in;
//   - expires after visits.guest_link_ttl, and at most
//     visits.max_guest_links of a visit are outstanding at once;
//   - like the patient's invite, only reaches the waiting room: the host
//     admits the guest.
//
// A guest signs in (visits.guest_provider names the provider the guest
// page offers), or, when visits.guests_without_account is on, joins
// without an account: telegate then makes them a participant of issuer
// guestIssuer and sets a guest session cookie (guestCookie) that stands for
// that participant on that one visit's endpoints only (guestSessions).

// Guest labels: what a guest is in the visit, shown to everyone in the
// call. The patient (who joins with the visit's invite link) and the host
// have labelPatient and labelHost.
const (
	labelHost        = "host"
	labelPatient     = "patient"
	labelInterpreter = "interpreter"
	labelFamily      = "family"
	labelClinician   = "clinician"
	labelOther       = "other"
)

// guestLabels are the labels a host may give a guest link.
var guestLabels = []string{labelInterpreter, labelFamily, labelClinician, labelOther}

// guestIssuer is the issuer of account-less guests; their subject is a
// random id.
const guestIssuer = "urn:telegate:visit-guest"

// guestCookie holds an account-less guest's session: <visit id>.<participant
// id>.<expiry>.<mac>, MAC as for links with prefix
// "telegate-guest-session-v1\x00". Path /.telegate/visits/, HttpOnly,
// SameSite=Strict, Secure on https.
const guestCookie = "telegate_visit_guest"

const (
	guestLinkPrefix    = "telegate-guest-v1\x00"
	guestSessionPrefix = "telegate-guest-session-v1\x00"
	// maxGuestRecords bounds visit.GuestLinks: used links beyond it are
	// dropped, oldest first (expired unused ones are dropped at once).
	maxGuestRecords = 32
)

// guestLink is one guest link of a visit, as stored.
type guestLink struct {
	ID      string    `json:"id"`
	Label   string    `json:"label"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Used is when the link was redeemed (zero: not yet); Participant is
	// who redeemed it.
	Used        time.Time `json:"used,omitzero"`
	Participant string    `json:"participant,omitempty"`
}

// Guest link refusals, worded for the guest who sees them.
var (
	errGuestLinkMalformed error = inviteError("This guest link is incomplete or damaged. Open the link exactly as you received it, or ask for a new one.")
	errGuestLinkInvalid   error = inviteError("This guest link is not valid. Ask the clinician for a new one.")
	errGuestLinkExpired   error = inviteError("This guest link has expired. Ask the clinician for a new one.")
	errGuestLinkUsed      error = inviteError("This guest link has already been used. Each guest link lets one person in; ask the clinician for a new one.")
)

// signed returns body "." base64url(HMAC-SHA256(key, prefix + body)).
func signed(key []byte, prefix, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix))
	m.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// visitToken is a checked guest link or guest session token.
type visitToken struct {
	Visit   string
	ID      string // link id, or participant id
	Expires time.Time
}

// parseVisitToken checks a token made by signed(key, prefix, "<visit
// id>.<id>.<expiry>"): errGuestLinkMalformed, errGuestLinkInvalid (wrong
// MAC) or errGuestLinkExpired (against now).
func parseVisitToken(key []byte, prefix, tok string, now time.Time) (visitToken, error) {
	parts := strings.Split(tok, ".")
	if len(tok) > 160 || len(parts) != 4 || !validID(parts[0]) || !validID(parts[1]) {
		return visitToken{}, errGuestLinkMalformed
	}
	e, ok := decimal(parts[2])
	if !ok {
		return visitToken{}, errGuestLinkMalformed
	}
	body := strings.Join(parts[:3], ".")
	if len(parts[3]) != 43 || !hmac.Equal([]byte(signed(key, prefix, body)), []byte(tok)) {
		return visitToken{}, errGuestLinkInvalid
	}
	exp := time.Unix(e, 0)
	if !now.Before(exp) {
		return visitToken{}, errGuestLinkExpired
	}
	return visitToken{Visit: parts[0], ID: parts[1], Expires: exp}, nil
}

func tokenBody(visitID, id string, exp time.Time) string {
	return visitID + "." + id + "." + strconv.FormatInt(exp.Unix(), 10)
}

// labelOf is what p is in the visit: host, patient or the guest link's
// label.
func labelOf(p *participant) string {
	switch {
	case p.Role == roleHost:
		return labelHost
	case p.Label != "":
		return p.Label
	}
	return labelPatient
}

// issueGuestLink adds a guest link with label and name to the visit,
// within visits.max_guest_links, and returns its token and record.
func (s *Service) issueGuestLink(id *scope.Identity, visitID, label, name string) (string, guestLink, error) {
	if !slices.Contains(guestLabels, label) {
		return "", guestLink{}, fail(http.StatusBadRequest, "guest-label", "label must be one of interpreter, family, clinician, other")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var link guestLink
	_, err := s.change(visitID, func(v *visit) error {
		if err := s.mayManage(v, id); err != nil {
			return err
		}
		pruneGuestLinks(v, now)
		open := 0
		for _, l := range v.GuestLinks {
			if l.Used.IsZero() {
				open++
			}
		}
		if open >= s.cfg.MaxGuestLinks {
			return fail(http.StatusConflict, "guest-links-full", "this visit has "+strconv.Itoa(open)+" guest links that are not used yet, the most it may have; wait until one is used or expires")
		}
		link = guestLink{ID: newID(), Label: label, Name: name, Created: now, Expires: now.Add(s.cfg.GuestLinkTTL).Truncate(time.Second)}
		l := link
		v.GuestLinks = append(v.GuestLinks, &l)
		return nil
	})
	if err != nil {
		return "", guestLink{}, unknownVisit(err, http.StatusNotFound, "no such visit")
	}
	return signed(s.invite, guestLinkPrefix, tokenBody(visitID, link.ID, link.Expires)), link, nil
}

// pruneGuestLinks drops v's expired unused links and, past
// maxGuestRecords, its oldest used ones.
func pruneGuestLinks(v *visit, now time.Time) {
	v.GuestLinks = slices.DeleteFunc(v.GuestLinks, func(l *guestLink) bool {
		return l.Used.IsZero() && !now.Before(l.Expires)
	})
	for len(v.GuestLinks) >= maxGuestRecords {
		i := slices.IndexFunc(v.GuestLinks, func(l *guestLink) bool { return !l.Used.IsZero() })
		if i < 0 {
			break
		}
		v.GuestLinks = slices.Delete(v.GuestLinks, i, i+1)
	}
}

// checkGuestLink returns the visit and unused link a guest link token
// names, without using it. Caller holds s.mu.
func (s *Service) checkGuestLink(tok string) (*visit, *guestLink, error) {
	gt, err := parseVisitToken(s.invite, guestLinkPrefix, tok, s.now())
	if err != nil {
		return nil, nil, guestLinkFailure(err)
	}
	v, err := s.lookup(gt.Visit)
	if err != nil {
		return nil, nil, err
	}
	if v == nil {
		return nil, nil, fail(http.StatusGone, "unknown-visit", "this visit no longer exists")
	}
	l, err := s.usableLink(v, gt.ID)
	return v, l, err
}

// usableLink returns v's link with id when it can still be used.
func (s *Service) usableLink(v *visit, id string) (*guestLink, error) {
	if !v.active() {
		return nil, fail(http.StatusGone, "ended", "this visit has ended")
	}
	i := slices.IndexFunc(v.GuestLinks, func(l *guestLink) bool { return l.ID == id })
	switch {
	case i < 0:
		// Expired and pruned, or never of this visit.
		return nil, guestLinkFailure(errGuestLinkInvalid)
	case !v.GuestLinks[i].Used.IsZero():
		return nil, guestLinkFailure(errGuestLinkUsed)
	case !s.now().Before(v.GuestLinks[i].Expires):
		return nil, guestLinkFailure(errGuestLinkExpired)
	}
	return v.GuestLinks[i], nil
}

// guestLinkFailure is the API answer to a refused guest link.
func guestLinkFailure(err error) error {
	switch err {
	case errGuestLinkExpired:
		return fail(http.StatusGone, "guest-link-expired", err.Error())
	case errGuestLinkUsed:
		return fail(http.StatusGone, "guest-link-used", err.Error())
	case errGuestLinkInvalid:
		return fail(http.StatusForbidden, "guest-link-invalid", err.Error())
	}
	return fail(http.StatusForbidden, "guest-link-malformed", errGuestLinkMalformed.Error())
}

// redeemGuestLink uses the guest link tok for id (a signed-in guest, or a
// fresh account-less one) and puts them in the waiting room under the
// link's label. The link is used up in the same store update that adds
// the participant. Someone already waiting in or admitted to the visit
// keeps their place and leaves the link unused; anyone the visit refused
// (declined, removed) is refused again.
func (s *Service) redeemGuestLink(id *scope.Identity, tok, typedName string) (v *visit, p *participant, arrived bool, err error) {
	now := s.now()
	gt, err := parseVisitToken(s.invite, guestLinkPrefix, tok, now)
	if err != nil {
		return nil, nil, false, guestLinkFailure(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err = s.change(gt.Visit, func(v *visit) error {
		err := s.redeemIn(v, id, gt.ID, typedName, now, &p)
		arrived = err == nil
		return err
	})
	if v == nil {
		return nil, nil, false, unknownVisit(err, http.StatusGone, "this visit no longer exists")
	}
	return v, p, arrived && err == nil, err
}

// redeemIn is the transition of redeemGuestLink on v: it uses v's link
// linkID for id and puts id's participant in *out. It may run more than
// once (visitStore.update).
func (s *Service) redeemIn(v *visit, id *scope.Identity, linkID, typedName string, now time.Time, out **participant) error {
	*out = nil
	if q := v.byIdentity(id); q != nil {
		switch q.State {
		case stateWaiting, stateAdmitted:
			*out = q
			return errNoChange
		case stateDeclined, stateRemoved:
			return fail(http.StatusForbidden, q.State, "you cannot join this visit")
		}
	}
	l, err := s.usableLink(v, linkID)
	if err != nil {
		return err
	}
	var p *participant
	if q := v.byIdentity(id); q != nil {
		// Had left the waiting room: back in, now as this guest.
		if err := s.backToWaiting(v, q, now); err != nil {
			return err
		}
		p = q
	} else if err := s.addWaiting(v, id, now, &p); err != nil {
		return err
	}
	p.Label = l.Label
	switch {
	case l.Name != "":
		p.Name = l.Name
	case id.Issuer == guestIssuer && typedName != "":
		p.Name = typedName
	}
	l.Used, l.Participant = now, p.ID
	*out = p
	return nil
}

// guestSession returns the cookie that stands for account-less guest pid
// in visitID until exp.
func (s *Service) guestSession(r *http.Request, visitID, pid string, exp time.Time) *http.Cookie {
	return &http.Cookie{
		Name: guestCookie, Value: signed(s.invite, guestSessionPrefix, tokenBody(visitID, pid, exp)),
		Path: "/.telegate/visits/", Expires: exp, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
}

// guestPaths are the endpoints an account-less guest's session is good
// for, after /.telegate/visits/<its visit id>: the visit's status, relay
// credentials, signaling and call page, and the waiting room's pre-call
// check and chat. Each endpoint then authorises the guest as it does any
// participant (the check and the chat: only while waiting, or for the
// check also admitted; never once declined or removed).
var guestPaths = []string{"", "/ice", "/signal", "/call", "/check", "/chat"}

// guestPublicPaths are the endpoints anyone may use, where a browser
// sends its guest session cookie along (its path covers them) without
// the cookie standing for anything: the guest page and its API.
var guestPublicPaths = []string{"/.telegate/visits/guest", "/.telegate/visits/guest/check"}

// guestSessions gives a request that carries no identity of the gateway
// the account-less guest identity of its guest session cookie, when the
// request is for one of guestPaths of the cookie's own visit. Any other
// request, and any cookie that does not check, passes unchanged (so
// without identity: the endpoint answers 401, or 403 where it needs no
// sign-in), and, outside guestPublicPaths, is audited as a deny of type
// visit.guest-session with reason guest-session-invalid (malformed, or
// not signed by this deployment's key), guest-session-expired or
// guest-session-out-of-scope (another visit, or an endpoint the session
// is not good for; with the guest's visit and participant). A signed-in
// caller's own identity always wins over a guest session cookie.
func (s *Service) guestSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := scope.From(r.Context())
		if sc == nil || sc.Identity != nil && sc.Identity.Subject != "" {
			next.ServeHTTP(w, r)
			return
		}
		c, err := r.Cookie(guestCookie)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		gt, err := parseVisitToken(s.invite, guestSessionPrefix, c.Value, s.now())
		if err == nil {
			if rest, ok := strings.CutPrefix(r.URL.Path, "/.telegate/visits/"+gt.Visit); ok && slices.Contains(guestPaths, rest) {
				sc.Identity = guestIdentity(gt.ID)
				next.ServeHTTP(w, r)
				return
			}
		}
		if !slices.Contains(guestPublicPaths, r.URL.Path) {
			switch err {
			case nil:
				s.auditVisit(r, "visit.guest-session", guestIdentity(gt.ID), gt.Visit, "", "deny", "guest-session-out-of-scope")
			case errGuestLinkExpired:
				s.auditVisit(r, "visit.guest-session", nil, "", "", "deny", "guest-session-expired")
			default:
				s.auditVisit(r, "visit.guest-session", nil, "", "", "deny", "guest-session-invalid")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// guestIdentity is the identity of account-less guest participant pid.
func guestIdentity(pid string) *scope.Identity {
	return &scope.Identity{Kind: "visit-guest", Issuer: guestIssuer, Subject: pid}
}

// guestLinkJSON is a guest link as its host sees it.
type guestLinkJSON struct {
	URL     string    `json:"url"`
	Label   string    `json:"label"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"`
}

// guestLinkRequest is the body of POST /.telegate/visits/{id}/guests.
type guestLinkRequest struct {
	// Label is interpreter, family, clinician or other.
	Label string `json:"label"`
	// Name, optional, is shown for the guest in the call instead of the
	// name they sign in with or type. Up to 80 characters.
	Name string `json:"name,omitempty"`
}

func (s *Service) handleGuestLink(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	vid := r.PathValue("id")
	var req guestLinkRequest
	err := decodeJSON(w, r, &req)
	var (
		tok  string
		link guestLink
	)
	if err == nil {
		tok, link, err = s.issueGuestLink(id, vid, req.Label, cleanText(req.Name, 80))
	}
	if err != nil {
		s.refuse(w, r, "visit.guest-link", id, vid, "", err)
		return
	}
	s.auditVisit(r, "visit.guest-link", id, vid, "", "allow", link.Label)
	writeJSON(w, http.StatusCreated, guestLinkJSON{
		URL: baseURL(r) + "/.telegate/visits/guest?link=" + url.QueryEscape(tok), Label: link.Label, Name: link.Name, Expires: link.Expires,
	})
}

// guestRequest is the body of POST /.telegate/visits/guest and
// /.telegate/visits/guest/check.
type guestRequest struct {
	Link string `json:"link"`
	// Name is the name an account-less guest typed (up to 80
	// characters); the host's name for the link wins.
	Name string `json:"name,omitempty"`
}

// guestCheckJSON tells the guest page what a link is for and how its
// guest may join.
type guestCheckJSON struct {
	Label   string    `json:"label"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"`
	// SignedIn: the guest is signed in already, and joins as that account.
	SignedIn bool `json:"signed_in"`
	// SignInURL starts a sign-in that comes back to the guest page.
	SignInURL string `json:"sign_in_url"`
	// WithoutAccount: the guest may join without signing in.
	WithoutAccount bool `json:"without_account"`
}

// handleGuestCheck answers what a guest link is for, without using it.
func (s *Service) handleGuestCheck(w http.ResponseWriter, r *http.Request) {
	var req guestRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	s.mu.Lock()
	_, l, err := s.checkGuestLink(req.Link)
	var j guestCheckJSON
	if err == nil {
		j = guestCheckJSON{Label: l.Label, Name: l.Name, Expires: l.Expires, WithoutAccount: s.cfg.GuestsWithoutAccount}
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := identity(r)
	j.SignedIn = id != nil && id.Subject != ""
	q := url.Values{"rd": {"/.telegate/visits/guest?link=" + url.QueryEscape(req.Link)}}
	if s.cfg.GuestProvider != "" {
		q.Set("provider", s.cfg.GuestProvider)
	}
	j.SignInURL = "/.telegate/login?" + q.Encode()
	writeJSON(w, http.StatusOK, j)
}

// handleGuestJoin redeems a guest link: as the signed-in caller, or, with
// visits.guests_without_account, as a new account-less guest whose
// session cookie it sets.
func (s *Service) handleGuestJoin(w http.ResponseWriter, r *http.Request) {
	id := identity(r)
	signedIn := id != nil && id.Subject != ""
	if !signedIn && !s.cfg.GuestsWithoutAccount {
		writeError(w, r, fail(http.StatusUnauthorized, "unauthenticated", "sign in first"))
		return
	}
	if !signedIn {
		// Checked as for any ambient credential: a cross-site page must
		// not make people guests.
		id = guestIdentity(newID())
	}
	if !checkCSRF(w, r, id) {
		return
	}
	var req guestRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.refuse(w, r, "visit.guest-join", id, "", "", err)
		return
	}
	v, p, arrived, err := s.redeemGuestLink(id, req.Link, cleanText(req.Name, 80))
	if !s.joined(w, r, "visit.guest-join", id, v, p, err, func(p *participant) string { return p.Label }) {
		return
	}
	if !signedIn {
		http.SetCookie(w, s.guestSession(r, v.ID, id.Subject, s.now().Add(s.cfg.MaxDuration+s.cfg.GuestLinkTTL)))
	}
	s.writeView(w, v, id, arrived)
}
