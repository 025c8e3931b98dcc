package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// ownCookies are telegate's cookie values, taken from the request before
// VisitsAPIPrefix is the visits API, the one endpoint of telegate's own that
// takes bearer tokens (from the issuers in visits.bearer) besides sessions.
const VisitsAPIPrefix = "/.telegate/visits"

// Authenticate strips them so that Handler can still read them.
type ownCookies struct {
	session string
	preauth string
}

type ownCookiesKey struct{}

// cookies returns telegate's cookie values of r: those Authenticate saw, or
// else those still in the Cookie header.
func (s *View) cookies(r *http.Request) ownCookies {
	if c, ok := r.Context().Value(ownCookiesKey{}).(ownCookies); ok {
		return c
	}
	// r.Cookie parses like r.Cookies but allocates only for the name it
	// looks for; the first cookie of each name wins, as before.
	var c ownCookies
	if k, err := r.Cookie(s.cookieName); err == nil {
		c.session = k.Value
	}
	if k, err := r.Cookie(s.preCookie); err == nil {
		c.preauth = k.Value
	}
	return c
}

// stripOwnCookies removes telegate's cookies from every Cookie header of r
// (RFC 6265 §5.4 cookie-string), keeping the others byte for byte.
func (s *View) stripOwnCookies(r *http.Request) {
	lines := r.Header.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept strings.Builder
	for _, line := range lines {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			name = strings.TrimSpace(name)
			if strings.EqualFold(name, s.cookieName) || strings.EqualFold(name, s.preCookie) {
				continue
			}
			if kept.Len() > 0 {
				kept.WriteString("; ")
			} else {
				kept.Grow(len(line))
			}
			kept.WriteString(p)
		}
	}
	if kept.Len() == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header.Set("Cookie", kept.String())
}

// Authenticate attaches scope.Identity: on routes naming client CAs, from a
// client certificate only; on API routes with bearer issuers, from
// "Authorization: Bearer" (RFC 6750 §2.1) when present, answering 401
// invalid_token (§3.1) for a token that fails verification; otherwise from
// the session cookie. It removes telegate's own cookies from the request
// before calling next. It never denies otherwise: policy decides.
func (s *View) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := scope.From(r.Context())
		if sc == nil {
			sc = &scope.Scope{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
			r = r.WithContext(scope.With(r.Context(), sc))
		}
		own := s.cookies(r)
		s.stripOwnCookies(r)
		ctx := context.WithValue(r.Context(), ownCookiesKey{}, own)
		r = r.WithContext(ctx)
		sc.Identity = nil

		route := sc.Route
		if route == nil && s.visitsAPI != nil && (sc.Path == VisitsAPIPrefix || strings.HasPrefix(sc.Path, VisitsAPIPrefix+"/")) {
			route = s.visitsAPI
		}
		if route != nil && len(route.ClientCert) > 0 {
			sc.Identity = s.deviceIdentity(r, route)
			next.ServeHTTP(w, r)
			return
		}
		if route != nil && route.API && len(route.Bearer) > 0 {
			if raw, present, ok := bearerFromRequest(r); present {
				if !ok {
					s.bearerError(w, r, "malformed")
					return
				}
				id, reason := s.verifyBearer(ctx, route, raw)
				if id == nil {
					s.bearerError(w, r, reason)
					return
				}
				sc.Identity = id
				next.ServeHTTP(w, r)
				return
			}
		}
		if own.session != "" {
			if sess := s.loadSession(ctx, own.session, r.Header.Get(BackgroundHeader) != "1"); sess != nil {
				sc.Identity = s.sessionIdentity(sess)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sessionIdentity is the identity sess stands for, with its provider's
// rule of what counts as multi-factor (providers[].mfa_amr, mfa_acr).
func (s *View) sessionIdentity(sess *Session) *scope.Identity {
	id := sess.Identity()
	if rp := s.providers[sess.Provider]; rp != nil {
		id.MFA = scope.MFARule{AMR: rp.cfg.MFAAMR, ACR: rp.cfg.MFAACR}
	}
	return id
}

// BackgroundHeader marks a request that a page sends by itself, not on a
// person's action: "X-Telegate-Background: 1" on a poll (the visit lobby's
// refresh, say). Such a request is authenticated as any other but is not
// use of the session: it does not move the idle clock, so a page left open
// and unattended is still signed out after sessions.idle_timeout. Like
// every X-Telegate-* header it never reaches an upstream.
const BackgroundHeader = "X-Telegate-Background"

// ends is why sess must end now, or "": past its absolute or idle
// deadline, or its provider is no longer configured with the issuer that
// signed it in (a reload that removes a provider, or points its id at
// another issuer, ends its sessions at their next use: a hospital that
// drops a compromised identity provider drops its sign-ins with it).
func (s *View) ends(sess *Session, now time.Time) string {
	switch {
	case !now.Before(sess.Created.Add(s.absolute)):
		return "absolute"
	case !now.Before(sess.LastSeen.Add(s.idle)):
		return "idle"
	}
	if sess.Provider != "" {
		// A development provider gets a new loopback issuer at every
		// start (node.startDevelopmentProviders): its id is what lasts.
		if rp := s.providers[sess.Provider]; rp == nil || (rp.cfg.Issuer != sess.Issuer && !rp.cfg.Development) {
			return "provider_removed"
		}
	}
	return ""
}

// loadSession returns the live session for a cookie handle, or nil. It ends
// sessions past their idle or absolute deadline, refreshes an expired access
// token once (a failed refresh ends the session) and, when use is set,
// records the use at most every touch interval.
func (s *View) loadSession(ctx context.Context, handle string, use bool) *Session {
	if !validHandle(handle) {
		return nil
	}
	id := sessionIDFor(handle)
	sess, err := s.store.Get(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("auth: session lookup failed", "error", err)
		}
		return nil
	}
	now := s.now()
	if why := s.ends(sess, now); why != "" {
		s.endSession(ctx, id, why)
		return nil
	}
	if sess.RefreshToken != "" && !sess.TokenExpiry.IsZero() && !now.Before(sess.TokenExpiry) {
		fresh, err := s.refresh(ctx, sess)
		if err != nil {
			s.log.Info("auth: token refresh failed; session ended", "provider", sess.Provider, "detail", safeDetail(err))
			s.endSession(ctx, id, "refresh_failed")
			return nil
		}
		sess = fresh
	}
	if use {
		s.recordUse(ctx, sess, now)
	}
	return sess
}

// touch records sess's use in the store. Concurrent requests of one session
// write it once: while one write is in flight the others skip theirs (the
// idle deadline moves all the same), so a busy session does not queue a
// burst of store writes every touchInterval.
func (s *Service) touch(ctx context.Context, sess *Session) {
	if _, busy := s.touching.LoadOrStore(sess.ID, struct{}{}); busy {
		return
	}
	defer s.touching.Delete(sess.ID)
	err := s.store.Touch(ctx, sess)
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrSessionEnded):
		// Ended meanwhile (sign-out, sweep): it stays ended.
	default:
		s.log.Warn("auth: session touch failed", "error", err)
	}
}

