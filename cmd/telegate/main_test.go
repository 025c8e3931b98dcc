package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin is the telegate binary built once for these tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "telegate-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "telegate")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building telegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// telegate runs the binary with args and env (added to a minimal
// environment) and waits at most 20 s.
func telegate(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("telegate %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// validConfig writes a valid configuration (config/testdata/valid.yaml
// and the file it names) into a fresh directory and returns its path.
func validConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"valid.yaml", "ca.pem"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "valid.yaml")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := telegate(t, nil, "version")
	if r.code != 0 || !regexp.MustCompile(`^telegate \S+ \(rev \S+?\)? go1\.\d+`).MatchString(r.stdout) {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args  []string
		flags []string
	}{
		{[]string{"--help"}, []string{"run", "demo", "check", "audit verify", "version"}},
		{[]string{"run", "--help"}, []string{"-c FILE", "-config FILE", "-watch INTERVAL"}},
		{[]string{"check", "--help"}, []string{"-c FILE", "-config FILE"}},
		{[]string{"demo", "--help"}, []string{"-listen ADDR", "-admin ADDR", "-data-dir DIR", "localhost:8443", "127.0.0.1:9090", "telegate-data"}},
		{[]string{"audit", "verify", "--help"}, []string{"-c FILE", "-file PATH", "-key-file PATH", "-data-dir DIR"}},
		{[]string{"version", "-h"}, []string{"Usage: telegate version"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := telegate(t, nil, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, f := range tc.flags {
				if !strings.Contains(r.stdout, f) {
					t.Errorf("usage lacks %q:\n%s", f, r.stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"check", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"check"}, "-c FILE is required"},
		{[]string{"check", "-c", "a.yaml", "extra"}, `unexpected argument "extra"`},
		{[]string{"demo", "--bogus"}, "flag provided but not defined"},
		{[]string{"run"}, "-c FILE is required"},
		{[]string{"audit"}, `expected the subcommand "verify"`},
		{[]string{"audit", "verify", "extra"}, `unexpected argument "extra"`},
		{[]string{}, "-c FILE is required"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := telegate(t, nil, tc.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "Usage") {
				t.Errorf("stderr lacks %q and usage:\n%s", tc.want, r.stderr)
			}
		})
	}
}

func TestCheckValid(t *testing.T) {
	t.Parallel()
	path := validConfig(t)
	r := telegate(t, []string{"STAFF_SECRET=x"}, "check", "-c", path)
	if r.code != 0 || r.stdout != path+": ok\n" {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The same file without the variable it references.
	r = telegate(t, nil, "check", "-c", path)
	if r.code != 1 || !strings.Contains(r.stderr, path+":19: providers[0].client_secret: environment variable STAFF_SECRET is not set") {
		t.Fatalf("check without STAFF_SECRET: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCheckReportsEveryError(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "config", "testdata", "several-errors.yaml")
	r := telegate(t, nil, "check", "-c", path)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+: [a-z_]+[a-z0-9_.\[\]]*: \S`)
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("line %q is not file:line: field: message", l)
		}
	}
	// The file's policy problem (public with allow rules) is the policy
	// engine's rule: reported in the same run as the file's own.
	if len(lines) != 15 || !strings.Contains(r.stderr, "routes[0].policy.public: a public route admits everyone") {
		t.Errorf("%d problems reported, want 15 with the policy's:\n%s", len(lines), r.stderr)
	}
}

func TestCheckPrintsWarnings(t *testing.T) {
	t.Parallel()
	path := validConfig(t)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte("    policy:\n      allow:\n        - authenticated: true\n"), nil, 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := telegate(t, []string{"STAFF_SECRET=x"}, "check", "-c", path)
	if r.code != 0 || !strings.Contains(r.stderr, path+":29: routes[0].policy: warning: ") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// devConfig is a configuration for trying `telegate run` locally with the
// development provider.
const devConfig = `server:
  listen: 127.0.0.1:8443
  http_listen: ""
  admin: 127.0.0.1:9090
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    development: true
routes:
  - id: home
    path: /
    upstream: http://127.0.0.1:8080
    policy:
      allow:
        - authenticated: true
`

// TestCheckDevelopmentProvider: check accepts the development provider on
// loopback with a warning that labels it, and refuses it beside a listener
// that is not on loopback, naming the field with file:line.
func TestCheckDevelopmentProvider(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dev.yaml")
	if err := os.WriteFile(path, []byte(devConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	r := telegate(t, nil, "check", "-c", path)
	if r.code != 0 || r.stdout != path+": ok\n" || !strings.Contains(r.stderr, path+":11: providers[0].development: warning: development sign-in — not for patients") {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(devConfig, "listen: 127.0.0.1:8443", "listen: 0.0.0.0:443", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = telegate(t, nil, "check", "-c", path)
	if r.code != 1 || !strings.Contains(r.stderr, path+":11: providers[0].development: the development provider runs only with loopback listeners; server.listen is 0.0.0.0:443") {
		t.Fatalf("check beside 0.0.0.0: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDemoRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	cases := [][]string{
		{"demo", "--listen", "0.0.0.0:8443"},
		{"demo", "--listen", ":8443"},
		{"demo", "--listen", "192.168.1.10:8443"},
		{"demo", "--admin", "[::]:9090"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := telegate(t, nil, append(args, "--data-dir", t.TempDir())...)
			if r.code != 2 || !strings.Contains(r.stderr, `demo mode listens on loopback only; use "telegate run -c FILE" for a real deployment`) {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "config", "testdata", "several-errors.yaml")
	r := telegate(t, nil, "run", "-c", path)
	if r.code != 1 || !strings.Contains(r.stderr, path+":6: server.colour: unknown key") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls buf until it contains want.
func waitFor(t *testing.T, buf *syncBuffer, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(buf.String(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %q within %s in:\n%s", want, d, buf.String())
}

// reloadConfig is a configuration that runs on loopback with no IdP.
func reloadConfig(dir string) string {
	return fmt.Sprintf(`data_dir: %s
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin: 127.0.0.1:0
  public_url: https://localhost
tls:
  hosts:
    - names: [localhost]
      mode: local
routes:
  - id: public
    path: /
    upstream: http://127.0.0.1:1
    policy:
      public: true
log:
  format: json
`, filepath.Join(dir, "data"))
}

// TestRunReloadsOnFileChange: with --watch, a changed file is reloaded
// without a signal; a broken one is refused.
func TestRunReloadsOnFileChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := reloadConfig(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-c", path, "--watch", "100ms")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &logs, "telegate ready", 30*time.Second)
	if err := os.WriteFile(path, []byte(strings.Replace(good, "      public: true", "      public: maybe", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, "configuration reload refused", 10*time.Second)
	if !strings.Contains(logs.String(), path+":16: routes[0].policy.public: expected true or false") {
		t.Errorf("reload log lacks the problem:\n%s", logs.String())
	}
	if err := os.WriteFile(path, []byte(strings.Replace(good, "format: json", "format: json\n  level: debug", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, `"reason":"reload"`, 10*time.Second)
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v", err)
	}
}

// TestRunReloadsOnSIGHUP starts a real gateway on loopback, sends SIGHUP
// with a broken file (refused, old configuration kept, every problem
// logged), then with a good one (reloaded), then SIGTERM (clean stop).
func TestRunReloadsOnSIGHUP(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP")
	}
	t.Parallel()
	dir := t.TempDir()
	good := reloadConfig(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-c", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &logs, "telegate ready", 30*time.Second)

	broken := strings.Replace(good, "  admin: 127.0.0.1:0", "  admin: 0.0.0.0:9\n  colour: red", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, "configuration reload refused", 10*time.Second)
	for _, want := range []string{path + ":5: server.admin: ", path + ":6: server.colour: unknown key"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("reload log lacks %q", want)
		}
	}

	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, `"reason":"reload"`, 10*time.Second)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, logs.String())
	}
	// JSON logs: every line is one JSON object.
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "{") {
			t.Errorf("log line is not JSON: %q", l)
		}
	}
}

// TestStoppedExitStatus: after a signal a clean drain (or a signal during
// start-up) exits 0; a node that failed, before or during its shutdown,
// exits 1.
func TestStoppedExitStatus(t *testing.T) {
	t.Parallel()
	live := context.Background()
	signalled, cancel := context.WithCancel(context.Background())
	cancel()
	flush := errors.New("audit: flush: no space left on device")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"drained after a signal", signalled, nil, exitOK},
		{"signal during start-up", signalled, fmt.Errorf("certificates: %w", context.Canceled), exitOK},
		{"audit trail not flushed on the way out", signalled, flush, exitFail},
		{"stopped by itself", live, errors.New("public listener: address in use"), exitFail},
	} {
		var log bytes.Buffer
		if got := stopped(tc.ctx, newLogger(&log, "text", new(slog.LevelVar)), tc.err); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
		if tc.err != nil && tc.want == exitFail && !strings.Contains(log.String(), tc.err.Error()) {
			t.Errorf("%s: the failure is not logged: %s", tc.name, log.String())
		}
	}
}

// TestRegression_CheckAndRunRefuseAlike: every rule that used to be
// written twice (once in config, once in the part that builds from it)
// lives once, so `telegate check` refuses each of these files exactly
// once, at the field with its file:line, never twice in two wordings, and
// `telegate run` refuses it with the same line.
func TestRegression_CheckAndRunRefuseAlike(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, old, new, field string
	}{
		{"upstream with a path", "upstream: http://127.0.0.1:8080\n", "upstream: http://127.0.0.1:8080/base\n", "routes[0].upstream"},
		{"route path not canonical", "path: /api/\n", "path: /api//v1/\n", "routes[1].path"},
		{"reserved path", "path: /api/\n", "path: /.telegate/api/\n", "routes[1].path"},
		{"assertion header not X-", "sessions:\n", "assertion:\n  header: Telegate-Assertion\nsessions:\n", "assertion.header"},
		{"admin on a public address", "admin: 127.0.0.1:9090\n", "admin: 0.0.0.0:9090\n", "server.admin"},
		{"cookie name without __Host-", "sessions:\n", "sessions:\n  cookie_name: sid\n", "sessions.cookie_name"},
		{"unsupported signing alg", "signing_algs: [RS256]\n", "signing_algs: [HS256]\n", "providers[0].signing_algs[0]"},
		{"duplicate provider id", "bearer:\n", "  - id: staff\n    issuer: https://idp2.example.test\n    client_id: telegate\n    client_secret: ${STAFF_SECRET}\nbearer:\n", "providers[1].id"},
		{"policy that admits nobody", "    policy:\n      allow:\n        - roles: [scheduler]", "    policy:\n      require_mfa: true", "routes[1].policy.allow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := validConfig(t)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src := strings.Replace(string(b), `listen: ":8443"`, `listen: "127.0.0.1:0"`, 1)
			if !strings.Contains(src, tc.old) {
				t.Fatalf("valid.yaml has no %q", tc.old)
			}
			src = strings.Replace(src, tc.old, tc.new, 1)
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"STAFF_SECRET=x"}
			check := telegate(t, env, "check", "-c", path)
			if check.code != 1 {
				t.Fatalf("check: exit %d, want 1; stdout %q, stderr %q", check.code, check.stdout, check.stderr)
			}
			lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+: ` + regexp.QuoteMeta(tc.field) + `: \S`)
			var hits []string
			for _, l := range strings.Split(strings.TrimSpace(check.stderr), "\n") {
				if strings.Contains(l, tc.field) {
					hits = append(hits, l)
				}
			}
			if len(hits) != 1 || !lineRE.MatchString(hits[0]) {
				t.Fatalf("check reports %s %d times, want once as file:line: field: message:\n%s", tc.field, len(hits), check.stderr)
			}
			run := telegate(t, env, "run", "-c", path)
			if run.code != 1 || !strings.Contains(run.stderr, hits[0]) {
				t.Fatalf("run: exit %d, stderr %q; want it refused with %q", run.code, run.stderr, hits[0])
			}
		})
	}
}
