package media

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// maxBodyBytes caps every JSON request body.
const maxBodyBytes = 16 << 10

func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.telegate/visits", s.handleCreate)
	mux.HandleFunc("GET /.telegate/visits", s.handleList)
	mux.HandleFunc("GET /.telegate/visits/lobby", s.lobby(s.page("lobby.html")))
	mux.HandleFunc("GET /.telegate/visits/join", s.page("join.html"))
	mux.HandleFunc("POST /.telegate/visits/join", s.handleJoin)
	mux.HandleFunc("GET /.telegate/visits/guest", s.publicPage("guest.html"))
	mux.HandleFunc("POST /.telegate/visits/guest", s.handleGuestJoin)
	mux.HandleFunc("POST /.telegate/visits/guest/check", s.handleGuestCheck)
	mux.HandleFunc("GET /.telegate/visits/{id}", s.handleGet)
	mux.HandleFunc("POST /.telegate/visits/{id}/guests", s.handleGuestLink)
	mux.HandleFunc("POST /.telegate/visits/{id}/invite", s.handleInvite)
	mux.HandleFunc("POST /.telegate/visits/{id}/{action}", s.handleDecide)
	mux.HandleFunc("GET /.telegate/visits/{id}/ice", s.handleICE)
	mux.HandleFunc("POST /.telegate/visits/{id}/check", s.handleCheck)
	mux.HandleFunc("GET /.telegate/visits/{id}/signal", s.handleSignal)
	mux.HandleFunc("GET /.telegate/visits/{id}/chat", s.handleChat)
	mux.HandleFunc("GET /.telegate/visits/{id}/call", s.page("call.html"))
	mux.HandleFunc("GET /.telegate/visit.js", s.static)
	mux.HandleFunc("GET /.telegate/visit/{file}", s.static)
	return mux
}

// identity returns the caller's identity from the request scope, or nil.
func identity(r *http.Request) *scope.Identity {
	if sc := scope.From(r.Context()); sc != nil {
		return sc.Identity
	}
	return nil
}

// writeJSON answers v with status; responses are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as the one JSON error shape (page.Body): an
// *apiError with its status, reason and message, anything else 500.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = fail(http.StatusInternalServerError, "internal", "something went wrong; try again")
	}
	page.Write(w, r, page.Problem{Status: ae.status, Reason: ae.reason, Message: ae.msg, JSON: true})
}

// wantsHTML reports whether the client asked for a page.
func wantsHTML(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// requireIdentity returns the caller's identity, or answers 401 (a redirect
// to /.telegate/login?rd=<this URL> for browsers) and returns nil.
func requireIdentity(w http.ResponseWriter, r *http.Request) *scope.Identity {
	id := identity(r)
	if id != nil && id.Subject != "" {
		return id
	}
	if wantsHTML(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/.telegate/login?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return nil
	}
	writeError(w, r, fail(http.StatusUnauthorized, "unauthenticated", "sign in first"))
	return nil
}

// sameOrigin reports whether the request's Origin names this host
// (RFC 6454 §7). With no Origin, Sec-Fetch-Site: same-origin (Fetch
// Metadata) is accepted instead.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u.Scheme != scheme {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// checkCSRF guards a state-changing request made with an ambient credential
// (session cookie, client certificate): it needs a same-origin Origin (or
// Sec-Fetch-Site) and the X-Telegate-CSRF: 1 header, which no cross-site
// form can set without a CORS preflight. Bearer tokens are not ambient.
func checkCSRF(w http.ResponseWriter, r *http.Request, id *scope.Identity) bool {
	if id.Kind == "bearer" {
		return true
	}
	if r.Header.Get("X-Telegate-CSRF") == "1" && sameOrigin(r) {
		return true
	}
	writeError(w, r, fail(http.StatusForbidden, "csrf", "cross-site request refused"))
	return false
}

// decodeJSON reads a JSON body of at most maxBodyBytes into v, strictly.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if ct != "application/json" && !strings.HasPrefix(ct, "application/json;") {
		return fail(http.StatusUnsupportedMediaType, "content-type", "send application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, "body-too-large", "the request is too large")
		}
		return fail(http.StatusBadRequest, "bad-json", "the request body is not valid JSON for this endpoint")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(http.StatusBadRequest, "bad-json", "the request body has trailing data")
	}
	return nil
}

// principalJSON names a user by issuer and subject (OIDC Core §2).
type principalJSON struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
}

