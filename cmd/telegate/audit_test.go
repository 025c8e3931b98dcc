package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/telegate/telegate/audit"
)

// TestAuditVerify writes a real trail with the audit package, verifies it
// with and without the HMAC key, then edits one byte and expects the break
// to be found.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	keyFile := filepath.Join(dir, "audit.key")
	if err := os.WriteFile(keyFile, []byte("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trail := filepath.Join(dir, "audit.log")
	l, err := audit.Open(trail, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l.Record(context.Background(), audit.Event{Time: time.Now(), Type: "request", RouteID: "home", Status: 200 + i})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	r := telegate(t, nil, "audit", "verify", "--file", trail, "--key-file", keyFile, "--data-dir", empty)
	if r.code != 0 || r.stdout != trail+": ok, 3 records verified (chain; HMAC)\n" || !strings.Contains(r.stderr, "no verifier key") {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(trail)
	b = bytes.Replace(b, []byte(`"status":201`), []byte(`"status":403`), 1)
	if err := os.WriteFile(trail, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = telegate(t, nil, "audit", "verify", "--file", trail, "--key-file", keyFile, "--data-dir", empty)
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN after 1 intact records: audit: "+trail+": line 2 of the trail (byte ") {
		t.Fatalf("verify of an edited trail: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Without the key the edit shows in the next line's prev.
	r = telegate(t, nil, "audit", "verify", "--file", trail, "--data-dir", empty)
	if r.code != 1 || !strings.Contains(r.stdout, "line 2 of the trail (byte ") || !strings.Contains(r.stdout, "edited") {
		t.Fatalf("verify without key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Error("verify created a data directory")
	}
}

// nodeConfig is a configuration that runs on loopback, with a provider
// whose client secret comes from a variable the audit commands do not
// have.
func nodeConfig(t *testing.T) (path, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	cfg := reloadConfig(dir) + `providers:
  - id: staff
    issuer: https://idp.example.test
    client_id: telegate
    client_secret: ${TELEGATE_TEST_STAFF_SECRET}
audit:
  checkpoint_dir: ` + filepath.Join(dir, "checkpoints") + "\n"
	path = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, filepath.Join(dir, "data")
}

// runNode starts `telegate run -c path` with the provider's secret, waits
// until it is ready and stops it with SIGINT.
func runNode(t *testing.T, path string) { t.Helper(); runNodeUntil(t, path, nil) }

// runNodeUntil is runNode waiting, once ready, until until() holds (at
// most 20 s) before the SIGINT.
func runNodeUntil(t *testing.T, path string, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-c", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TELEGATE_TEST_STAFF_SECRET=s3cret-s3cret"}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &logs, "telegate ready", 30*time.Second)
	for deadline := time.Now().Add(20 * time.Second); until != nil && !until() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v\n%s", err, logs.String())
	}
}

// TestRegression_AuditCutTrailRefusedAtStart runs the real binary: a
// trail cut below its latest checkpoint — by one record, or all of them,
// or the file removed — stops telegate from starting, with what is
// missing and what to run; `audit verify -c` (which needs no secret of the
// configuration) names the cut; `audit new-segment` records the gap,
// after which telegate starts and verify reports the gap.
func TestRegression_AuditCutTrailRefusedAtStart(t *testing.T) {
	t.Parallel()
	cuts := map[string]func(t *testing.T, trail string){
		"last record": func(t *testing.T, trail string) {
			b, _ := os.ReadFile(trail)
			i := bytes.LastIndexByte(b[:len(b)-1], '\n')
			if err := os.WriteFile(trail, b[:i+1], 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"every record": func(t *testing.T, trail string) {
			if err := os.Truncate(trail, 0); err != nil {
				t.Fatal(err)
			}
		},
		"the file": func(t *testing.T, trail string) {
			if err := os.Remove(trail); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path, data := nodeConfig(t)
			trail := filepath.Join(data, "audit", "audit.log")
			runNode(t, path)
			r := telegate(t, nil, "audit", "verify", "-c", path)
			if r.code != 0 || !strings.Contains(r.stdout, ": ok, ") || !strings.Contains(r.stdout, "checkpoints signed by telegate-audit/") {
				t.Fatalf("verify of the trail: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			cut(t, trail)
			r = telegate(t, []string{"TELEGATE_TEST_STAFF_SECRET=s3cret-s3cret"}, "run", "-c", path)
			if r.code != 1 || !strings.Contains(r.stderr, "cut from the end") || !strings.Contains(r.stderr, "telegate audit verify") {
				t.Fatalf("run on a cut trail: exit %d, stderr %q", r.code, r.stderr)
			}
			r = telegate(t, nil, "audit", "verify", "-c", path)
			if r.code != 1 || !strings.Contains(r.stdout, "BROKEN") || !strings.Contains(r.stdout, "cut from the end") {
				t.Fatalf("verify of a cut trail: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			r = telegate(t, []string{"TELEGATE_TEST_STAFF_SECRET=s3cret-s3cret"}, "audit", "new-segment", "-c", path, "--reason", "volume restored from backup")
			if r.code != 0 {
				t.Fatalf("new-segment: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			runNode(t, path)
			r = telegate(t, nil, "audit", "verify", "-c", path)
			if r.code != 0 || !strings.Contains(r.stdout, "GAP recorded at line ") || !strings.Contains(r.stdout, `reason: "volume restored from backup"`) || !strings.Contains(r.stdout, ": ok, ") {
				t.Fatalf("verify after new-segment: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestAuditKey prints the verifier key that the checkpoints are signed
// with, which verifies them when given to verify.
func TestAuditKey(t *testing.T) {
	t.Parallel()
	path, _ := nodeConfig(t)
	runNode(t, path)
	r := telegate(t, nil, "audit", "key", "-c", path)
	if _, err := note.NewVerifier(strings.TrimSpace(r.stdout)); r.code != 0 || !strings.HasPrefix(r.stdout, "telegate-audit/") || err != nil {
		t.Fatalf("audit key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = telegate(t, nil, "audit", "verify", "-c", path, "--verifier-key", strings.TrimSpace(r.stdout))
	if r.code != 0 {
		t.Fatalf("verify with the printed key: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestRegression_AuditCrash kills telegate (SIGKILL) while it serves a
// bounded load (about 200 requests/s for at most 3 s, on loopback): every
// response a client received has its record, by request id, and the trail
// verifies against its checkpoints; a torn last line (as a machine crash
// can leave) is reported by verify and cut, with a record of it, at the
// next start.
func TestRegression_AuditCrash(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfgText := strings.Replace(strings.Replace(reloadConfig(dir), "127.0.0.1:0\n  http_listen", addr+"\n  http_listen", 1), "http://127.0.0.1:1", up.URL, 1)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	trail := filepath.Join(dir, "data", "audit", "audit.log")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-c", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, &logs, "telegate ready", 30*time.Second)

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} // loopback only, the node's local CA
	defer hc.CloseIdleConnections()
	var (
		mu       sync.Mutex
		received []string
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond) // 4 × 50/s
			defer tick.Stop()
			for range 150 { // at most 3 s
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/x", nil)
				req.Host = "localhost"
				resp, err := hc.Do(req)
				if err != nil {
					continue // the node is gone
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if rid := resp.Header.Get("X-Request-Id"); rid != "" {
					mu.Lock()
					received = append(received, rid)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()
	if len(received) < 50 {
		t.Fatalf("only %d responses before the kill", len(received))
	}
	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	for _, rid := range received {
		if !bytes.Contains(b, []byte(`"request_id":"`+rid+`"`)) {
			t.Fatalf("response %s was received but has no record (%d responses)", rid, len(received))
		}
	}
	r := telegate(t, nil, "audit", "verify", "-c", path)
	if r.code != 0 {
		t.Fatalf("verify after SIGKILL: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A torn last line.
	f, err := os.OpenFile(trail, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"seq":99999,"prev":"00","time":"2026-`)
	f.Close()
	r = telegate(t, nil, "audit", "verify", "-c", path)
	if r.code != 1 || !strings.Contains(r.stdout, "incomplete last line") {
		t.Fatalf("verify of a torn last line: exit %d, stdout %q", r.code, r.stdout)
	}
	runNode(t, path)
	r = telegate(t, nil, "audit", "verify", "-c", path)
	b, _ = os.ReadFile(trail)
	if r.code != 0 || !bytes.Contains(b, []byte(`"type":"audit.recover","reason":"incomplete-last-line"`)) {
		t.Fatalf("after restart: exit %d, stdout %q, recovery recorded: %v", r.code, r.stdout, bytes.Contains(b, []byte("audit.recover")))
	}
}

// TestAuditVerifySealedSegments: `audit verify` reads a trail rotated
// into several sealed segment files with its encryption key file and the
// public verifier key, and names the segment file whose block was changed.
func TestAuditVerifySealedSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ekeyFile := filepath.Join(dir, "audit-encryption.key")
	if err := os.WriteFile(ekeyFile, []byte("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(nil, "telegate-audit/test")
	if err != nil {
		t.Fatal(err)
	}
	trail, ck := filepath.Join(dir, "trail", "audit.log"), filepath.Join(dir, "ck")
	l, err := audit.OpenTrail(audit.Options{File: trail, Key: bytes.Repeat([]byte{9}, 32), CheckpointDir: ck, CheckpointKey: skey,
		RotateSize: 600, EncryptionKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := l.Commit(context.Background(), audit.Event{Type: "request", RouteID: "home", RequestID: "secret-looking-id", Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	args := []string{"audit", "verify", "--file", trail, "--checkpoints", ck}
	r := telegate(t, nil, append(args, "--encryption-key-file", ekeyFile)...)
	if r.code != 0 || !strings.Contains(r.stdout, "ok, 8 records verified") || !strings.Contains(r.stdout, "segment files") {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := telegate(t, nil, args...); r.code != 1 || !strings.Contains(r.stdout, "encrypted") {
		t.Fatalf("verify without the key file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	seg := trail + ".000002"
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("secret-looking-id")) {
		t.Fatal("a sealed segment file holds a record field in the clear")
	}
	b[len(b)-5] ^= 0x40
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = telegate(t, nil, append(args, "--encryption-key-file", ekeyFile)...)
	if r.code != 1 || !strings.Contains(r.stdout, seg+": line ") || !strings.Contains(r.stdout, "does not decrypt") {
		t.Fatalf("verify of a changed block: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestRegression_AuditVerifyWitnessed: `audit verify --witnessed FILE`
// checks the trail against a checkpoint a witness kept (audit.witness),
// as the note or as the webhook's JSON body: a tail cut with the
// checkpoint directory emptied verifies "ok" on its own and is named cut
// with the witness's copy; a note signed by another key, or a file that
// is no checkpoint, is refused, naming the file; --witnessed needs the
// verifier key.
func TestRegression_AuditVerifyWitnessed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skey, _, err := note.GenerateKey(nil, "telegate-audit/test")
	if err != nil {
		t.Fatal(err)
	}
	trail, ck := filepath.Join(dir, "audit.log"), filepath.Join(dir, "ck")
	l, err := audit.OpenTrail(audit.Options{File: trail, Key: bytes.Repeat([]byte{9}, 32), CheckpointDir: ck, CheckpointKey: skey, CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	var latest []byte
	l.SetCheckpointWitness(func(c audit.Checkpoint, n []byte) { latest = bytes.Clone(n) })
	for i := range 12 {
		if err := l.Commit(context.Background(), audit.Event{Type: "request", RouteID: "home", Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if latest == nil {
		t.Fatal("no checkpoint reached the witness")
	}
	vkey := filepath.Join(dir, "recorded.vkey")
	b, err := os.ReadFile(filepath.Join(ck, audit.VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("recorded.vkey", b)
	noteFile := write("witnessed.note", latest)
	body, _ := json.Marshal(map[string]any{"type": "audit.checkpoint", "note": string(latest)})
	jsonFile := write("witnessed.json", body)
	otherKey, _, _ := note.GenerateKey(nil, "telegate-audit/test")
	s, _ := note.NewSigner(otherKey)
	forged, _ := note.Sign(&note.Note{Text: "telegate-audit/test\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nsegment 1\ntime 2026-12-07T10:00:00Z\n"}, s)
	forgedFile := write("forged.note", forged)
	junk := write("junk.json", []byte(`{"type":"audit.checkpoint"}`))

	// The intruder's work: the last records cut, the checkpoints emptied.
	lines := strings.SplitAfter(string(mustRead(t, trail)), "\n")
	write("audit.log", []byte(strings.Join(lines[:5], "")))
	empty := filepath.Join(dir, "emptied")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"audit", "verify", "--file", trail, "--checkpoints", empty, "--verifier-key", vkey}
	if r := telegate(t, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "ok, 5 records verified") {
		t.Fatalf("the cut trail on its own: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{noteFile, jsonFile} {
		r := telegate(t, nil, append(args, "--witnessed", f)...)
		if r.code != 1 || !strings.Contains(r.stdout, "cut from the end") || !strings.Contains(r.stdout, "records 6..") {
			t.Errorf("--witnessed %s: exit %d, stdout %q, stderr %q", filepath.Base(f), r.code, r.stdout, r.stderr)
		}
	}
	for _, f := range []string{forgedFile, junk} {
		r := telegate(t, nil, append(args, "--witnessed", f)...)
		if r.code != 1 || !strings.Contains(r.stderr, f) {
			t.Errorf("--witnessed %s: exit %d, stdout %q, stderr %q", filepath.Base(f), r.code, r.stdout, r.stderr)
		}
	}
	if r := telegate(t, nil, "audit", "verify", "--file", trail, "--checkpoints", empty, "--witnessed", noteFile); r.code != 1 || !strings.Contains(r.stderr, "needs the verifier key") {
		t.Errorf("--witnessed without a verifier key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
