package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// recordingWriter passes writes to w and keeps a copy of what was
// written; while gate is write-locked every write waits, as on a stalled
// disk, and once fail is set every write fails.
type recordingWriter struct {
	w    io.Writer
	gate *sync.RWMutex
	fail *atomic.Bool
	mu   *sync.Mutex
	got  *bytes.Buffer
}

func (r recordingWriter) Write(b []byte) (int, error) {
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.fail.Load() {
		return 0, &os.PathError{Op: "write", Path: "audit.log", Err: syscall.EIO}
	}
	n, err := r.w.Write(b)
	r.mu.Lock()
	r.got.Write(b[:n])
	r.mu.Unlock()
	return n, err
}

// commitFixture is a trail whose writes can be stalled or failed, with
// what reached the file so far.
type commitFixture struct {
	l    *Log
	gate sync.RWMutex
	fail atomic.Bool
	mu   sync.Mutex
	got  bytes.Buffer
	file string
}

func newCommitFixture(t *testing.T, queue int) *commitFixture {
	t.Helper()
	fx := &commitFixture{file: filepath.Join(t.TempDir(), "audit.log")}
	l, err := OpenTrail(Options{File: fx.file, Key: testKey, Logger: quietLogger(), QueueSize: queue,
		Writer: func(w io.Writer) io.Writer { return recordingWriter{w, &fx.gate, &fx.fail, &fx.mu, &fx.got} }})
	if err != nil {
		t.Fatal(err)
	}
	fx.l = l
	return fx
}

// written reports whether the record of request id has reached the file.
func (fx *commitFixture) written(id string) bool {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return bytes.Contains(fx.got.Bytes(), []byte(`"request_id":"`+id+`"`))
}

// TestRegression_CommitAnswersWhatTheFileHolds: whatever the writer is
// doing — writing one record at a time, batches of many concurrent
// callers, stalled with callers parked in the batch being written and
// behind it, failing, or with its queue full — Commit returns nil only
// once its record has reached the file, and otherwise within its bounds
// (EnqueueTimeout for room, CommitTimeout plus the watchdog's tick for the
// write) with the reason; a stall that ends loses no record and breaks no
// chain.
func TestRegression_CommitAnswersWhatTheFileHolds(t *testing.T) {
	t.Parallel()
	commit := func(fx *commitFixture, id string) error {
		return fx.l.Commit(context.Background(), Event{Type: "request", RequestID: id, Status: 200})
	}
	// stalled is a trail of queue (0: the default) holding one record,
	// whose writes then stall until fx.gate.Unlock.
	stalled := func(t *testing.T, queue int) *commitFixture {
		fx := newCommitFixture(t, queue)
		if err := commit(fx, "before"); err != nil {
			t.Fatal(err)
		}
		fx.gate.Lock()
		return fx
	}
	verify := func(t *testing.T, fx *commitFixture, want int) {
		t.Helper()
		f, err := os.Open(fx.file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if n, err := Verify(f, testKey); n != want || err != nil {
			t.Fatalf("Verify = %d, %v; want %d records", n, err, want)
		}
	}
	t.Run("one at a time", func(t *testing.T) {
		t.Parallel()
		fx := newCommitFixture(t, 0)
		for i := range 200 {
			id := fmt.Sprintf("seq-%d", i)
			if err := commit(fx, id); err != nil || !fx.written(id) {
				t.Fatalf("Commit(%s) = %v, written %v", id, err, fx.written(id))
			}
		}
		if err := fx.l.Close(); err != nil {
			t.Fatal(err)
		}
		verify(t, fx, 200)
	})
	t.Run("many at once", func(t *testing.T) {
		t.Parallel()
		fx := newCommitFixture(t, 0)
		var wg sync.WaitGroup
		var bad atomic.Int64
		for g := range 32 {
			wg.Go(func() {
				for i := range 50 {
					id := fmt.Sprintf("par-%d-%d", g, i)
					if err := commit(fx, id); err != nil || !fx.written(id) {
						bad.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d commits returned before their record was written, or failed", bad.Load())
		}
		if err := fx.l.Close(); err != nil {
			t.Fatal(err)
		}
		verify(t, fx, 32*50)
	})
	t.Run("stalled, then going on", func(t *testing.T) {
		t.Parallel()
		fx := stalled(t, 0)
		// The first is in the batch being written (stalled), the others
		// queue behind it.
		errs := make([]error, 6)
		took := make([]time.Duration, len(errs))
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				start := time.Now()
				errs[i] = commit(fx, fmt.Sprintf("stalled-%d", i))
				took[i] = time.Since(start)
			})
			if i == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, ErrNotConfirmed) || took[i] < CommitTimeout-commitTick || took[i] > CommitTimeout+3*commitTick {
				t.Errorf("Commit %d with the writer stalled: %v after %v, want ErrNotConfirmed after %v", i, err, took[i], CommitTimeout)
			}
		}
		fx.gate.Unlock()
		if err := commit(fx, "after"); err != nil || !fx.written("after") {
			t.Fatalf("Commit after the stall: %v", err)
		}
		for i := range errs {
			if id := fmt.Sprintf("stalled-%d", i); !fx.written(id) {
				t.Errorf("the record of %s, queued during the stall, was lost", id)
			}
		}
		if err := fx.l.Close(); err != nil {
			t.Fatal(err)
		}
		verify(t, fx, 1+len(errs)+1)
	})
	t.Run("failing", func(t *testing.T) {
		t.Parallel()
		fx := newCommitFixture(t, 0)
		var wg sync.WaitGroup
		var ok, failed, wrong atomic.Int64
		for g := range 8 {
			wg.Go(func() {
				for i := range 40 {
					if g == 0 && i == 10 {
						fx.fail.Store(true)
					}
					id := fmt.Sprintf("f-%d-%d", g, i)
					switch err := commit(fx, id); {
					case err == nil && fx.written(id):
						ok.Add(1)
					case err != nil && !fx.written(id):
						failed.Add(1)
					default:
						wrong.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if wrong.Load() != 0 || failed.Load() == 0 {
			t.Fatalf("with writes failing: %d confirmed and written, %d refused, %d answered against the file", ok.Load(), failed.Load(), wrong.Load())
		}
		if err := fx.l.Close(); err == nil {
			t.Error("Close after a failed write returned no error")
		}
	})
	t.Run("queue full", func(t *testing.T) {
		t.Parallel()
		fx := stalled(t, 2)
		var wg sync.WaitGroup
		errs := make([]error, 5)
		took := make([]time.Duration, len(errs))
		for i := range errs {
			wg.Go(func() {
				start := time.Now()
				errs[i] = commit(fx, fmt.Sprintf("full-%d", i))
				took[i] = time.Since(start)
			})
			time.Sleep(10 * time.Millisecond)
		}
		wg.Wait()
		saturated := 0
		for i, err := range errs {
			switch {
			case errors.Is(err, ErrSaturated) && took[i] < 3*EnqueueTimeout:
				saturated++
			case errors.Is(err, ErrNotConfirmed):
			default:
				t.Errorf("Commit %d with the queue full: %v after %v", i, err, took[i])
			}
		}
		// One in the stalled batch and two queued: the others find no room.
		if saturated != 2 {
			t.Errorf("%d commits refused for a full queue, want 2 (%v)", saturated, errs)
		}
		fx.gate.Unlock()
		if err := fx.l.Close(); err != nil {
			t.Fatal(err)
		}
		verify(t, fx, 1+len(errs)-saturated)
	})
}
