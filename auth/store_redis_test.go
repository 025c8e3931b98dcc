package auth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"

	"github.com/telegate/telegate/config"
)

// testRedis is a redis-server the test started (internal/redistest).
type testRedis struct{ *redistest.Server }

func startRedis(t *testing.T) *testRedis { return &testRedis{redistest.Start(t)} }

func (r *testRedis) store(t *testing.T, key []byte, max int, prefix string) *RedisStore {
	t.Helper()
	if prefix == "" {
		prefix = "t{" + randomToken(9) + "}:"
	}
	st, err := OpenRedisStore(context.Background(), RedisOptions{
		Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Key: key, MaxSessions: max, Prefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestRedisStoreConformance(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	runStoreConformance(t, func(t *testing.T, max int) SessionStore {
		return r.store(t, testKey(1), max, "")
	})
}

func TestRedisStoreAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	prefix := "rest{x}:"
	st := r.store(t, testKey(1), 10, prefix)
	handle, id := newHandle()
	s := &Session{ID: id, Issuer: "https://idp.test", Subject: "patient-4711", SID: "idp-sid",
		Claims: map[string]string{"email": "patient@h.test"}, RefreshToken: "refresh-token-value", Expires: time.Now().Add(time.Hour)}
	if _, err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	_, id2 := newHandle()
	s2 := *s
	s2.ID = id2
	if _, err := st.Put(ctx, &s2); err != nil {
		t.Fatal(err)
	}

	raw := r.Client(t)
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, k := range keys {
		all.WriteString(k)
		switch raw.Type(ctx, k).Val() {
		case "string":
			all.WriteString(raw.Get(ctx, k).Val())
		case "set":
			all.WriteString(strings.Join(raw.SMembers(ctx, k).Val(), " "))
		case "zset":
			all.WriteString(strings.Join(raw.ZRange(ctx, k, 0, -1).Val(), " "))
		}
	}
	for _, secret := range []string{handle, "patient-4711", "patient@h.test", "refresh-token-value", "idp-sid", "idp.test"} {
		if bytes.Contains(all.Bytes(), []byte(secret)) {
			t.Errorf("redis holds %q in the clear", secret)
		}
	}

	// A record copied to another id fails authentication (id is AAD).
	v := raw.Get(ctx, prefix+"s:"+id).Val()
	raw.Set(ctx, prefix+"s:"+id2, v, time.Hour)
	if _, err := st.Get(ctx, id2); err == nil {
		t.Error("a record copied to another id was accepted")
	}
	// Another node with another key opens nothing.
	other := r.store(t, testKey(2), 10, prefix)
	if _, err := other.Get(ctx, id); err == nil {
		t.Error("a record decrypted under the wrong key")
	}
}

func TestRedisStoreTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	prefix := "ttl{x}:"
	st := r.store(t, testKey(1), 10, prefix)
	raw := r.Client(t)
	_, id := newHandle()
	s := &Session{ID: id, Issuer: "https://idp.test", Subject: "a", SID: "s", Expires: time.Now().Add(10 * time.Minute)}
	if _, err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	want := 10*time.Minute + 5*time.Minute // Expires − now + Grace
	for _, k := range []string{
		prefix + "s:" + id,
		prefix + "sub:" + fmt.Sprintf("%x", indexHash(s.Issuer, s.Subject)),
		prefix + "sid:" + fmt.Sprintf("%x", indexHash(s.Issuer, s.SID)),
	} {
		got := raw.PTTL(ctx, k).Val()
		if got < want-5*time.Second || got > want {
			t.Errorf("TTL of %s = %v, want about %v", k, got, want)
		}
	}
	// A second session of the same subject that ends sooner leaves the
	// subject's index as long-lived as its longest member.
	_, id2 := newHandle()
	s2 := &Session{ID: id2, Issuer: s.Issuer, Subject: s.Subject, Expires: time.Now().Add(time.Minute)}
	if _, err := st.Put(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if got := raw.PTTL(ctx, prefix+"s:"+id2).Val(); got > 6*time.Minute || got < 5*time.Minute {
		t.Errorf("TTL of the shorter record = %v, want about 6m", got)
	}
	if got := raw.PTTL(ctx, prefix+"sub:"+fmt.Sprintf("%x", indexHash(s.Issuer, s.Subject))).Val(); got < want-5*time.Second {
		t.Errorf("index TTL shrank to %v", got)
	}
}

// TestRedisStoreSweepAcrossNodes: two nodes share one Redis; each expired
// session is handed to exactly one node's sweep, so its end hooks run once.
func TestRedisStoreSweepAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	a := r.store(t, testKey(1), 1000, "nodes{x}:")
	b := r.store(t, testKey(1), 1000, "nodes{x}:")
	now := time.Now()
	const n = 200
	for i := 0; i < n; i++ {
		_, id := newHandle()
		if _, err := a.Put(ctx, &Session{ID: id, Issuer: "i", Subject: fmt.Sprint(i), Expires: now.Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var ga, gb []*Session
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); ga, ea = a.DeleteExpired(ctx, now) }()
	go func() { defer wg.Done(); gb, eb = b.DeleteExpired(ctx, now) }()
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatal(ea, eb)
	}
	seen := map[string]bool{}
	for _, s := range append(ga, gb...) {
		if seen[s.ID] {
			t.Fatalf("session %s swept by both nodes", s.ID)
		}
		seen[s.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("swept %d sessions, want %d", len(seen), n)
	}
}

// TestRedisStoreDownFailsClosed is the regression test for the rule that
// a dependency that is down never turns a deny into an allow: a signed-in
// user whose session lives in Redis is treated as signed out once Redis
// stops, and the error is not mistaken for "no such session".
// TestRedisStoreDownKeepsLiveSessions: with Redis gone, a session this
// node saw confirmed keeps reaching its route within its idle window; a
// request without one is sent to sign in (pages) or refused (API), and
// the lookup failure is logged without the password or the cookie; once
// the idle window has passed the session is refused too (fail closed).
func TestRedisStoreDownKeepsLiveSessions(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	h := newHarness(t, func(h *harness) {
		h.cfg.Sessions.Store = "redis"
		h.cfg.Sessions.EncryptionKey = base64.StdEncoding.EncodeToString(testKey(7))
		h.cfg.Sessions.IdleTimeout = 2 * time.Second
		h.cfg.Redis = config.Redis{Addr: r.Addr, Password: r.Password}
	})
	if _, ok := h.svc.store.(*RedisStore); !ok {
		t.Fatalf("store is %T, want *RedisStore", h.svc.store)
	}
	h.signIn("/app/")
	if resp := h.get("/app/"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Subject") != "alice" {
		t.Fatalf("signed in with Redis up: %d", resp.StatusCode)
	}

	r.Stop()
	start := time.Now()
	if resp := h.get("/app/"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Subject") != "alice" {
		t.Fatalf("live session with Redis down: %d subject %q, want 200 alice", resp.StatusCode, resp.Header.Get("X-Subject"))
	}
	anon := &http.Client{Transport: h.noRedirectClient().Transport, CheckRedirect: h.noRedirectClient().CheckRedirect}
	if resp := h.do(anon, http.MethodGet, "/app/", nil); resp.StatusCode != http.StatusFound || resp.Header.Get("X-Subject") != "" {
		t.Fatalf("page without a session, Redis down: %d subject %q, want 302 to sign-in", resp.StatusCode, resp.Header.Get("X-Subject"))
	}
	st := h.svc.store.(*RedisStore)
	if _, err := st.Get(context.Background(), sessionIDFor("unknown-handle-0123456789")); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a session never seen, Redis down = %v, want a connection error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("requests with Redis down took %v", d)
	}

	// Past the idle window (the node's clock and the record's age both).
	h.clock.Advance(3 * time.Second)
	time.Sleep(2 * time.Second)
	if resp := h.do(h.noRedirectClient(), http.MethodGet, "/app/", nil); resp.StatusCode != http.StatusFound || resp.Header.Get("X-Subject") != "" {
		t.Fatalf("session past its idle window, Redis down: %d subject %q, want 302 to sign-in", resp.StatusCode, resp.Header.Get("X-Subject"))
	}
	if _, err := st.Get(context.Background(), sessionIDFor(h.sessionCookie())); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get past the idle window with Redis down = %v, want a connection error", err)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "session lookup failed") {
		t.Errorf("the lookup failure was not logged:\n%s", logs)
	}
	if strings.Contains(logs, r.Password) || strings.Contains(logs, h.sessionCookie()) {
		t.Error("logs hold the Redis password or the session cookie")
	}
}

