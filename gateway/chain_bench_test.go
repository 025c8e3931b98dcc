package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/devop"
)

// chainBench is the whole request chain with the real auth.Service (its
// OpenID Provider on loopback, its encrypted bbolt session store) in front
// of a loopback upstream, and one signed-in session's cookie.
type chainBench struct {
	h      http.Handler
	cookie string
}

func newChainBench(b *testing.B) *chainBench {
	b.Helper()
	body := []byte(strings.Repeat("x", 512))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	b.Cleanup(up.Close)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	op, err := devop.Start(ctx, devop.Options{
		Logger:  quietLogger(),
		Clients: []devop.Client{{ID: "bench", Secret: "bench-secret-0123456789abcdef", RedirectURIs: []string{"https://" + appHost + "/.telegate/callback/staff"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = op.Close() })
	cfg := testConfig(b, up.URL)
	cfg.Sessions = config.Sessions{IdleTimeout: 15 * time.Minute, AbsoluteTimeout: 12 * time.Hour}
	cfg.ApplyDefaults()
	// Every request of the benchmark is one client (and one subject): the
	// limits are high enough never to refuse, but the buckets are taken as
	// in production (as e2e/edgebench does).
	cfg.RateLimits.PerClient = config.RateLimit{Rate: 1e9, Burst: 1e9}
	cfg.RateLimits.PerSubject = config.RateLimit{Rate: 1e9, Burst: 1e9}
	cfg.Providers = []config.Provider{{ID: "staff", Issuer: op.Issuer(), ClientID: "bench", ClientSecret: "bench-secret-0123456789abcdef",
		Roles: config.RoleMapping{Claim: "groups", Map: map[string][]string{"clinicians": {"clinician"}}}}}
	for i := range cfg.Routes {
		if cfg.Routes[i].ID == "clinic" {
			cfg.Routes[i].Providers = []string{"staff"}
		}
	}
	cfg.ApplyDefaults() // the provider's defaults too
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store, err := auth.OpenBoltStore(filepath.Join(b.TempDir(), "sessions.db"), key, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	var hb [32]byte
	_, _ = rand.Read(hb[:])
	handle := base64.RawURLEncoding.EncodeToString(hb[:])
	sum := sha256.Sum256([]byte(handle))
	now := time.Now()
	_, err = store.Put(ctx, &auth.Session{
		ID: base64.RawURLEncoding.EncodeToString(sum[:]), Provider: "staff", Issuer: op.Issuer(), Subject: "alice",
		Roles: []string{"clinician"}, Groups: []string{"clinicians"}, AMR: []string{"pwd"},
		Claims:   map[string]string{"name": "Dr Alice Example"},
		AuthTime: now, Created: now, LastSeen: now, Expires: now.Add(15 * time.Minute),
		IDToken: "eyJhbGciOiJSUzI1NiJ9.e30.sig",
	})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := auth.New(ctx, auth.Options{Config: cfg, Logger: quietLogger(), Store: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })
	g, err := New(Options{Config: cfg, Auth: svc.View(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return &chainBench{h: g.Handler(), cookie: "__Host-telegate=" + handle}
}

// run serves GET path through the chain, as HTTP/1.1 on the benchmark's
// goroutines, or (h2) as the HTTP/2 server presents a request: on a
// goroutine of its own per stream (RFC 9113 §5.1), ProtoMajor 2, and the
// server's own body of a stream that HEADERS ended (ContentLength 0, not
// http.NoBody).
func (cb *chainBench) run(b *testing.B, path string, signedIn, h2 bool) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodGet, "https://"+appHost+path, nil)
			r.RemoteAddr = "127.0.0.1:40000"
			r.Header.Set("User-Agent", "bench")
			r.Header.Set("Accept", "*/*")
			if signedIn {
				r.Header.Set("Cookie", cb.cookie+"; theme=dark")
			}
			w := httptest.NewRecorder()
			if h2 {
				r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(nil)), 0
				done := make(chan struct{})
				go func() {
					defer close(done)
					cb.h.ServeHTTP(w, r)
				}()
				<-done
			} else {
				cb.h.ServeHTTP(w, r)
			}
			if w.Code != http.StatusOK {
				b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
			}
		}
	})
}

// BenchmarkChainPublic is one request on a public route through the whole
// chain and the reverse proxy to a loopback upstream.
func BenchmarkChainPublic(b *testing.B) {
	newChainBench(b).run(b, "/public/page?x=1", false, false)
}

// BenchmarkChainPublicHTTP2 is BenchmarkChainPublic as HTTP/2 streams: a
// goroutine and a body per request.
func BenchmarkChainPublicHTTP2(b *testing.B) {
	newChainBench(b).run(b, "/public/page?x=1", false, true)
}

// BenchmarkChainSignedIn is one signed-in request: session lookup, policy,
// identity assertion, reverse proxy.
func BenchmarkChainSignedIn(b *testing.B) {
	newChainBench(b).run(b, "/clinic/page?x=1", true, false)
}
