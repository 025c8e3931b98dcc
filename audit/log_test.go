package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeLog writes n request events to a new log at dir/audit/audit.log and
// returns the file's path and content.
func writeLog(t testing.TB, dir string, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(dir, "audit", "audit.log")
	l, err := OpenWithLogger(path, testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Record(context.Background(), Event{Type: "request", RequestID: fmt.Sprintf("r%d", i), RouteID: "clinic",
			Method: "GET", Path: "/clinic/", Status: 200, Client: "192.0.2.1", Decision: "allow", Reason: "rule:0"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

func TestChainVerifies(t *testing.T) {
	t.Parallel()
	path, b := writeLog(t, t.TempDir(), 5)
	n, err := Verify(bytes.NewReader(b), testKey)
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v; want 5, nil", n, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	dinfo, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := dinfo.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %v, want 0700", perm)
	}
	first := strings.SplitN(string(b), "\n", 2)[0]
	if !strings.HasPrefix(first, `{"seq":1,"prev":"","time":`) || !strings.Contains(first, `"request_id":"r0"`) {
		t.Errorf("first line %s", first)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	_, orig := writeLog(t, t.TempDir(), 5)
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // trailing ""
	join := func(ls ...string) []byte { return []byte(strings.Join(ls, "")) }
	tests := []struct {
		name     string
		data     []byte
		key      []byte
		line     int
		n        int
		contains string
	}{
		{"edited byte", join(lines[0], lines[1], strings.Replace(lines[2], `"status":200`, `"status":201`, 1), lines[3], lines[4]), testKey, 3, 2, "edited"},
		{"edited decision", join(lines[0], strings.Replace(lines[1], `"allow"`, `"deny"`, 1), lines[2]), testKey, 2, 1, "edited"},
		{"deleted line", join(lines[0], lines[2], lines[3], lines[4]), testKey, 2, 1, "missing"},
		{"deleted first line", join(lines[1], lines[2]), testKey, 1, 0, "missing"},
		{"swapped lines", join(lines[0], lines[2], lines[1], lines[3], lines[4]), testKey, 2, 1, "missing"},
		{"swapped back", join(lines[0], lines[1], lines[3], lines[2], lines[4]), testKey, 3, 2, "missing"},
		{"repeated line", join(lines[0], lines[1], lines[1], lines[2]), testKey, 3, 2, "reordered or repeated"},
		{"truncated in the middle", join(lines[0], lines[1][:40], lines[2]), testKey, 2, 1, "truncated"},
		{"truncated at the end", join(lines[0], lines[1], lines[2][:len(lines[2])-10]), testKey, 3, 2, "incomplete last line"},
		{"empty line", join(lines[0], "\n", lines[1]), testKey, 2, 1, "empty line"},
		{"wrong key", orig, bytes.Repeat([]byte{1}, 32), 1, 0, "mac does not match"},
		{"mac removed", join(lines[0], lines[1][:strings.Index(lines[1], `,"mac"`)]+"}\n"), testKey, 2, 1, "no trailing mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := Verify(bytes.NewReader(tt.data), tt.key)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %d, %v; want a *VerifyError", n, err)
			}
			if ve.Line != tt.line || n != tt.n || !strings.Contains(ve.Reason, tt.contains) {
				t.Fatalf("Verify = %d, %v; want line %d, n %d, reason containing %q", n, err, tt.line, tt.n, tt.contains)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d ", tt.line)) {
				t.Errorf("error %q does not name line %d", err, tt.line)
			}
		})
	}
}

func TestVerifyEmpty(t *testing.T) {
	t.Parallel()
	n, err := Verify(strings.NewReader(""), testKey)
	if n != 0 || err != nil {
		t.Fatalf("Verify(empty) = %d, %v", n, err)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 3)
	_, b := writeLog(t, dir, 2)
	n, err := Verify(bytes.NewReader(b), testKey)
	if err != nil || n != 5 {
		t.Fatalf("Verify after reopen = %d, %v; want 5, nil", n, err)
	}
	if !strings.Contains(string(b), `{"seq":4,"prev":"`) {
		t.Errorf("line 4 does not continue the sequence:\n%s", b)
	}
}

func TestOpenRefusesWrongKey(t *testing.T) {
	t.Parallel()
	path, _ := writeLog(t, t.TempDir(), 2)
	l, err := OpenWithLogger(path, bytes.Repeat([]byte{7}, 32), quietLogger())
	if err == nil {
		l.Close()
		t.Fatal("Open with another key continued the chain")
	}
	if !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("error %q", err)
	}
}

