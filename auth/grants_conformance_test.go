package auth

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/grants"
)

// grantStoreUnderTest is a fresh, empty grant store and a way to read
// everything it holds at rest (file bytes, Redis keys and values).
type grantStoreUnderTest struct {
	grants.Store
	atRest func(t *testing.T) []byte
}

// runGrantStoreConformance is the contract of grants.Store: the embedded
// store and the Redis store both run it.
func runGrantStoreConformance(t *testing.T, newStore func(t *testing.T, l grants.Limits) grantStoreUnderTest) {
	ctx := context.Background()
	now := time.Now().Round(time.Millisecond).UTC()
	mk := func(route, sub string, created time.Time, d time.Duration) *grants.Grant {
		return &grants.Grant{ID: grants.NewID(), Route: route, Provider: "staff", Issuer: "https://idp.test", Subject: sub,
			Reason: "emergency-care", Node: "n1", Created: created, Expires: created.Add(d)}
	}
	create := func(t *testing.T, st grants.Store, g *grants.Grant) {
		t.Helper()
		if err := st.Create(ctx, g, g.Created); err != nil {
			t.Fatalf("Create(%s): %v", g.Subject, err)
		}
	}
	review := grants.Review{Outcome: "justified", Note: "seen", Issuer: "https://idp.test", Subject: "officer", Via: "page", Time: now}

	t.Run("round trip and active window", func(t *testing.T) {
		st := newStore(t, grants.Limits{Max: 10, PerSubject: 3})
		g := mk("records", "alice", now, 30*time.Minute)
		create(t, st, g)
		got, err := st.Get(ctx, g.ID)
		if err != nil || got.Route != "records" || got.Subject != "alice" || got.Reason != "emergency-care" || !got.Expires.Equal(g.Expires) || got.Review != nil {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if a, err := st.Active(ctx, "records", g.Issuer, "alice", now.Add(time.Minute)); err != nil || a.ID != g.ID {
			t.Fatalf("Active within the window = %+v, %v", a, err)
		}
		for _, tc := range []struct{ name, route, iss, sub string }{
			{"other route", "billing", g.Issuer, "alice"},
			{"other subject", "records", g.Issuer, "bob"},
			{"other issuer", "records", "https://evil.test", "alice"},
		} {
			if _, err := st.Active(ctx, tc.route, tc.iss, tc.sub, now.Add(time.Minute)); !errors.Is(err, grants.ErrNotFound) {
				t.Errorf("Active, %s: %v, want grants.ErrNotFound", tc.name, err)
			}
		}
		for _, at := range []time.Time{g.Expires, g.Expires.Add(time.Hour)} {
			if _, err := st.Active(ctx, "records", g.Issuer, "alice", at); !errors.Is(err, grants.ErrNotFound) {
				t.Errorf("Active at %v (expiry %v): %v, want grants.ErrNotFound", at, g.Expires, err)
			}
		}
		if _, err := st.Get(ctx, "nope"); !errors.Is(err, grants.ErrNotFound) {
			t.Errorf("Get unknown: %v", err)
		}
		// The latest grant on the route is the active one.
		g2 := mk("records", "alice", now.Add(time.Minute), time.Hour)
		create(t, st, g2)
		if a, err := st.Active(ctx, "records", g.Issuer, "alice", now.Add(2*time.Minute)); err != nil || a.ID != g2.ID {
			t.Errorf("Active after a second grant = %+v, %v, want %s", a, err, g2.ID)
		}
	})

	t.Run("list newest first", func(t *testing.T) {
		st := newStore(t, grants.Limits{})
		var want []string
		for i := range 5 {
			g := mk("records", "alice", now.Add(time.Duration(i)*time.Second), time.Second)
			create(t, st, g)
			want = append([]string{g.ID}, want...)
		}
		all, err := st.List(ctx, 0)
		if err != nil || len(all) != 5 {
			t.Fatalf("List = %d, %v", len(all), err)
		}
		for i := range all {
			if all[i].ID != want[i] {
				t.Fatalf("List[%d] = %s, want %s (newest first)", i, all[i].ID, want[i])
			}
		}
		if two, err := st.List(ctx, 2); err != nil || len(two) != 2 || two[0].ID != want[0] {
			t.Errorf("List(2) = %d, %v", len(two), err)
		}
	})

	t.Run("review once", func(t *testing.T) {
		st := newStore(t, grants.Limits{Max: 10})
		g := mk("records", "alice", now, time.Minute)
		create(t, st, g)
		got, err := st.Review(ctx, g.ID, review)
		if err != nil || got.Review == nil || got.Review.Outcome != "justified" {
			t.Fatalf("Review = %+v, %v", got, err)
		}
		if got, err := st.Get(ctx, g.ID); err != nil || got.Review == nil || got.Review.Subject != "officer" || got.Review.Note != "seen" || !got.Review.Time.Equal(now) {
			t.Fatalf("Get after review = %+v, %v", got, err)
		}
		second := review
		second.Outcome = "unjustified"
		if _, err := st.Review(ctx, g.ID, second); !errors.Is(err, grants.ErrReviewed) {
			t.Errorf("second review: %v, want grants.ErrReviewed", err)
		}
		if got, _ := st.Get(ctx, g.ID); got.Review.Outcome != "justified" {
			t.Errorf("the first review must stand, got %q", got.Review.Outcome)
		}
		if _, err := st.Review(ctx, "nope", review); !errors.Is(err, grants.ErrNotFound) {
			t.Errorf("review of an unknown grant: %v", err)
		}
	})

	t.Run("concurrent reviews: one stands", func(t *testing.T) {
		st := newStore(t, grants.Limits{})
		g := mk("records", "alice", now, time.Minute)
		create(t, st, g)
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := st.Review(ctx, g.ID, review)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, grants.ErrReviewed):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || refused.Load() != 7 {
			t.Errorf("reviews: %d stood, %d refused; want 1 and 7", ok.Load(), refused.Load())
		}
	})

	t.Run("per-subject cap", func(t *testing.T) {
		st := newStore(t, grants.Limits{Max: 100, PerSubject: 3})
		var wg sync.WaitGroup
		var ok, capped atomic.Int32
		for i := range 10 {
			wg.Go(func() {
				g := mk("r"+string(rune('a'+i)), "alice", now, time.Minute)
				switch err := st.Create(ctx, g, now); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, grants.ErrSubjectLimit):
					capped.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 3 || capped.Load() != 7 {
			t.Fatalf("concurrent grants of one subject: %d made, %d capped; want 3 and 7", ok.Load(), capped.Load())
		}
		create(t, st, mk("records", "bob", now, time.Minute)) // another subject is not held back
		// Expired grants no longer count.
		later := now.Add(2 * time.Minute)
		if err := st.Create(ctx, mk("records", "alice", later, time.Minute), later); err != nil {
			t.Errorf("after the window: %v", err)
		}
	})

	t.Run("global cap evicts only reviewed grants", func(t *testing.T) {
		st := newStore(t, grants.Limits{Max: 3})
		var gs []*grants.Grant
		for i := range 3 {
			g := mk("records", "u"+string(rune('a'+i)), now.Add(time.Duration(i)*time.Second), time.Minute)
			create(t, st, g)
			gs = append(gs, g)
		}
		extra := mk("records", "ux", now.Add(5*time.Second), time.Minute)
		if err := st.Create(ctx, extra, extra.Created); !errors.Is(err, grants.ErrStoreFull) {
			t.Fatalf("past the cap with nothing reviewed: %v, want grants.ErrStoreFull", err)
		}
		if _, err := st.Review(ctx, gs[1].ID, review); err != nil {
			t.Fatal(err)
		}
		create(t, st, extra)
		if _, err := st.Get(ctx, gs[1].ID); !errors.Is(err, grants.ErrNotFound) {
			t.Errorf("the reviewed grant should have made room: %v", err)
		}
		for _, g := range []*grants.Grant{gs[0], gs[2], extra} {
			if _, err := st.Get(ctx, g.ID); err != nil {
				t.Errorf("unreviewed grant %s lost: %v", g.Subject, err)
			}
		}
		if all, _ := st.List(ctx, 0); len(all) != 3 {
			t.Errorf("List = %d grants, want 3", len(all))
		}
	})

	t.Run("sealed at rest", func(t *testing.T) {
		st := newStore(t, grants.Limits{})
		g := mk("records", "patient-chart-4711", now, time.Minute)
		g.Issuer = "https://idp.secret-hospital.test"
		create(t, st, g)
		if _, err := st.Review(ctx, g.ID, grants.Review{Outcome: "justified", Note: "Jane Doe chart", Issuer: g.Issuer, Subject: "officer-99", Time: now}); err != nil {
			t.Fatal(err)
		}
		raw := st.atRest(t)
		for _, s := range []string{"patient-chart-4711", "secret-hospital", "emergency-care", "Jane Doe", "officer-99"} {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("%q readable at rest", s)
			}
		}
	})
}

func TestBoltGrantStoreConformance(t *testing.T) {
	t.Parallel()
	runGrantStoreConformance(t, func(t *testing.T, l grants.Limits) grantStoreUnderTest {
		path := filepath.Join(t.TempDir(), "sessions.db")
		st, err := OpenBoltStore(path, testKey(1), 10)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return grantStoreUnderTest{st.Grants(l), func(t *testing.T) []byte {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}}
	})
}

func TestRedisGrantStoreConformance(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	runGrantStoreConformance(t, func(t *testing.T, l grants.Limits) grantStoreUnderTest {
		prefix := "t{" + randomToken(9) + "}:"
		st := r.store(t, testKey(1), 10, prefix)
		return grantStoreUnderTest{st.Grants(l), func(t *testing.T) []byte {
			ctx := context.Background()
			raw := r.Client(t)
			keys, err := raw.Keys(ctx, prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			var all bytes.Buffer
			for _, k := range keys {
				all.WriteString(k)
				dump, err := raw.Dump(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				all.WriteString(dump)
			}
			if all.Len() == 0 {
				t.Fatal("nothing stored")
			}
			return all.Bytes()
		}}
	})
}

// TestBoltGrantsSurviveRestart: grants and their reviews are in the file,
// not in memory: a reopened store lists them.
func TestBoltGrantsSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	now := time.Now()
	st, err := OpenBoltStore(path, testKey(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	g := &grants.Grant{ID: grants.NewID(), Route: "records", Issuer: "https://idp.test", Subject: "alice", Reason: "emergency-care", Created: now, Expires: now.Add(time.Hour)}
	if err := st.Grants(grants.Limits{}).Create(ctx, g, now); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenBoltStore(path, testKey(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs := st.Grants(grants.Limits{})
	if all, err := gs.List(ctx, 0); err != nil || len(all) != 1 || all[0].ID != g.ID {
		t.Fatalf("after reopening: %+v, %v", all, err)
	}
	if _, err := gs.Active(ctx, "records", g.Issuer, "alice", now.Add(time.Minute)); err != nil {
		t.Errorf("active after reopening: %v", err)
	}
	// Another key cannot read them.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := OpenBoltStore(path, testKey(2), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, err := st2.Grants(grants.Limits{}).Get(ctx, g.ID); err == nil {
		t.Error("a grant opened under another key")
	}
}