// TestRegression_RedisDownNeverUndoesAnEnd: every way this node ends a
// session — sign-out (Delete), back-channel logout by subject or by sid,
// the expiry sweep — forgets the last-known copy even when Redis does not
// answer, so the session is not served from memory during the outage.
func TestRegression_RedisDownNeverUndoesAnEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		end  func(st *RedisStore, s *Session)
	}{
		{"sign-out", func(st *RedisStore, s *Session) { _, _ = st.Delete(ctx, s.ID) }},
		{"back-channel logout by subject", func(st *RedisStore, s *Session) { _, _ = st.DeleteBySubject(ctx, s.Issuer, s.Subject, "") }},
		{"back-channel logout by subject and sid", func(st *RedisStore, s *Session) { _, _ = st.DeleteBySubject(ctx, s.Issuer, s.Subject, s.SID) }},
		{"back-channel logout by sid", func(st *RedisStore, s *Session) { _, _ = st.DeleteBySubject(ctx, s.Issuer, "", s.SID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startRedis(t)
			st, err := OpenRedisStore(ctx, RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Key: testKey(3), Stale: time.Minute, Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			now := time.Now()
			s, other := cacheTestSession(now, "alice", "sid-a", time.Hour), cacheTestSession(now, "bob", "sid-b", time.Hour)
			for _, x := range []*Session{s, other} {
				if _, err := st.Put(ctx, x); err != nil {
					t.Fatal(err)
				}
			}
			r.Stop()
			if got, err := st.Get(ctx, s.ID); err != nil || got.Subject != "alice" {
				t.Fatalf("confirmed session with Redis down: %v %v", got, err)
			}
			tc.end(st, s)
			if got, err := st.Get(ctx, s.ID); err == nil {
				t.Fatalf("ended session served with Redis down: %+v", got)
			}
			if got, err := st.Get(ctx, other.ID); err != nil || got.Subject != "bob" {
				t.Fatalf("another session lost with Redis down: %v %v", got, err)
			}
		})
	}
}

func TestOpenStoreRedisConfig(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	key := base64.StdEncoding.EncodeToString(testKey(3))
	pwFile := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pwFile, []byte(r.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     config.Config
		wantErr string
	}{
		{"password file", config.Config{Sessions: config.Sessions{Store: "redis", EncryptionKey: key},
			Redis: config.Redis{Addr: r.Addr, PasswordFile: pwFile}}, ""},
		{"inline password", config.Config{Sessions: config.Sessions{Store: "redis", EncryptionKey: key},
			Redis: config.Redis{Addr: r.Addr, Password: r.Password}}, ""},
		{"wrong password", config.Config{Sessions: config.Sessions{Store: "redis", EncryptionKey: key},
			Redis: config.Redis{Addr: r.Addr, Password: "wrong"}}, "WRONGPASS"},
		{"no password", config.Config{Sessions: config.Sessions{Store: "redis", EncryptionKey: key},
			Redis: config.Redis{Addr: r.Addr}}, "NOAUTH"},
		{"no shared key", config.Config{DataDir: t.TempDir(), Sessions: config.Sessions{Store: "redis"},
			Redis: config.Redis{Addr: r.Addr, Password: r.Password}}, "encryption_key"},
		{"no address", config.Config{Sessions: config.Sessions{Store: "redis", EncryptionKey: key}}, "redis.addr"},
		{"unknown store", config.Config{Sessions: config.Sessions{Store: "memcached"}}, "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.ApplyDefaults()
			st, err := OpenStore(&tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := st.(*RedisStore); !ok {
					t.Fatalf("store is %T", st)
				}
				_ = st.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("OpenStore = %v, want an error containing %q", err, tc.wantErr)
			}
			if r.Password != "" && strings.Contains(err.Error(), r.Password) {
				t.Fatal("error holds the password")
			}
		})
	}
}

