package gateway

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

func init() {
	// Another provider's user whose sub is the same string as alice's.
	testIdentities["alice-elsewhere"] = &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://other-idp.example.test", Subject: "alice",
		Roles: []string{"clinician"}, AMR: []string{"pwd", "otp"}, SessionID: "sess-alice-elsewhere"}
}

// TestRegression_AssertionNamesTheIssuer: the upstream can tell who
// vouched for the subject: the assertion's idp claim is the issuer of the
// session's ID token or of the bearer token, or "device:<ca id>" for a
// client certificate, so two people whose sub is the same string at two
// issuers, or a token and a device, never read as one person
// (OIDC Core §2: sub is unique only within its issuer).
func TestRegression_AssertionNamesTheIssuer(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, func(c *config.Config, _ *Options) {
		up := c.Routes[0].Upstream
		c.Routes = append(c.Routes, config.Route{ID: "devices", Hosts: []string{appHost}, Path: "/devices/", Upstream: up,
			Bearer: []string{"staff-api"}, ClientCert: []string{"ward-ca"},
			Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"clinician"}}}}})
	})
	set := fetchJWKS(t, tg)
	far := time.Now().Add(time.Hour).UnixNano()
	seen := map[string]string{}
	for _, tc := range []struct {
		cookie, path, idp, sub string
	}{
		{"alice", "/clinic/x", "https://idp.example.test", "alice"},
		{"alice-elsewhere", "/clinic/x", "https://other-idp.example.test", "alice"},
		{fmt.Sprintf("expiring:bearer:%d", far), "/devices/x", "https://idp.example.test", "carol"},
		{fmt.Sprintf("expiring:device:%d", far), "/devices/x", "device:ward-ca", "monitor-7"},
	} {
		req, _ := http.NewRequest("GET", "https://"+appHost+tc.path, nil)
		req.AddCookie(&http.Cookie{Name: "tg-test", Value: tc.cookie})
		resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", tc.cookie, resp.StatusCode)
		}
		got, _ := tg.rec.last()
		tok, err := jwt.ParseSigned(got.Header.Get(config.DefaultAssertionHeader), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("%s: assertion: %v", tc.cookie, err)
		}
		var std jwt.Claims
		var extra struct {
			IdP string `json:"idp"`
		}
		if err := tok.Claims(set, &std, &extra); err != nil {
			t.Fatalf("%s: verify: %v", tc.cookie, err)
		}
		if extra.IdP != tc.idp || std.Subject != tc.sub {
			t.Errorf("%s: idp %q sub %q, want %q %q", tc.cookie, extra.IdP, std.Subject, tc.idp, tc.sub)
		}
		who := extra.IdP + " " + std.Subject
		if other, dup := seen[who]; dup {
			t.Errorf("%s and %s read as one person to the upstream (%s)", other, tc.cookie, who)
		}
		seen[who] = tc.cookie
	}
}
