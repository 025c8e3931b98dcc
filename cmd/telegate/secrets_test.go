package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/policies"
)

// checkInProcess runs `telegate check -c path` in this process and
// returns its exit status and output.
func checkInProcess(t *testing.T, path string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli{stdout: &out, stderr: &errb}.main(context.Background(), []string{"check", "-c", path})
	return result{code, out.String(), errb.String()}
}

// secretField is one secret file field of the configuration: how to put
// it into valid.yaml, and the loader that reads it when telegate starts.
type secretField struct {
	field string // full field path in messages
	// yaml edits valid.yaml so that the field names FILE; the edited line
	// ends in "# <-".
	yaml func(src string) string
	good string // content the reader accepts
	// short is content of the right kind that is too short ("" when the
	// field has no length of its own beyond not being empty).
	short, shortFrag string
	// run reads path as the start of `telegate run` does.
	run func(t *testing.T, path string) error
}

func secretFields() []secretField {
	key32 := "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n" // 32 bytes in base64
	return []secretField{
		{
			field: "relay.secrets_file",
			yaml: func(src string) string {
				return src + "relay:\n  enabled: true\n  relay_addresses: [192.0.2.10]\n  secrets_file: FILE # <-\n"
			},
			good: "# rotated 2026-01\nan-old-relay-secret-0123\nthe-new-relay-secret-4567\n", short: "short-secret\n", shortFrag: "at least 16 bytes",
			run: func(t *testing.T, path string) error {
				s, err := relay.New(relay.Options{
					Config: config.Relay{Enabled: true, SecretsFile: path, RelayAddresses: []netip.Addr{netip.MustParseAddr("192.0.2.10")}},
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				})
				if err == nil {
					_ = s.Close()
				}
				return err
			},
		},
		{
			field: "audit.key_file",
			yaml:  func(src string) string { return src + "audit:\n  key_file: FILE # <-\n" },
			good:  key32, short: "c2hvcnQ=\n", shortFrag: "need at least 32",
			run: func(t *testing.T, path string) error {
				_, err := audit.Key(config.Audit{KeyFile: path}, t.TempDir())
				return err
			},
		},
		{
			field: "sessions.encryption_key_file",
			yaml: func(src string) string {
				return strings.Replace(src, "sessions:\n", "sessions:\n  encryption_key_file: FILE # <-\n", 1)
			},
			good: key32, short: "c2hvcnQ=\n", shortFrag: "32 bytes",
			run: func(t *testing.T, path string) error {
				cfg := &config.Config{DataDir: t.TempDir(), Sessions: config.Sessions{Store: "file", EncryptionKeyFile: path}}
				cfg.ApplyDefaults()
				st, err := auth.OpenStore(cfg)
				if err == nil {
					_ = st.Close()
				}
				return err
			},
		},
		{
			field: "redis.password_file",
			yaml:  func(src string) string { return src + "redis:\n  addr: 127.0.0.1:6379\n  password_file: FILE # <-\n" },
			good:  "a-redis-password\n",
			run: func(t *testing.T, path string) error {
				_, err := policies.RedisLimiterOptionsFrom(config.Redis{Addr: "127.0.0.1:6379", PasswordFile: path})
				return err
			},
		},
		{
			// Read only by Load: its run-time reader is Load itself.
			field: "providers[0].client_secret_file",
			yaml: func(src string) string {
				return strings.Replace(src, "    client_secret: ${STAFF_SECRET}\n", "    client_secret_file: FILE # <-\n", 1)
			},
			good: "a-client-secret\n",
		},
	}
}

