// Command edgebench compares telegate's request path with Caddy's
// reverse_proxy in front of the same loopback upstream, over HTTPS, with
// wrk: telegate's public route, telegate's signed-in route (session lookup,
// policy, assertion) and Caddy, in alternating runs. Everything listens on
// 127.0.0.1. It prints a Markdown table; scripts/bench-edge runs it.
//
// With -before BIN it also runs a second telegate, BIN (the build before a
// change), side by side with the first: in every round each route of one
// build is measured right after the same route of the other, the order
// alternating from round to round, and it prints the after/before ratios
// of each round and their median. The two builds then see the same
// machine conditions within seconds of each other.
//
// With -audit it builds telegate a second time with the tag
// telegate_bench_notrail, whose gateway records no request, and compares
// the two as -before does: "before" is the trail off, "after" the trail
// on (docs/benchmarks.md, "Audit trail").
//
// Usage: go run ./e2e/edgebench [-telegate BIN] [-before BIN | -audit] [-duration 15s] [-rounds 3] [-connections 64]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/telegate/telegate/demo/devop"
	"github.com/telegate/telegate/e2e/internal/load"
	"github.com/telegate/telegate/e2e/webclient"
)

func main() {
	bin := flag.String("telegate", "", "telegate binary (default: build ./cmd/telegate)")
	before := flag.String("before", "", "a second telegate binary to compare with, route by route in every round (after/before ratios)")
	dur := flag.Duration("duration", 15*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 3, "alternating rounds")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	trail := flag.Bool("audit", false, "compare the audit trail off (before) with on (after): builds ./cmd/telegate with the tag telegate_bench_notrail as -before")
	flag.Parse()
	if *trail && *before != "" {
		fmt.Fprintln(os.Stderr, "edgebench: -audit and -before exclude each other")
		os.Exit(2)
	}
	if err := run(*bin, *before, *trail, *dur, *rounds, *conns, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

func run(bin, before string, trail bool, dur time.Duration, rounds, conns, threads int) error {
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
		if bin, err = load.BuildTelegate(dir); err != nil {
			return err
		}
	}
	if trail {
		before = filepath.Join(dir, "telegate-notrail")
		b := exec.Command("go", "build", "-tags", "telegate_bench_notrail", "-o", before, "./cmd/telegate")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("building telegate without the trail: %w", err)
		}
		fmt.Println("before = the audit trail off (telegate_bench_notrail), after = the trail on")
	}

	// The upstream both proxies share: a small fixed response.
	upstream, err := load.Upstream()
	if err != nil {
		return err
	}

	tgs := []*instance{{name: "telegate", bin: bin}}
	if before != "" {
		tgs[0].name = "after"
		tgs = append(tgs, &instance{name: "before", bin: before})
	}
	caddyPort := load.FreePort()
	secret := "edgebench-client-secret-0123456789"
	client := devop.Client{ID: "edgebench", Secret: secret}
	for _, t := range tgs {
		t.port, t.adminPort = load.FreePort(), load.FreePort()
		t.base = fmt.Sprintf("https://localhost:%d", t.port)
		client.RedirectURIs = append(client.RedirectURIs, t.base+"/.telegate/callback/bench")
		client.PostLogoutRedirectURIs = append(client.PostLogoutRedirectURIs, t.base+"/.telegate/signed-out")
	}
	op, err := devop.Start(ctx, devop.Options{
		Logger:  slog.New(slog.DiscardHandler),
		Clients: []devop.Client{client},
	})
	if err != nil {
		return err
	}
	defer op.Close()
	for _, t := range tgs {
		stop, err := t.start(ctx, filepath.Join(dir, t.name), op.Issuer(), secret, upstream)
		if stop != nil {
			defer stop()
		}
		if err != nil {
			return err
		}
	}

	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, load.Caddyfile(filepath.Join(dir, "caddy-data"), caddyPort, "internal", upstream), 0o600); err != nil {
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
	if err := load.WaitTCP(fmt.Sprintf("127.0.0.1:%d", caddyPort), 30*time.Second); err != nil {
		out, _ := os.ReadFile(cdLog.Name())
		return fmt.Errorf("caddy not ready: %w\n%s", err, out)
	}

	caddyTarget := target{name: "caddy reverse_proxy", url: fmt.Sprintf("https://localhost:%d/public/", caddyPort), pid: cd.Process.Pid}
	if before != "" {
		return compare(caddyTarget, tgs[1], tgs[0], dur, rounds, conns, threads)
	}
	tg := tgs[0]
	targets := []target{caddyTarget, tg.public("telegate public route"), tg.signedIn("telegate signed-in route")}
	for r := 0; r < rounds; r++ {
		for i := range targets {
			if err := targets[i].measure(r, dur, conns, threads); err != nil {
				return err
			}
		}
	}
	caddy, pub, signed := targets[0].median(), targets[1].median(), targets[2].median()
	printMedians(targets, rounds)
	fmt.Printf("\npublic / caddy = %.2f× (target ≥ 1.0×); p99 public − caddy = %+.2f ms (target ≤ +1 ms)\n", pub.rps/caddy.rps, pub.p99ms-caddy.p99ms)
	fmt.Printf("signed-in / public = %.2f× (target ≥ 0.9×)\n", signed.rps/pub.rps)
	return nil
}

