// Command abusebench measures what connection-level attackers from one
// loopback source cost a legitimate client of telegate's public route:
// with no attacker, then with each attacker of e2e/abuse in turn (idle
// TCP, partial ClientHello, dribbled request head, idle keep-alive), it
// runs three legitimate loads at once and prints their success rate and
// p99 side by side in one Markdown table:
//
//   - new connections: a Go client from 127.0.0.60 at a fixed rate
//     (open loop), one fresh TLS connection per request (the path a flood
//     of pending connections would shut);
//   - keep-alive: wrk from 127.0.0.1 on a few connections, paced with a
//     Lua delay (wrk 4 has no fixed-rate mode), when wrk is installed;
//   - relayed media: a visit's clinician (UDP, from 127.0.0.61) and
//     patient (TURN over TLS on the HTTPS port, from 127.0.0.62), signed
//     in through the development provider and admitted as in a browser,
//     send each other 500 packets a second (turnwire.MeasurePair):
//     packets delivered and the inter-arrival p99.
//
// The attackers dial from 127.0.0.50. telegate runs with its default
// connections settings. Everything stays on loopback; the shared parts
// (build, upstream, wrk) are e2e/internal/load. scripts/bench-abuse
// runs it.
//
// Usage: go run ./e2e/abusebench [-telegate BIN] [-duration 10s] [-rounds 2] [-rate 50] [-workers 1100] [-pause 1s] [-attackers idle-tcp,…]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/telegate/telegate/e2e/internal/load"
	"github.com/telegate/telegate/media/relay/turnwire"
)

