package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// setCookie writes one of telegate's cookies: __Host- prefixed, Secure,
// HttpOnly, SameSite=Lax, Path=/ (RFC 6265bis §4.1.3.2). maxAge 0 makes a
// browser-session cookie; a negative maxAge deletes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// candidates returns the providers a login may use: the route's, or all.
func (s *View) candidates(routeID string) []string {
	if r := s.routes[routeID]; r != nil && len(r.Providers) > 0 {
		var out []string
		for _, id := range r.Providers {
			if s.providers[id] != nil {
				out = append(out, id)
			}
		}
		return out
	}
	return s.provOrder
}

// serveLogin starts a sign-in: GET /.telegate/login?rd=/path&provider=id.
// With one candidate provider (or provider named) it redirects to the
// provider's authorization endpoint (OIDC Core §3.1.2.1) with state, nonce
// and a PKCE S256 challenge (RFC 7636 §4.2), all bound to a short-lived
// pre-auth cookie, and prompt=login when the browser's last session ended
// without it (sessionEndedUnseen); with several it shows a chooser page.
// prompt=select_account in the query (the signed-out page's "Sign in with
// another account") is passed on to the provider, through the chooser.
func (s *View) serveLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rd := page.SafeReturnPath(q.Get("rd"))
	routeID := q.Get("route")
	selectAccount := q.Get("prompt") == "select_account"
	cands := s.candidates(routeID)
	if len(cands) == 0 {
		page.Error(w, r, http.StatusNotFound, "No sign-in method is configured here.", "Contact your administrator.")
		return
	}
	pid := q.Get("provider")
	if pid == "" && len(cands) == 1 {
		pid = cands[0]
	}
	if pid == "" {
		d := pageData{}
		// The chooser again, in the language chosen with its switch.
		again := url.Values{"rd": {rd}}
		if selectAccount {
			again.Set("prompt", "select_account")
		}
		if routeID != "" {
			again.Set("route", routeID)
		}
		for _, id := range cands {
			v := url.Values{"rd": {rd}, "provider": {id}}
			if selectAccount {
				v.Set("prompt", "select_account")
			}
			if routeID != "" {
				v.Set("route", routeID)
			}
			name := s.providers[id].cfg.DisplayName
			if name == "" {
				name = id
			}
			d.Choices = append(d.Choices, choice{Name: name, URL: "/.telegate/login?" + v.Encode()})
		}
		renderPage(w, r, page.Doc{Status: http.StatusOK, Title: "Sign in", Return: "/.telegate/login?" + again.Encode()}, "chooser", d)
		return
	}
	if !slices.Contains(cands, pid) {
		page.Error(w, r, http.StatusBadRequest, "That sign-in method is not offered here.", "Go back and choose another.")
		return
	}
	l, err := s.providers[pid].ready()
	if err != nil {
		s.log.Warn("auth: sign-in refused while the identity provider is unreachable", "provider", pid, "error", err)
		s.auditSignin(r, pid, "", "", "deny", "provider_unavailable")
		page.Write(w, r, page.Problem{Status: http.StatusServiceUnavailable, Message: "Sign-in with %s is not available right now.",
			Args: []any{s.providers[pid].displayName()}, Next: "Try again in a minute."})
		return
	}
	rec := &preAuth{
		Kind:     "login",
		Provider: pid,
		State:    randomToken(32),
		Nonce:    randomToken(32),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: rd,
		Expires:  s.now().Add(preAuthTTL),
	}
	h, err := s.preauth.put(r.Context(), rec)
	if err != nil {
		s.denySignin(w, r, pid, "", refuse("preauth_unavailable", http.StatusServiceUnavailable, err))
		return
	}
	// Other tabs' sign-ins in flight stay pending beside this one.
	handles := append([]string{h}, pendingHandles(s.cookies(r).preauth)...)
	handles = handles[:min(len(handles), maxPendingSignins)]
	setCookie(w, s.preCookie, strings.Join(handles, "."), int(preAuthTTL/time.Second))
	opts := []oauth2.AuthCodeOption{oidc.Nonce(rec.Nonce), oauth2.S256ChallengeOption(rec.Verifier)}
	// prompt (OIDC Core §3.1.2.1): select_account when switching account,
	// login when the last session ended unseen; both may be asked.
	var prompt []string
	if s.sessionEndedUnseen(r) {
		prompt = append(prompt, "login")
	}
	if selectAccount {
		prompt = append(prompt, "select_account")
	}
	if len(prompt) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", strings.Join(prompt, " ")))
	}
	target := l.oauth.AuthCodeURL(rec.State, opts...)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// sessionEndedUnseen reports whether r carries the cookie of a session
// that no longer lives: one that ended without the browser signing out —
// idle or absolute timeout, back-channel logout, a reload that removed
// its provider, a failed refresh. Signing out clears the cookie; these
// cannot, as they happen without the browser. The provider's own session
// may well have outlived it, so the next sign-in asks the provider to
// authenticate the user again (prompt=login, OIDC Core §3.1.2.1) instead
// of admitting whoever sits at the browser on that session.
func (s *View) sessionEndedUnseen(r *http.Request) bool {
	h := s.cookies(r).session
	return validHandle(h) && s.loadSession(r.Context(), h, false) == nil
}

