// Command abusebench measures what connection-level attackers from one
// loopback source cost a legitimate client of telegate's public route:
// with no attacker, then with each attacker of e2e/abuse in turn (idle
// TCP, partial ClientHello, dribbled request head, idle keep-alive), it
// runs two legitimate loads at once and prints their success rate and p99
// side by side in one Markdown table:
//
//   - new connections: a Go client from 127.0.0.60 at a fixed rate
//     (open loop), one fresh TLS connection per request (the path a flood
//     of pending connections would shut);
//   - keep-alive: wrk from 127.0.0.1 on a few connections, paced with a
//     Lua delay (wrk 4 has no fixed-rate mode), when wrk is installed.
//
// The attackers dial from 127.0.0.50. telegate runs with its default
// connections settings. Everything stays on loopback. scripts/bench-abuse
// runs it.
//
// Usage: go run ./e2e/abusebench [-telegate BIN] [-duration 10s] [-rate 50] [-workers 1100] [-pause 1s]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telegate/telegate/e2e/abuse"
)

func main() {
	bin := flag.String("telegate", "", "telegate binary (default: build ./cmd/telegate)")
	dur := flag.Duration("duration", 10*time.Second, "length of each measurement")
	rate := flag.Int("rate", 50, "new-connection requests per second")
	workers := flag.Int("workers", 1100, "connections each attacker tries to hold (the slow and keep-alive attackers use a fifth)")
	pause := flag.Duration("pause", time.Second, "how long an attacker's worker waits before replacing a closed connection")
	rounds := flag.Int("rounds", 2, "rounds over every scenario (the order alternates; the table shows each scenario's median)")
	attack := flag.String("attack", "", "internal: run this attacker against -target until stdin closes, then print its stats")
	target := flag.String("target", "", "internal: the attacker's target")
	flag.Parse()
	if *attack != "" {
		// The attacker runs in a process of its own, as it would, so that
		// its goroutines do not slow the legitimate client's.
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
		st := abuse.Run(ctx, abuse.Kind(*attack), abuse.Options{Target: *target, Source: attackerSource, Workers: *workers, Pause: *pause, Path: "/public/"})
		fmt.Printf("%d %d\n", st.Opened.Load(), st.Closed.Load())
		return
	}
	if err := run(*bin, *dur, *rate, *workers, *pause, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "abusebench:", err)
		os.Exit(1)
	}
}

var (
	attackerSource = net.IPv4(127, 0, 0, 50)
	clientSource   = net.IPv4(127, 0, 0, 60)
)

// result is one legitimate load's outcome in one scenario.
type result struct {
	ok, total int
	p99       time.Duration
	ran       bool
}

func (r result) rate() float64 {
	if r.total == 0 {
		return 0
	}
	return 100 * float64(r.ok) / float64(r.total)
}

// startAttacker runs this program again as the attacker kind with w
// workers; stop ends it and returns its connections opened and closed by
// the server.
func startAttacker(kind abuse.Kind, target string, w int, pause time.Duration) (stop func() string, pid int, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(self, "-attack", string(kind), "-target", target, "-workers", strconv.Itoa(w), "-pause", pause.String())
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	return func() string {
		in.Close()
		_ = cmd.Wait()
		var opened, closed int
		if _, err := fmt.Sscan(out.String(), &opened, &closed); err != nil {
			return "?"
		}
		return fmt.Sprintf("%d opened, %d closed", opened, closed)
	}, cmd.Process.Pid, nil
}