func TestOpenRefusesShortKey(t *testing.T) {
	t.Parallel()
	if _, err := Open(filepath.Join(t.TempDir(), "a.log"), []byte("short")); err == nil {
		t.Fatal("Open accepted a 5-byte key")
	}
}

func TestOpenRefusesSecondWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.log")
	l, err := OpenWithLogger(path, testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := OpenWithLogger(path, testKey, quietLogger()); err == nil {
		l2.Close()
		t.Fatal("a second writer opened the same chain")
	}
}

func TestOpenRecoversIncompleteLastLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, b := writeLog(t, dir, 3)
	partial := b[:len(b)/2]
	partial = partial[bytes.LastIndexByte(partial, '\n')+1:]
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(partial[:20])
	f.Close()
	_, b = writeLog(t, dir, 1)
	n, err := Verify(bytes.NewReader(b), testKey)
	if err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v; want 5 (3 + recover + 1)\n%s", n, err, b)
	}
	if !strings.Contains(string(b), `"type":"audit.recover","reason":"incomplete-last-line","attrs":{"bytes":"20"`) {
		t.Errorf("no recover record:\n%s", b)
	}
}

func TestOversizedAttrsTruncated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.log")
	l, err := OpenWithLogger(path, testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), Event{Type: "request", Attrs: map[string]string{"x": strings.Repeat("a", MaxLineBytes)}})
	l.Close()
	b, _ := os.ReadFile(path)
	if len(b) > MaxLineBytes || !strings.Contains(string(b), `"truncated":"true"`) {
		t.Fatalf("line of %d bytes not truncated", len(b))
	}
	if n, err := Verify(bytes.NewReader(b), testKey); n != 1 || err != nil {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestConcurrentRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.log")
	l, err := OpenWithLogger(path, testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l.Record(context.Background(), Event{Type: "request", RequestID: fmt.Sprintf("%d-%d", g, i)})
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Written() != 1600 || l.Dropped() != 0 {
		t.Fatalf("written %d dropped %d", l.Written(), l.Dropped())
	}
	f, _ := os.Open(path)
	defer f.Close()
	if n, err := Verify(f, testKey); n != 1600 || err != nil {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

// TestRecordDoesNotBlockWhenQueueFull: a stalled writer must not hold the
// request path longer than EnqueueTimeout; the record is counted as dropped.
func TestRecordDoesNotBlockWhenQueueFull(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	l := &Log{o: Options{QueueSize: 1}, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	l.Record(context.Background(), Event{Type: "request"})
	start := time.Now()
	l.Record(context.Background(), Event{Type: "request", Path: "/patients/alice", Client: "192.0.2.7"})
	if d := time.Since(start); d > 10*EnqueueTimeout {
		t.Fatalf("Record blocked %v", d)
	}
	if l.Dropped() != 1 {
		t.Fatalf("Dropped = %d, want 1", l.Dropped())
	}
	if s := logs.String(); !strings.Contains(s, "audit record dropped") || strings.Contains(s, "alice") || strings.Contains(s, "192.0.2.7") {
		t.Fatalf("drop log %q", s)
	}
}

func TestRecordAfterCloseDropped(t *testing.T) {
	t.Parallel()
	l, err := OpenWithLogger(filepath.Join(t.TempDir(), "a.log"), testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Healthy(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Record(context.Background(), Event{Type: "request"})
	if l.Dropped() != 1 || l.Healthy() == nil {
		t.Fatalf("Dropped = %d, Healthy = %v", l.Dropped(), l.Healthy())
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	_, valid := writeLog(f, dir, 3)
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"prev":"","mac":"` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data), testKey)
		if n > bytes.Count(data, []byte("\n")) {
			t.Fatalf("verified %d lines of %d", n, bytes.Count(data, []byte("\n")))
		}
		if err == nil && len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatal("accepted an incomplete last line")
		}
	})
}

func BenchmarkRecord(b *testing.B) {
	l, err := OpenWithLogger(filepath.Join(b.TempDir(), "a.log"), testKey, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	e := Event{Type: "request", RequestID: "01J9Z8K3M4N5P6Q7R8S9T0V1W2", RouteID: "clinic", Method: "GET", Path: "/clinic/patients",
		Status: 200, Client: "2001:db8::17", Issuer: "https://idp.hospital.test", Subject: "c-1", Decision: "allow", Reason: "rule:0"}
	b.ReportAllocs()
	for b.Loop() {
		l.Record(context.Background(), e)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	if l.Dropped() != 0 {
		b.Fatalf("dropped %d", l.Dropped())
	}
}