// FuzzRedisRecord feeds arbitrary bytes as the record Redis returns for a
// session id (Redis is outside the trust boundary of a node: anyone with
// write access to it could plant records). Nothing but the exact sealed
// record opens, and nothing panics.
func FuzzRedisRecord(f *testing.F) {
	st := &RedisStore{codec: mustCodec(f)}
	_, id := newHandle()
	good, err := st.codec.seal(&Session{ID: id, Issuer: "https://idp.test", Subject: "alice", SID: "s", Expires: time.Unix(2e9, 0)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 80))
	f.Fuzz(func(t *testing.T, v []byte) {
		sess, err := st.codec.open(id, v)
		if err == nil && (!bytes.Equal(v, good) || sess.Subject != "alice") {
			t.Fatalf("a forged record opened: %+v", sess)
		}
		// The script reply decoder skips what does not open.
		for _, s := range st.pairs([]any{id, string(v), "odd"}) {
			if s.ID != id {
				t.Fatalf("pairs returned %q", s.ID)
			}
		}
	})
}

func mustCodec(tb testing.TB) *BoltStore {
	tb.Helper()
	block, err := aes.NewCipher(testKey(5))
	if err != nil {
		tb.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	return &BoltStore{aead: aead}
}

// TestRedisStoreLogoutNotUndoneByTouch is the regression test for a
// sign-out racing a request on another node: node B read the session just
// before node A ended it (back-channel logout); B's touch must not store
// the session again.
func TestRedisStoreLogoutNotUndoneByTouch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	a := r.store(t, testKey(1), 100, "race{x}:")
	b := r.store(t, testKey(1), 100, "race{x}:")
	ends := []struct {
		name string
		end  func(s *Session) error
	}{
		{"sign-out", func(s *Session) error { _, err := a.Delete(ctx, s.ID); return err }},
		{"back-channel logout", func(s *Session) error {
			_, err := a.DeleteBySubject(ctx, s.Issuer, s.Subject, "")
			return err
		}},
		{"sweep", func(s *Session) error { _, err := a.DeleteExpired(ctx, s.Expires.Add(time.Millisecond)); return err }},
	}
	for _, tc := range ends {
		_, id := newHandle()
		s := &Session{ID: id, Issuer: "https://idp.test", Subject: "alice-" + tc.name, Expires: time.Now().Add(time.Hour)}
		if _, err := a.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		seen, err := b.Get(ctx, id) // node B, mid-request
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.end(s); err != nil {
			t.Fatal(err)
		}
		seen.LastSeen = time.Now()
		if _, err := b.Put(ctx, seen); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("%s: touch after the end = %v, want ErrSessionEnded", tc.name, err)
		}
		if _, err := a.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: session back after its end (%v)", tc.name, err)
		}
	}
}
