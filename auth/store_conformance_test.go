package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telegate/telegate/config"
)

// runStoreConformance is the contract of SessionStore: every implementation
// (the embedded store, a Redis store) runs it. newStore returns an empty
// store capped at max sessions.
func runStoreConformance(t *testing.T, newStore func(t *testing.T, max int) SessionStore) {
	ctx := context.Background()
	now := time.Now().Round(time.Second).UTC()
	mk := func(sub, sid string, expires time.Time) *Session {
		_, id := newHandle()
		return &Session{
			ID: id, Provider: "staff", Issuer: "https://idp.test", Subject: sub, SID: sid,
			Roles: []string{"clinician"}, Groups: []string{"g1"}, AMR: []string{"pwd"}, ACR: "1",
			Claims: map[string]string{"email": sub + "@h.test"}, AuthTime: now, Created: now, LastSeen: now,
			Expires: expires, IDToken: "idt", RefreshToken: "rt", TokenExpiry: now.Add(time.Hour),
		}
	}
	ids := func(ss []*Session) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		sort.Strings(out)
		return out
	}

	t.Run("get unknown", func(t *testing.T) {
		st := newStore(t, 10)
		if _, err := st.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})
	t.Run("put get round trip", func(t *testing.T) {
		st := newStore(t, 10)
		s := mk("alice", "sid1", now.Add(time.Hour))
		if _, err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
		}
		got.Subject = "changed"
		again, _ := st.Get(ctx, s.ID)
		if again.Subject != "alice" {
			t.Fatal("Get returned shared state")
		}
	})
	t.Run("replace", func(t *testing.T) {
		st := newStore(t, 2)
		a, b := mk("a", "", now.Add(time.Hour)), mk("b", "", now.Add(2*time.Hour))
		for _, s := range []*Session{a, b} {
			if _, err := st.Put(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		a.LastSeen, a.Expires = now.Add(time.Minute), now.Add(3*time.Hour)
		ev, err := st.Put(ctx, a)
		if err != nil || len(ev) != 0 {
			t.Fatalf("replacing evicted %v (err %v)", ids(ev), err)
		}
		got, _ := st.Get(ctx, a.ID)
		if !got.Expires.Equal(a.Expires) {
			t.Fatal("replace did not store the new record")
		}
		// The replaced record's old expiry no longer counts.
		gone, _ := st.DeleteExpired(ctx, now.Add(90*time.Minute))
		if len(gone) != 0 {
			t.Fatalf("old expiry entry still swept %v", ids(gone))
		}
	})
	t.Run("delete", func(t *testing.T) {
		st := newStore(t, 10)
		s := mk("alice", "", now.Add(time.Hour))
		_, _ = st.Put(ctx, s)
		got, err := st.Delete(ctx, s.ID)
		if err != nil || got == nil || got.ID != s.ID {
			t.Fatalf("Delete = %v, %v", got, err)
		}
		if _, err := st.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
			t.Fatal("deleted session still there")
		}
		if got, err := st.Delete(ctx, s.ID); got != nil || err != nil {
			t.Fatalf("second Delete = %v, %v", got, err)
		}
	})
	t.Run("touch records use and never revives", func(t *testing.T) {
		st := newStore(t, 10)
		s := mk("alice", "sid1", now.Add(time.Hour))
		if _, err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.LastSeen, s.Expires = now.Add(time.Minute), now.Add(2*time.Hour)
		if err := st.Touch(ctx, s); err != nil {
			t.Fatalf("Touch of a stored session: %v", err)
		}
		if got, _ := st.Get(ctx, s.ID); got == nil || !got.LastSeen.Equal(s.LastSeen) || !got.Expires.Equal(s.Expires) {
			t.Fatalf("Touch did not record the use: %+v", got)
		}
		// Ended by each way a session ends: a touch in flight from before
		// must not bring it back.
		for _, end := range []struct {
			name string
			do   func(*Session)
		}{
			{"delete", func(x *Session) { _, _ = st.Delete(ctx, x.ID) }},
			{"delete by subject", func(x *Session) { _, _ = st.DeleteBySubject(ctx, x.Issuer, x.Subject, "") }},
			{"sweep", func(x *Session) { _, _ = st.DeleteExpired(ctx, x.Expires) }},
		} {
			x := mk("bob-"+end.name, "", now.Add(time.Hour))
			if _, err := st.Put(ctx, x); err != nil {
				t.Fatal(err)
			}
			end.do(x)
			x.LastSeen = now.Add(time.Minute)
			if err := st.Touch(ctx, x); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrSessionEnded) {
				t.Errorf("%s: Touch of an ended session = %v, want ErrNotFound or ErrSessionEnded", end.name, err)
			}
			if _, err := st.Get(ctx, x.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: Touch brought an ended session back: %v", end.name, err)
			}
		}
		never := mk("carol", "", now.Add(time.Hour))
		if err := st.Touch(ctx, never); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrSessionEnded) {
			t.Errorf("Touch of a session never stored = %v", err)
		}
		if _, err := st.Get(ctx, never.ID); !errors.Is(err, ErrNotFound) {
			t.Error("Touch created a session")
		}
	})
	t.Run("delete by subject and sid", func(t *testing.T) {
		st := newStore(t, 10)
		a1 := mk("alice", "sid1", now.Add(time.Hour))
		a2 := mk("alice", "sid2", now.Add(time.Hour))
		b1 := mk("bob", "sid3", now.Add(time.Hour))
		otherIss := mk("alice", "sid1", now.Add(time.Hour))
		otherIss.Issuer = "https://other.test"
		for _, s := range []*Session{a1, a2, b1, otherIss} {
			_, _ = st.Put(ctx, s)
		}
		got, err := st.DeleteBySubject(ctx, "https://idp.test", "alice", "sid2")
		if err != nil || !reflect.DeepEqual(ids(got), ids([]*Session{a2})) {
			t.Fatalf("by sub+sid = %v, %v", ids(got), err)
		}
		got, _ = st.DeleteBySubject(ctx, "https://idp.test", "", "sid3")
		if !reflect.DeepEqual(ids(got), ids([]*Session{b1})) {
			t.Fatalf("by sid = %v", ids(got))
		}
		got, _ = st.DeleteBySubject(ctx, "https://idp.test", "alice", "")
		if !reflect.DeepEqual(ids(got), ids([]*Session{a1})) {
			t.Fatalf("by sub = %v", ids(got))
		}
		if _, err := st.Get(ctx, otherIss.ID); err != nil {
			t.Fatal("a session of another issuer was deleted")
		}
		if _, err := st.DeleteBySubject(ctx, "https://idp.test", "", ""); err == nil {
			t.Fatal("delete with neither sub nor sid accepted")
		}
	})
	t.Run("delete expired", func(t *testing.T) {
		st := newStore(t, 10)
		old := mk("a", "", now.Add(-time.Second))
		edge := mk("b", "", now)
		live := mk("c", "", now.Add(time.Second))
		for _, s := range []*Session{old, edge, live} {
			_, _ = st.Put(ctx, s)
		}
		gone, err := st.DeleteExpired(ctx, now)
		if err != nil || !reflect.DeepEqual(ids(gone), ids([]*Session{old, edge})) {
			t.Fatalf("DeleteExpired = %v, %v", ids(gone), err)
		}
		if _, err := st.Get(ctx, live.ID); err != nil {
			t.Fatal("live session swept")
		}
	})
	t.Run("cap evicts earliest expiry", func(t *testing.T) {
		st := newStore(t, 3)
		var all []*Session
		for i := 0; i < 3; i++ {
			s := mk(fmt.Sprint("u", i), "", now.Add(time.Duration(3-i)*time.Hour))
			all = append(all, s)
			if ev, _ := st.Put(ctx, s); len(ev) != 0 {
				t.Fatalf("evicted below the cap: %v", ids(ev))
			}
		}
		n := mk("new", "", now.Add(5*time.Hour))
		ev, err := st.Put(ctx, n)
		if err != nil || len(ev) != 1 || ev[0].ID != all[2].ID {
			t.Fatalf("evicted %v, want the earliest expiry %s", ids(ev), all[2].ID)
		}
		if _, err := st.Get(ctx, all[2].ID); !errors.Is(err, ErrNotFound) {
			t.Fatal("evicted session still there")
		}
		for _, s := range []*Session{all[0], all[1], n} {
			if _, err := st.Get(ctx, s.ID); err != nil {
				t.Fatalf("kept session %s missing", s.Subject)
			}
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		st := newStore(t, 1000)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					s := mk("c", "", now.Add(time.Hour))
					if _, err := st.Put(ctx, s); err != nil {
						t.Error(err)
						return
					}
					if _, err := st.Get(ctx, s.ID); err != nil {
						t.Error(err)
						return
					}
					if _, err := st.Delete(ctx, s.ID); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestBoltStoreConformance(t *testing.T) {
	t.Parallel()
	runStoreConformance(t, func(t *testing.T, max int) SessionStore {
		st, err := OpenBoltStore(filepath.Join(t.TempDir(), "sessions.db"), testKey(1), max)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	})
}

func TestBoltStoreAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	st, err := OpenBoltStore(path, testKey(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	handle, id := newHandle()
	s := &Session{ID: id, Issuer: "https://idp.test", Subject: "patient-4711", SID: "idp-sid",
		Claims: map[string]string{"email": "patient@h.test"}, RefreshToken: "refresh-token-value", Expires: time.Now().Add(time.Hour)}
	if _, err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Another record under a second id, to try swapping ciphertexts.
	_, id2 := newHandle()
	s2 := *s
	s2.ID = id2
	_, _ = st.Put(ctx, &s2)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{handle, "patient-4711", "patient@h.test", "refresh-token-value", "idp-sid"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("store file contains %q in the clear", secret)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v", fi.Mode().Perm())
	}

	// Reopened with the same key: the session is there.
	st, err = OpenBoltStore(path, testKey(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, id); err != nil || got.Subject != "patient-4711" {
		t.Fatalf("after reopen: %v", err)
	}
	if st.Len() != 2 {
		t.Errorf("Len after reopen = %d", st.Len())
	}
	// A record moved to another id fails authentication (id is AAD).
	err = st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		v := bytes.Clone(b.Get([]byte(id)))
		return b.Put([]byte(id2), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, id2); err == nil {
		t.Error("a record swapped to another id was accepted")
	}
	_ = st.Close()

	// With another key nothing decrypts.
	st, err = OpenBoltStore(path, testKey(2), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(ctx, id); err == nil {
		t.Error("a record decrypted under the wrong key")
	}
}

func TestSessionKeyGeneratedOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := sessionKey(configSessions(), dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := sessionKey(configSessions(), dir)
	if err != nil || !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("second load differs or fails: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "session.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	if _, err := decodeKey([]byte("c2hvcnQ=")); err == nil {
		t.Error("short key accepted")
	}
}

func configSessions() config.Sessions { return config.Sessions{} }
