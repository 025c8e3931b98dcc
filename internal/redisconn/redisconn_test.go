package redisconn

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// TestRegression_RedisClientBuiltInOnePlace: no package but this one
// makes go-redis options or clients (sessions, sign-in round trips,
// grants, rate limits, visits, signaling bus, relay registry, and any
// later user), so the redis section's TLS, ACL user and password reach
// every connection. Test helpers (internal/redistest) are exempt.
func TestRegression_RedisClientBuiltInOnePlace(t *testing.T) {
	pat := regexp.MustCompile(`redis\.(NewClient|NewUniversalClient|NewClusterClient|NewFailoverClient|ParseURL)\(|redis\.(Options|UniversalOptions|ClusterOptions|FailoverOptions)\{`)
	var found []string
	eachSourceLine(t, []string{"redisconn", "redistest"}, func(p string, n int, l string) {
		if pat.MatchString(l) {
			found = append(found, fmt.Sprintf("%s:%d: %s", p, n, strings.TrimSpace(l)))
		}
	})
	if len(found) > 0 {
		t.Fatalf("Redis clients built outside internal/redisconn (use redisconn.Conn.NewClient):\n%s", strings.Join(found, "\n"))
	}
}

// TestFromConfig: the password comes from password_file, TLS is on only
// with enabled (its server name defaulting to the host of addr, TLS 1.2
// at least), and TLS settings without enabled are refused.
func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FromConfig(config.Redis{Addr: "redis.internal:6380", Username: "telegate", PasswordFile: pw, TLS: config.RedisTLS{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Password != "s3cret" || c.Username != "telegate" || c.TLS == nil || c.TLS.ServerName != "redis.internal" || c.TLS.MinVersion < 0x0303 {
		t.Fatalf("conn %+v tls %+v", c, c.TLS)
	}
	o := c.Options(Tuning{})
	if o.TLSConfig == nil || o.Username != "telegate" || o.Password != "s3cret" {
		t.Fatalf("options lose TLS or credentials: %+v", o)
	}
	if _, err := FromConfig(config.Redis{Addr: "r:6379", TLS: config.RedisTLS{CAFile: pw}}); err == nil || !strings.Contains(err.Error(), "enabled: true") {
		t.Fatalf("TLS files without enabled: %v", err)
	}
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromConfig(config.Redis{Addr: "r:6379", PasswordFile: pw}); err == nil || !strings.Contains(err.Error(), "redis.password_file") {
		t.Fatalf("a password file every user can read: %v", err)
	}
}

// TestDeploymentDocListsACLRules: the ACL user docs/deployment.md tells a
// hospital to create is exactly the one the tests run against.
func TestDeploymentDocListsACLRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ACL SETUSER telegate >PASSWORD " + strings.Join(ACLRules(false), " ") + "\n"
	if !strings.Contains(string(b), want) {
		t.Fatalf("docs/deployment.md does not give the ACL user as\n%s", want)
	}
}

// TestRegression_ScriptCommandNotInACL: every command a Lua script of
// telegate's calls (redis.call / redis.pcall, in any package) is one of
// ACLCommands, so the least ACL user docs/deployment.md gives can run
// every script: a script calling a command the user lacks fails only when
// it runs (a sign-in, an admission), against a production Redis.
func TestRegression_ScriptCommandNotInACL(t *testing.T) {
	call := regexp.MustCompile(`redis\.p?call\(\s*['"]([A-Za-z]+)['"]`)
	allowed := map[string]bool{}
	for _, c := range ACLCommands {
		allowed[c] = true
	}
	scripts := 0
	var missing []string
	eachSourceLine(t, nil, func(p string, n int, l string) {
		for _, m := range call.FindAllStringSubmatch(l, -1) {
			scripts++
			if cmd := strings.ToLower(m[1]); !allowed[cmd] {
				missing = append(missing, fmt.Sprintf("%s:%d: %s", p, n, cmd))
			}
		}
	})
	if scripts == 0 {
		t.Fatal("no redis.call found: the scan reads nothing")
	}
	if len(missing) > 0 {
		t.Fatalf("scripts call commands ACLCommands lacks (add them there and to docs/deployment.md):\n%s", strings.Join(missing, "\n"))
	}
}

// eachSourceLine calls fn with every line (numbered from 1) of every
// non-test Go file of the module, skipping .git, node_modules, testdata
// and the directories named in skip.
func eachSourceLine(t *testing.T, skip []string, fn func(path string, n int, line string)) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join("..", ".."), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "node_modules" || n == "testdata" || slices.Contains(skip, n) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, l := range strings.Split(string(b), "\n") {
			fn(p, i+1, l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