// createRequest is the body of POST /.telegate/visits.
type createRequest struct {
	// Title shown to the clinician (may be PHI; never logged). Up to 200
	// characters; optional. A visit made without one has none: it is
	// stored and answered without a title, and the pages call it by the
	// catalogue's words for a visit in the reader's language.
	Title string `json:"title"`
	// Scheduled start (RFC 3339), optional.
	Scheduled *time.Time `json:"scheduled,omitempty"`
	// Participants is the cap: how many people may be admitted at once,
	// the owner (clinician) and every guest included. Default visits.default_participants.
	Participants int `json:"participants,omitempty"`
	// Owner is required for a service caller: the clinician who will own
	// the visit. Ignored for clinicians (they own what they create).
	Owner *principalJSON `json:"owner,omitempty"`
	// OwnerName is the owner's display name when a service creates the
	// visit; optional: without one the visit's clinician has no stored
	// name, and the pages show the catalogue's word for a clinician.
	OwnerName string `json:"owner_name,omitempty"`
}

type inviteJSON struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

type participantJSON struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Role string `json:"role"`
	// Label is what the participant is in the visit: host, patient,
	// interpreter, family, clinician or other (guest.go).
	Label  string    `json:"label"`
	State  string    `json:"state"` // waiting, admitted, declined, removed, left
	Joined time.Time `json:"joined"`
	// Away is set for a waiting participant whose waiting-room page has
	// not been heard from for a few seconds (tab closed, connection
	// lost); after visits.waiting_grace they are "left".
	Away bool `json:"away,omitempty"`
}