// TestRegression_CheckRefusesWhatRunRefuses: `telegate check` passed a
// missing, empty, too short or world-readable relay secrets file (and
// world-writable secret files of every kind) that `run` then refused — or
// accepted. Now one rule (config.CheckSecretFile and the decoders next to
// it) serves both: for each secret file field and each way a file can be
// wrong, check exits 1 naming the field with file:line, and the run-time
// loader refuses the same file for the same reason.
func TestRegression_CheckRefusesWhatRunRefuses(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	base, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	type badFile struct {
		name    string
		content func(f secretField) (string, bool) // false: leave the file absent
		mode    os.FileMode
		frag    func(f secretField, path string) string
	}
	cases := []badFile{
		{"valid", func(f secretField) (string, bool) { return f.good, true }, 0o600, nil},
		{"group-readable is fine", func(f secretField) (string, bool) { return f.good, true }, 0o640, nil},
		{"missing", func(secretField) (string, bool) { return "", false }, 0, func(_ secretField, p string) string { return "cannot read " + p }},
		{"empty", func(secretField) (string, bool) { return "", true }, 0o600, func(secretField, string) string { return "is empty" }},
		{"blank", func(secretField) (string, bool) { return " \n\n", true }, 0o600, func(secretField, string) string { return "is empty" }},
		{"too short", func(f secretField) (string, bool) { return f.short, f.short != "" }, 0o600, func(f secretField, _ string) string { return f.shortFrag }},
		{"world-readable", func(f secretField) (string, bool) { return f.good, true }, 0o644, func(_ secretField, p string) string {
			return "readable by every user (mode 0644); restrict it with \"chmod 600 " + p + "\""
		}},
		{"world-writable", func(f secretField) (string, bool) { return f.good, true }, 0o602, func(_ secretField, p string) string {
			return "writable by every user (mode 0602); restrict it with \"chmod 600 " + p + "\""
		}},
	}
	for _, f := range secretFields() {
		for _, tc := range cases {
			content, present := tc.content(f)
			if tc.name == "too short" && !present {
				continue // this field has no length beyond not being empty
			}
			t.Run(f.field+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
					t.Fatal(err)
				}
				good := filepath.Join(dir, "client-secret")
				writeMode(t, good, "a-client-secret\n", 0o600)
				secret := filepath.Join(dir, "the-secret")
				if present {
					writeMode(t, secret, content, tc.mode)
				}
				src := strings.Replace(string(base), "    client_secret: ${STAFF_SECRET}\n", "    client_secret_file: "+good+"\n", 1)
				if f.field == "providers[0].client_secret_file" {
					src = string(base) // its yaml edit replaces this line itself
				}
				src = strings.ReplaceAll(f.yaml(src), "FILE", secret)
				line := 0
				for i, l := range strings.Split(src, "\n") {
					if strings.HasSuffix(l, "# <-") {
						line = i + 1
					}
				}
				cfgPath := filepath.Join(dir, "telegate.yaml")
				writeMode(t, cfgPath, src, 0o600)

				r := checkInProcess(t, cfgPath)
				var runErr error
				if f.run != nil {
					runErr = f.run(t, secret)
				}
				if tc.frag == nil {
					if r.code != 0 {
						t.Fatalf("check of a valid file: exit %d, stderr:\n%s", r.code, r.stderr)
					}
					if runErr != nil {
						t.Fatalf("run-time loader refuses a file check accepts: %v", runErr)
					}
					return
				}
				frag := tc.frag(f, secret)
				if r.code != exitFail {
					t.Fatalf("check: exit %d, want %d; stdout %q, stderr %q", r.code, exitFail, r.stdout, r.stderr)
				}
				want := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cfgPath+":"+strconv.Itoa(line)+": "+f.field+": ") + `.*` + regexp.QuoteMeta(frag))
				if !want.MatchString(r.stderr) {
					t.Errorf("check does not report %s:%d: %s: …%s; stderr:\n%s", cfgPath, line, f.field, frag, r.stderr)
				}
				if n := strings.Count(r.stderr, ": "+f.field+": "); n != 1 {
					t.Errorf("check reports %s %d times, want once:\n%s", f.field, n, r.stderr)
				}
				if strings.Contains(r.stderr, strings.TrimSpace(f.good)) {
					t.Error("check repeats the secret")
				}
				if f.run == nil {
					return
				}
				if runErr == nil {
					t.Fatalf("the run-time loader accepts a file check refuses (%s)", tc.name)
				}
				if !strings.Contains(runErr.Error(), frag) {
					t.Errorf("the run-time loader refuses for another reason: %v, want %q", runErr, frag)
				}
			})
		}
	}
}

// writeMode writes content to path with exactly mode perm (umask-proof).
func writeMode(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}
