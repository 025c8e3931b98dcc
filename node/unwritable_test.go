package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
)

// gateWriter blocks every write while shut is set, as a stalled disk
// would, until it is opened again.
type gateWriter struct {
	w    io.Writer
	gate *sync.RWMutex
}

func (g gateWriter) Write(b []byte) (int, error) {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return g.w.Write(b)
}

// tmpfsTrail mounts a tmpfs of size bytes for the trail and returns the
// trail's path on it; ok is false where mounting is not allowed.
func tmpfsTrail(t *testing.T, size int) (file string, ok bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit-volume")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("mount tmpfs: %v %s", err, out)
		return "", false
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return filepath.Join(dir, "audit.log"), true
}

// fillUp writes to dir until it is full.
func fillUp(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 512)
	for range 1 << 16 {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the volume did not fill up")
}

// served is a response the client received.
type served struct {
	path, rid string
	status    int
	failing   bool // sent once the trail was failing
}

// TestRegression_UnwritableTrail: whatever makes the trail unwritable — a
// write error, an fsync error, a full disk (a tmpfs of 64 KiB, or
// ENOSPC injected where mounting is not allowed), a writer stalled until
// its queue is saturated — a route that needs an identity (and
// telegate's own endpoints) answers 503 with the standard error page
// carrying the request id, a public route follows
// audit.on_failure_public, and every response served other than a
// public one under "degrade" has its record in the trail with the status
// the client got.
func TestRegression_UnwritableTrail(t *testing.T) {
	t.Parallel()
	type member struct {
		name string
		// setup returns the trail's file ("" default), the options' tune
		// and break, which makes the trail unwritable, and mend, which
		// undoes it (nil: it stays broken until restart).
		setup func(t *testing.T) (file string, tune func(*audit.Options), brk func(), mend func())
		// concurrent sends the requests of the failing phase at once.
		concurrent bool
	}
	members := []member{
		{"write error", func(t *testing.T) (string, func(*audit.Options), func(), func()) {
			fail := new(atomic.Bool)
			return "", func(o *audit.Options) {
				o.Writer = func(w io.Writer) io.Writer { return failingWriter{w, fail} }
			}, func() { fail.Store(true) }, nil
		}, false},
		{"fsync error", func(t *testing.T) (string, func(*audit.Options), func(), func()) {
			fail := new(atomic.Bool)
			return "", func(o *audit.Options) {
				o.Fsync = func(f *os.File) error {
					if fail.Load() {
						return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
					}
					return f.Sync()
				}
			}, func() { fail.Store(true) }, nil
		}, false},
		{"disk full", func(t *testing.T) (string, func(*audit.Options), func(), func()) {
			file, ok := tmpfsTrail(t, 64<<10)
			if !ok {
				fail := new(atomic.Bool)
				return "", func(o *audit.Options) {
					o.Writer = func(w io.Writer) io.Writer { return enospcWriter{w, fail} }
				}, func() { fail.Store(true) }, nil
			}
			return file, nil, func() { fillUp(t, filepath.Dir(file)) }, nil
		}, false},
		{"queue saturated", func(t *testing.T) (string, func(*audit.Options), func(), func()) {
			gate := new(sync.RWMutex)
			return "", func(o *audit.Options) {
				o.QueueSize = 1
				o.Writer = func(w io.Writer) io.Writer { return gateWriter{w, gate} }
			}, gate.Lock, gate.Unlock
		}, true},
	}
	for _, m := range members {
		for _, mode := range []string{config.AuditDegrade, config.AuditRefuse} {
			t.Run(m.name+", public "+mode, func(t *testing.T) {
				t.Parallel()
				file, tune, brk, mend := m.setup(t)
				get, stop, cfg := trailNode(t, mode, file, tune)
				var (
					mu  sync.Mutex
					got []served
				)
				send := func(path string, failing bool) (*http.Response, string) {
					resp, body := get(path)
					mu.Lock()
					got = append(got, served{path, resp.Header.Get("X-Request-Id"), resp.StatusCode, failing})
					mu.Unlock()
					return resp, body
				}
				for _, p := range []string{"/pub/a", "/closed/a", "/.telegate/jwks.json"} {
					if resp, _ := send(p, false); resp.StatusCode >= 500 {
						t.Fatalf("GET %s before the failure: %d", p, resp.StatusCode)
					}
				}
				brk()
				// The failure shows at the next write or fsync: requests
				// until the first refusal (bounded).
				refused := false
				until := time.Now().Add(5 * time.Second)
				for i := 0; i < 200 && !refused && time.Now().Before(until); i++ {
					resp, _ := send(fmt.Sprintf("/closed/probe%d", i), true)
					if refused = resp.StatusCode == http.StatusServiceUnavailable; !refused {
						time.Sleep(10 * time.Millisecond)
					}
				}
				if !refused {
					t.Fatal("no request was refused with the trail unwritable")
				}
				paths := []string{"/closed/b", "/.telegate/jwks.json", "/nowhere", "/closed/c", "/pub/b"}
				type answer struct {
					path, body string
					resp       *http.Response
				}
				answers := make([]answer, len(paths))
				var wg sync.WaitGroup
				for i, p := range paths {
					if m.concurrent {
						wg.Go(func() { r, b := send(p, true); answers[i] = answer{p, b, r} })
						continue
					}
					r, b := send(p, true)
					answers[i] = answer{p, b, r}
				}
				wg.Wait()
				for _, a := range answers {
					rid := a.resp.Header.Get("X-Request-Id")
					public := strings.HasPrefix(a.path, "/pub/")
					if public && mode == config.AuditDegrade {
						if a.resp.StatusCode != http.StatusOK || a.body != "upstream says hello" {
							t.Errorf("GET %s, public, degrade: %d %q, want it served", a.path, a.resp.StatusCode, a.body)
						}
						continue
					}
					if a.resp.StatusCode != http.StatusServiceUnavailable || rid == "" || !strings.Contains(a.body, rid) || strings.Contains(a.body, "upstream says") {
						t.Errorf("GET %s with the trail unwritable: %d %q, want 503 with the request id", a.path, a.resp.StatusCode, a.body)
					}
				}
				if mend != nil {
					// A stalled writer that goes on: the trail takes
					// records again.
					mend()
					deadline := time.Now().Add(5 * time.Second)
					for {
						resp, _ := send("/closed/after", false)
						if resp.StatusCode != http.StatusServiceUnavailable {
							break
						}
						if time.Now().After(deadline) {
							t.Fatal("the trail did not take records again after the stall")
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				if err := stop(); mend == nil && err == nil {
					t.Error("Run after a failed trail returned no error")
				}
				// The trail verifies with its checkpoints (a full disk
				// may leave a torn last line, cut at the next start).
				v, err := audit.ReadVerifierKey(filepath.Join(cfg.Audit.CheckpointDir, audit.VerifierKeyFile))
				if err != nil {
					t.Fatal(err)
				}
				tr, err := audit.Trail{File: cfg.Audit.File}.Open()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := audit.VerifyTrail(tr, audit.VerifyOptions{Verifier: v, CheckpointDir: cfg.Audit.CheckpointDir}); err != nil && !(m.name == "disk full" && strings.Contains(err.Error(), "incomplete last line")) {
					t.Errorf("trail after the failure: %v", err)
				}
				tr.Close()
				recs := trailRecords(t, cfg)
				for _, s := range got {
					if s.status == http.StatusServiceUnavailable || (s.failing && mode == config.AuditDegrade && strings.HasPrefix(s.path, "/pub/")) {
						continue
					}
					if st, ok := recs[s.rid]; !ok || st != s.status {
						t.Errorf("GET %s served %d (request %s) with no record of it (record: %v, status %d)", s.path, s.status, s.rid, ok, st)
					}
				}
			})
		}
	}
}

// enospcWriter fails every write with ENOSPC once fail is set.
type enospcWriter struct {
	w    io.Writer
	fail *atomic.Bool
}

func (e enospcWriter) Write(b []byte) (int, error) {
	if e.fail.Load() {
		return 0, &os.PathError{Op: "write", Path: "audit.log", Err: syscall.ENOSPC}
	}
	return e.w.Write(b)
}

// trailRecords reads the node's trail (every segment file) and returns
// the status recorded for each request id; a torn last line is skipped.
func trailRecords(t *testing.T, cfg *config.Config) map[string]int {
	t.Helper()
	recs := map[string]int{}
	for _, e := range trailEvents(t, cfg, "request") {
		recs[e.RequestID] = e.Status
	}
	return recs
}

// trailEvents reads the node's trail (every segment file) and returns
// its events of type typ in order; a torn last line is skipped.
func trailEvents(t *testing.T, cfg *config.Config, typ string) []audit.Event {
	t.Helper()
	r, err := audit.Trail{File: cfg.Audit.File}.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []audit.Event
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
		var e audit.Event
		if json.Unmarshal(line, &e) == nil && e.Type == typ {
			out = append(out, e)
		}
	}
}