// refresh exchanges the session's refresh token (RFC 6749 §6) once per
// session even under concurrent requests, and stores the new tokens.
func (s *View) refresh(ctx context.Context, sess *Session) (*Session, error) {
	v, err, _ := s.refreshes.Do(sess.ID, func() (any, error) {
		cur, err := s.store.Get(ctx, sess.ID)
		if err != nil {
			return nil, err
		}
		if cur.TokenExpiry.IsZero() || s.now().Before(cur.TokenExpiry) {
			return cur, nil // refreshed by an earlier flight
		}
		rp := s.providers[cur.Provider]
		if rp == nil {
			return nil, errors.New("provider no longer configured")
		}
		l, err := rp.ready()
		if err != nil {
			return nil, err
		}
		cctx, cancel := rp.ctx(ctx)
		defer cancel()
		tok, err := l.oauth.TokenSource(cctx, &oauth2.Token{RefreshToken: cur.RefreshToken}).Token()
		if err != nil {
			return nil, err
		}
		if raw, _ := tok.Extra("id_token").(string); raw != "" {
			v, ref := rp.verifyIDToken(cctx, raw, "", tok.AccessToken)
			if ref != nil {
				return nil, ref
			}
			if v.token.Subject != cur.Subject || v.token.Issuer != cur.Issuer {
				return nil, errors.New("refreshed ID token names another subject")
			}
			cur.IDToken = raw
			cur.Groups, cur.Roles = mapRoles(rp.cfg.Roles, v.all, rp.cfg.TrustUnverifiedEmail)
		}
		if tok.RefreshToken != "" {
			cur.RefreshToken = tok.RefreshToken
		}
		cur.TokenExpiry = tokenExpiry(tok, s.now())
		if _, err := s.store.Put(ctx, cur); err != nil {
			return nil, err
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	cp := *v.(*Session)
	return &cp, nil
}

// Challenge answers a request that needs an identity and has none. Routes
// naming client CAs get a 401 page (no certificate) or 403 page (a
// certificate that no named CA vouches for), never a redirect. API routes get
// 401 application/json with `WWW-Authenticate: Bearer realm="telegate"`
// (RFC 6750 §3) unless a browser asks for HTML with GET or HEAD; browsers
// making GET or HEAD requests are redirected (302) to
// /.telegate/login?rd=<path+query>; other methods get a 401 page.
func (s *View) Challenge(w http.ResponseWriter, r *http.Request) {
	sc := scope.From(r.Context())
	if sc == nil {
		sc = &scope.Scope{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	}
	route := sc.Route
	if route != nil && len(route.ClientCert) > 0 {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			page.Error(w, r, http.StatusForbidden, "Your device certificate is not accepted here.", "Ask your administrator to enrol this device.")
			return
		}
		page.Error(w, r, http.StatusUnauthorized, "This page needs a device certificate.", "Use an enrolled device.")
		return
	}
	getLike := r.Method == http.MethodGet || r.Method == http.MethodHead
	wantsHTML := strings.Contains(r.Header.Get("Accept"), "text/html")
	if route != nil && route.API && !(getLike && wantsHTML) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="telegate"`)
		page.Write(w, r, page.Problem{Status: http.StatusUnauthorized, Reason: "unauthenticated", Message: "Sign in or send a bearer token first.", JSON: true})
		return
	}
	if !getLike {
		page.Error(w, r, http.StatusUnauthorized, "You need to sign in first.", "Open the page again to sign in.")
		return
	}
	path := sc.Path
	if path == "" {
		path = r.URL.Path
	}
	if sc.RawQuery != "" {
		path += "?" + sc.RawQuery
	}
	q := url.Values{"rd": {page.SafeReturnPath(path)}}
	if route != nil && route.ID != "" && len(route.Providers) > 0 {
		q.Set("route", route.ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/.telegate/login?"+q.Encode(), http.StatusFound)
}

// tokenExpiry is when tok's access token expires by the service's clock:
// now + expires_in (RFC 6749 §5.1), else the expiry oauth2 computed, else
// zero (no known expiry: never refreshed).
func tokenExpiry(tok *oauth2.Token, now time.Time) time.Time {
	if tok.ExpiresIn > 0 {
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return tok.Expiry
}
