package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/telegate/telegate/config"
)

// fetchJWKS reads /.telegate/jwks.json through the public chain.
func fetchJWKS(t *testing.T, tg *testGateway) jose.JSONWebKeySet {
	t.Helper()
	resp, err := tg.client(tg.ts.Listener.Addr().String()).Get("https://" + appHost + "/.telegate/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestAssertionVerifiesAgainstJWKS(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	set := fetchJWKS(t, tg)
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" || k.KeyID == "" {
		t.Fatalf("jwks key: public=%v alg=%q use=%q kid=%q", k.IsPublic(), k.Algorithm, k.Use, k.KeyID)
	}
	c := tg.client(tg.ts.Listener.Addr().String())
	req, _ := http.NewRequest("GET", "https://"+appHost+"/admin/panel", nil)
	req.AddCookie(&http.Cookie{Name: "tg-test", Value: "root"})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	seen, _ := tg.rec.last()
	raw := seen.Header.Get(config.DefaultAssertionHeader)
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse assertion: %v", err)
	}
	if tok.Headers[0].KeyID != k.KeyID {
		t.Errorf("kid %q, want %q", tok.Headers[0].KeyID, k.KeyID)
	}
	var std jwt.Claims
	var extra struct {
		IdP   string   `json:"idp"`
		Roles []string `json:"roles"`
		AMR   []string `json:"amr"`
		Name  string   `json:"name"`
		Email string   `json:"email"`
	}
	if err := tok.Claims(set, &std, &extra); err != nil {
		t.Fatalf("verify with JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: "https://" + appHost, AnyAudience: jwt.Audience{"admin"}, Time: time.Now()}, 0); err != nil {
		t.Errorf("claims: %v", err)
	}
	if std.Subject != "root" || extra.IdP != "https://idp.example.test" || len(extra.Roles) != 1 || extra.Roles[0] != "admin" || len(extra.AMR) != 1 {
		t.Errorf("claims sub=%q idp=%q roles=%v amr=%v", std.Subject, extra.IdP, extra.Roles, extra.AMR)
	}
	if extra.Name != "Root Admin" {
		t.Errorf("allow-listed claim name = %q", extra.Name)
	}
	if d := std.Expiry.Time().Sub(std.IssuedAt.Time()); d != time.Minute {
		t.Errorf("lifetime %v, want 1m", d)
	}
	if std.ID == "" {
		t.Error("no jti")
	}

	// A claim outside the route's allow-list never leaves.
	req, _ = http.NewRequest("GET", "https://"+appHost+"/clinic/x", nil)
	req.AddCookie(&http.Cookie{Name: "tg-test", Value: "alice"})
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen, _ = tg.rec.last()
	tok, err = jwt.ParseSigned(seen.Header.Get(config.DefaultAssertionHeader), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := tok.Claims(set, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["name"]; ok {
		t.Errorf("claim name sent without allow-list: %v", m)
	}
	if _, ok := m["email"]; ok {
		t.Errorf("claim email sent without allow-list: %v", m)
	}
	if seen.Header.Get("X-Telegate-Subject") != "" {
		t.Errorf("identity headers on a route without IdentityHeaders")
	}

	// Public routes carry no assertion.
	resp, err = c.Get("https://" + appHost + "/public/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	seen, _ = tg.rec.last()
	if v := seen.Header.Get(config.DefaultAssertionHeader); v != "" {
		t.Errorf("anonymous request carries an assertion")
	}
}

func TestAssertionCachePerSessionAndAudience(t *testing.T) {
	t.Parallel()
	key, err := loadSigningKey(&config.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAssertionSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	in := assertionInput{issuer: "https://gw", audience: "admin", ttl: time.Minute}
	id := testIdentities["root"]
	t1, _ := a.mint(id, in, now)
	t2, _ := a.mint(id, in, now.Add(10*time.Second))
	if t1 != t2 {
		t.Error("same session and audience within the lifetime: not cached")
	}
	in2 := in
	in2.audience = "clinic"
	if t3, _ := a.mint(id, in2, now); t3 == t1 {
		t.Error("other audience got the cached assertion")
	}
	if t4, _ := a.mint(id, in, now.Add(40*time.Second)); t4 == t1 {
		t.Error("assertion reused past half its lifetime")
	}
	bearer := *id
	bearer.SessionID = ""
	b1, _ := a.mint(&bearer, in, now)
	b2, _ := a.mint(&bearer, in, now)
	if b1 == b2 {
		t.Error("identities without a session must not share assertions")
	}
}

func TestSigningKeyGeneratedOnceWithMode0600(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := loadSigningKey(&config.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "keys", "assertion.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := loadSigningKey(&config.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("key regenerated")
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := loadSigningKey(&config.Config{DataDir: dir, Assertion: config.Assertion{SigningKeyFile: bad}}); err == nil {
		t.Error("garbage key accepted")
	}
}

// TestRegression_GeneratedSigningKeyInClear: the assertion key telegate
// generates is never in clear on disk — as generated, as an earlier
// version wrote it (in clear, sealed at the next start with the same key
// kept), and it opens only under the data directory's seal key.
func TestRegression_GeneratedSigningKeyInClear(t *testing.T) {
	t.Parallel()
	inClear := func(t *testing.T, path string, k *ecdsa.PrivateKey) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		sec1, _ := x509.MarshalECPrivateKey(k)
		d, _ := k.Bytes()
		for name, f := range map[string][]byte{"PEM label": []byte("PRIVATE KEY"), "PKCS #8": der, "SEC 1": sec1, "scalar": d,
			"base64": []byte(base64.StdEncoding.EncodeToString(der)[:64])} {
			if bytes.Contains(b, f) {
				t.Errorf("%s holds the key in clear (%s)", path, name)
			}
		}
	}
	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		c := &config.Config{DataDir: t.TempDir()}
		k, err := loadSigningKey(c)
		if err != nil {
			t.Fatal(err)
		}
		inClear(t, config.InDataDir(c.DataDir, config.SigningKeyInDataDir), k)
	})
	t.Run("earlier version in clear", func(t *testing.T) {
		t.Parallel()
		c := &config.Config{DataDir: t.TempDir()}
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		p := config.InDataDir(c.DataDir, config.SigningKeyInDataDir)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := loadSigningKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(k) {
			t.Fatal("the key in clear was replaced, not sealed")
		}
		inClear(t, p, k)
		if again, err := loadSigningKey(c); err != nil || !again.Equal(k) {
			t.Fatalf("the sealed key does not load back: %v", err)
		}
	})
	t.Run("another seal key", func(t *testing.T) {
		t.Parallel()
		c := &config.Config{DataDir: t.TempDir()}
		if _, err := loadSigningKey(c); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(t.TempDir(), "other.key")
		os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))), 0o600)
		c.TLS.StorageKeyFile = other
		if _, err := loadSigningKey(c); err == nil || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("a key sealed under another key loaded: %v", err)
		}
	})
}

func TestJWKSIsPublicOnly(t *testing.T) {
	t.Parallel()
	g, err := New(Options{Config: defaulted(&config.Config{DataDir: t.TempDir()}), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string][]map[string]any
	if err := json.Unmarshal(g.JWKS(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range raw["keys"] {
		if _, ok := k["d"]; ok {
			t.Fatal("private key material in JWKS")
		}
		if k["kty"] != "EC" || k["crv"] != "P-256" {
			t.Errorf("key %v", k)
		}
	}
}

func benchSigner(b *testing.B) *assertionSigner {
	key, err := loadSigningKey(&config.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	a, err := newAssertionSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkAssertionMint(b *testing.B) {
	in := assertionInput{issuer: "https://gw", audience: "admin", ttl: time.Minute, claims: []string{"name"}}
	b.Run("cold", func(b *testing.B) {
		a := benchSigner(b)
		id := *testIdentities["root"]
		id.SessionID = "" // never cached
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.mint(&id, in, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		a := benchSigner(b)
		id := testIdentities["root"]
		now := time.Now()
		_, _ = a.mint(id, in, now)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.mint(id, in, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
