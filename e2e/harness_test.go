// Package e2e runs the real telegate binary (or its real server types)
// against real peers on loopback: the development OpenID Provider, the demo
// upstream app, HTTP clients with cookie jars and headless Chromium.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/e2e/webclient"
	"github.com/telegate/telegate/internal/freeport"
)

// telegateBin is the binary built once by TestMain.
var telegateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "telegate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	telegateBin = filepath.Join(dir, "telegate")
	build := exec.Command("go", "build", "-o", telegateBin, "../cmd/telegate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building telegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port that was free a moment ago
// (internal/freeport: below the ephemeral range, once per test binary).
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.TCP(t)
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	return freeport.UDP(t)
}

// demo is a running `telegate demo` process.
type demo struct {
	t       testing.TB
	dataDir string
	port    int
	admin   int
	relay   int // UDP port of the TURN relay
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{}
	// bin and env, when set before start, are the binary to run instead
	// of telegateBin and extra environment variables.
	bin string
	env []string
	// ip and name, when set, are the loopback address the node listens
	// on (default 127.0.0.1) and its public host name (default
	// localhost).
	ip, name string
}

// Base is the public URL, e.g. "https://localhost:41234".
func (d *demo) Base() string { return fmt.Sprintf("https://%s:%d", d.hostName(), d.port) }

// AdminURL is the admin listener's base URL.
func (d *demo) AdminURL() string { return fmt.Sprintf("http://%s:%d", d.addr(), d.admin) }

// addr is the loopback address d listens on.
func (d *demo) addr() string {
	if d.ip != "" {
		return d.ip
	}
	return "127.0.0.1"
}

// hostName is d's public host name.
func (d *demo) hostName() string {
	if d.name != "" {
		return d.name
	}
	return "localhost"
}

// startDemo runs `telegate demo` on loopback ports with dataDir and waits
// until its admin listener says it is ready.
func startDemo(t testing.TB, dataDir string, port, admin int) *demo {
	t.Helper()
	d := &demo{t: t, dataDir: dataDir, port: port, admin: admin, relay: freeUDPPort(t)}
	return d.start("demo",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--admin", fmt.Sprintf("127.0.0.1:%d", admin),
		"--relay", fmt.Sprintf("127.0.0.1:%d", d.relay),
		"--data-dir", dataDir)
}

// start runs the telegate binary with args for d (whose ports and data
// directory the arguments name) and waits until its admin listener says
// it is ready.
func (d *demo) start(args ...string) *demo {
	d.t.Helper()
	d.launch(args...)
	return d.waitReady(args[0])
}

// launch runs the telegate binary with args for d without waiting for it
// (waitReady does), so that several nodes can start at one moment.
func (d *demo) launch(args ...string) {
	t := d.t
	t.Helper()
	d.out, d.done = &lockedBuffer{}, make(chan struct{})
	bin := telegateBin
	if d.bin != "" {
		bin = d.bin
	}
	d.cmd = exec.Command(bin, args...)
	if d.env != nil {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.Stop() })
}

// waitReady waits until d's admin listener says it is ready; what names
// the command in a failure.
func (d *demo) waitReady(what string) *demo {
	t := d.t
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			t.Fatalf("telegate %s exited early:\n%s", what, d.out.String())
		default:
		}
		// The admin port was free a moment ago, but another process may
		// have taken it since: only this process's own "listening" line
		// naming the port makes its /readyz answer this process's.
		if !strings.Contains(d.out.String(), fmt.Sprintf("admin=%s:%d", d.addr(), d.admin)) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		resp, err := http.Get(d.AdminURL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("telegate %s not ready in time:\n%s", what, d.out.String())
	return nil
}

// Stop ends the process with SIGTERM (then SIGKILL) and waits for it.
func (d *demo) Stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Output is what the process printed so far.
func (d *demo) Output() string { return d.out.String() }

// browser wraps webclient.Client with test failure handling.
type browser struct {
	t      testing.TB
	c      *webclient.Client
	accept string
}

func newBrowser(t testing.TB, d *demo) *browser {
	t.Helper()
	c, err := webclient.New(filepath.Join(d.dataDir, "ca", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &browser{t: t, c: c, accept: "application/json"}
}

// noRedirect returns a client that stops at the first response.
func (b *browser) noRedirect() *http.Client { return b.c.NoRedirect() }

// signIn opens path on the gateway, signs in at the development OpenID
// Provider's form and returns the page the gateway finally serves.
func (b *browser) signIn(base, path, user, password string) (*http.Response, []byte) {
	b.t.Helper()
	b.c.Accept = b.accept
	resp, body, err := b.c.SignIn(base+path, user, password)
	if err != nil {
		b.t.Fatalf("sign-in as %s: %v\n%.500s", user, err, body)
	}
	return resp, body
}

func (b *browser) get(u string) (*http.Response, []byte) {
	b.t.Helper()
	return b.do(nil, mustRequest(b.t, http.MethodGet, u, b.accept))
}

func (b *browser) post(u string, form url.Values, hdr http.Header) (*http.Response, []byte) {
	b.t.Helper()
	b.c.Accept = b.accept
	resp, body, err := b.c.PostForm(u, form, hdr)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return resp, body
}

func (b *browser) do(c *http.Client, req *http.Request) (*http.Response, []byte) {
	b.t.Helper()
	resp, body, err := b.c.Do(c, req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// cookie returns the named cookie the jar holds for base, or nil.
func (b *browser) cookie(base, name string) *http.Cookie { return b.c.Cookie(base, name) }

// upstreamView is the demo app's JSON: what the upstream saw in the
// gateway's assertion.
type upstreamView struct {
	Subject       string   `json:"subject"`
	Issuer        string   `json:"issuer"`
	Name          string   `json:"name"`
	Roles         []string `json:"roles"`
	MFA           bool     `json:"mfa"`
	Route         string   `json:"route"`
	Path          string   `json:"path"`
	Authenticated bool     `json:"authenticated"`
}

func decodeView(t testing.TB, body []byte) upstreamView {
	t.Helper()
	var v upstreamView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("upstream view: %v in %.300s", err, body)
	}
	return v
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runBinary runs the telegate binary with args (bounded in time) and
// returns its combined output.
func runBinary(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, telegateBin, args...).CombinedOutput()
	return string(out), err
}