func run(bin string, dur time.Duration, rate, workers int, pause time.Duration, rounds int) error {
	dir, err := os.MkdirTemp("", "abusebench-")
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
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte(strings.Repeat("x", 512))
	go (&http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}).Serve(up)

	port, admin := freePort(), freePort()
	cfgPath := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `data_dir: %s
server:
  listen: 127.0.0.1:%d
  http_listen: ""
  admin: 127.0.0.1:%d
tls:
  hosts:
    - names: [localhost]
      mode: local
rate_limits:
  per_client: {rate: 100000, burst: 100000}
inspection:
  enabled: false
routes:
  - id: public
    path: /public/
    upstream: http://%s
    policy:
      public: true
log:
  level: error
`, filepath.Join(dir, "data"), port, admin, up.Addr()), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := exec.CommandContext(ctx, bin, "run", "-c", cfgPath)
	logf, _ := os.Create(filepath.Join(dir, "telegate.log"))
	tg.Stdout, tg.Stderr = logf, logf
	if err := tg.Start(); err != nil {
		return err
	}
	defer func() { _ = tg.Process.Signal(os.Interrupt); _ = tg.Wait() }()
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)); err != nil {
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("telegate not ready: %w\n%s", err, out)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "data", "ca", "root.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	url := fmt.Sprintf("https://localhost:%d/public/", port)
	_, wrkErr := exec.LookPath("wrk")

	type row struct {
		name     string
		attacker string
		fresh    result
		wrk      result
		// tgCPU and atkCPU are the CPU shares (1 = one core) telegate and
		// the attacker used while the loads ran.
		tgCPU, atkCPU float64
	}
	scenarios := append([]abuse.Kind{""}, abuse.Kinds...)
	runs := make([][]row, len(scenarios))
	for round := range rounds {
		order := make([]int, len(scenarios))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			k := scenarios[i]
			name := "quiet"
			var stop func() string
			atk := 0
			if k != "" {
				name = string(k)
				w := workers
				if k != abuse.IdleTCP {
					w = max(workers/5, 1)
				}
				if stop, atk, err = startAttacker(k, target, w, pause); err != nil {
					return err
				}
				time.Sleep(2 * time.Second) // let it fill what it can
			}
			var wg sync.WaitGroup
			r := row{name: name, attacker: "—"}
			t0, tg0, a0 := time.Now(), cpuTime(tg.Process.Pid), cpuTime(atk)
			wg.Add(1)
			go func() { defer wg.Done(); r.fresh = freshLoad(pool, target, rate, dur) }()
			if wrkErr == nil {
				wg.Add(1)
				go func() { defer wg.Done(); r.wrk = wrkLoad(dir, url, dur) }()
			}
			wg.Wait()
			el := time.Since(t0).Seconds()
			r.tgCPU = (cpuTime(tg.Process.Pid) - tg0).Seconds() / el
			if atk != 0 {
				r.atkCPU = (cpuTime(atk) - a0).Seconds() / el
			}
			if stop != nil {
				r.attacker = stop()
			}
			runs[i] = append(runs[i], r)
			fmt.Fprintf(os.Stderr, "round %d, %s: new %d/%d p99 %v; keep-alive %d/%d p99 %v; attacker %s; CPU telegate %.0f %%, attacker %.0f %%\n", round+1, name,
				r.fresh.ok, r.fresh.total, r.fresh.p99, r.wrk.ok, r.wrk.total, r.wrk.p99, r.attacker, 100*r.tgCPU, 100*r.atkCPU)
			time.Sleep(time.Second)
		}
	}
	// Each scenario: the round with the median new-connection p99;
	// success counts summed over the rounds.
	rows := make([]row, len(scenarios))
	for i, rs := range runs {
		byP99 := slices.Clone(rs)
		slices.SortFunc(byP99, func(a, b row) int { return int(a.fresh.p99 - b.fresh.p99) })
		med := byP99[(len(byP99)-1)/2]
		wrkByP99 := slices.Clone(rs)
		slices.SortFunc(wrkByP99, func(a, b row) int { return int(a.wrk.p99 - b.wrk.p99) })
		med.wrk.p99 = wrkByP99[(len(wrkByP99)-1)/2].wrk.p99
		med.fresh.ok, med.fresh.total, med.wrk.ok, med.wrk.total = 0, 0, 0, 0
		for _, r := range rs {
			med.fresh.ok += r.fresh.ok
			med.fresh.total += r.fresh.total
			med.wrk.ok += r.wrk.ok
			med.wrk.total += r.wrk.total
		}
		rows[i] = med
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	ratio := func(d, q time.Duration) string {
		if q == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", float64(d)/float64(q))
	}
	fmt.Printf("%d rounds of %v per scenario; success summed over the rounds, p99 the median round's.\n\n", rounds, dur)
	fmt.Printf("| attacker (from 127.0.0.50) | attacker's connections (median round) | CPU telegate / attacker | new connections (127.0.0.60, %d/s): success | p99 ms | × quiet | keep-alive (wrk): success | p99 ms | × quiet | targets met |\n", rate)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	quiet := rows[0]
	for _, r := range rows {
		met := r.fresh.rate() >= 99.9 && float64(r.fresh.p99) <= 2*float64(quiet.fresh.p99)
		w := []string{"—", "—", "—"}
		if r.wrk.ran {
			w = []string{fmt.Sprintf("%.2f %% (%d/%d)", r.wrk.rate(), r.wrk.ok, r.wrk.total), ms(r.wrk.p99), ratio(r.wrk.p99, quiet.wrk.p99)}
			met = met && r.wrk.rate() >= 99.9 && float64(r.wrk.p99) <= 2*float64(quiet.wrk.p99)
		}
		verdict := "yes"
		if !met {
			verdict = "**no**"
		}
		fmt.Printf("| %s | %s | %.0f %% / %.0f %% | %.2f %% (%d/%d) | %s | %s | %s | %s | %s | %s |\n", r.name, r.attacker, 100*r.tgCPU, 100*r.atkCPU,
			r.fresh.rate(), r.fresh.ok, r.fresh.total, ms(r.fresh.p99), ratio(r.fresh.p99, quiet.fresh.p99), w[0], w[1], w[2], verdict)
	}
	if wrkErr != nil {
		fmt.Println("\nwrk not found: keep-alive load not measured (apt-get install -y wrk)")
	}
	return nil
}

