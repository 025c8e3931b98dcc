package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/telegate/telegate/e2e/internal/load"
)

// proc is one peer process, started in its own process group so that it
// and every child (nginx's workers) are measured and killed together.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string
	ready time.Duration // from start to its first answer
	start time.Time
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// startProc starts bin in its own process group, output to dir/name.log.
func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, log: logPath, start: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitReady runs check until it succeeds (at most 60 s) and records the
// time to ready; on failure the error carries the end of the peer's log.
func (p *proc) waitReady(check func() error) error {
	var err error
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			p.ready = time.Since(p.start)
			return nil
		}
		if p.cmd.ProcessState != nil {
			break
		}
	}
	out, _ := os.ReadFile(p.log)
	if len(out) > 2000 {
		out = out[len(out)-2000:]
	}
	return fmt.Errorf("%s not ready: %v\n%s", p.name, err, out)
}

// group is every process in p's process group.
func (p *proc) group() []int { return groupPids(p.pid()) }

func groupPids(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpu is the CPU time the whole process group has used so far.
func (p *proc) cpu() time.Duration {
	var t time.Duration
	for _, pid := range p.group() {
		t += load.CPUTime(pid)
	}
	return t
}

// rssKiB is the resident memory of the whole process group.
func (p *proc) rssKiB() int64 {
	var kib int64
	for _, pid := range p.group() {
		kib += statusKiB(pid, "VmRSS:")
	}
	return kib
}

// statusKiB reads a "Name:  N kB" line of /proc/PID/status.
func statusKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}

// peakSampler samples p's group RSS every 100 ms until stopped and
// returns the highest.
func peakSampler(p *proc) (stop func() int64) {
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var m int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			m = max(m, p.rssKiB())
			select {
			case <-done:
				peak <- m
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}

// killAll kills every started process group and reaps the leaders.
func killAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, p := range procs {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// leftRunning lists the processes still in any started process group.
func leftRunning() []int {
	procsMu.Lock()
	defer procsMu.Unlock()
	var left []int
	for _, p := range procs {
		left = append(left, groupPids(p.pid())...)
	}
	return left
}
