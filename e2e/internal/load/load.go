// Package load is what telegate's load generators share (e2e/edgebench,
// e2e/abusebench): building the binary under test, a fixed loopback
// upstream, free ports, readiness, a process's CPU time from /proc, and
// wrk runs with their summary parsed. Everything stays on loopback.
package load

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BuildTelegate builds ./cmd/telegate (run from the repository root) into
// dir and returns the binary's path.
func BuildTelegate(dir string) (string, error) {
	bin := filepath.Join(dir, "telegate")
	b := exec.Command("go", "build", "-o", bin, "./cmd/telegate")
	b.Stdout, b.Stderr = os.Stderr, os.Stderr
	if err := b.Run(); err != nil {
		return "", fmt.Errorf("building telegate: %w", err)
	}
	return bin, nil
}

// Upstream serves a fixed 512-byte text/plain answer to every request on
// 127.0.0.1 and returns its host:port. It runs until the process ends.
func Upstream() (string, error) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	body := []byte(strings.Repeat("x", 512))
	go (&http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}).Serve(up)
	return up.Addr().String(), nil
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort is a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort() int {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// WaitHTTP polls u until it answers 200, for at most d.
func WaitHTTP(u string, d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("no 200 from %s within %v", u, d)
}

// WaitTCP polls addr until it accepts a TCP connection, for at most d.
func WaitTCP(addr string, d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("%s accepts no connection within %v", addr, d)
}

// CPUTime is the CPU time (user and system) process pid has used so far,
// from /proc/PID/stat; 0 where it cannot be read.
func CPUTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// P99 is the 99th percentile of ds (which it sorts), 0 for none.
func P99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

// Wrk configures one wrk run (wrk 4: https://github.com/wg/wrk).
type Wrk struct {
	URL      string
	Duration time.Duration // whole seconds
	Threads  int           // default 2
	Conns    int           // default 64
	// Header, when set, is one request header "Name: value".
	Header string
	// Script, when set, is a Lua script (-s).
	Script string
	// Timeout is wrk's per-request timeout (--timeout); 0: wrk's default.
	Timeout time.Duration
}

// WrkResult is wrk's summary.
type WrkResult struct {
	Requests int     // completed requests
	RPS      float64 // Requests/sec
	P50, P99 time.Duration
	Non2xx   int
	// Socket errors: connect errors never produced a request; read,
	// write and timeout errors each broke one.
	Connect, Read, Write, Timeout int
}

// Run runs wrk; it fails when wrk does or prints no Requests/sec.
func (w Wrk) Run() (WrkResult, error) {
	if w.Threads == 0 {
		w.Threads = 2
	}
	if w.Conns == 0 {
		w.Conns = 64
	}
	args := []string{"-t", strconv.Itoa(w.Threads), "-c", strconv.Itoa(w.Conns), "-d", strconv.Itoa(int(w.Duration.Seconds())) + "s", "--latency"}
	if w.Timeout > 0 {
		args = append(args, "--timeout", strconv.Itoa(max(int(w.Timeout.Seconds()), 1))+"s")
	}
	if w.Header != "" {
		args = append(args, "-H", w.Header)
	}
	if w.Script != "" {
		args = append(args, "-s", w.Script)
	}
	out, err := exec.Command("wrk", append(args, w.URL)...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w\n%s", w.URL, err, out)
	}
	return ParseWrk(string(out))
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in `)
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP50      = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	wrkP99      = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// ParseWrk reads wrk's --latency summary.
func ParseWrk(out string) (WrkResult, error) {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	var r WrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("wrk: no Requests/sec in\n" + out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.Requests = atoi(m[1])
	}
	r.P50, r.P99 = latency(wrkP50, out), latency(wrkP99, out)
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx = atoi(m[1])
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		r.Connect, r.Read, r.Write, r.Timeout = atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])
	}
	return r, nil
}

// latency is the duration re captures (value, unit), or -1 without one.
func latency(re *regexp.Regexp, out string) time.Duration {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit))
}

// Caddyfile is a Caddy 2 configuration of one site,
// https://localhost:PORT bound to 127.0.0.1, that reverse-proxies to
// upstream (host:port): admin API off, no trust-store install, logs at
// ERROR, storage under dataDir. tls is the tls directive's arguments:
// "internal" (Caddy's own CA) or "CERT.pem KEY.pem".
func Caddyfile(dataDir string, port int, tls, upstream string) []byte {
	return fmt.Appendf(nil, `{
	admin off
	skip_install_trust
	storage file_system %s
	log {
		level ERROR
	}
}
https://localhost:%d {
	bind 127.0.0.1
	tls %s
	reverse_proxy %s
}
`, dataDir, port, tls, upstream)
}

// SecretEnv is the environment variable that carries the OpenID
// Provider client secret into TelegateConfig's configuration.
const SecretEnv = "BENCH_CLIENT_SECRET"

// TelegateSite is what TelegateConfig needs to know.
type TelegateSite struct {
	DataDir     string
	Port, Admin int    // HTTPS and admin listeners on 127.0.0.1
	Issuer      string // the development OpenID Provider
	ClientID    string // its client; the secret comes from $BENCH_CLIENT_SECRET
	Upstream    string // host:port
	// Server holds extra keys of the server mapping, Top extra top-level
	// mappings and Routes extra routes, each as YAML indented as in the
	// file; empty: none.
	Server, Top, Routes string
}

// TelegateConfig is telegate's configuration for the HTTP benchmarks: the
// local CA for localhost, rate limits raised out of the way, log level
// warn, a public route /public/ and a signed-in route /app/ (provider
// "bench", role clinician from the groups claim clinicians), both to the
// upstream.
func TelegateConfig(s TelegateSite) []byte {
	return fmt.Appendf(nil, `data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
  public_url: https://localhost:%[2]d
%[7]stls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: bench
    issuer: %[4]s
    client_id: %[5]s
    client_secret: ${%[10]s}
    roles:
      claim: groups
      map:
        clinicians: [clinician]
rate_limits:
  per_client: {rate: 1000000, burst: 1000000}
  per_subject: {rate: 1000000, burst: 1000000}
log:
  level: warn
%[8]sroutes:
  - id: public
    path: /public/
    upstream: http://%[6]s
    policy: {public: true}
  - id: app
    path: /app/
    upstream: http://%[6]s
    providers: [bench]
    policy:
      allow:
        - roles: [clinician]
%[9]s`, s.DataDir, s.Port, s.Admin, s.Issuer, s.ClientID, s.Upstream, s.Server, s.Top, s.Routes, SecretEnv)
}
