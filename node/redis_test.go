package node

import (
	"context"
	"net/http"
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