// freshLoad sends rate requests a second for dur, each on a new TLS
// connection from clientSource (open loop: a slow answer does not delay
// the next request), and returns how many succeeded (200 within 5 s) and
// the p99 of the successful and failed ones' times.
func freshLoad(pool *x509.CertPool, target string, rate int, dur time.Duration) result {
	tr := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: clientSource}}
			return d.DialContext(ctx, "tcp", target)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	_, port, _ := net.SplitHostPort(target)
	url := "https://localhost:" + port + "/public/"
	var mu sync.Mutex
	var times []time.Duration
	ok, total := 0, 0
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for end := time.Now().Add(dur); time.Now().Before(end); {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			good := false
			resp, err := hc.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				good = err == nil && resp.StatusCode == http.StatusOK
			}
			el := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			total++
			times = append(times, el)
			if good {
				ok++
			}
		}()
	}
	wg.Wait()
	return result{ok: ok, total: total, p99: p99(times), ran: true}
}

// wrkLoad runs wrk on url for dur: 8 connections, each pausing 40 ms
// between requests (about 200 requests a second in all).
func wrkLoad(dir, url string, dur time.Duration) result {
	script := filepath.Join(dir, "paced.lua")
	_ = os.WriteFile(script, []byte("function delay()\n  return 40\nend\n"), 0o600)
	out, err := exec.Command("wrk", "-t", "2", "-c", "8", "-d", strconv.Itoa(int(dur.Seconds()))+"s",
		"--timeout", "5s", "--latency", "-s", script, url).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wrk: %v\n%s", err, out)
		return result{}
	}
	return parseWrk(string(out))
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkP99      = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
)

// parseWrk reads wrk's summary: requests completed, socket errors and
// non-2xx answers (failures), and the 99th percentile latency.
func parseWrk(out string) result {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	r := result{ran: true}
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.total = atoi(m[1])
	}
	bad := 0
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		// Connect errors never produced a request; the others broke one.
		bad += atoi(m[2]) + atoi(m[3]) + atoi(m[4])
		r.total += atoi(m[1]) + atoi(m[4])
		bad += atoi(m[1])
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		bad += atoi(m[1])
	}
	r.ok = max(r.total-bad, 0)
	if m := wrkP99.FindStringSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		r.p99 = time.Duration(v * float64(unit))
	}
	return r
}

// cpuTime is the CPU time (user and system) process pid has used so far,
// from /proc/<pid>/stat (0 where there is no /proc).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitReady(u string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("no 200 from /readyz within 60 s")
}
