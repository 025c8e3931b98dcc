package devop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *Server
)

// FuzzLoginSubmit posts arbitrary credentials to a pending sign-in request:
// only an exact username and password pair of a user completes it, and
// nothing else ever redirects.
func FuzzLoginSubmit(f *testing.F) {
	fuzzOnce.Do(func() {
		s, err := Start(context.Background(), Options{Clients: []Client{testClient()}})
		if err != nil {
			f.Fatal(err)
		}
		fuzzServer = s
	})
	s := fuzzServer
	h := s.handler()
	f.Add("clinician@demo.test", "demo")
	f.Add("clinician@demo.test", "demo ")
	f.Add("Clinician@demo.test", "demo")
	f.Add("patient@demo.test", "")
	f.Add("", "")
	f.Add("admin@demo.test\x00", "demo")
	f.Add("nobody", "demo")
	f.Fuzz(func(t *testing.T, username, password string) {
		req, err := s.st.CreateAuthRequest(context.Background(), &oidc.AuthRequest{
			ClientID: testClientID, RedirectURI: redirectURI, Scopes: oidc.SpaceDelimitedArray{"openid"},
			ResponseType: oidc.ResponseTypeCode, CodeChallenge: "x", CodeChallengeMethod: oidc.CodeChallengeMethodS256,
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"id": {req.GetID()}, "username": {username}, "password": {password}}
		r := httptest.NewRequest(http.MethodPost, s.Issuer()+"/login", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		ok := false
		for _, u := range DemoUsers() {
			if u.Username == username && u.Password == password {
				ok = true
			}
		}
		switch {
		case ok && rec.Code != http.StatusFound:
			t.Fatalf("right credentials answered %d", rec.Code)
		case !ok && rec.Code != http.StatusUnauthorized:
			t.Fatalf("wrong credentials (%q, %q) answered %d", username, password, rec.Code)
		}
		_ = s.st.DeleteAuthRequest(context.Background(), req.GetID())
	})
}

// FuzzIsLoopbackHost: a host accepted as loopback is "localhost", a name
// under ".localhost", or an IP literal in 127.0.0.0/8 or ::1.
func FuzzIsLoopbackHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "[::1]", "localhost", "LOCALHOST.", "a.localhost", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fe80::1%lo", "127.1", "0177.0.0.1", "2130706433", "localhost.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !isLoopbackHost(host) {
			return
		}
		h := strings.TrimSuffix(strings.ToLower(host), ".")
		if h == "localhost" || strings.HasSuffix(h, ".localhost") {
			return
		}
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
		if err != nil || !a.Unmap().IsLoopback() {
			t.Fatalf("%q accepted as loopback", host)
		}
	})
}
