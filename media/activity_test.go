package media

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
)

// TestRegression_CallKeepsSessionActive: a participant whose call page
// sends no HTTP request is still using their sign-in session while the
// signaling socket is open, so the session's idle clock moves (the real
// sign-in plane records it); once the socket closes it stops moving and
// the idle timeout runs again. Several idle timeouts, all shorter than the
// call.
func TestRegression_CallKeepsSessionActive(t *testing.T) {
	t.Parallel()
	// (Not shorter than 800 ms: the race detector on a busy two-core
	// machine delays a 200 ms ticker by more than a tighter margin allows.)
	for _, idle := range []time.Duration{800 * time.Millisecond, time.Second, 1500 * time.Millisecond} {
		t.Run(idle.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			store, err := auth.OpenBoltStore(filepath.Join(dir, "sessions.db"), bytes.Repeat([]byte{7}, 32), 100)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close() })
			cfg := &config.Config{DataDir: dir, Sessions: config.Sessions{IdleTimeout: idle, AbsoluteTimeout: time.Hour}}
			cfg.ApplyDefaults()
			signIn := auth.Options{Config: cfg, Store: store}
			svc, err := auth.New(context.Background(), signIn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = svc.Close() })
			ctx := context.Background()
			start := time.Now()
			for _, u := range []string{"dr", "pat"} {
				id := users[u].SessionID
				if _, err := store.Put(ctx, &auth.Session{ID: id, Issuer: users[u].Issuer, Subject: users[u].Subject,
					Created: start, AuthTime: start, LastSeen: start, Expires: start.Add(idle)}); err != nil {
					t.Fatal(err)
				}
			}
			h := &harness{t: t, relay: newSpyRelay(t), sink: &recordSink{}, clock: &clock{t: start}, dir: dir, sessions: svc}
			h.start()
			t.Cleanup(func() { h.srv.Close(); _ = h.svc.Close() })
			vid, _, _ := h.admitted()
			c := h.mustDial("pat", vid)
			readType(t, c, "welcome")

			lastSeen := func(u string) time.Time {
				s, err := store.Get(ctx, users[u].SessionID)
				if err != nil {
					t.Fatalf("%s's session: %v", u, err)
				}
				return s.LastSeen
			}
			// In the call for three idle periods: the session never falls
			// idle; the clinician, with no socket open, is not kept alive.
			for end := time.Now().Add(3 * idle); time.Now().Before(end); time.Sleep(idle / 8) {
				if ls := lastSeen("pat"); time.Since(ls) >= idle {
					t.Fatalf("in a call, the session's last use is %v old (idle_timeout %v)", time.Since(ls).Round(time.Millisecond), idle)
				}
			}
			if !lastSeen("dr").Equal(start) {
				t.Error("a session with no call open was recorded as in use")
			}
			// Hung up: the idle clock stops.
			c.CloseNow()
			time.Sleep(svc.TouchInterval() + 100*time.Millisecond)
			ls := lastSeen("pat")
			time.Sleep(2 * svc.TouchInterval())
			if !lastSeen("pat").Equal(ls) {
				t.Fatal("the session is still recorded as in use after the call closed")
			}
		})
	}
}
