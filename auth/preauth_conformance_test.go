package auth

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runPreAuthConformance checks what every preAuthStore promises: records
// come back intact, peek leaves them, take returns each at most once (also
// under concurrent takes), expired and malformed handles match nothing.
//
// open gives a store holding at most size records; the table keeps its cap,
// the least recently created records evicted first.
func runPreAuthConformance(t *testing.T, open func(t *testing.T, size int) preAuthStore) {
	ctx := context.Background()
	now := time.Now()
	rec := func() *preAuth {
		return &preAuth{
			Kind: "login", Provider: "staff", State: randomToken(32), Nonce: randomToken(32),
			Verifier: randomToken(32), ReturnTo: "/app/?a=1", Expires: now.Add(preAuthTTL).Round(0),
		}
	}
	mustPut := func(t *testing.T, st preAuthStore, r *preAuth) string {
		t.Helper()
		h, err := st.put(ctx, r)
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		if !validHandle(h) {
			t.Fatalf("handle %q is not a valid cookie handle", h)
		}
		return h
	}

	t.Run("peek then take once", func(t *testing.T) {
		t.Parallel()
		st := open(t, maxPreAuth)
		want := rec()
		h := mustPut(t, st, want)
		for i := 0; i < 2; i++ {
			got, err := st.peek(ctx, h, now)
			if err != nil || !samePreAuth(got, want) {
				t.Fatalf("peek %d = %+v, %v; want %+v", i, got, err, want)
			}
		}
		got, err := st.take(ctx, h, now)
		if err != nil || !samePreAuth(got, want) {
			t.Fatalf("take = %+v, %v; want %+v", got, err, want)
		}
		if got, err := st.take(ctx, h, now); got != nil || err != nil {
			t.Fatalf("second take = %+v, %v; want nothing", got, err)
		}
		if got, err := st.peek(ctx, h, now); got != nil || err != nil {
			t.Fatalf("peek after take = %+v, %v; want nothing", got, err)
		}
	})

	t.Run("handles are distinct", func(t *testing.T) {
		t.Parallel()
		st := open(t, maxPreAuth)
		a, b := rec(), rec()
		ha, hb := mustPut(t, st, a), mustPut(t, st, b)
		if ha == hb {
			t.Fatal("two records got one handle")
		}
		if got, _ := st.take(ctx, hb, now); got == nil || got.State != b.State {
			t.Fatal("take returned another record")
		}
		if got, _ := st.take(ctx, ha, now); got == nil || got.State != a.State {
			t.Fatal("taking one record removed another")
		}
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		st := open(t, maxPreAuth)
		r := rec()
		h := mustPut(t, st, r)
		for _, at := range []time.Time{r.Expires, r.Expires.Add(time.Minute)} {
			if got, err := st.peek(ctx, h, at); got != nil || err != nil {
				t.Fatalf("peek at %v = %+v, %v; want nothing", at.Sub(now), got, err)
			}
			if got, err := st.take(ctx, h, at); got != nil || err != nil {
				t.Fatalf("take at %v = %+v, %v; want nothing", at.Sub(now), got, err)
			}
		}
	})

	t.Run("unknown and malformed handles", func(t *testing.T) {
		t.Parallel()
		st := open(t, maxPreAuth)
		mustPut(t, st, rec())
		for _, h := range []string{"", randomToken(32), strings.Repeat("a", 65), strings.Repeat("a", 4096)} {
			if got, err := st.peek(ctx, h, now); got != nil || err != nil {
				t.Errorf("peek(%.10q) = %+v, %v", h, got, err)
			}
			if got, err := st.take(ctx, h, now); got != nil || err != nil {
				t.Errorf("take(%.10q) = %+v, %v", h, got, err)
			}
		}
	})

	t.Run("bounded, oldest evicted first", func(t *testing.T) {
		t.Parallel()
		const size = 4
		st := open(t, size)
		var hs []string
		for i := 0; i < size+3; i++ {
			hs = append(hs, mustPut(t, st, rec()))
		}
		for i, h := range hs {
			got, err := st.peek(ctx, h, now)
			if err != nil {
				t.Fatal(err)
			}
			if kept := i >= len(hs)-size; kept != (got != nil) {
				t.Errorf("record %d of %d: kept %v, want %v (cap %d)", i+1, len(hs), got != nil, kept, size)
			}
		}
		// A taken record frees its place: the next put evicts nobody.
		if got, _ := st.take(ctx, hs[len(hs)-1], now); got == nil {
			t.Fatal("newest record not taken")
		}
		mustPut(t, st, rec())
		if got, _ := st.peek(ctx, hs[len(hs)-size], now); got == nil {
			t.Error("a put after a take evicted a record: the taken one still held its place")
		}
	})

	t.Run("concurrent takes return it once", func(t *testing.T) {
		t.Parallel()
		st := open(t, maxPreAuth)
		h := mustPut(t, st, rec())
		var got atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := st.take(ctx, h, now)
				if err != nil {
					t.Error(err)
				}
				if r != nil {
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := got.Load(); n != 1 {
			t.Fatalf("record taken %d times, want once", n)
		}
	})
}

// samePreAuth compares records field by field, times by instant.
func samePreAuth(a, b *preAuth) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Expires, y.Expires = time.Time{}, time.Time{}
	return x == y && a.Expires.Equal(b.Expires)
}

func TestMemoryPreAuthConformance(t *testing.T) {
	t.Parallel()
	runPreAuthConformance(t, func(t *testing.T, size int) preAuthStore {
		return memoryPreAuth{newPreAuthTable(size)}
	})
}

func TestRedisPreAuthConformance(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	runPreAuthConformance(t, func(t *testing.T, size int) preAuthStore {
		p := newRedisPreAuth(r.store(t, testKey(1), 0, ""), nil)
		p.max = size
		return p
	})
}