// compare measures Caddy once per round and then each telegate route of
// the two builds back to back, before first in odd rounds and after first
// in even ones, and prints every round's after/before ratios and their
// medians.
func compare(caddy target, before, after *instance, dur time.Duration, rounds, conns, threads int) error {
	targets := []target{caddy,
		before.public("before public route"), after.public("after public route"),
		before.signedIn("before signed-in route"), after.signedIn("after signed-in route")}
	for r := 0; r < rounds; r++ {
		order := []int{0, 1, 2, 3, 4}
		if r%2 == 1 {
			order = []int{0, 2, 1, 4, 3}
		}
		for _, i := range order {
			if err := targets[i].measure(r, dur, conns, threads); err != nil {
				return err
			}
		}
	}
	printMedians(targets, rounds)
	fmt.Printf("\n| round | first | route | req/s before | after | after/before | p99 ms before | after | after/before | CPU µs/req before | after | after/before |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var ratios [2][3][]float64 // [public, signed-in][req/s, p99, CPU]
	for r := 0; r < rounds; r++ {
		first := "before"
		if r%2 == 1 {
			first = "after"
		}
		for k, route := range []string{"public", "signed-in"} {
			b, a := targets[1+2*k].runs[r], targets[2+2*k].runs[r]
			q := [3]float64{a.rps / b.rps, a.p99ms / b.p99ms, a.cpuUs / b.cpuUs}
			for j := range q {
				ratios[k][j] = append(ratios[k][j], q[j])
			}
			fmt.Printf("| %d | %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %.3f | %.1f | %.1f | %.3f |\n",
				r+1, first, route, b.rps, a.rps, q[0], b.p99ms, a.p99ms, q[1], b.cpuUs, a.cpuUs, q[2])
		}
	}
	fmt.Println()
	for k, route := range []string{"public", "signed-in"} {
		fmt.Printf("median after/before, %s route: %.3f× req/s (target ≥ 0.97×), p99 %.3f×, CPU per request %.3f×\n",
			route, medianOf(ratios[k][0]), medianOf(ratios[k][1]), medianOf(ratios[k][2]))
	}
	return nil
}

func printMedians(targets []target, rounds int) {
	fmt.Printf("| target | requests/s (median of %d) | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|\n", rounds)
	for _, t := range targets {
		m := t.median()
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %d |\n", t.name, m.rps, m.p50ms, m.p99ms, m.bad)
	}
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// instance is one telegate process under test.
type instance struct {
	name, bin, base, cookie string
	port, adminPort, pid    int
}

// start writes the instance's configuration in dir, starts it, waits for
// /readyz and signs in through the OpenID Provider. stop ends the process.
func (t *instance) start(ctx context.Context, dir, issuer, secret, upstream string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "telegate.yaml")
	cfg := load.TelegateConfig(load.TelegateSite{DataDir: filepath.Join(dir, "tg-data"), Port: t.port, Admin: t.adminPort,
		Issuer: issuer, ClientID: "edgebench", Upstream: upstream})
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	tg := exec.CommandContext(ctx, t.bin, "run", "-c", cfgPath)
	tg.Env = append(os.Environ(), load.SecretEnv+"="+secret)
	tgLog, _ := os.Create(filepath.Join(dir, "telegate.log"))
	tg.Stdout, tg.Stderr = tgLog, tgLog
	if err := tg.Start(); err != nil {
		return nil, err
	}
	stop = func() { _ = tg.Process.Kill() }
	t.pid = tg.Process.Pid
	if err := load.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/readyz", t.adminPort), 30*time.Second); err != nil {
		out, _ := os.ReadFile(tgLog.Name())
		return stop, fmt.Errorf("%s not ready: %w\n%s", t.name, err, out)
	}
	c, err := webclient.New(filepath.Join(dir, "tg-data", "ca", "root.pem"))
	if err != nil {
		return stop, err
	}
	resp, page, err := c.SignIn(t.base+"/app/", "clinician@demo.test", "demo")
	if err != nil || resp.StatusCode != 200 {
		return stop, fmt.Errorf("%s sign-in: %v %.200s", t.name, err, page)
	}
	cookie := c.Cookie(t.base, "__Host-telegate")
	if cookie == nil {
		return stop, fmt.Errorf("%s sign-in: no session cookie", t.name)
	}
	t.cookie = cookie.Value
	return stop, nil
}

