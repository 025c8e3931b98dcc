package edgetls

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// storagePair is two instances of one shared certificate storage, as two
// nodes (or two processes on one data directory) hold them. die makes a's
// holder of lock name vanish without unlocking, as a killed node does.
type storagePair struct {
	a, b certmagic.Storage
	rdb  *redis.Client // the Redis underneath, for redis pairs
	die  func(t *testing.T, name string)
	// expiry is how long a dead holder's lock lasts at most.
	expiry time.Duration
}

func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func mustSeal(t testing.TB, st certmagic.Storage, key []byte) certmagic.Storage {
	t.Helper()
	s, err := seal(st, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fileStoragePair is the sealed file storage of one data directory, opened
// twice. A dead holder leaves its lock file behind, last refreshed long
// ago.
func fileStoragePair(t *testing.T) storagePair {
	dir := t.TempDir()
	key := testKey(t)
	return storagePair{
		a: mustSeal(t, &certmagic.FileStorage{Path: dir}, key),
		b: mustSeal(t, &certmagic.FileStorage{Path: dir}, key),
		die: func(t *testing.T, name string) {
			// What a killed process leaves: the lock file, no longer
			// refreshed (certmagic's holders refresh it every 5 s).
			old := time.Now().Add(-time.Minute)
			meta, _ := json.Marshal(map[string]time.Time{"created": old, "updated": old})
			p := filepath.Join(dir, "locks", certmagic.StorageKeys.Safe(name)+".lock")
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, meta, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		expiry: 3 * time.Second,
	}
}

// redisStoragePair is two RedisStorage instances on one redis-server,
// with a 1 s lock TTL. A dead holder is an instance closed without
// unlocking: its lock stops being refreshed.
func redisStoragePair(t *testing.T) (storagePair, *redistest.Server) {
	srv := redistest.Start(t)
	key := testKey(t)
	open := func() *RedisStorage {
		rs, err := OpenRedisStorage(t.Context(), RedisStorageOptions{Conn: redisconn.Conn{Addr: srv.Addr, Password: srv.Password},
			LockTTL: time.Second, LockPoll: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		return rs
	}
	ra := open()
	return storagePair{
		a:   mustSeal(t, ra, key),
		b:   mustSeal(t, open(), key),
		rdb: srv.Client(t),
		die: func(t *testing.T, name string) {
			if ok, err := ra.TryLock(t.Context(), name); err != nil || !ok {
				t.Fatalf("dying holder cannot take %s: %v %v", name, ok, err)
			}
			ra.Close() // no Unlock: the refreshes stop
		},
		expiry: 2 * time.Second,
	}, srv
}

// TestStorageConformance runs the certmagic.Storage semantics against
// both storages: files (one data directory) and Redis (two nodes).
func TestStorageConformance(t *testing.T) {
	t.Parallel()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		testStorage(t, fileStoragePair)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		testStorage(t, func(t *testing.T) storagePair { p, _ := redisStoragePair(t); return p })
	})
}

func testStorage(t *testing.T, pair func(t *testing.T) storagePair) {
	ctx := context.Background()
	t.Run("store load delete", func(t *testing.T) {
		p := pair(t)
		if _, err := p.a.Load(ctx, "certificates/ca/a.test/a.test.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
		}
		v1, v2 := []byte("first value"), []byte("second, longer value")
		if err := p.a.Store(ctx, "certificates/ca/a.test/a.test.crt", v1); err != nil {
			t.Fatal(err)
		}
		if got, err := p.b.Load(ctx, "certificates/ca/a.test/a.test.crt"); err != nil || !bytes.Equal(got, v1) {
			t.Fatalf("the other instance loads %q, %v; want %q", got, err, v1)
		}
		if err := p.b.Store(ctx, "certificates/ca/a.test/a.test.crt", v2); err != nil {
			t.Fatal(err)
		}
		if got, err := p.a.Load(ctx, "certificates/ca/a.test/a.test.crt"); err != nil || !bytes.Equal(got, v2) {
			t.Fatalf("after overwrite Load = %q, %v; want %q", got, err, v2)
		}
		if err := p.a.Delete(ctx, "certificates/ca/a.test/a.test.crt"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.b.Load(ctx, "certificates/ca/a.test/a.test.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load after Delete: %v, want fs.ErrNotExist", err)
		}
		if err := p.a.Delete(ctx, "certificates/ca/a.test/a.test.crt"); err != nil {
			t.Fatalf("Delete of a deleted key: %v, want nil", err)
		}
	})
	t.Run("directories", func(t *testing.T) {
		p := pair(t)
		for _, k := range []string{"acme/ca/users/u/u.key", "acme/ca/users/u/u.json", "acme/ca/users/v/v.key", "acme/ca2/x", "acmex"} {
			if err := p.a.Store(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		for k, want := range map[string]bool{"acme": true, "acme/ca": true, "acme/ca/users/u": true, "acme/ca/users/u/u.key": true,
			"acme/c": false, "acme/ca/users/w": false, "nothing": false, "acmex": true} {
			if got := p.b.Exists(ctx, k); got != want {
				t.Errorf("Exists(%q) = %v, want %v", k, got, want)
			}
		}
		got, err := p.b.List(ctx, "acme/ca", false)
		slices.Sort(got)
		if want := []string{"acme/ca/users"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("List(acme/ca) = %q, %v; want %q", got, err, want)
		}
		got, err = p.b.List(ctx, "acme/ca/users", false)
		slices.Sort(got)
		if want := []string{"acme/ca/users/u", "acme/ca/users/v"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("List(acme/ca/users) = %q, %v; want %q", got, err, want)
		}
		got, err = p.b.List(ctx, "acme/ca", true)
		slices.Sort(got)
		if want := []string{"acme/ca/users", "acme/ca/users/u", "acme/ca/users/u/u.json", "acme/ca/users/u/u.key",
			"acme/ca/users/v", "acme/ca/users/v/v.key"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("List(acme/ca, recursive) = %q, %v; want %q", got, err, want)
		}
		if _, err := p.b.List(ctx, "acme/none", false); err == nil {
			t.Error("List of a missing directory succeeded")
		}
		ki, err := p.b.Stat(ctx, "acme/ca/users/u/u.key")
		if err != nil || !ki.IsTerminal || ki.Size != int64(len("acme/ca/users/u/u.key")) || time.Since(ki.Modified) > time.Minute {
			t.Errorf("Stat(file) = %+v, %v; want terminal, size %d, modified just now", ki, err, len("acme/ca/users/u/u.key"))
		}
		if ki, err := p.b.Stat(ctx, "acme/ca/users"); err != nil || ki.IsTerminal {
			t.Errorf("Stat(directory) = %+v, %v; want a directory", ki, err)
		}
		if _, err := p.b.Stat(ctx, "acme/ca/none"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
		}
		if err := p.a.Delete(ctx, "acme/ca/users"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"acme/ca/users", "acme/ca/users/u/u.key", "acme/ca/users/v/v.key"} {
			if p.b.Exists(ctx, k) {
				t.Errorf("%s exists after its directory was deleted", k)
			}
		}
		for _, k := range []string{"acme/ca2/x", "acmex"} {
			if !p.b.Exists(ctx, k) {
				t.Errorf("%s was deleted with acme/ca/users", k)
			}
		}
	})
	t.Run("lock excludes the other instance", func(t *testing.T) {
		p := pair(t)
		if err := p.a.Lock(ctx, "issue_cert_a.test"); err != nil {
			t.Fatal(err)
		}
		if ok, err := p.b.(certmagic.TryLocker).TryLock(ctx, "issue_cert_a.test"); err != nil || ok {
			t.Fatalf("TryLock of a held lock = %v, %v; want false", ok, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		err := p.b.Lock(wctx, "issue_cert_a.test")
		cancel()
		if err == nil {
			t.Fatal("the other instance took a held lock")
		}
		if err := p.b.Lock(ctx, "issue_cert_b.test"); err != nil {
			t.Fatalf("another name's lock: %v", err)
		}
		released := make(chan error, 1)
		go func() { released <- p.b.Lock(ctx, "issue_cert_a.test") }()
		time.Sleep(200 * time.Millisecond)
		select {
		case err := <-released:
			t.Fatalf("Lock returned (%v) while the other held it", err)
		default:
		}
		if err := p.a.Unlock(ctx, "issue_cert_a.test"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-released:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Lock did not return within 5 s of Unlock")
		}
		for _, n := range []string{"issue_cert_a.test", "issue_cert_b.test"} {
			if err := p.b.Unlock(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("lock of a dead holder frees itself", func(t *testing.T) {
		p := pair(t)
		p.die(t, "issue_cert_dead.test")
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.b.Lock(wctx, "issue_cert_dead.test"); err != nil {
			t.Fatalf("the lock of a dead holder never freed: %v", err)
		}
		if d := time.Since(start); d > p.expiry {
			t.Errorf("the lock of a dead holder freed after %s, want within %s", d, p.expiry)
		}
		if err := p.b.Unlock(ctx, "issue_cert_dead.test"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRegression_LockLease: the Redis lock is a lease its holder keeps:
// a live holder keeps it past the TTL (it refreshes it), also after
// certmagic asked for a long lease, yet a holder that dies after asking
// for one frees it within the TTL; a holder whose lock is gone cannot
// release or renew the lock another node holds now. (A dead holder's lock
// freeing itself is also in TestStorageConformance.)
func TestRegression_LockLease(t *testing.T) {
	t.Parallel()
	p, _ := redisStoragePair(t)
	t.Run("dies after a long lease", func(t *testing.T) {
		q, srv := redisStoragePair(t)
		ctx := t.Context()
		dying, err := OpenRedisStorage(ctx, RedisStorageOptions{Conn: redisconn.Conn{Addr: srv.Addr, Password: srv.Password}, LockTTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := dying.Lock(ctx, "long_x"); err != nil {
			t.Fatal(err)
		}
		if err := dying.RenewLockLease(ctx, "long_x", 6*time.Hour); err != nil {
			t.Fatal(err)
		}
		dying.Close() // no Unlock: the refreshes stop
		start := time.Now()
		for {
			if ok, err := q.b.(certmagic.TryLocker).TryLock(ctx, "long_x"); err == nil && ok {
				break
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("the lock of a holder that died after asking for a 6 h lease is still held after %v (TTL 1 s)", time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	ctx := t.Context()
	if err := p.a.Lock(ctx, "renew_x"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second) // three TTLs
	for time.Now().Before(deadline) {
		if ok, err := p.b.(certmagic.TryLocker).TryLock(ctx, "renew_x"); err != nil || ok {
			t.Fatalf("the lock of a live holder was taken after %s: %v %v", 3*time.Second-time.Until(deadline), ok, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.a.Unlock(ctx, "renew_x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.b.(certmagic.TryLocker).TryLock(ctx, "renew_x"); err != nil || !ok {
		t.Fatalf("TryLock after Unlock = %v, %v", ok, err)
	}
	// An Unlock of a lock that expired and was taken by another fails and
	// leaves the other's lock alone.
	if err := p.a.Unlock(ctx, "renew_x"); err == nil {
		t.Error("Unlock of a lock not held here succeeded")
	}
	if ok, _ := p.a.(certmagic.TryLocker).TryLock(ctx, "renew_x"); ok {
		t.Error("the other's lock was released by a stale Unlock")
	}
	if err := p.a.(certmagic.LockLeaseRenewer).RenewLockLease(ctx, "renew_x", 5*time.Second); err == nil {
		t.Error("RenewLockLease of a lock another holds succeeded")
	}
	// certmagic asks for leases of minutes to hours before a retry: the
	// holder's refreshes keep the lock that long, not a long TTL in
	// Redis, so a holder that dies during the retry frees it within the
	// TTL (1 s here).
	for _, d := range []time.Duration{5 * time.Second, 90 * time.Second, 6 * time.Hour} {
		if err := p.b.(certmagic.LockLeaseRenewer).RenewLockLease(ctx, "renew_x", d); err != nil {
			t.Errorf("RenewLockLease(%v): %v", d, err)
		}
		if ttl := p.rdb.PTTL(ctx, "telegate:{certs}:lock:renew_x").Val(); ttl <= 0 || ttl > time.Second {
			t.Errorf("lease in Redis after RenewLockLease(%v): %s, want at most the TTL (1s)", d, ttl)
		}
	}
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := p.a.(certmagic.TryLocker).TryLock(ctx, "renew_x"); err != nil || ok {
			t.Fatalf("the renewed lock of a live holder was taken: %v %v", ok, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStorageValuesAreSealed: what the storage underneath holds is not
// what was stored, a value moved to another key does not open, and a
// plaintext value is refused.
func TestStorageValuesAreSealed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	fst := &certmagic.FileStorage{Path: dir}
	st := mustSeal(t, fst, testKey(t))
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n-----END EC PRIVATE KEY-----\n")
	if err := st.Store(ctx, "certificates/x/a.key", secret); err != nil {
		t.Fatal(err)
	}
	raw, err := fst.Load(ctx, "certificates/x/a.key")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || !bytes.HasPrefix(raw, []byte(sealMagic)) {
		t.Fatalf("file holds %q", raw)
	}
	if err := fst.Store(ctx, "certificates/x/b.key", raw); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, "certificates/x/b.key"); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("a sealed value moved to another key: %v, want an error", err)
	}
	if err := fst.Store(ctx, "certificates/x/c.key", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, "certificates/x/c.key"); err == nil || !strings.Contains(err.Error(), "not sealed") {
		t.Errorf("a plaintext value: %v, want an error", err)
	}
}
