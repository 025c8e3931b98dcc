package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// twoNodes is one browser and one OP in front of two telegate nodes (two
// Services) that share a Redis: the harness's front serves whichever node
// use selects, as a load balancer would.
type twoNodes struct {
	*harness
	redis *testRedis
	a, b  *Service
}

func newTwoNodes(t *testing.T) *twoNodes {
	t.Helper()
	r := startRedis(t)
	h := newHarness(t, func(h *harness) {
		h.cfg.Sessions.Store = "redis"
		h.cfg.Sessions.EncryptionKey = base64.StdEncoding.EncodeToString(testKey(9))
		h.cfg.Redis = config.Redis{Addr: r.Addr, Password: r.Password}
	})
	b, err := New(context.Background(), Options{
		Config:     h.cfg,
		Audit:      h.audit,
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        h.clock.Now,
		HTTPClient: h.op.srv.Client(),
	})
	if err != nil {
		t.Fatalf("second node: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for _, s := range []*Service{h.svc, b} {
		if _, ok := s.preauth.(*redisPreAuth); !ok {
			t.Fatalf("pre-auth store is %T, want *redisPreAuth", s.preauth)
		}
	}
	return &twoNodes{harness: h, redis: r, a: h.svc, b: b}
}

// use sends the following requests to node s.
func (n *twoNodes) use(s *Service) { n.svc = s }

// startLogin starts a sign-in for rd on the current node and lets the OP
// answer; it returns the callback URL the OP sent the browser to.
func (n *twoNodes) startLogin(rd string) string {
	n.t.Helper()
	c := n.noRedirectClient()
	r1 := n.do(c, http.MethodGet, "/.telegate/login?rd="+url.QueryEscape(rd), nil)
	if r1.StatusCode != http.StatusFound {
		n.t.Fatalf("login: %d", r1.StatusCode)
	}
	resp, err := c.Get(r1.Header.Get("Location"))
	if err != nil {
		n.t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, n.url+"/.telegate/callback/") {
		n.t.Fatalf("OP answered %d %q", resp.StatusCode, cb)
	}
	return cb
}

// callback presents the OP's answer to the current node.
func (n *twoNodes) callback(cb string) *http.Response {
	n.t.Helper()
	return n.do(n.noRedirectClient(), http.MethodGet, strings.TrimPrefix(cb, n.url), nil)
}

// preCookie is the pre-auth cookie in the browser, "" if none.
func (n *twoNodes) preCookie() string {
	for _, ck := range n.jar.Cookies(mustURL(n.url)) {
		if ck.Name == n.a.View().preCookie {
			return ck.Value
		}
	}
	return ""
}

func (n *twoNodes) setCookie(name, value string) {
	n.jar.SetCookies(mustURL(n.url), []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// setsSession reports whether resp set a session cookie.
func setsSession(resp *http.Response, name string) bool {
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, name+"=") && !strings.HasPrefix(sc, name+"=;") {
			return true
		}
	}
	return false
}

// TestPreAuthSigninAcrossNodes is the regression test for sign-ins behind a
// load balancer: the callback reaching another node than the login was
// refused with "no_preauth". It completes there now, and the record is
// still single-use across nodes: the replayed callback is refused on the
// first node.
func TestPreAuthSigninAcrossNodes(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	cb := n.startLogin("/app/chart")
	pre := n.preCookie()
	if pre == "" {
		t.Fatal("no pre-auth cookie after login")
	}

	n.use(n.b)
	resp := n.callback(cb)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/app/chart" || !setsSession(resp, n.b.View().cookieName) {
		t.Fatalf("callback on the other node: %d to %q, session cookie %v", resp.StatusCode, resp.Header.Get("Location"), setsSession(resp, n.b.View().cookieName))
	}
	if got := n.get("/app/chart"); got.StatusCode != http.StatusOK || got.Header.Get("X-Subject") != "alice" {
		t.Fatalf("page after sign-in: %d subject %q", got.StatusCode, got.Header.Get("X-Subject"))
	}

	// Replay: the same browser state (pre-auth cookie, no session) on the
	// first node.
	n.use(n.a)
	n.jar.SetCookies(mustURL(n.url), []*http.Cookie{{Name: n.a.View().cookieName, Value: "", MaxAge: -1}})
	n.setCookie(n.a.View().preCookie, pre)
	resp = n.callback(cb)
	if resp.StatusCode != http.StatusBadRequest || setsSession(resp, n.a.View().cookieName) || n.sessionCookie() != "" {
		t.Fatalf("replayed callback on the first node: %d, session cookie set %v", resp.StatusCode, setsSession(resp, n.a.View().cookieName))
	}
	if !n.audit.find("signin", "deny", "no_preauth") {
		t.Error("no audit event for the replay")
	}
}

