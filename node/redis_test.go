package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redistest"
)

// tlsRedisConfig is nodeConfigWith (visits on) for a Redis serving TLS to
// an ACL user: the user, its password, the CA and the client certificate
// set as in a configuration file.
func tlsRedisConfig(t *testing.T, rdb *redistest.Server) *config.Config {
	t.Helper()
	cfg := nodeConfigWith(t, rdb, "visits:\n  enabled: true\n  ice_host: 127.0.0.1\n")
	cfg.Redis.Username = rdb.User
	cfg.Redis.TLS = config.RedisTLS{Enabled: true, CAFile: rdb.CAFile, CertFile: rdb.ClientCertFile, KeyFile: rdb.ClientKeyFile}
	return cfg
}

// TestRedisOverTLSWithACLUser: a node reaches a Redis that serves only
// TLS and wants a client certificate, as an ACL user holding exactly the
// rules docs/deployment.md lists (redisconn.ACLRules): it starts, every
// Redis dependency on /readyz is ready, and its relay is registered in
// that Redis (visits, bus and relay registry on the same connection
// settings as sessions and rate limits).
func TestRedisOverTLSWithACLUser(t *testing.T) {
	t.Parallel()
	rdb := redistest.StartWith(t, redistest.Options{TLS: true, ClientCerts: true, User: "telegate"})
	cfg := tlsRedisConfig(t, rdb)
	r, _ := runNode(t, cfg)
	code, rd := getReadyz(t, r.AdminAddr)
	if code != http.StatusOK {
		t.Fatalf("/readyz over TLS Redis: %d %+v", code, rd)
	}
	keys, err := rdb.Client(t).Keys(context.Background(), "telegate:*relay:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no relay registration in the TLS Redis (%v): %v", err, keys)
	}
}

// TestRegression_RedisRefusedFailsStart: whatever Redis refuses of what
// the node brings — a CA that did not sign its certificate, a name its
// certificate is not for, the password or the user, no client certificate
// where one is required, plain TCP to its TLS port — the node does not
// start (fail closed) and says which setting to look at, within the start
// check's timeout, never printing the password.
func TestRegression_RedisRefusedFailsStart(t *testing.T) {
	t.Parallel()
	rdb := redistest.StartWith(t, redistest.Options{TLS: true, ClientCerts: true, User: "telegate"})
	for _, tc := range []struct {
		name string
		edit func(c *config.Redis)
		want string
	}{
		{"wrong CA", func(c *config.Redis) { c.TLS.CAFile = redistest.NewCA(t, t.TempDir()) }, "does not verify against redis.tls.ca_file"},
		{"wrong server name", func(c *config.Redis) { c.TLS.ServerName = "redis.other.example" }, "redis.tls.server_name"},
		{"wrong password", func(c *config.Redis) { c.Password = "not-the-password" }, "check redis.username and redis.password_file"},
		{"wrong user", func(c *config.Redis) { c.Username = "nobody" }, `refused user "nobody"`},
		{"default user", func(c *config.Redis) { c.Username = "" }, `refused user "default"`},
		{"no client certificate", func(c *config.Redis) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, "TLS handshake failed"},
		{"plain TCP", func(c *config.Redis) { c.TLS = config.RedisTLS{} }, "set redis.tls.enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tlsRedisConfig(t, rdb)
			tc.edit(&cfg.Redis)
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { done <- Run(ctx, cfg, Options{Logger: quietLogger(), Ready: func(Ready) {}}) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("start: %v, want an error saying %q", err, tc.want)
				}
				if strings.Contains(err.Error(), rdb.Password) {
					t.Fatalf("the error holds the password: %v", err)
				}
				t.Logf("%s: %v", tc.name, err)
			case <-time.After(2 * redisStartTimeout):
				t.Fatal("the node did not stop at start")
			}
		})
	}
}

// checkWarnings runs Check on cfg's file and returns its warnings about
// the redis section.
func checkWarnings(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	got, err := Check(cfg.Source)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	var out []string
	for _, w := range got.Warnings {
		if strings.HasPrefix(w.Field, "redis") {
			out = append(out, w.Error())
		}
	}
	return out
}

// TestCheckWarnsAboutRedisSetup: `telegate check` reads how the Redis
// of a several-node configuration is set up and warns, at redis.addr's
// line, of each setting docs/deployment.md asks for that it lacks:
// maxmemory-policy noeviction, persistence (AOF or RDB); of no ACL user;
// and of a Redis it cannot reach (nothing checked). A Redis set up as
// asked gets none of these; an ACL user without CONFIG and INFO leaves
// the settings unchecked rather than guessed; refused credentials are an
// error, as at run.
func TestCheckWarnsAboutRedisSetup(t *testing.T) {
	t.Parallel()
	const (
		eviction = "maxmemory-policy is \"allkeys-lru\""
		noDisk   = "keeps nothing on disk"
		noUser   = "no ACL user"
		noReach  = "cannot reach Redis"
	)
	has := func(ws []string, s string) bool {
		for _, w := range ws {
			if strings.Contains(w, s) {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		name      string
		opts      redistest.Options
		user      bool
		stop      bool
		want, not []string
	}{
		{"evicting, nothing on disk, default user", redistest.Options{Args: []string{"--maxmemory-policy", "allkeys-lru"}}, false, false,
			[]string{eviction, noDisk, noUser}, []string{noReach}},
		{"as docs/deployment.md asks", redistest.Options{User: "telegate", CheckCommands: true, Args: []string{"--appendonly", "yes"}}, true, false,
			nil, []string{eviction, noDisk, noUser, noReach}},
		{"RDB snapshots only", redistest.Options{User: "telegate", CheckCommands: true, Args: []string{"--save", "3600 1"}}, true, false,
			nil, []string{noDisk}},
		{"ACL user without CONFIG and INFO: left unchecked", redistest.Options{User: "telegate", Args: []string{"--maxmemory-policy", "allkeys-lru"}}, true, false,
			nil, []string{eviction, noDisk, noReach}},
		{"unreachable", redistest.Options{}, false, true, []string{noReach}, []string{eviction}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := redistest.StartWith(t, tc.opts)
			extra := ""
			if tc.user {
				extra = "  username: telegate\n"
			}
			cfg := nodeConfigWith(t, rdb, "")
			if extra != "" {
				b, err := os.ReadFile(cfg.Source)
				if err != nil {
					t.Fatal(err)
				}
				b = []byte(strings.Replace(string(b), "redis:\n", "redis:\n"+extra, 1))
				if err := os.WriteFile(cfg.Source, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.stop {
				rdb.Stop()
			}
			ws := checkWarnings(t, cfg)
			t.Logf("warnings: %q", ws)
			for _, w := range tc.want {
				if !has(ws, w) {
					t.Errorf("no warning saying %q in %q", w, ws)
				}
			}
			for _, w := range tc.not {
				if has(ws, w) {
					t.Errorf("a warning saying %q in %q", w, ws)
				}
			}
			for _, w := range ws {
				if strings.Contains(w, "redis.addr") && !strings.Contains(w, ".yaml:") {
					t.Errorf("warning without file:line: %s", w)
				}
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		rdb := redistest.Start(t)
		cfg := nodeConfigWith(t, rdb, "")
		if err := os.WriteFile(filepath.Join(filepath.Dir(cfg.Source), "redis.password"), []byte("wrong\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Check(cfg.Source); err == nil || !strings.Contains(err.Error(), "redis.password_file") {
			t.Fatalf("check with a wrong password: %v, want an error naming redis.password_file", err)
		}
	})
}