// serveCallback completes a sign-in at GET /.telegate/callback/{provider}
// (OIDC Core §3.1.2.5–§3.1.3.7). Any failure refuses the sign-in: no
// session cookie, an error page with the request id, a "signin" deny audit
// event with a short reason.
func (s *View) serveCallback(w http.ResponseWriter, r *http.Request) {
	pid := r.PathValue("provider")
	rp := s.providers[pid]
	q := r.URL.Query()
	rec, pending, err := s.takePreAuth(w, r, q.Get("state"))
	if rp == nil {
		s.denySignin(w, r, pid, "", refuse("unknown_provider", http.StatusNotFound, nil))
		return
	}
	if err != nil {
		s.denySignin(w, r, pid, "", refuse("preauth_unavailable", http.StatusServiceUnavailable, err))
		return
	}
	if rec == nil && pending {
		s.denySignin(w, r, pid, "", refuse("state_mismatch", http.StatusBadRequest, nil))
		return
	}
	if rec == nil {
		s.denySignin(w, r, pid, "", refuse("no_preauth", http.StatusBadRequest, nil))
		return
	}
	if rec.Kind != "login" || rec.Provider != pid {
		s.denySignin(w, r, pid, "", refuse("preauth_mismatch", http.StatusBadRequest, nil))
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(rec.State)) != 1 {
		s.denySignin(w, r, pid, "", refuse("state_mismatch", http.StatusBadRequest, nil))
		return
	}
	// RFC 9207 §2.4: the response names the provider that issued it (a
	// mix-up attack swaps in another provider's response); checked on
	// error responses too, and required when discovery announced it.
	if iss, present := q["iss"]; present {
		if len(iss) != 1 || iss[0] != rp.cfg.Issuer {
			s.denySignin(w, r, pid, "", refuse("iss_mismatch", http.StatusBadRequest, nil))
			return
		}
	} else if l, err := rp.ready(); err == nil && l.issRequired {
		s.denySignin(w, r, pid, "", refuse("iss_missing", http.StatusBadRequest, nil))
		return
	}
	if q.Get("error") != "" {
		s.denySignin(w, r, pid, "", refuse("idp_error", http.StatusUnauthorized, nil))
		return
	}
	code := q.Get("code")
	if code == "" {
		s.denySignin(w, r, pid, "", refuse("code_missing", http.StatusBadRequest, nil))
		return
	}
	sess, ref := s.completeSignin(r.Context(), rp, rec, code)
	if ref != nil {
		s.denySignin(w, r, pid, "", ref)
		return
	}
	evicted, err := s.store.Put(r.Context(), sess.Session)
	if err != nil {
		s.denySignin(w, r, pid, sess.Subject, refuse("store_failed", http.StatusServiceUnavailable, err))
		return
	}
	for _, old := range evicted {
		s.ended(r.Context(), old, "evicted")
	}
	// A sign-in always gets a fresh session; the one the browser had ends.
	if own := s.cookies(r); own.session != "" && validHandle(own.session) {
		if old := sessionIDFor(own.session); old != sess.ID {
			s.endSession(r.Context(), old, "replaced")
		}
	}
	setCookie(w, s.cookieName, sess.handle, 0)
	s.auditSignin(r, pid, sess.Issuer, sess.Subject, "allow", "ok")
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, rec.ReturnTo, http.StatusFound)
}

// newSession is a session about to be stored and the cookie handle for it.
type newSession struct {
	*Session
	handle string
}