func (t *instance) public(name string) target {
	return target{name: name, url: t.base + "/public/", pid: t.pid}
}

func (t *instance) signedIn(name string) target {
	return target{name: name, url: t.base + "/app/", header: "Cookie: __Host-telegate=" + t.cookie, pid: t.pid}
}

type result struct {
	rps, p50ms, p99ms float64
	bad, requests     int
	// cpuUs is the server process's CPU time (user + system) per request
	// during the run, in µs; 0 when unknown.
	cpuUs float64
}

type target struct {
	name, url, header string
	pid               int // the server's process, for its CPU time
	runs              []result
}

// median is the run with the median requests/s.
func (t target) median() result {
	rs := append([]result(nil), t.runs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
	return rs[len(rs)/2]
}

// measure runs wrk once against t and keeps the result as round r's.
func (t *target) measure(r int, dur time.Duration, conns, threads int) error {
	cpu0 := load.CPUTime(t.pid)
	res, err := wrk(*t, dur, conns, threads)
	if err != nil {
		return err
	}
	if cpu1 := load.CPUTime(t.pid); cpu0 > 0 && cpu1 > cpu0 && res.requests > 0 {
		res.cpuUs = float64((cpu1 - cpu0).Microseconds()) / float64(res.requests)
	}
	fmt.Fprintf(os.Stderr, "round %d %-26s %10.0f req/s  p99 %7.2f ms  non-2xx %d  cpu %6.1f µs/req\n", r+1, t.name, res.rps, res.p99ms, res.bad, res.cpuUs)
	t.runs = append(t.runs, res)
	return nil
}

func wrk(t target, dur time.Duration, conns, threads int) (result, error) {
	w, err := load.Wrk{URL: t.url, Duration: dur, Threads: threads, Conns: conns, Header: t.header}.Run()
	if err != nil {
		return result{}, err
	}
	ms := func(d time.Duration) float64 {
		if d < 0 {
			return -1
		}
		return float64(d) / float64(time.Millisecond)
	}
	return result{rps: w.RPS, requests: w.Requests, p50ms: ms(w.P50), p99ms: ms(w.P99), bad: w.Non2xx}, nil
}
