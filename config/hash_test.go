package config

import (
	"strings"
	"testing"
)

// TestRegression_ConfigHashLeavesSecretsOut: the configuration hash that
// /readyz, the metrics and every audit record show changes with every
// setting and with nothing secret: two nodes with the same policy and
// different secrets report the same hash, and the hash gives nothing to
// guess a secret against (a client secret, the session key, the audit
// key).
func TestRegression_ConfigHashLeavesSecretsOut(t *testing.T) {
	t.Parallel()
	base := string(readTestdata(t, "valid.yaml"))
	hash := func(src string, env map[string]string) string {
		t.Helper()
		cfg, err := parse([]byte(src), "testdata/valid.yaml", lookup(env))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Hash()
	}
	h := hash(base, testEnv)
	if len(h) != 64 || h != hash(base, testEnv) {
		t.Fatalf("hash %q is not a stable SHA-256", h)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"client secret", "client_secret: ${STAFF_SECRET}", "client_secret: ${OTHER_SECRET}"},
		{"session key", "sessions:", "sessions:\n  encryption_key: ${SESSION_KEY}"},
		{"audit key", "routes:", "audit:\n  key: ${AUDIT_KEY}\nroutes:"},
	} {
		env := map[string]string{"STAFF_SECRET": "s3cret-value", "OTHER_SECRET": "another-s3cret",
			"SESSION_KEY": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", "AUDIT_KEY": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}
		src := strings.Replace(base, tc.from, tc.to, 1)
		other := map[string]string{"STAFF_SECRET": "s3cret-value", "OTHER_SECRET": "yet-another-s3cret",
			"SESSION_KEY": "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY=", "AUDIT_KEY": "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY="}
		if a, b := hash(src, env), hash(src, other); a != b {
			t.Errorf("%s: the hash changes with the secret's value", tc.name)
		}
	}
	for _, tc := range []struct{ name, from, to string }{
		{"route upstream", "upstream: http://127.0.0.1:8080", "upstream: http://127.0.0.1:8090"},
		{"policy", "- roles: [scheduler]", "- roles: [clinician]"},
		{"idle timeout", "idle_timeout: 15m", "idle_timeout: 10m"},
		{"provider", "client_id: telegate", "client_id: telegate-2"},
	} {
		if hash(strings.Replace(base, tc.from, tc.to, 1), testEnv) == h {
			t.Errorf("%s: a changed setting keeps the hash", tc.name)
		}
	}
}
