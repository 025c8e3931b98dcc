package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHealthyFileGone: a trail whose file was removed or replaced under it
// is not healthy: new records would not reach the file at its path.
func TestHealthyFileGone(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"removed", "replaced"} {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := OpenWithLogger(path, testKey, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Healthy(); err != nil {
			t.Fatalf("%s: healthy before: %v", how, err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if how == "replaced" {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Healthy(); err == nil || !strings.Contains(err.Error(), path+" was removed or replaced") {
			t.Errorf("%s: Healthy = %v", how, err)
		}
		_ = l.Close()
	}
}

// TestHealthyAfterWriteError: once a write fails the trail stays
// unhealthy, with the error.
func TestHealthyAfterWriteError(t *testing.T) {
	t.Parallel()
	l, err := OpenWithLogger(filepath.Join(t.TempDir(), "audit.log"), testKey, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_ = l.f.Close() // the file fails under the writer
	l.Record(context.Background(), Event{Type: "request"})
	deadline := time.Now().Add(5 * time.Second)
	for l.WriteErrors() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Healthy(); err == nil || !strings.Contains(err.Error(), "audit: write") {
		t.Errorf("Healthy after a failed write = %v", err)
	}
}
