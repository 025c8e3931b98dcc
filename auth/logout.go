package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

const (
	// maxLogoutBody caps a back-channel logout request body.
	maxLogoutBody = 64 << 10
	// backchannelEvent is the event a logout token must carry (OIDC
	// Back-Channel Logout 1.0 §2.4).
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
)

// serveLogoutConfirm shows the sign-out confirmation form (GET).
func (s *View) serveLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	rd := page.SafeReturnPath(r.URL.Query().Get("rd"))
	renderPage(w, r, page.Doc{Status: http.StatusOK, Title: "Sign out", Return: "/.telegate/logout?" + url.Values{"rd": {rd}}.Encode()}, "logout", pageData{ReturnTo: rd})
}

// currentSession returns the id of the request's session, from the
// identity Authenticate attached or else the session cookie.
func (s *View) currentSessionID(r *http.Request) string {
	if sc := scope.From(r.Context()); sc != nil && sc.Identity != nil && sc.Identity.Kind == "session" && sc.Identity.SessionID != "" {
		return sc.Identity.SessionID
	}
	if h := s.cookies(r).session; validHandle(h) {
		return sessionIDFor(h)
	}
	return ""
}

// serveLogout signs out (POST, same-origin only: Sec-Fetch-Site / Origin
// via http.CrossOriginProtection): it destroys the server-side session,
// clears the cookie, then starts RP-initiated logout (OIDC RP-Initiated
// Logout 1.0 §2) at the provider's end_session_endpoint with id_token_hint,
// post_logout_redirect_uri = /.telegate/signed-out and state — answering
// 200 with a page that goes on there by itself (meta refresh) and links
// there, since a cross-origin redirect would be held to the submitting
// page's CSP form-action — or redirects (303) straight to
// /.telegate/signed-out when the provider has none.
func (s *View) serveLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	_ = r.ParseForm()
	rd := page.SafeReturnPath(r.PostForm.Get("rd"))
	setCookie(w, s.cookieName, "", -1)
	rec := &preAuth{Kind: "logout", State: randomToken(32), ReturnTo: rd, Switch: r.PostForm.Get("switch") == "1", Expires: s.now().Add(preAuthTTL)}
	target := "/.telegate/signed-out?" + url.Values{"state": {rec.State}}.Encode()
	if id := s.currentSessionID(r); id != "" {
		sess, err := s.store.Delete(r.Context(), id)
		if err != nil {
			s.log.Warn("auth: sign-out could not delete session", "error", err)
			page.Error(w, r, http.StatusServiceUnavailable, "Signing out did not finish.", "Try again in a minute.")
			return
		}
		if sess != nil {
			s.ended(r.Context(), sess, "signout")
			s.auditSignout(r, sess)
			if l := s.discovered(sess.Provider); l != nil && l.endSession != "" {
				rec.Provider = sess.Provider
				v := url.Values{
					"post_logout_redirect_uri": {s.publicURL + "/.telegate/signed-out"},
					"state":                    {rec.State},
					"client_id":                {l.oauth.ClientID},
				}
				if u, err := url.Parse(l.endSession); err == nil {
					target = endSessionURL(u, v, sess.IDToken)
				}
			}
		}
	}
	// Without its pre-auth record the signed-out page links to "/" only.
	if h, err := s.preauth.put(r.Context(), rec); err != nil {
		s.log.Warn("auth: sign-out return path not kept", "error", err)
	} else {
		setCookie(w, s.preCookie, h, int(preAuthTTL/time.Second))
	}
	if strings.HasPrefix(target, "/") {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	// The provider is another origin. A redirect there from this POST is
	// a navigation the submitting page's CSP form-action governs, in
	// Chromium for every redirect of the submission: telegate's own pages
	// say form-action 'self' and so may an app's, and the provider's
	// session would survive. A page that navigates on by itself (meta
	// refresh, with a link for when that is off) is not a form
	// submission, so no form-action stands in its way.
	renderPage(w, r, page.Doc{Status: http.StatusOK, Title: "Signing out", Refresh: target, Anonymous: true}, "leaving", pageData{EndSession: target})
}