func main() {
	bin := flag.String("telegate", "", "telegate binary (default: build ./cmd/telegate)")
	dur := flag.Duration("duration", 10*time.Second, "length of each measurement")
	rate := flag.Int("rate", 50, "new-connection requests per second")
	workers := flag.Int("workers", 1100, "connections each attacker tries to hold (the slow and keep-alive attackers use a fifth)")
	pause := flag.Duration("pause", time.Second, "how long an attacker's worker waits before replacing a closed connection")
	rounds := flag.Int("rounds", 2, "rounds over every scenario (the order alternates; the table shows each scenario's median)")
	only := flag.String("attackers", "", "comma-separated attackers to run besides quiet (default: every one)")
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
	if err := run(*bin, *dur, *rate, *workers, *pause, *rounds, *only); err != nil {
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

func run(bin string, dur time.Duration, rate, workers int, pause time.Duration, rounds int, only string) error {
	dir, err := os.MkdirTemp("", "abusebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		if bin, err = load.BuildTelegate(dir); err != nil {
			return err
		}
	}
	upstream, err := load.Upstream()
	if err != nil {
		return err
	}

	port, admin, relayPort := load.FreePort(), load.FreePort(), load.FreeUDPPort()
	cfgPath := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    development: true
rate_limits:
  per_client: {rate: 100000, burst: 100000}
  per_subject: {rate: 100000, burst: 100000}
inspection:
  enabled: false
routes:
  - id: public
    path: /public/
    upstream: http://%[4]s
    policy:
      public: true
  - id: app
    path: /app/
    upstream: http://%[4]s
    policy:
      allow:
        - roles: [clinician]
        - roles: [patient]
relay:
  enabled: true
  listen: 127.0.0.1:%[5]d
  relay_addresses: [127.0.0.1]
  tls_port: %[2]d
visits:
  enabled: true
  ice_host: 127.0.0.1
log:
  level: error
`, filepath.Join(dir, "data"), port, admin, upstream, relayPort), 0o600); err != nil {
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
	if err := load.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin), 60*time.Second); err != nil {
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
	base := fmt.Sprintf("https://localhost:%d", port)
	url := base + "/public/"
	media, err := openMediaPair(base, filepath.Join(dir, "data", "ca", "root.pem"), pool)
	if err != nil {
		return fmt.Errorf("relayed media: %w", err)
	}
	_, wrkErr := exec.LookPath("wrk")

	type row struct {
		name     string
		attacker string
		fresh    result
		wrk      result
		media    result // ok, total: packets delivered, sent; p99: inter-arrival
		mediaAt  [2]int // packets the clinician (UDP) and the patient (TLS) received
		// drops are the relay's own drop counters over the run
		// (telegate_media_relay_permission_denials_total by reason).
		drops string
		// tgCPU and atkCPU are the CPU shares (1 = one core) telegate and
		// the attacker used while the loads ran.
		tgCPU, atkCPU float64
	}
	scenarios := []abuse.Kind{""}
	for _, k := range abuse.Kinds {
		if only == "" || slices.Contains(strings.Split(only, ","), string(k)) {
			scenarios = append(scenarios, k)
		}
	}
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
			// Keep the channels and permissions fresh, whatever the
			// run's length.
			if err := media.refresh(); err != nil {
				return fmt.Errorf("relayed media: %w", err)
			}
			var wg sync.WaitGroup
			r := row{name: name, attacker: "—"}
			metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)
			d0 := relayDrops(metricsURL)
			t0, tg0, a0 := time.Now(), load.CPUTime(tg.Process.Pid), load.CPUTime(atk)
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := turnwire.MeasurePair(media.clinician, media.patient, turnwire.Pair{Channel: mediaChannel, Packets: int(dur / mediaInterval), Interval: mediaInterval})
				r.media = result{ok: st.Received, total: st.Sent, p99: st.Gap(0.99), ran: true}
				r.mediaAt = st.ReceivedAt
			}()
			wg.Add(1)
			go func() { defer wg.Done(); r.fresh = freshLoad(pool, target, rate, dur) }()
			if wrkErr == nil {
				wg.Add(1)
				go func() { defer wg.Done(); r.wrk = wrkLoad(dir, url, dur) }()
			}
			wg.Wait()
			el := time.Since(t0).Seconds()
			r.tgCPU = (load.CPUTime(tg.Process.Pid) - tg0).Seconds() / el
			if atk != 0 {
				r.atkCPU = (load.CPUTime(atk) - a0).Seconds() / el
			}
			if stop != nil {
				r.attacker = stop()
			}
			r.drops = dropsSince(d0, relayDrops(metricsURL))
			runs[i] = append(runs[i], r)
			fmt.Fprintf(os.Stderr, "round %d, %s: new %d/%d p99 %v; keep-alive %d/%d p99 %v; media %d/%d (clinician %d, patient %d) gap p99 %v, relay drops %s; attacker %s; CPU telegate %.0f %%, attacker %.0f %%\n", round+1, name,
				r.fresh.ok, r.fresh.total, r.fresh.p99, r.wrk.ok, r.wrk.total, r.wrk.p99, r.media.ok, r.media.total, r.mediaAt[0], r.mediaAt[1], r.media.p99, r.drops, r.attacker, 100*r.tgCPU, 100*r.atkCPU)
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
		mediaByP99 := slices.Clone(rs)
		slices.SortFunc(mediaByP99, func(a, b row) int { return int(a.media.p99 - b.media.p99) })
		med.media.p99 = mediaByP99[(len(mediaByP99)-1)/2].media.p99
		med.fresh.ok, med.fresh.total, med.wrk.ok, med.wrk.total, med.media.ok, med.media.total = 0, 0, 0, 0, 0, 0
		for _, r := range rs {
			med.fresh.ok += r.fresh.ok
			med.fresh.total += r.fresh.total
			med.wrk.ok += r.wrk.ok
			med.wrk.total += r.wrk.total
			med.media.ok += r.media.ok
			med.media.total += r.media.total
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
	fmt.Printf("| attacker (from 127.0.0.50) | attacker's connections (median round) | CPU telegate / attacker | new connections (127.0.0.60, %d/s): success | p99 ms | × quiet | keep-alive (wrk): success | p99 ms | × quiet | relayed media (UDP ↔ TLS, 2 × %d packets/s): delivered | inter-arrival p99 ms | × quiet | targets met |\n", rate, time.Second/mediaInterval)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	quiet := rows[0]
	for _, r := range rows {
		met := r.fresh.rate() >= 99.9 && float64(r.fresh.p99) <= 2*float64(quiet.fresh.p99) &&
			r.media.rate() >= 99.9 && float64(r.media.p99) <= 2*float64(quiet.media.p99)
		w := []string{"—", "—", "—"}
		if r.wrk.ran {
			w = []string{fmt.Sprintf("%.2f %% (%d/%d)", r.wrk.rate(), r.wrk.ok, r.wrk.total), ms(r.wrk.p99), ratio(r.wrk.p99, quiet.wrk.p99)}
			met = met && r.wrk.rate() >= 99.9 && float64(r.wrk.p99) <= 2*float64(quiet.wrk.p99)
		}
		verdict := "yes"
		if !met {
			verdict = "**no**"
		}
		fmt.Printf("| %s | %s | %.0f %% / %.0f %% | %.2f %% (%d/%d) | %s | %s | %s | %s | %s | %.2f %% (%d/%d) | %s | %s | %s |\n", r.name, r.attacker, 100*r.tgCPU, 100*r.atkCPU,
			r.fresh.rate(), r.fresh.ok, r.fresh.total, ms(r.fresh.p99), ratio(r.fresh.p99, quiet.fresh.p99), w[0], w[1], w[2],
			r.media.rate(), r.media.ok, r.media.total, ms(r.media.p99), ratio(r.media.p99, quiet.media.p99), verdict)
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
	return result{ok: ok, total: total, p99: load.P99(times), ran: true}
}

// wrkLoad runs wrk on url for dur: 8 connections, each pausing 40 ms
// between requests (about 200 requests a second in all). Connect errors
// never produced a request but count as failed ones; read, write and
// timeout errors and non-2xx answers are failures too.
func wrkLoad(dir, url string, dur time.Duration) result {
	script := filepath.Join(dir, "paced.lua")
	_ = os.WriteFile(script, []byte("function delay()\n  return 40\nend\n"), 0o600)
	w, err := load.Wrk{URL: url, Duration: dur, Threads: 2, Conns: 8, Script: script, Timeout: 5 * time.Second}.Run()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return result{}
	}
	total := w.Requests + w.Connect + w.Timeout
	bad := w.Connect + w.Read + w.Write + w.Timeout + w.Non2xx
	return result{ok: max(total-bad, 0), total: total, p99: w.P99, ran: true}
}

var dropLine = regexp.MustCompile(`(?m)^telegate_media_relay_permission_denials_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$`)

// relayDrops reads the relay's drop counters from telegate's /metrics.
func relayDrops(u string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(u)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, m := range dropLine.FindAllSubmatch(b, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		out[string(m[1])] = v
	}
	return out
}

// dropsSince names the counters that grew from before to after.
func dropsSince(before, after map[string]float64) string {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, d))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