// completeSignin exchanges the code (with the PKCE verifier), verifies the
// ID token, optionally checks UserInfo, and builds the session.
func (s *View) completeSignin(ctx context.Context, rp *relyingParty, rec *preAuth, code string) (*newSession, *refusal) {
	l, err := rp.ready()
	if err != nil {
		return nil, refuse("provider_unavailable", http.StatusServiceUnavailable, err)
	}
	cctx, cancel := rp.ctx(ctx)
	defer cancel()
	tok, err := l.oauth.Exchange(cctx, code, oauth2.VerifierOption(rec.Verifier))
	if err != nil {
		return nil, refuse("token_exchange", http.StatusUnauthorized, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, refuse("id_token_missing", http.StatusUnauthorized, nil)
	}
	v, ref := rp.verifyIDToken(cctx, raw, rec.Nonce, tok.AccessToken)
	if ref != nil {
		return nil, ref
	}
	if rp.cfg.UserInfo {
		if ref := rp.checkUserInfo(ctx, tok, v.token.Subject); ref != nil {
			return nil, ref
		}
	}
	now := s.now()
	handle, id := newHandle()
	groups, roles := mapRoles(rp.cfg.Roles, v.all, rp.cfg.TrustUnverifiedEmail)
	sess := &Session{
		ID:           id,
		Provider:     rp.cfg.ID,
		Issuer:       v.token.Issuer,
		Subject:      v.token.Subject,
		SID:          v.claims.SID,
		Roles:        roles,
		Groups:       groups,
		AMR:          v.claims.AMR,
		ACR:          v.claims.ACR,
		Claims:       keptClaims(v.all, rp.cfg.TrustUnverifiedEmail),
		AuthTime:     authTime(v.claims.AuthTime, now),
		Created:      now,
		LastSeen:     now,
		IDToken:      raw,
		RefreshToken: tok.RefreshToken,
		TokenExpiry:  tokenExpiry(tok, now),
	}
	s.sessionTimes(sess)
	return &newSession{Session: sess, handle: handle}, nil
}

// denySignin answers a refused sign-in and records it.
func (s *View) denySignin(w http.ResponseWriter, r *http.Request, pid, sub string, ref *refusal) {
	s.log.Info("auth: sign-in refused", "provider", pid, "reason", ref.reason, "request_id", requestID(r), "detail", safeDetail(ref.err))
	s.auditSignin(r, pid, "", sub, "deny", ref.reason)
	msg, next := "The sign-in could not be completed.", "Go back to the page you wanted and sign in again."
	switch ref.status {
	case http.StatusNotFound:
		msg, next = "This sign-in method does not exist.", "Go back and choose another."
	case http.StatusServiceUnavailable:
		msg, next = "Signing in is not possible right now.", "Try again in a minute."
	}
	if ref.reason == "token_too_large" {
		msg, next = "Your identity provider sent a sign-in token larger than this site accepts.",
			"Ask your administrator: the provider may be putting too many groups or claims into it."
	}
	page.Error(w, r, ref.status, msg, next)
}

func (s *View) auditSignin(r *http.Request, pid, iss, sub, decision, reason string) {
	if s.providers[pid] == nil {
		pid = "unknown" // keep label values to configured ids
	}
	s.metrics.signins.WithLabelValues(pid, decision, reason).Inc()
	ev := audit.Event{
		Time:     s.now(),
		Type:     "signin",
		Method:   r.Method,
		Path:     r.URL.Path,
		Issuer:   iss,
		Subject:  sub,
		Decision: decision,
		Reason:   reason,
		Attrs:    map[string]string{"provider": pid},
	}
	if sc := scope.From(r.Context()); sc != nil {
		ev.RequestID = sc.RequestID
		if sc.ClientAddr.IsValid() {
			ev.Client = sc.ClientAddr.String()
		}
	}
	s.audit.Record(r.Context(), ev)
}

// safeDetail describes err for the log without anything a provider sent
// back verbatim (bodies may carry personal data): the OAuth error code of a
// token endpoint error, "timeout", or go-oidc's own validation message.
func safeDetail(err error) string {
	if err == nil {
		return ""
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" && len(re.ErrorCode) <= 64 {
			return "token endpoint: " + re.ErrorCode
		}
		if re.Response != nil {
			return "token endpoint: HTTP " + strconv.Itoa(re.Response.StatusCode)
		}
		return "token endpoint"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "oidc: ") || strings.HasPrefix(msg, "failed to verify signature") {
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return msg
	}
	return "error"
}

// takePreAuth takes the pending sign-in whose state matches the callback's
// (one per tab, from the pre-auth cookie) and rewrites the cookie with the
// others. A record is single-use: the matching one is taken whatever the
// outcome, and a state that matches none of them takes them all (fail
// closed). pending reports whether the cookie named any live record. When
// the pre-auth store fails (Redis down) it returns the error, no record,
// and deletes the cookie: the sign-in is refused and starts over.
func (s *View) takePreAuth(w http.ResponseWriter, r *http.Request, state string) (rec *preAuth, pending bool, err error) {
	now := s.now()
	ctx := r.Context()
	handles := pendingHandles(s.cookies(r).preauth)
	var rest []string
	fail := func(e error) (*preAuth, bool, error) {
		setCookie(w, s.preCookie, "", -1)
		return nil, pending, e
	}
	for _, h := range handles {
		p, err := s.preauth.peek(ctx, h, now)
		if err != nil {
			return fail(err)
		}
		if p == nil {
			continue
		}
		pending = true
		if rec == nil && p.Kind == "login" && subtle.ConstantTimeCompare([]byte(state), []byte(p.State)) == 1 {
			if rec, err = s.preauth.take(ctx, h, now); err != nil {
				return fail(err)
			}
			continue
		}
		rest = append(rest, h)
	}
	if rec == nil {
		for _, h := range rest {
			if _, err := s.preauth.take(ctx, h, now); err != nil {
				return fail(err)
			}
		}
		rest = nil
	}
	switch {
	case len(rest) > 0:
		setCookie(w, s.preCookie, strings.Join(rest, "."), int(preAuthTTL/time.Second))
	case s.cookies(r).preauth != "":
		setCookie(w, s.preCookie, "", -1)
	}
	return rec, pending, nil
}