// TestPreAuthTwoTabsAcrossNodes: two tabs start sign-ins on one node; each
// completes on a different node, in the other order, and lands on its own
// return path.
func TestPreAuthTwoTabsAcrossNodes(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	cb1 := n.startLogin("/app/one")
	cb2 := n.startLogin("/app/two")
	if hs := pendingHandles(n.preCookie()); len(hs) != 2 {
		t.Fatalf("pre-auth cookie holds %d handles, want 2", len(hs))
	}
	tests := []struct {
		node *Service
		cb   string
		want string
		left int
	}{
		{n.b, cb2, "/app/two", 1},
		{n.a, cb1, "/app/one", 0},
	}
	for _, tc := range tests {
		n.use(tc.node)
		resp := n.callback(tc.cb)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tc.want || !setsSession(resp, n.a.View().cookieName) {
			t.Fatalf("callback for %s: %d to %q", tc.want, resp.StatusCode, resp.Header.Get("Location"))
		}
		if got := len(pendingHandles(n.preCookie())); got != tc.left {
			t.Fatalf("after %s the cookie holds %d handles, want %d", tc.want, got, tc.left)
		}
	}
}

// TestPreAuthExpiredAcrossNodes: a round trip that took longer than
// preAuthTTL is refused on the other node although Redis (whose TTL runs on
// the wall clock) still holds the record.
func TestPreAuthExpiredAcrossNodes(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	cb := n.startLogin("/app/")
	n.clock.Advance(preAuthTTL + time.Second)
	n.use(n.b)
	resp := n.callback(cb)
	if resp.StatusCode != http.StatusBadRequest || setsSession(resp, n.b.View().cookieName) {
		t.Fatalf("late callback: %d, session cookie %v", resp.StatusCode, setsSession(resp, n.b.View().cookieName))
	}
	if !n.audit.find("signin", "deny", "no_preauth") {
		t.Error("no audit event for the late callback")
	}
}

// TestPreAuthRedisDownFailsClosed: with Redis down a callback is refused
// (503, no session cookie, the pre-auth cookie deleted) and a new sign-in
// does not start; both within the Redis timeout, and nothing secret is
// logged.
func TestPreAuthRedisDownFailsClosed(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	cb := n.startLogin("/app/")
	pre := n.preCookie()
	n.redis.Stop()
	n.use(n.b)

	start := time.Now()
	resp := n.callback(cb)
	if resp.StatusCode != http.StatusServiceUnavailable || setsSession(resp, n.b.View().cookieName) || n.sessionCookie() != "" {
		t.Fatalf("callback with Redis down: %d, session cookie %v", resp.StatusCode, setsSession(resp, n.b.View().cookieName))
	}
	if n.preCookie() != "" {
		t.Error("pre-auth cookie kept after a refused callback")
	}
	if !n.audit.find("signin", "deny", "preauth_unavailable") {
		t.Error("no audit event for the refusal")
	}

	resp = n.do(n.noRedirectClient(), http.MethodGet, "/.telegate/login?rd=/app/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || n.preCookie() != "" {
		t.Fatalf("login with Redis down: %d to %q, pre-auth cookie %q", resp.StatusCode, resp.Header.Get("Location"), n.preCookie())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("requests with Redis down took %v", d)
	}
	state := mustURL(cb).Query().Get("state")
	logs := n.logs.String()
	for _, secret := range []string{pre, state, n.redis.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold a secret (%.6s…)", secret)
		}
	}
}

