// Command edgebench compares telegate's request path with Caddy's
// reverse_proxy in front of the same loopback upstream, over HTTPS, with
// wrk: telegate's public route, telegate's signed-in route (session lookup,
// policy, assertion) and Caddy, in alternating runs. Everything listens on
// 127.0.0.1. It prints a Markdown table; scripts/bench-edge runs it.
//
// Usage: go run ./e2e/edgebench [-telegate BIN] [-duration 15s] [-rounds 3] [-connections 64]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/telegate/telegate/auth/devop"
	"github.com/telegate/telegate/e2e/webclient"
)

func main() {
	bin := flag.String("telegate", "", "telegate binary (default: build ./cmd/telegate)")
	dur := flag.Duration("duration", 15*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 3, "alternating rounds")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	flag.Parse()
	if err := run(*bin, *dur, *rounds, *conns, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

func run(bin string, dur time.Duration, rounds, conns, threads int) error {
	for _, tool := range []string{"wrk", "caddy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install -y %s)", tool, tool)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "edgebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "telegate")
		b := exec.Command("go", "build", "-o", bin, "./cmd/telegate")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("building telegate: %w", err)
		}
	}

	// The upstream both proxies share: a small fixed response.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte(strings.Repeat("x", 512))
	go (&http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}).Serve(up)

	tgPort, adminPort, caddyPort := freePort(), freePort(), freePort()
	base := fmt.Sprintf("https://localhost:%d", tgPort)
	secret := "edgebench-client-secret-0123456789"
	op, err := devop.Start(ctx, devop.Options{
		Logger: slog.New(slog.DiscardHandler),
		Clients: []devop.Client{{
			ID: "edgebench", Secret: secret,
			RedirectURIs:           []string{base + "/.telegate/callback/bench"},
			PostLogoutRedirectURIs: []string{base + "/.telegate/signed-out"},
		}},
	})
	if err != nil {
		return err
	}
	defer op.Close()

	cfgPath := filepath.Join(dir, "telegate.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
server:
  listen: 127.0.0.1:%d
  http_listen: ""
  admin: 127.0.0.1:%d
  public_url: %s
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: bench
    issuer: %s
    client_id: edgebench
    client_secret: ${EDGEBENCH_SECRET}
    roles:
      claim: groups
      map:
        clinicians: [clinician]
rate_limits:
  per_client: {rate: 1000000, burst: 1000000}
  per_subject: {rate: 1000000, burst: 1000000}
log:
  level: warn
routes:
  - id: public
    path: /public/
    upstream: http://%s
    policy: {public: true}
  - id: app
    path: /app/
    upstream: http://%s
    providers: [bench]
    policy:
      allow:
        - roles: [clinician]
`, filepath.Join(dir, "tg-data"), tgPort, adminPort, base, op.Issuer(), up.Addr(), up.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	tg := exec.CommandContext(ctx, bin, "run", "-c", cfgPath)
	tg.Env = append(os.Environ(), "EDGEBENCH_SECRET="+secret)
	tgLog, _ := os.Create(filepath.Join(dir, "telegate.log"))
	tg.Stdout, tg.Stderr = tgLog, tgLog
	if err := tg.Start(); err != nil {
		return err
	}
	defer tg.Process.Kill()
	if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort)); err != nil {
		out, _ := os.ReadFile(tgLog.Name())
		return fmt.Errorf("telegate not ready: %w\n%s", err, out)
	}

	c, err := webclient.New(filepath.Join(dir, "tg-data", "ca", "root.pem"))
	if err != nil {
		return err
	}
	resp, page, err := c.SignIn(base+"/app/", "clinician@demo.test", "demo")
	if err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("sign-in: %v %.200s", err, page)
	}
	cookie := c.Cookie(base, "__Host-telegate")
	if cookie == nil {
		return errors.New("sign-in: no session cookie")
	}

	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, fmt.Appendf(nil, `{
	admin off
	skip_install_trust
	storage file_system %s
	log {
		level ERROR
	}
}
https://localhost:%d {
	bind 127.0.0.1
	tls internal
	reverse_proxy %s
}
`, filepath.Join(dir, "caddy-data"), caddyPort, up.Addr()), 0o600); err != nil {
		return err
	}
	cd := exec.CommandContext(ctx, "caddy", "run", "--config", caddyfile, "--adapter", "caddyfile")
	cd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cdLog, _ := os.Create(filepath.Join(dir, "caddy.log"))
	cd.Stdout, cd.Stderr = cdLog, cdLog
	if err := cd.Start(); err != nil {
		return err
	}
	defer cd.Process.Kill()
	if err := waitTLS(fmt.Sprintf("127.0.0.1:%d", caddyPort)); err != nil {
		out, _ := os.ReadFile(cdLog.Name())
		return fmt.Errorf("caddy not ready: %w\n%s", err, out)
	}

	targets := []target{
		{name: "caddy reverse_proxy", url: fmt.Sprintf("https://localhost:%d/public/", caddyPort)},
		{name: "telegate public route", url: base + "/public/"},
		{name: "telegate signed-in route", url: base + "/app/", header: "Cookie: __Host-telegate=" + cookie.Value},
	}
	for r := 0; r < rounds; r++ {
		for i := range targets {
			res, err := wrk(targets[i], dur, conns, threads)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d %-26s %10.0f req/s  p99 %7.2f ms  non-2xx %d\n", r+1, targets[i].name, res.rps, res.p99ms, res.bad)
			targets[i].runs = append(targets[i].runs, res)
		}
	}
	caddy, pub, signed := targets[0].median(), targets[1].median(), targets[2].median()
	fmt.Printf("| target | requests/s (median of %d) | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|\n", rounds)
	for _, t := range targets {
		m := t.median()
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %d |\n", t.name, m.rps, m.p50ms, m.p99ms, m.bad)
	}
	fmt.Printf("\npublic / caddy = %.2f× (target ≥ 1.0×); p99 public − caddy = %+.2f ms (target ≤ +1 ms)\n", pub.rps/caddy.rps, pub.p99ms-caddy.p99ms)
	fmt.Printf("signed-in / public = %.2f× (target ≥ 0.9×)\n", signed.rps/pub.rps)
	return nil
}

type result struct {
	rps, p50ms, p99ms float64
	bad               int
}

type target struct {
	name, url, header string
	runs              []result
}

// median is the run with the median requests/s.
func (t target) median() result {
	rs := append([]result(nil), t.runs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
	return rs[len(rs)/2]
}

var (
	rpsRe  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p50Re  = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	p99Re  = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	non2Re = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

func wrk(t target, dur time.Duration, conns, threads int) (result, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(dur.Seconds())), "--latency"}
	if t.header != "" {
		args = append(args, "-H", t.header)
	}
	args = append(args, t.url)
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %w\n%s", t.name, err, out)
	}
	var r result
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("wrk %s: no Requests/sec in\n%s", t.name, out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.p50ms = latency(p50Re, out)
	r.p99ms = latency(p99Re, out)
	if m := non2Re.FindSubmatch(out); m != nil {
		r.bad, _ = strconv.Atoi(string(m[1]))
	}
	return r, nil
}

func latency(re *regexp.Regexp, out []byte) float64 {
	m := re.FindSubmatch(out)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	switch string(m[2]) {
	case "us":
		return v / 1000
	case "s":
		return v * 1000
	}
	return v
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitHTTP(u string) error {
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("timed out")
}

func waitTLS(addr string) error {
	for i := 0; i < 300; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("timed out")
}
