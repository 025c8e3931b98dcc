package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telegate/telegate/e2e/internal/load"
)

// target is one peer's URL in one scenario.
type target struct {
	name   string
	url    string
	header string // one "Name: value" request header, or ""
	p      *proc
}

// scenario is a set of targets measured against each other, one load
// run per target per round.
type scenario struct {
	name string
	// tool is "wrk" (HTTP/1.1) or "h2load" (HTTP/2).
	tool string
	// form, when set, is a urlencoded body POSTed instead of a GET.
	form    string
	targets []target
}

// round is one load run of one target.
type round struct {
	Scenario   string  `json:"scenario"`
	Round      int     `json:"round"`
	Target     string  `json:"target"`
	RPS        float64 `json:"rps"`
	P50ms      float64 `json:"p50_ms,omitempty"`
	P99ms      float64 `json:"p99_ms,omitempty"`
	MeanMs     float64 `json:"mean_ms,omitempty"`
	Requests   int     `json:"requests"`
	Bad        int     `json:"non_2xx_or_errors"`
	CPUus      float64 `json:"cpu_us_per_request"`
	PeakRSSKiB int64   `json:"peak_rss_kib"`
	// Extra holds scenario-specific figures (relay: loss, latency).
	Extra map[string]float64 `json:"extra,omitempty"`
	// raw is the load generator's output, shown when a run fails.
	raw string
}

type loadOpts struct {
	dur              time.Duration
	conns, threads   int
	streams          int // HTTP/2 streams per connection
	dir              string
	rounds           int
	roundsOut        *os.File
	printedScenarios []scenarioResult
}

type scenarioResult struct {
	name    string
	targets []string
	runs    map[string][]round
}

// runScenario measures every target of s o.rounds times; round r starts
// with target r mod n so that every peer goes first equally often.
func (o *loadOpts) runScenario(s scenario) error {
	res := scenarioResult{name: s.name, runs: map[string][]round{}}
	for _, t := range s.targets {
		res.targets = append(res.targets, t.name)
	}
	n := len(s.targets)
	for r := range o.rounds {
		for k := range n {
			t := s.targets[(r+k)%n]
			rd, err := o.measure(s, t)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", s.name, t.name, err)
			}
			rd.Scenario, rd.Round, rd.Target = s.name, r+1, t.name
			o.record(rd)
			res.runs[t.name] = append(res.runs[t.name], rd)
		}
	}
	o.printedScenarios = append(o.printedScenarios, res)
	return nil
}

func (o *loadOpts) record(rd round) {
	fmt.Fprintf(os.Stderr, "  round %d %-28s %-22s %9.0f req/s  CPU %7.1f µs/req  peak RSS %7d KiB  bad %d\n",
		rd.Round, rd.Scenario, rd.Target, rd.RPS, rd.CPUus, rd.PeakRSSKiB, rd.Bad)
	if o.roundsOut != nil {
		b, _ := json.Marshal(rd)
		fmt.Fprintf(o.roundsOut, "%s\n", b)
	}
}

// measure runs one load run against t, with its process group's CPU time
// and peak RSS over the run.
func (o *loadOpts) measure(s scenario, t target) (round, error) {
	stop := peakSampler(t.p)
	cpu0 := t.p.cpu()
	var rd round
	var err error
	switch s.tool {
	case "wrk":
		rd, err = o.wrk(s, t)
	case "h2load":
		rd, err = o.h2load(s, t)
	default:
		err = fmt.Errorf("unknown tool %q", s.tool)
	}
	cpu1 := t.p.cpu()
	rd.PeakRSSKiB = stop()
	if err != nil {
		return rd, err
	}
	if rd.Requests > 0 {
		rd.CPUus = float64((cpu1 - cpu0).Microseconds()) / float64(rd.Requests)
	}
	if rd.Requests == 0 || rd.Bad*100 > rd.Requests {
		return rd, fmt.Errorf("%d of %d requests failed or were not 2xx\n%s", rd.Bad, rd.Requests, rd.raw)
	}
	return rd, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (o *loadOpts) wrk(s scenario, t target) (round, error) {
	// wrk's default 2 s request timeout is short on a loaded machine.
	w := load.Wrk{URL: t.url, Duration: o.dur, Threads: o.threads, Conns: o.conns, Header: t.header, Timeout: 10 * time.Second}
	if s.form != "" {
		script := fmt.Sprintf("%s/post-%d.lua", o.dir, len(s.form))
		lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n", s.form)
		if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
			return round{}, err
		}
		w.Script = script
	}
	r, err := w.Run()
	if err != nil {
		return round{}, err
	}
	return round{RPS: r.RPS, P50ms: ms(r.P50), P99ms: ms(r.P99), Requests: r.Requests,
		Bad: r.Non2xx + r.Connect + r.Read + r.Write + r.Timeout,
		raw: fmt.Sprintf("wrk: non-2xx %d, socket errors: connect %d, read %d, write %d, timeout %d", r.Non2xx, r.Connect, r.Read, r.Write, r.Timeout)}, nil
}

