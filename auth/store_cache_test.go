package auth

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openCacheTestStore(t *testing.T, max int) *BoltStore {
	t.Helper()
	st, err := OpenBoltStore(filepath.Join(t.TempDir(), "sessions.db"), testKey(7), max)
	if err != nil {
		t.Fatal(err)
	}
	st.db.NoSync = true
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func cacheTestSession(now time.Time, subject, sid string, expires time.Duration) *Session {
	_, id := newHandle()
	return &Session{
		ID: id, Provider: "staff", Issuer: "https://idp.example", Subject: subject, SID: sid,
		Roles: []string{"clinician"}, Groups: []string{"clinicians"},
		Claims:  map[string]string{"name": "Dr Example"},
		Created: now, LastSeen: now, Expires: now.Add(expires), IDToken: "header.payload.sig",
	}
}

// TestBoltStoreCacheForgetsEndedSessions is the regression test for the
// decrypted-session cache: once a session has been served from memory,
// every way of ending it (sign-out, back-channel logout by subject or by
// sid, the expiry sweep, eviction over the cap) makes the next Get answer
// ErrNotFound, and a replaced record is served with its new values.
func TestBoltStoreCacheForgetsEndedSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	cases := []struct {
		name string
		max  int
		end  func(t *testing.T, st *BoltStore, s *Session)
	}{
		{"delete (sign-out)", 0, func(t *testing.T, st *BoltStore, s *Session) {
			if _, err := st.Delete(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{"back-channel logout by subject", 0, func(t *testing.T, st *BoltStore, s *Session) {
			if _, err := st.DeleteBySubject(ctx, s.Issuer, s.Subject, ""); err != nil {
				t.Fatal(err)
			}
		}},
		{"back-channel logout by sid", 0, func(t *testing.T, st *BoltStore, s *Session) {
			if _, err := st.DeleteBySubject(ctx, s.Issuer, "", s.SID); err != nil {
				t.Fatal(err)
			}
		}},
		{"expiry sweep", 0, func(t *testing.T, st *BoltStore, s *Session) {
			if _, err := st.DeleteExpired(ctx, s.Expires); err != nil {
				t.Fatal(err)
			}
		}},
		{"evicted over the cap", 1, func(t *testing.T, st *BoltStore, s *Session) {
			if _, err := st.Put(ctx, cacheTestSession(now, "bob", "sid-b", time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := openCacheTestStore(t, tc.max)
			s := cacheTestSession(now, "alice", "sid-a", time.Minute)
			if _, err := st.Put(ctx, s); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			if !st.cached(s.ID) {
				t.Fatal("Get did not fill the cache")
			}
			tc.end(t, st, s)
			if st.cached(s.ID) {
				t.Error("ended session still in the cache")
			}
			if got, err := st.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after the end = %+v, %v; want ErrNotFound", got, err)
			}
		})
	}

	t.Run("replaced record", func(t *testing.T) {
		t.Parallel()
		st := openCacheTestStore(t, 0)
		s := cacheTestSession(now, "alice", "", time.Minute)
		if _, err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		s2 := *s
		s2.Roles = []string{"nurse"}
		s2.LastSeen = now.Add(time.Minute)
		if _, err := st.Put(ctx, &s2); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Roles) != 1 || got.Roles[0] != "nurse" || !got.LastSeen.Equal(s2.LastSeen) {
			t.Errorf("Get after replace = roles %v last seen %v; want [nurse] %v", got.Roles, got.LastSeen, s2.LastSeen)
		}
	})
}

// TestBoltStoreCacheCopies: what a caller does to a returned session never
// reaches the next caller.
func TestBoltStoreCacheCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openCacheTestStore(t, 0)
	now := time.Now()
	s := cacheTestSession(now, "alice", "", time.Minute)
	if _, err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // miss, then hit
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Roles) != 1 || got.Roles[0] != "clinician" || !got.LastSeen.Equal(now) {
			t.Fatalf("Get %d = roles %v last seen %v; want [clinician] %v", i, got.Roles, got.LastSeen, now)
		}
		got.LastSeen = now.Add(time.Hour)
		got.Roles = append(got.Roles, "admin")
		got.Subject = "mallory"
	}
	got, _ := st.Get(ctx, s.ID)
	if got.Subject != "alice" || len(got.Roles) != 1 {
		t.Errorf("cached record changed by a caller: %+v", got)
	}
}