// visitJSON is a visit as its manager (or a participant, with fewer
// fields) sees it.
type visitJSON struct {
	ID string `json:"id"`
	// Title is the visit's title, for its manager (and a service) only;
	// absent when the visit was made without one.
	Title     string `json:"title,omitempty"`
	Status    string `json:"status"` // "open" or "ended"
	EndReason string `json:"end_reason,omitempty"`
	// Cap is how many people may be admitted at once, the clinician
	// (host) and every guest included.
	Cap           int               `json:"participants_cap"`
	Scheduled     *time.Time        `json:"scheduled,omitempty"`
	Created       time.Time         `json:"created"`
	Started       *time.Time        `json:"started,omitempty"`
	EndsAt        *time.Time        `json:"ends_at,omitempty"`
	InviteExpires *time.Time        `json:"invite_expires,omitempty"`
	Manage        bool              `json:"manage"`
	Self          *participantJSON  `json:"self,omitempty"`
	Participants  []participantJSON `json:"participants,omitempty"`
	Waiting       int               `json:"waiting"`
	Invite        *inviteJSON       `json:"invite,omitempty"`
	CallURL       string            `json:"call_url,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// pJSON renders p. Caller holds s.mu.
func (s *Service) pJSON(p *participant, withName bool) participantJSON {
	j := participantJSON{ID: p.ID, Role: p.Role, Label: labelOf(p), State: p.State, Joined: p.Joined}
	if withName {
		j.Name = p.Name
	}
	j.Away = p.State == stateWaiting && !s.present(p)
	return j
}

// view renders v for id. Caller holds s.mu.
func (s *Service) view(v *visit, id *scope.Identity) visitJSON {
	j := visitJSON{
		ID: v.ID, Status: "open", EndReason: v.EndReason, Cap: v.Cap,
		Created: v.Created, Started: timePtr(v.Started), EndsAt: timePtr(v.EndsAt),
		Waiting: v.count(stateWaiting),
	}
	if !v.active() {
		j.Status = "ended"
	}
	self := v.byIdentity(id)
	if self != nil {
		sj := s.pJSON(self, true)
		j.Self = &sj
		if self.State == stateAdmitted && v.active() {
			j.CallURL = "/.telegate/visits/" + v.ID + "/call"
		}
	}
	if s.canManage(v, id) || id.HasRole("service") {
		j.Manage = s.canManage(v, id)
		j.Title = v.Title
		j.Scheduled = timePtr(v.Scheduled)
		j.InviteExpires = timePtr(v.InviteExpires)
		for _, p := range v.Participants {
			if p.State != stateLeft {
				j.Participants = append(j.Participants, s.pJSON(p, true))
			}
		}
	}
	return j
}

// baseURL is the scheme and host the request came in on.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func inviteURL(r *http.Request, tok string) string {
	return baseURL(r) + "/.telegate/visits/join?invite=" + url.QueryEscape(tok)
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	deny := func(err error) { s.refuse(w, r, "visit.create", id, "", "", err) }
	var req createRequest
	if err := decodeJSON(w, r, &req); err != nil {
		deny(err)
		return
	}
	p := createParams{Title: cleanText(req.Title, 200), Participants: req.Participants}
	switch {
	case id.HasRole("clinician"):
		p.OwnerIss, p.OwnerSub, p.OwnerName = id.Issuer, id.Subject, displayName(id)
		p.Clinic = s.alerts.clinicOf(id.Groups)
	case id.HasRole("service"):
		if req.Owner == nil || req.Owner.Iss == "" || req.Owner.Sub == "" || len(req.Owner.Iss) > 512 || len(req.Owner.Sub) > 512 {
			deny(fail(http.StatusBadRequest, "owner", "a service must name the owning clinician (owner.iss, owner.sub)"))
			return
		}
		p.OwnerIss, p.OwnerSub = req.Owner.Iss, req.Owner.Sub
		// Without an owner name none is stored: the pages call the
		// clinician by the catalogue's word, in the reader's language.
		p.OwnerName = cleanText(req.OwnerName, 80)
		// The owner's groups are not known: the clinic without groups.
		p.Clinic = s.alerts.clinicOf(nil)
	default:
		deny(fail(http.StatusForbidden, "role", "only clinicians can create visits"))
		return
	}
	if p.Participants == 0 {
		p.Participants = s.cfg.DefaultParticipants
	}
	if p.Participants < 2 || p.Participants > s.cfg.MaxParticipants {
		deny(fail(http.StatusBadRequest, "participants", "participants must be between 2 and the configured maximum"))
		return
	}
	if req.Scheduled != nil {
		p.Scheduled = req.Scheduled.UTC()
	}
	v, tok, err := s.create(p)
	if err != nil {
		deny(err)
		return
	}
	s.auditVisit(r, "visit.create", id, v.ID, "", "allow", "")
	s.mu.Lock()
	j := s.view(v, id)
	s.mu.Unlock()
	j.Invite = &inviteJSON{URL: inviteURL(r, tok), Expires: v.InviteExpires}
	w.Header().Set("Location", "/.telegate/visits/"+v.ID)
	writeJSON(w, http.StatusCreated, j)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil {
		return
	}
	out := []visitJSON{}
	s.mu.Lock()
	for _, v := range s.ownedVisits(id.Issuer, id.Subject) {
		out = append(out, s.view(v, id))
	}
	s.mu.Unlock()
	sortVisits(out)
	writeJSON(w, http.StatusOK, map[string]any{"visits": out})
}

// lookupVisit returns the visit from the path and whether id may see it
// (manager, service or participant); it answers the error itself.
func (s *Service) lookupVisit(w http.ResponseWriter, r *http.Request, id *scope.Identity) *visit {
	vid := r.PathValue("id")
	if !validID(vid) {
		writeError(w, r, fail(http.StatusNotFound, "unknown-visit", "no such visit"))
		return nil
	}
	v, err := s.lookup(vid)
	if err != nil {
		writeError(w, r, err)
		return nil
	}
	if v == nil {
		writeError(w, r, fail(http.StatusNotFound, "unknown-visit", "no such visit"))
		return nil
	}
	if !s.canManage(v, id) && !id.HasRole("service") && v.byIdentity(id) == nil {
		s.refuse(w, r, "visit.view", id, v.ID, "", fail(http.StatusForbidden, "not-participant", "you are not part of this visit"))
		return nil
	}
	return v
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil {
		return
	}
	s.mu.Lock()
	v := s.lookupVisit(w, r, id)
	if v == nil {
		s.mu.Unlock()
		return
	}
	if p := v.byIdentity(id); p != nil && (p.State == stateWaiting || p.State == stateLeft) {
		v = s.seenBy(v, p)
	}
	j := s.view(v, id)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, j)
}

func (s *Service) handleInvite(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	vid := r.PathValue("id")
	tok, exp, err := s.reissue(id, vid)
	if err != nil {
		s.refuse(w, r, "visit.invite", id, vid, "", err)
		return
	}
	s.auditVisit(r, "visit.invite", id, vid, "", "allow", "")
	writeJSON(w, http.StatusOK, inviteJSON{URL: inviteURL(r, tok), Expires: exp})
}

// joinRequest is the body of POST /.telegate/visits/join.
type joinRequest struct {
	Invite string `json:"invite"`
}

func (s *Service) handleJoin(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	var req joinRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.refuse(w, r, "visit.join", id, "", "", err)
		return
	}
	v, p, arrived, err := s.join(id, req.Invite)
	if s.joined(w, r, "visit.join", id, v, p, err, func(p *participant) string { return p.State }) {
		s.writeView(w, v, id, arrived)
	}
}

// joined audits a join into a visit's waiting room (audit type typ) as
// an allow with reason allow(p) or a deny with the refusal's reason, and
// answers a refusal itself. It reports whether the join succeeded.
func (s *Service) joined(w http.ResponseWriter, r *http.Request, typ string, id *scope.Identity, v *visit, p *participant, err error, allow func(*participant) string) bool {
	vid, pid := "", ""
	if v != nil {
		vid = v.ID
	}
	if p != nil {
		pid = p.ID
	}
	if err != nil {
		s.refuse(w, r, typ, id, vid, pid, err)
		return false
	}
	s.auditVisit(r, typ, id, vid, pid, "allow", allow(p))
	return true
}

// refuse answers err (writeError) and audits it as a deny of type typ
// with the refusal's reason ("internal" for an error that is not an
// *apiError): every refusal of a visit decision leaves its record.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, typ string, id *scope.Identity, vid, pid string, err error) {
	reason := "internal"
	var ae *apiError
	if errors.As(err, &ae) {
		reason = ae.reason
	}
	s.auditVisit(r, typ, id, vid, pid, "deny", reason)
	writeError(w, r, err)
}

// writeView answers 200 with v as id sees it; arrived (id has just come
// into v's waiting room) tells v's clinic (alertArrival).
func (s *Service) writeView(w http.ResponseWriter, v *visit, id *scope.Identity, arrived bool) {
	s.mu.Lock()
	j := s.view(v, id)
	waiting := v.count(stateWaiting)
	s.mu.Unlock()
	if arrived {
		s.alertArrival(v, waiting)
	}
	writeJSON(w, http.StatusOK, j)
}

// decideRequest is the body of admit, decline and remove.
type decideRequest struct {
	Participant string `json:"participant"`
}

func (s *Service) handleDecide(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil || !checkCSRF(w, r, id) {
		return
	}
	action := r.PathValue("action")
	vid := r.PathValue("id")
	if action == "end" {
		if err := s.end(id, vid); err != nil {
			s.refuse(w, r, "visit.end", id, vid, "", err)
			return
		}
		s.auditVisit(r, "visit.end", id, vid, "", "allow", "ended")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if action != "admit" && action != "decline" && action != "remove" {
		writeError(w, r, fail(http.StatusNotFound, "unknown-action", "no such action"))
		return
	}
	var req decideRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.refuse(w, r, "visit."+action, id, vid, "", err)
		return
	}
	if err := s.decide(id, vid, req.Participant, action); err != nil {
		s.refuse(w, r, "visit."+action, id, vid, req.Participant, err)
		return
	}
	s.auditVisit(r, "visit."+action, id, vid, req.Participant, "allow", "")
	w.WriteHeader(http.StatusNoContent)
}

// iceServer and iceConfig are an RTCConfiguration subset (W3C WebRTC
// §4.2.1, RTCIceServer and iceTransportPolicy).
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

type iceConfig struct {
	ICEServers         []iceServer `json:"iceServers"`
	ICETransportPolicy string      `json:"iceTransportPolicy"`
	Expires            time.Time   `json:"expires"`
}

// admittedParticipant returns (under s.mu) the visit and the caller's
// admitted participant, or answers 401/403/404/410.
func (s *Service) admittedParticipant(w http.ResponseWriter, r *http.Request, id *scope.Identity) (*visit, *participant) {
	v, err := s.activeVisit(r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return nil, nil
	}
	p := v.byIdentity(id)
	if p == nil || p.State != stateAdmitted {
		writeError(w, r, fail(http.StatusForbidden, "not-admitted", "you have not been admitted to this visit"))
		return nil, nil
	}
	return v, p
}

func (s *Service) handleICE(w http.ResponseWriter, r *http.Request) {
	id := requireIdentity(w, r)
	if id == nil {
		return
	}
	s.mu.Lock()
	v, p := s.admittedParticipant(w, r, id)
	if v == nil {
		s.mu.Unlock()
		s.auditVisit(r, "visit.ice", id, r.PathValue("id"), "", "deny", "not-admitted")
		return
	}
	vid, pid := v.ID, p.ID
	s.mu.Unlock()
	urls, err := s.iceRelay(r, vid, pid)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c := s.relay.Credential(vid, pid)
	writeJSON(w, http.StatusOK, iceConfig{
		ICEServers:         []iceServer{{URLs: urls, Username: c.Username, Credential: c.Password}},
		ICETransportPolicy: "relay",
		Expires:            c.Expires,
	})
}

// iceURLs are the relay's URLs for this request (RFC 7065): turn: (UDP)
// at visits.ice_host when set, and turns: (TLS on the HTTPS listener) at
// the host the browser reached the gateway by — the name its certificate
// covers, which an IP literal in ice_host is not (a browser sends no SNI
// for an IP and cannot verify it).
func (s *Service) iceURLs(r *http.Request) []string {
	web := hostOnly(r.Host)
	if sc := scope.From(r.Context()); sc != nil && sc.Host != "" {
		web = sc.Host
	}
	udpHost := s.cfg.ICEHost
	if udpHost == "" {
		udpHost = web
	}
	var urls []string
	for _, u := range s.relay.ICEURLs(udpHost) {
		if !strings.HasPrefix(u, "turns:") {
			urls = append(urls, u)
		}
	}
	for _, u := range s.relay.ICEURLs(web) {
		if strings.HasPrefix(u, "turns:") {
			urls = append(urls, u)
		}
	}
	return urls
}

// hostOnly strips a port (and IPv6 brackets) from a Host header value.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[:i], ":") {
		return h[:i]
	}
	return h
}
