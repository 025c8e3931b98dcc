package auth

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
)

// benchService is a Service with only a store and a clock: what a session
// lookup touches.
func benchService(tb testing.TB, n int) (*View, []string, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "sessions.db")
	st, err := OpenBoltStore(path, testKey(3), n+1)
	if err != nil {
		tb.Fatal(err)
	}
	st.db.NoSync = true // setup speed only; lookups are reads
	now := time.Now()
	s := &View{Service: &Service{store: st, now: func() time.Time { return now },
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), audit: audit.Discard{}},
		idle: 15 * time.Minute, touchEvery: touchIntervalFor(15 * time.Minute), absolute: 12 * time.Hour,
		providers: map[string]*relyingParty{"staff": {cfg: config.Provider{ID: "staff", Issuer: "https://idp.hospital.example/realms/staff"}}}}
	s.metrics, _ = newMetrics(nil)
	tb.Cleanup(func() { _ = st.Close() })
	handles := make([]string, 0, n)
	groups := []string{"clinicians", "cardiology", "on-call", "staff-all", "badge-holders"}
	ctx := context.Background()
	const batch = 500
	for i := 0; i < n; i += batch {
		err := func() error {
			for j := i; j < i+batch && j < n; j++ {
				h, id := newHandle()
				sess := &Session{
					ID: id, Provider: "staff", Issuer: "https://idp.hospital.example/realms/staff", Subject: randomToken(16),
					SID: randomToken(12), Roles: []string{"clinician", "staff"}, Groups: groups, AMR: []string{"pwd", "otp"},
					Claims:   map[string]string{"name": "Dr Alice Example", "email": "alice@hospital.example", "preferred_username": "alice"},
					AuthTime: now, Created: now, LastSeen: now,
					IDToken:      randomToken(600), // a typical ~800-byte ID token
					RefreshToken: randomToken(100), TokenExpiry: now.Add(time.Hour),
				}
				s.sessionTimes(sess)
				if _, err := st.Put(ctx, sess); err != nil {
					return err
				}
				handles = append(handles, h)
			}
			return nil
		}()
		if err != nil {
			tb.Fatal(err)
		}
	}
	return s, handles, path
}

// BenchmarkSessionLookup measures one authenticated request's session work:
// hash the handle, find the record, check the clocks. "cold": the record is
// not in the memory cache (bbolt read, AES-GCM open, JSON decode); "cached":
// it is.
func BenchmarkSessionLookup(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cold", 1}, {"cached", DefaultSessionCacheSize}} {
		b.Run(tc.name, func(b *testing.B) {
			s, handles, _ := benchService(b, 2000)
			s.store.(*BoltStore).cache.Resize(tc.cache)
			ctx := context.Background()
			for _, h := range handles {
				_ = s.loadSession(ctx, h, true)
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if s.loadSession(ctx, handles[i%len(handles)], true) == nil {
					b.Fatal("session not found")
				}
				i++
			}
		})
	}
}

// TestIdleSessionFootprint measures what an idle session costs: Go heap
// (the store keeps records in its memory-mapped file, not on the heap) and
// bytes in the store file. Run with -v to see the figures.
func TestIdleSessionFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 2000 sessions")
	}
	// IDLE_SESSIONS sets the count (scripts/bench measures 100 000).
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("IDLE_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, handles, path := benchService(t, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapPer := (int64(after.HeapAlloc) - int64(before.HeapAlloc) - int64(len(handles))*(16+43)) / int64(n)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var data int
	_ = s.store.(*BoltStore).db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { data += len(k) + len(v); return nil })
		})
	})
	t.Logf("idle session: %d B of Go heap; %d B of records and indexes; file %d KiB for %d sessions", heapPer, data/n, fi.Size()>>10, n)
	if heapPer > 2048 {
		t.Errorf("idle session costs %d B of heap, budget 2048", heapPer)
	}

	// A session in use also has its decrypted record in the store's
	// bounded cache (at most DefaultSessionCacheSize of them).
	ctx := context.Background()
	for _, h := range handles {
		if s.loadSession(ctx, h, true) == nil {
			t.Fatal("session not found")
		}
	}
	var cached runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&cached)
	// The cache keeps at most DefaultSessionCacheSize of them.
	cachedPer := (int64(cached.HeapAlloc) - int64(after.HeapAlloc)) / int64(min(n, DefaultSessionCacheSize))
	t.Logf("session in the cache: %d B of Go heap each; cache bound %d sessions = %d KiB at most", cachedPer, DefaultSessionCacheSize, cachedPer*DefaultSessionCacheSize>>10)
	if cachedPer <= 0 || cachedPer > 8192 {
		t.Errorf("cached session costs %d B of heap, want 1..8192", cachedPer)
	}
	runtime.KeepAlive(s)
}