// TestBoltStoreCacheBounded: the cache never holds more than its size.
func TestBoltStoreCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openCacheTestStore(t, 0)
	st.cache.Resize(8)
	now := time.Now()
	var ids []string
	for i := 0; i < 30; i++ {
		s := cacheTestSession(now, "u", "", time.Hour)
		if _, err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	for _, id := range ids {
		if _, err := st.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	st.cacheMu.Lock()
	n := st.cache.Len()
	st.cacheMu.Unlock()
	if n != 8 {
		t.Errorf("cache holds %d records, want its size 8", n)
	}
	if !st.cached(ids[len(ids)-1]) || st.cached(ids[0]) {
		t.Error("cache does not evict the least recently used record")
	}
	for _, id := range ids { // evicted records are still persisted
		if _, err := st.Get(ctx, id); err != nil {
			t.Errorf("Get %s after eviction from memory: %v", id, err)
		}
	}
}

// TestBoltStoreCacheDeleteRace: a Get that read the file before a Delete
// never puts the deleted record back into the cache.
func TestBoltStoreCacheDeleteRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openCacheTestStore(t, 0)
	now := time.Now()
	for i := 0; i < 50; i++ {
		s := cacheTestSession(now, "alice", "", time.Hour)
		if _, err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for j := 0; j < 4; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = st.Get(ctx, s.ID)
					}
				}
			}()
		}
		time.Sleep(100 * time.Microsecond)
		if _, err := st.Delete(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if _, err := st.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: deleted session served: %v", i, err)
		}
	}
}

// TestCachedSessionDeadlines: a session served from the cache is still
// checked against the idle and absolute deadlines on every request, and
// ended (removed from the store) when past one.
func TestCachedSessionDeadlines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		advance time.Duration
	}{
		{"idle", 15 * time.Minute},
		{"absolute", 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, handles, _ := benchService(t, 1)
			ctx := context.Background()
			clock := s.now()
			s.now = func() time.Time { return clock }
			for range 2 { // fill the cache, then hit it
				if s.loadSession(ctx, handles[0], true) == nil {
					t.Fatal("live session not found")
				}
			}
			id := sessionIDFor(handles[0])
			if !s.store.(*BoltStore).cached(id) {
				t.Fatal("session not served from the cache")
			}
			clock = clock.Add(tc.advance)
			if s.loadSession(ctx, handles[0], true) != nil {
				t.Fatalf("session past its %s deadline served", tc.name)
			}
			if _, err := s.store.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("session past its deadline still stored: %v", err)
			}
		})
	}
}

// countingStore counts writes (Put and Touch) on a real store.
type countingStore struct {
	SessionStore
	mu   sync.Mutex
	puts int
}

func (c *countingStore) Put(ctx context.Context, s *Session) ([]*Session, error) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // a slow disk: the window for a burst
	return c.SessionStore.Put(ctx, s)
}

func (c *countingStore) Touch(ctx context.Context, s *Session) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	return c.SessionStore.Touch(ctx, s)
}

// TestSessionTouchOnce: many concurrent requests of one session past
// the touch interval record its use once, the new LastSeen is persisted, and the
// session stays in the cache.
func TestSessionTouchOnce(t *testing.T) {
	t.Parallel()
	s, handles, _ := benchService(t, 1)
	bolt := s.store.(*BoltStore)
	cs := &countingStore{SessionStore: bolt}
	s.store = cs
	ctx := context.Background()
	clock := s.now().Add(2 * s.touchEvery)
	s.now = func() time.Time { return clock }
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.loadSession(ctx, handles[0], true) == nil {
				t.Error("live session not found")
			}
		}()
	}
	wg.Wait()
	if cs.puts != 1 {
		t.Errorf("%d store writes for one touch, want 1", cs.puts)
	}
	id := sessionIDFor(handles[0])
	if !bolt.cached(id) {
		t.Error("touched session left the cache")
	}
	bolt.cacheMu.Lock()
	bolt.cache.Purge()
	bolt.cacheMu.Unlock()
	got, err := bolt.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(clock) {
		t.Errorf("stored LastSeen = %v, want %v", got.LastSeen, clock)
	}
}