var (
	h2Finished = regexp.MustCompile(`finished in ([0-9.]+)s, ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	h2Status   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2Time     = regexp.MustCompile(`time for request:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)`)
)

// h2load runs nghttp2's h2load (HTTP/2 over TLS with ALPN h2) for the
// run's duration.
func (o *loadOpts) h2load(s scenario, t target) (round, error) {
	args := []string{"-c", strconv.Itoa(o.conns), "-m", strconv.Itoa(o.streams), "-t", strconv.Itoa(o.threads),
		"-D", strconv.Itoa(int(o.dur.Seconds())), "--warm-up-time", "1"}
	if t.header != "" {
		args = append(args, "-H", t.header)
	}
	if s.form != "" {
		body := fmt.Sprintf("%s/post-%d.txt", o.dir, len(s.form))
		if err := os.WriteFile(body, []byte(s.form), 0o600); err != nil {
			return round{}, err
		}
		args = append(args, "-d", body, "-H", "Content-Type: application/x-www-form-urlencoded")
	}
	out, err := exec.Command("h2load", append(args, t.url)...).CombinedOutput()
	if err != nil {
		return round{}, fmt.Errorf("h2load %s: %w\n%s", t.url, err, out)
	}
	text := string(out)
	m := h2Finished.FindStringSubmatch(text)
	rq := h2Requests.FindStringSubmatch(text)
	st := h2Status.FindStringSubmatch(text)
	if m == nil || rq == nil || st == nil {
		return round{}, fmt.Errorf("h2load: no summary in\n%s", text)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	rd := round{raw: text}
	rd.RPS, _ = strconv.ParseFloat(m[2], 64)
	rd.Requests = atoi(rq[3])
	rd.Bad = atoi(rq[5]) + atoi(rq[6]) + atoi(st[2]) + atoi(st[3]) + atoi(st[4])
	if tm := h2Time.FindStringSubmatch(text); tm != nil {
		v, _ := strconv.ParseFloat(tm[5], 64)
		unit := map[string]float64{"us": 0.001, "ms": 1, "s": 1000}[tm[6]]
		rd.MeanMs = v * unit
	}
	return rd, nil
}

// median of v (not modified).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// spread is (max − min) / median of v, in percent.
func spread(v []float64) float64 {
	m := median(v)
	if m == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / m * 100
}

// printScenario writes the medians and spreads of every target and the
// median of the per-round ratios of every target to the first one.
func printScenario(w *os.File, r scenarioResult) {
	fmt.Fprintf(w, "\n### %s\n\n", r.name)
	fmt.Fprintf(w, "| peer | req/s (median) | spread | p99 ms | CPU µs/req | peak RSS MiB | %s / peer (median of rounds) | rounds req/s |\n|---|---|---|---|---|---|---|---|\n", r.targets[0])
	base := r.runs[r.targets[0]]
	for _, name := range r.targets {
		runs := r.runs[name]
		var rps, p99, mean, cpu, ratios []float64
		var peak int64
		var each []string
		for i, rd := range runs {
			rps = append(rps, rd.RPS)
			p99 = append(p99, rd.P99ms)
			mean = append(mean, rd.MeanMs)
			cpu = append(cpu, rd.CPUus)
			peak = max(peak, rd.PeakRSSKiB)
			each = append(each, fmt.Sprintf("%.0f", rd.RPS))
			if i < len(base) && rd.RPS > 0 {
				ratios = append(ratios, base[i].RPS/rd.RPS)
			}
		}
		ratio := "—"
		if name != r.targets[0] {
			ratio = fmt.Sprintf("%.2f×", median(ratios))
		}
		// h2load reports no percentiles, only the mean.
		p99s := fmt.Sprintf("%.2f", median(p99))
		if median(p99) == 0 {
			p99s = fmt.Sprintf("mean %.2f", median(mean))
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f %% | %s | %.1f | %.1f | %s | %s |\n",
			name, median(rps), spread(rps), p99s, median(cpu), float64(peak)/1024, ratio, strings.Join(each, ", "))
	}
}