// TestRedisPreAuthAtRest: Redis holds only the sealed record under a hash
// of the handle, with a TTL of the record's lifetime; a record moved to
// another handle's key does not open.
func TestRedisPreAuthAtRest(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	prefix := "t{" + randomToken(9) + "}:"
	ctx := context.Background()
	now := time.Now()
	st := newRedisPreAuth(r.store(t, testKey(2), 0, prefix), func() time.Time { return now })
	rec := &preAuth{Kind: "login", Provider: "staff", State: randomToken(32), Nonce: randomToken(32),
		Verifier: randomToken(32), ReturnTo: "/app/patient-4711", Expires: now.Add(preAuthTTL)}
	h, err := st.put(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	raw := r.Client(t)
	keys, err := raw.Keys(ctx, prefix+"*").Result()
	slices.Sort(keys)
	if want := []string{st.key(h), st.indexKey(), st.seqKey()}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("keys %v, %v; want %v", keys, err, want)
	}
	val, err := raw.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	index, err := raw.ZRange(ctx, st.indexKey(), 0, -1).Result()
	if err != nil || len(index) != 1 || index[0] != st.key(h) {
		t.Fatalf("index %v, %v; want the record's key only", index, err)
	}
	for _, secret := range []string{h, rec.State, rec.Nonce, rec.Verifier, rec.ReturnTo, "staff"} {
		if bytes.Contains(val, []byte(secret)) || strings.Contains(keys[0], secret) {
			t.Errorf("Redis holds %q in clear", secret)
		}
	}
	keys = keys[:1]
	ttl, err := raw.PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= preAuthTTL-time.Minute || ttl > preAuthTTL {
		t.Errorf("TTL %v (%v), want about %v", ttl, err, preAuthTTL)
	}

	// Moved to another handle: refused, never returned.
	other := randomToken(32)
	if err := raw.Set(ctx, st.key(other), val, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := st.take(ctx, other, now); got != nil || err == nil {
		t.Fatalf("moved record = %+v, %v; want an error", got, err)
	}
	if got, err := st.take(ctx, h, now); err != nil || !samePreAuth(got, rec) {
		t.Fatalf("own record = %+v, %v", got, err)
	}
}

// TestRedisPreAuthDown: every operation fails with an error once Redis is
// gone, never with a record or a silent "none".
func TestRedisPreAuthDown(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	ctx := context.Background()
	now := time.Now()
	st := newRedisPreAuth(r.store(t, testKey(2), 0, ""), nil)
	h, err := st.put(ctx, &preAuth{Kind: "login", State: "s", Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if _, err := st.put(ctx, &preAuth{Expires: now.Add(time.Minute)}); err == nil {
		t.Error("put with Redis down succeeded")
	}
	if got, err := st.peek(ctx, h, now); got != nil || err == nil {
		t.Errorf("peek with Redis down = %+v, %v", got, err)
	}
	if got, err := st.take(ctx, h, now); got != nil || err == nil {
		t.Errorf("take with Redis down = %+v, %v", got, err)
	}
}

// FuzzRedisPreAuthRecord feeds arbitrary bytes as the value Redis returns
// for a pre-auth key (Redis is outside a node's trust boundary). Nothing
// but the exact sealed record opens, and nothing panics.
func FuzzRedisPreAuthRecord(f *testing.F) {
	p := &redisPreAuth{aead: mustCodec(f).aead, prefix: "p:"}
	k := p.key(randomToken(32))
	good, err := p.seal(k, &preAuth{Kind: "login", State: "s", Expires: time.Unix(2e9, 0)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 40))
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := p.open(k, v)
		if err == nil && (!bytes.Equal(v, good) || rec.State != "s") {
			t.Fatalf("a forged record opened: %+v", rec)
		}
		if err != nil && rec != nil {
			t.Fatal("record returned with an error")
		}
	})
}

// TestPreAuthSignOutAcrossNodes: the sign-out round trip through the OP
// (RP-Initiated Logout 1.0) starts on one node and returns to the other,
// which still offers the return path chosen at sign-out.
func TestPreAuthSignOutAcrossNodes(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	n.signIn("/app/")
	if n.sessionCookie() == "" {
		t.Fatal("not signed in")
	}
	c := n.noRedirectClient()
	req, _ := http.NewRequest(http.MethodPost, n.url+"/.telegate/logout", strings.NewReader("rd=%2Fapp%2Fbye"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", n.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	op := continueSignOut(t, c, resp) // end_session_endpoint
	op.Body.Close()
	back := op.Header.Get("Location")
	if !strings.HasPrefix(back, n.url+"/.telegate/signed-out") {
		t.Fatalf("OP sent the browser to %q", back)
	}
	n.use(n.b)
	page := n.do(c, http.MethodGet, strings.TrimPrefix(back, n.url), nil)
	if body := bodyOf(page); page.StatusCode != http.StatusOK || !strings.Contains(body, `href="/app/bye"`) {
		t.Fatalf("signed-out page on the other node: %d\n%s", page.StatusCode, body)
	}
}

// TestRegression_LogoutTokenReplayAcrossNodes: a back-channel logout
// token carried out on one node is a replay on every other node sharing
// the Redis (OIDC Back-Channel Logout 1.0 §2.6): replayed to the first
// node it is refused and does not end the session signed in since; and
// while Redis is down a logout token is not accepted as fresh (the
// provider is told to retry), never silently taken.
func TestRegression_LogoutTokenReplayAcrossNodes(t *testing.T) {
	t.Parallel()
	n := newTwoNodes(t)
	n.use(n.a)
	n.signIn("/app/")
	token := n.op.signClaims(n.logoutClaims())

	n.use(n.b)
	if r := n.backchannel(token); r.StatusCode != http.StatusOK {
		t.Fatalf("logout on node B: %d", r.StatusCode)
	}
	n.use(n.a)
	if r := n.do(n.noRedirectClient(), http.MethodGet, "/app/", nil); r.StatusCode != http.StatusFound {
		t.Fatalf("node A still serves the session logged out on node B: %d", r.StatusCode)
	}
	n.signIn("/app/")
	if r := n.backchannel(token); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("the token replayed to node A: %d, want 400", r.StatusCode)
	}
	if r := n.get("/app/"); r.StatusCode != http.StatusOK || r.Header.Get("X-Subject") != "alice" {
		t.Fatalf("the replay ended the new session: %d", r.StatusCode)
	}
	if keys, _ := n.redis.Client(t).Keys(context.Background(), "*jti:*").Result(); len(keys) != 1 || strings.Contains(keys[0], "alice") {
		t.Fatalf("logout tokens in Redis: %v, want one hashed key", keys)
	}

	n.redis.Stop()
	if r := n.backchannel(n.op.signClaims(n.logoutClaims())); r.StatusCode == http.StatusOK || r.StatusCode == http.StatusBadRequest {
		t.Fatalf("a logout token with Redis down: %d, want an error the provider retries", r.StatusCode)
	}
}
