package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// TestRegression_JunkLogoutTokensDoNotStarveSignIn: back-channel logout
// takes unauthenticated posts, and a logout token with an unknown kid
// makes telegate fetch the provider's key set again. Such tokens used to
// spend the one refetch budget sign-in shares, so that after the provider
// rotated its key the next sign-in could not fetch the new key and
// failed. Now the two have separate budgets, and the endpoint has its own
// per-source rate limit: after a rotation, a flood of junk logout tokens
// from several sources gets 400 or 429, and sign-ins succeed meanwhile.
func TestRegression_JunkLogoutTokensDoNotStarveSignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(h *harness) {
		h.cfg.RateLimits.BackchannelLogout = config.RateLimit{Rate: 1, Burst: 8}
		h.cfg.ApplyDefaults()
		h.limit = policies.LimitClient(policies.NewLimiter(100, nil), policies.NewRouteLimits(h.cfg))
	})
	if r := h.signIn("/app/"); r.StatusCode != http.StatusOK {
		t.Fatalf("first sign-in: %d", r.StatusCode)
	}
	fetched := h.op.jwksHits.Load()
	sources := []string{"192.0.2.1", "192.0.2.2", "198.51.100.7", "2001:db8:1::1"}
	junk := func(i int) string {
		k := newECKey(t, fmt.Sprintf("junk-%d-%s", i, randomToken(4)))
		return signJWT(t, k, mustJSON(h.logoutClaims()), map[jose.HeaderKey]any{"typ": "logout+jwt"})
	}
	var mu sync.Mutex
	answers := map[int]int{}
	flood := func(n int) {
		var wg sync.WaitGroup
		for _, src := range sources {
			wg.Go(func() {
				for i := range n {
					req, _ := http.NewRequest(http.MethodPost, h.url+config.BackchannelLogoutPrefix+"staff",
						strings.NewReader(url.Values{"logout_token": {junk(i)}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set(testClientHeader, src)
					resp, err := h.gw.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					mu.Lock()
					answers[resp.StatusCode]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	// The flood spends the back-channel refetch budget; then the provider
	// rotates its signing key, so that the key set telegate holds no
	// longer verifies its tokens, and the flood goes on.
	flood(15)
	h.op.set(func(op *testOP) {
		k := newECKey(t, "rotated")
		op.keys = []*opKey{k}
		op.sign = k
	})
	// Sign in again, twice, while junk keeps arriving.
	done := make(chan struct{})
	go func() { defer close(done); flood(10) }()
	signedIn := 0
	for range 2 {
		h.jar.SetCookies(mustURL(h.url), []*http.Cookie{{Name: h.svc.View().cookieName, Value: "", MaxAge: -1}})
		if r := h.signIn("/app/"); r.StatusCode == http.StatusOK && strings.Contains(bodyOf(r), "hello alice") {
			signedIn++
		}
	}
	<-done
	if signedIn != 2 {
		t.Fatalf("%d of 2 sign-ins after the rotation, during the flood, succeeded", signedIn)
	}

	mu.Lock()
	defer mu.Unlock()
	if answers[http.StatusBadRequest] == 0 || answers[http.StatusTooManyRequests] == 0 || answers[http.StatusBadRequest]+answers[http.StatusTooManyRequests] != 4*25 {
		t.Errorf("junk logout tokens answered %v, want only 400 and 429, some of each", answers)
	}
	// The flood fetched the key set at most its own budget's worth (a
	// token more may have come back meanwhile); sign-in fetched it once for
	// the new key.
	if got := h.op.jwksHits.Load() - fetched; got > jwksRefetchBurst+2 {
		t.Errorf("key set fetched %d times during the flood, want at most %d", got, jwksRefetchBurst+2)
	}
	if h.get("/app/").StatusCode != http.StatusOK {
		t.Error("the session signed in during the flood is gone")
	}
}
