package edgetls

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// snapshot is the content of every file below dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.Contains(p, string(filepath.Separator)+"locks"+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, before, after map[string][]byte) {
	t.Helper()
	for p, b := range before {
		if !bytes.Equal(after[p], b) {
			t.Errorf("%s changed by a start that failed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s written by a start that failed", p)
		}
	}
}

func writeKeyFile(t *testing.T, dir string, key []byte) string {
	t.Helper()
	return writeFile(t, dir, "tls-storage.key", []byte(base64.StdEncoding.EncodeToString(key)+"\n"))
}

// TestRegression_WrongStorageKey: a storage key that does not open what
// is stored stops the start with an error naming the key — nothing is
// obtained, issued or rewritten over what cannot be read (fail closed).
// Forms: another key given in Options, another key file
// (tls.storage_key_file), the generated key file replaced, the key check
// removed (each sealed file is still checked), Redis storage under
// another key, and key files that break the rule for secrets.
func TestRegression_WrongStorageKey(t *testing.T) {
	t.Parallel()
	local := func(t *testing.T) *config.Config {
		return baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	}
	start := func(t *testing.T, o Options) {
		t.Helper()
		o.Logger, _ = testLogger(t)
		m, err := New(context.Background(), o)
		if err != nil {
			t.Fatalf("first start: %v", err)
		}
		m.Close()
	}
	refused := func(t *testing.T, o Options, want string) {
		t.Helper()
		before := snapshot(t, o.Config.DataDir)
		o.Logger, _ = testLogger(t)
		m, err := New(context.Background(), o)
		if err == nil {
			m.Close()
			t.Fatal("started with a storage key that does not open the storage")
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		t.Logf("refused: %v", err)
		sameFiles(t, before, snapshot(t, o.Config.DataDir))
	}
	t.Run("another key given", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		start(t, Options{Config: cfg, StorageKey: testKey(t)})
		refused(t, Options{Config: cfg, StorageKey: testKey(t)}, "does not open with the tls storage key")
	})
	t.Run("another key file", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		cfg.TLS.StorageKeyFile = writeKeyFile(t, t.TempDir(), testKey(t))
		start(t, Options{Config: cfg})
		cfg.TLS.StorageKeyFile = writeKeyFile(t, t.TempDir(), testKey(t))
		refused(t, Options{Config: cfg}, "does not open with the tls storage key")
	})
	t.Run("generated key replaced", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		start(t, Options{Config: cfg})
		p := config.InDataDir(cfg.DataDir, config.TLSStorageKeyInDataDir)
		if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(testKey(t))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, Options{Config: cfg}, "does not open with the tls storage key")
	})
	t.Run("key check removed", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		start(t, Options{Config: cfg, StorageKey: testKey(t)})
		if err := os.Remove(filepath.Join(cfg.DataDir, "certmagic", filepath.FromSlash(storageCheckKey))); err != nil {
			t.Fatal(err)
		}
		refused(t, Options{Config: cfg, StorageKey: testKey(t)}, "does not open with the tls storage key")
	})
	t.Run("redis under another key", func(t *testing.T) {
		t.Parallel()
		p, srv := redisStoragePair(t)
		if err := sealedOf(p.a).markKey(t.Context()); err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(t, config.TLSHost{Names: []string{"clinic.telegate.test"}, Mode: ModeACME})
		cfg.TLS.Storage = StorageRedis
		cfg.TLS.ACME = config.ACME{CA: "https://127.0.0.1:9/dir", Challenges: []string{ChallengeHTTP01}}
		before, _ := srv.Client(t).Keys(t.Context(), "*").Result()
		refused(t, Options{Config: cfg, StorageKey: testKey(t), Redis: &RedisStorageOptions{Conn: redisconn.Conn{Addr: srv.Addr, Password: srv.Password}}},
			"on redis "+srv.Addr)
		after, _ := srv.Client(t).Keys(t.Context(), "*").Result()
		if len(after) != len(before) {
			t.Errorf("redis keys %q became %q", before, after)
		}
	})
	t.Run("redis without a key file", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		cfg.TLS.Storage = StorageRedis
		refused(t, Options{Config: cfg}, "needs tls.storage_key_file")
	})
	t.Run("redis unreachable", func(t *testing.T) {
		t.Parallel()
		cfg := local(t)
		cfg.TLS.Storage = StorageRedis
		refused(t, Options{Config: cfg, StorageKey: testKey(t), Redis: &RedisStorageOptions{Conn: redisconn.Conn{Addr: "127.0.0.1:1"}}}, "redis 127.0.0.1:1")
	})
	for name, content := range map[string]struct {
		data []byte
		mode os.FileMode
		want string
	}{
		"short key file":          {[]byte(base64.StdEncoding.EncodeToString(make([]byte, 16))), 0o600, "tls.storage_key_file"},
		"world-readable key file": {[]byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o644, "tls.storage_key_file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := local(t)
			p := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(p, content.data, content.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, content.mode); err != nil {
				t.Fatal(err)
			}
			cfg.TLS.StorageKeyFile = p
			refused(t, Options{Config: cfg}, content.want)
		})
	}
}

// TestRegression_StorageKindChangeKeepsNodeFiles: a node that kept its
// certificates in file storage and moves to Redis storage (where the
// shared key is another) still opens its own files — it starts, and
// serves the local leaf it had — and the same holds moving back.
func TestRegression_StorageKindChangeKeepsNodeFiles(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	open := func(kind string) *Manager {
		t.Helper()
		c := *cfg
		c.TLS.Storage = kind
		o := Options{Config: &c}
		if kind == StorageRedis {
			o.StorageKey = testKey(t) // derived from the session key: not the node's file key
			o.Redis = &RedisStorageOptions{Conn: redisconn.Conn{Addr: srv.Addr, Password: srv.Password}}
		}
		o.Logger, _ = testLogger(t)
		m, err := New(context.Background(), o)
		if err != nil {
			t.Fatalf("start with tls.storage %s: %v", kind, err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := open(StorageFile)
	first := localLeaf(t, m)
	m.Close()
	for _, kind := range []string{StorageRedis, StorageFile} {
		m := open(kind)
		if got := localLeaf(t, m); !bytes.Equal(got.Raw, first.Raw) {
			t.Errorf("tls.storage %s: a new local leaf was issued instead of the stored one", kind)
		}
		m.Close()
	}
}