// serveSignedOut is the post_logout_redirect_uri: it shows the signed-out
// page, linking to the return path chosen at sign-out only when the state
// matches the pre-auth record (OIDC RP-Initiated Logout 1.0 §3).
func (s *View) serveSignedOut(w http.ResponseWriter, r *http.Request) {
	own := s.cookies(r)
	rd, switching := "/", false
	if own.preauth != "" {
		setCookie(w, s.preCookie, "", -1)
		rec, err := s.preauth.take(r.Context(), own.preauth, s.now())
		if err != nil {
			s.log.Warn("auth: sign-out return path unavailable", "error", err)
		}
		if rec != nil && rec.Kind == "logout" &&
			subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("state")), []byte(rec.State)) == 1 {
			rd, switching = rec.ReturnTo, rec.Switch
		}
	}
	renderPage(w, r, page.Doc{Status: http.StatusOK, Title: "You are signed out", Anonymous: true}, "signedout", pageData{
		ReturnTo: rd, Switch: switching,
		SwitchURL: "/.telegate/login?" + url.Values{"rd": {rd}, "prompt": {"select_account"}}.Encode(),
	})
}

// serveBackchannel implements OIDC Back-Channel Logout 1.0 §2.5–§2.8 at
// POST /.telegate/backchannel-logout/{provider}: the form field
// logout_token is verified as a JWT from the provider (pinned algorithms,
// iss, aud = client id, exp, sub or sid by go-oidc; typ, NumericDate
// types, iat present and within max_token_age, events with the
// back-channel logout event and no nonce by tokenRules; jti not seen
// before), then every matching session ends. 200 on success, 400 with a
// JSON error otherwise, both Cache-Control: no-store. Its key refetches
// take the back-channel budget (discovered), not sign-in's; the gateway
// limits it per source (rate_limits.backchannel_logout).
func (s *View) serveBackchannel(w http.ResponseWriter, r *http.Request) {
	rp := s.providers[r.PathValue("provider")]
	if rp == nil || !rp.cfg.BackchannelLogout {
		page.Write(w, r, page.Problem{Status: http.StatusNotFound, Message: "No back-channel logout for this provider.", JSON: true})
		return
	}
	bad := func(reason string) {
		s.log.Info("auth: back-channel logout refused", "provider", rp.cfg.ID, "reason", reason)
		page.Write(w, r, page.Problem{Status: http.StatusBadRequest, Reason: "invalid-request", Message: "The logout request was refused: " + reason + ".", JSON: true})
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		bad("malformed form")
		return
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		bad("logout_token missing")
		return
	}
	cctx, cancel := rp.ctx(r.Context())
	defer cancel()
	l, err := rp.ready()
	if err != nil {
		page.Write(w, r, page.Problem{Status: http.StatusServiceUnavailable, Reason: "provider-unavailable", Message: "The identity provider has not been reached yet; try again.", JSON: true})
		return
	}
	rules := tokenRules{use: useLogout, maxAge: rp.cfg.MaxTokenAge, now: s.now}
	if reason := rules.check(raw); reason != "" {
		bad(reason)
		return
	}
	lt, err := l.logoutVerifier.VerifyLogout(cctx, raw)
	if err != nil {
		bad("logout_token invalid")
		return
	}
	var all map[string]json.RawMessage
	if err := lt.Claims(&all); err != nil {
		bad("logout_token invalid")
		return
	}
	if reason := rules.checkClaims(all); reason != "" {
		bad(reason)
		return
	}
	fresh, err := s.rememberJTI(r.Context(), lt.Issuer, lt.TokenID, lt.Expiry)
	if err != nil {
		// Not known to be fresh: refused, and the provider retries.
		s.log.Warn("auth: back-channel logout token could not be recorded", "error", err)
		page.Write(w, r, page.Problem{Status: http.StatusNotImplemented, Reason: "logout-failed", Message: "The sessions could not be ended; try again.", JSON: true})
		return
	}
	if !fresh {
		bad("logout_token replayed")
		return
	}
	gone, err := s.store.DeleteBySubject(r.Context(), lt.Issuer, lt.Subject, lt.SessionID)
	if err != nil {
		// §2.8: a logout that could not be carried out is an error.
		s.log.Warn("auth: back-channel logout could not delete sessions", "error", err)
		s.forgetJTI(r.Context(), lt.Issuer, lt.TokenID) // let the provider retry
		page.Write(w, r, page.Problem{Status: http.StatusNotImplemented, Reason: "logout-failed", Message: "The sessions could not be ended; try again.", JSON: true})
		return
	}
	for _, sess := range gone {
		s.ended(context.WithoutCancel(r.Context()), sess, "backchannel")
	}
	s.audit.Record(r.Context(), audit.Event{
		Time: s.now(), Type: "signout", RequestID: requestID(r), Issuer: lt.Issuer, Subject: lt.Subject,
		Decision: "allow", Reason: "backchannel", Attrs: map[string]string{"provider": rp.cfg.ID},
	})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// rememberJTI records (iss, jti) until the token's exp and reports false
// when it was already recorded and not yet expired: a replay (OIDC
// Back-Channel Logout 1.0 §2.6 step 6). With sessions in Redis the record
// is shared by every node (RedisStore.rememberJTI), so a token replayed
// to another node is refused there too; an error means Redis could not
// say. Otherwise the cache holds maxJTIs entries, least recently seen
// evicted first.
func (s *Service) rememberJTI(ctx context.Context, iss, jti string, exp time.Time) (bool, error) {
	if s.sharedJTIs != nil {
		return s.sharedJTIs.rememberJTI(ctx, iss, jti, exp)
	}
	now := s.now()
	k := iss + "\x00" + jti
	s.jtiMu.Lock()
	defer s.jtiMu.Unlock()
	if until, ok := s.jtis.Peek(k); ok && now.Before(until) {
		return false, nil
	}
	s.jtis.Add(k, exp)
	return true, nil
}

// forgetJTI drops a recorded (iss, jti).
func (s *Service) forgetJTI(ctx context.Context, iss, jti string) {
	if s.sharedJTIs != nil {
		s.sharedJTIs.forgetJTI(ctx, iss, jti)
		return
	}
	s.jtiMu.Lock()
	s.jtis.Remove(iss + "\x00" + jti)
	s.jtiMu.Unlock()
}

func (s *View) auditSignout(r *http.Request, sess *Session) {
	ev := audit.Event{
		Time: s.now(), Type: "signout", Method: r.Method, Path: r.URL.Path, Issuer: sess.Issuer, Subject: sess.Subject,
		Decision: "allow", Reason: "user", Attrs: map[string]string{"provider": sess.Provider},
	}
	if sc := scope.From(r.Context()); sc != nil {
		ev.RequestID = sc.RequestID
		if sc.ClientAddr.IsValid() {
			ev.Client = sc.ClientAddr.String()
		}
	}
	s.audit.Record(r.Context(), ev)
}

// maxEndSessionURL is the longest end-session URL telegate sends a browser
// to (bytes): longer ones are cut or refused by browsers, proxies and
// providers, and the provider's session would survive the sign-out.
const maxEndSessionURL = 2048

// endSessionURL is the provider's end-session endpoint u with params and,
// when it fits within maxEndSessionURL, the ID token as id_token_hint
// (OIDC RP-Initiated Logout 1.0 §2). A large ID token is left out: params
// carry client_id, which the provider then uses to know the client.
func endSessionURL(u *url.URL, params url.Values, idToken string) string {
	build := func(hint string) string {
		q := u.Query()
		for k, vals := range params {
			q[k] = vals
		}
		if hint != "" {
			q.Set("id_token_hint", hint)
		}
		out := *u
		out.RawQuery = q.Encode()
		return out.String()
	}
	if target := build(idToken); len(target) <= maxEndSessionURL {
		return target
	}
	return build("")
}
