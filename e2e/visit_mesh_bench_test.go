package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchThreePartyMesh measures a three-party call (clinician,
// patient, interpreter; Chromium's fake camera and microphone; relay
// only) held for TELEGATE_BENCH_MESH (a duration, e.g. 20s): the CPU of
// the telegate process (relay and signaling, from /proc/PID/stat), of
// Chromium's processes by kind (one renderer per page), the relay's
// bytes per second for the visit (telegate_media_relay_bytes_total on
// the admin listener), and the interpreter's admission to video flowing
// both ways with the other two. A measurement, not a test: it asserts no
// time, and is skipped unless TELEGATE_BENCH_MESH is set (scripts/bench-mesh
// runs it under the benchmark lock).
func TestBenchThreePartyMesh(t *testing.T) {
	hold, err := time.ParseDuration(os.Getenv("TELEGATE_BENCH_MESH"))
	if err != nil || hold <= 0 {
		t.Skip("a measurement: set TELEGATE_BENCH_MESH=20s (scripts/bench-mesh)")
	}
	// Each page marks when video first flows on as many of its
	// connections as it has others in the call.
	watch := func(p *page) { p.recordPeerConnections() }
	d, dr, pat, g, _, _ := threePartyCall(t, watch, nil)
	both := make(map[*page]int64)
	for _, p := range []*page{g, dr, pat} {
		both[p] = int64(eval[float64](p, `(async () => {
  for (const end = Date.now() + 45000; Date.now() < end; await new Promise(r => setTimeout(r, 20))) {
    let n = 0;
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      let b = 0;
      try { (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') b += s.bytesReceived || 0; }); } catch (_) {}
      if (b > 0) n++;
    }
    if (n >= 2) return Date.now();
  }
  return 0;
})()`))
		if both[p] == 0 {
			t.Fatalf("%s: no video from both others within 45 s", p.name)
		}
	}
	last := max(both[g], both[dr], both[pat])
	admission := time.UnixMilli(last).Sub(g.admitted)
	t.Logf("interpreter admission → video both ways with both others: %v (guest sees both %v, clinician sees the guest %v, patient %v after the click)",
		admission.Round(time.Millisecond), time.UnixMilli(both[g]).Sub(g.admitted).Round(time.Millisecond),
		time.UnixMilli(both[dr]).Sub(g.admitted).Round(time.Millisecond), time.UnixMilli(both[pat]).Sub(g.admitted).Round(time.Millisecond))

	time.Sleep(3 * time.Second) // past the start of the bitrate ramp
	tg := d.cmd.Process.Pid
	load0, _ := os.ReadFile("/proc/loadavg")
	cpu0, kinds0 := cpuTicks(tg), chromiumTicks(tg)
	b0, t0 := d.gauge(t, "telegate_media_relay_bytes_total"), time.Now()
	time.Sleep(hold)
	cpu1, kinds1 := cpuTicks(tg), chromiumTicks(tg)
	b1, el := d.gauge(t, "telegate_media_relay_bytes_total"), time.Since(t0).Seconds()
	load1, _ := os.ReadFile("/proc/loadavg")
	pct := func(ticks int64) float64 { return float64(ticks) / clockTicks / el * 100 }
	t.Logf("held %v: telegate %.1f %% of a core; relay %.2f Mbit/s (%.0f kB/s) for the visit, %v allocations",
		time.Duration(el*float64(time.Second)).Round(time.Millisecond), pct(cpu1-cpu0), (b1-b0)*8/el/1e6, (b1-b0)/el/1e3, d.allocations(t))
	var names []string
	for k := range kinds1 {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	total := int64(0)
	for _, k := range names {
		dt := kinds1[k] - kinds0[k]
		total += dt
		if dt > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f %%", k, pct(dt)))
		}
	}
	t.Logf("chromium %.1f %% of a core in all (one busy renderer per page): %s", pct(total), strings.Join(parts, ", "))
	t.Logf("load average before %s, after %s", strings.TrimSpace(string(load0)), strings.TrimSpace(string(load1)))
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's utime and stime
// (100 on Linux).
const clockTicks = 100

// cpuTicks is the user and system CPU pid has used (clock ticks); -1 if
// it cannot be read.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// chromiumTicks sums the CPU of this test process's descendants other
// than telegate (pid skip) and its children — Chromium's processes — by
// kind: "browser", or the --type of the process ("renderer" numbered in
// the order of their pids, "gpu-process", "utility").
func chromiumTicks(skip int) map[string]int64 {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	self := os.Getpid()
	under := func(pid int) bool {
		for p := pid; p > 1; p = parent[p] {
			if p == skip {
				return false
			}
			if parent[p] == self {
				return true
			}
		}
		return false
	}
	var pids []int
	for pid := range parent {
		if under(pid) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	out := map[string]int64{}
	renderers := 0
	for _, pid := range pids {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		// Chromium rewrites its command line as one string (its process
		// title): split on spaces too.
		args := strings.FieldsFunc(string(cmd), func(r rune) bool { return r == 0 || r == ' ' })
		if len(args) == 0 {
			continue
		}
		kind := "browser"
		if !strings.Contains(filepath.Base(args[0]), "chrom") {
			kind = "other " + filepath.Base(args[0])
		}
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--type="); ok {
				kind = v
			}
			if v, ok := strings.CutPrefix(a, "--utility-sub-type="); ok {
				kind = "utility " + v
			}
		}
		if kind == "renderer" {
			renderers++
			kind = fmt.Sprintf("renderer %02d", renderers)
		}
		if c := cpuTicks(pid); c >= 0 {
			out[kind] += c
		}
	}
	return out
}
