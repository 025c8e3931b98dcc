package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/telegate/telegate/audit"
)

// nodeTrail writes n request records of node `name` (one a minute from
// t0) with a real Log and checkpoints, to file and ckDir.
func nodeTrail(t *testing.T, name, file, ckDir string, n int, t0 time.Time) {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "telegate-audit/"+name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.OpenTrail(audit.Options{File: file, Key: bytes.Repeat([]byte{9}, 32), CheckpointDir: ckDir, CheckpointKey: skey, CheckpointEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Commit(context.Background(), audit.Event{Time: t0.Add(time.Duration(i) * time.Minute), Type: "request", RequestID: fmt.Sprintf("%s-%d", name, i),
			RouteID: "clinic", Method: "GET", Path: "/clinic/", Status: 200, Client: "192.0.2.1", Issuer: "https://idp.example", Subject: "u" + name, Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyMerge verifies two nodes' trails together — one laid
// out as a data directory, one collected into a directory — then each
// kind of damage to one of them: that node is reported BROKEN with the
// line, the other still ok, and the exit status is 1.
func TestAuditVerifyMerge(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	setup := func(t *testing.T) (a, b, trailB string) {
		a, b = t.TempDir(), t.TempDir()
		nodeTrail(t, "node-a", filepath.Join(a, "audit", "audit.log"), filepath.Join(a, "audit-checkpoints"), 7, t0)
		trailB = filepath.Join(b, "audit.log")
		nodeTrail(t, "node-b", trailB, filepath.Join(b, "checkpoints"), 5, t0.Add(30*time.Second))
		return a, b, trailB
	}
	a, b, _ := setup(t)
	r := telegate(t, nil, "audit", "verify", "--merge", a, b)
	if r.code != 0 || !strings.Contains(r.stdout, "node node-a (") || !strings.Contains(r.stdout, "ok, 7 records verified") ||
		!strings.Contains(r.stdout, "node node-b (") || !strings.Contains(r.stdout, "ok, 5 records verified") ||
		!strings.Contains(r.stdout, "merged: 12 records of 2 nodes in time order, 2026-03-01T10:00:00Z .. 2026-03-01T10:06:00Z; all verified") {
		t.Fatalf("merge of two intact trails: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = telegate(t, nil, "audit", "verify", "--merge", a)
	if r.code != 0 || !strings.Contains(r.stdout, "merged: 7 records of 1 node in time order") {
		t.Errorf("merge of one trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = telegate(t, nil, "audit", "verify", "--merge", a, a)
	if r.code != 1 || !strings.Contains(r.stdout, "node node-a again") {
		t.Errorf("one node given twice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for name, tamper := range map[string]func(b []byte) []byte{
		"byte flipped": func(b []byte) []byte { return bytes.Replace(b, []byte(`"status":200`), []byte(`"status":201`), 1) },
		"tail cut":     func(b []byte) []byte { return b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1] },
		"emptied":      func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			a, b, trailB := setup(t)
			raw, _ := os.ReadFile(trailB)
			if err := os.WriteFile(trailB, tamper(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			r := telegate(t, nil, "audit", "verify", "--merge", a, b)
			if r.code != 1 || !strings.Contains(r.stdout, "ok, 7 records verified") ||
				!strings.Contains(r.stdout, "node node-b ("+trailB+"): BROKEN after ") || !strings.Contains(r.stdout, ": line ") ||
				!strings.Contains(r.stdout, "1 of 2 nodes BROKEN") {
				t.Errorf("merge with node-b %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestAuditExportCommand: `telegate audit export` writes a time window
// of a trail as a FHIR Bundle or as the trail's lines, needing no secret;
// an edited trail is not exported (exit 1, --out not written).
func TestAuditExportCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	trail, ck := filepath.Join(dir, "audit.log"), filepath.Join(dir, "ck")
	nodeTrail(t, "node-x", trail, ck, 6, t0)
	out := filepath.Join(dir, "export.json")
	r := telegate(t, nil, "audit", "export", "--format", "fhir", "--checkpoints", ck, "--since", "2026-03-01T10:01:00Z", "--until", "2026-03-01T10:04:00Z", "--out", out, trail)
	if r.code != 0 || !strings.Contains(r.stderr, "3 of 6 records exported") {
		t.Fatalf("export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var bundle struct {
		ResourceType, Type string
		Entry              []struct {
			Resource struct {
				ResourceType, Recorded string
				Source                 struct {
					Observer struct{ Identifier struct{ Value string } }
				}
			}
		}
	}
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	if bundle.ResourceType != "Bundle" || bundle.Type != "collection" || len(bundle.Entry) != 3 ||
		bundle.Entry[0].Resource.Recorded != "2026-03-01T10:01:00.000Z" || bundle.Entry[2].Resource.Source.Observer.Identifier.Value != "node-x" {
		t.Errorf("export: %s", b)
	}
	r = telegate(t, nil, "audit", "export", "--format", "jsonl", "--checkpoints", ck, "--file", trail)
	raw, _ := os.ReadFile(trail)
	if r.code != 0 || r.stdout != string(raw) {
		t.Errorf("jsonl export of the whole trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = telegate(t, nil, "audit", "export", "--since", "yesterday", trail)
	if r.code != 2 || !strings.Contains(r.stderr, "RFC 3339") {
		t.Errorf("bad --since: exit %d\n%s", r.code, r.stderr)
	}

	if err := os.WriteFile(trail, bytes.Replace(raw, []byte(`"status":200`), []byte(`"status":500`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	r = telegate(t, nil, "audit", "export", "--checkpoints", ck, "--out", bad, trail)
	if r.code != 1 || !strings.Contains(r.stderr, "does not verify") {
		t.Errorf("export of an edited trail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("an edited trail's export was written")
	}
}

// TestRegression_AuditCommandsNeedNoSecret: verify, export and verify
// --merge read the trail, the checkpoints and the public verifier key
// only — never a secret of the configuration: with the provider's client
// secret from an unset variable or a missing file, the audit key file
// and the Redis password file missing, each command still works.
func TestRegression_AuditCommandsNeedNoSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "not-here")
	cfg := reloadConfig(dir) + `providers:
  - id: staff
    issuer: https://idp.example.test
    client_id: telegate
    client_secret: ${TELEGATE_TEST_UNSET_SECRET}
  - id: other
    issuer: https://other.example.test
    client_id: telegate
    client_secret_file: ` + missing + `
sessions:
  store: redis
redis:
  addr: 127.0.0.1:1
  password_file: ` + missing + `
audit:
  key_file: ` + missing + `
  checkpoint_dir: ` + filepath.Join(dir, "ck") + "\n"
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := telegate(t, nil, "check", "-c", path); r.code == 0 {
		t.Fatalf("check accepted a configuration whose secrets are missing: the test proves nothing\n%s", r.stdout)
	}
	nodeTrail(t, "node-s", filepath.Join(dir, "data", "audit", "audit.log"), filepath.Join(dir, "ck"), 4, time.Now().UTC())
	for _, c := range []struct {
		name string
		args []string
	}{
		{"verify", []string{"audit", "verify", "-c", path}},
		{"export fhir", []string{"audit", "export", "-c", path, "--format", "fhir"}},
		{"export jsonl", []string{"audit", "export", "-c", path, "--format", "jsonl"}},
		{"verify --merge", []string{"audit", "verify", "--merge", filepath.Join(dir, "data")}},
	} {
		name, args := c.name, c.args
		if name == "verify --merge" {
			// The data directory layout with the checkpoints beside it.
			if err := os.Rename(filepath.Join(dir, "ck"), filepath.Join(dir, "data", "audit-checkpoints")); err != nil {
				t.Fatal(err)
			}
		}
		if r := telegate(t, nil, args...); r.code != 0 {
			t.Errorf("%s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestShipping_AcrossRestart runs the real binary with audit.ship.https:
// records written while the FHIR endpoint is down stay in the trail, and
// after a restart with the endpoint up every record of both runs arrives,
// once and in order, each tied to its line by its chain hash.
func TestShipping_AcrossRestart(t *testing.T) {
	t.Parallel()
	type got struct {
		seq  uint64
		hash string
	}
	var (
		mu       sync.Mutex
		received []got
		problems []string
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Type  string
			Entry []struct {
				Resource audit.AuditEvent
			}
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&b); err != nil || b.Type != "batch" {
			http.Error(w, "not a batch Bundle", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range b.Entry {
			ch := e.Resource.Extension[0].Extension
			g := got{*ch[2].ValueDecimal, ch[3].ValueString}
			switch {
			case g.seq <= uint64(len(received)) && received[g.seq-1] == g: // again: kept once
			case g.seq == uint64(len(received))+1:
				received = append(received, g)
			default:
				problems = append(problems, fmt.Sprintf("record %d after %d", g.seq, len(received)))
			}
		}
	})
	srv := httptest.NewTLSServer(handler)
	addr := srv.Listener.Addr().String()
	tlsConf := srv.TLS.Clone()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Close() // down for the first run
	path, data := nodeConfig(t)
	cfg, _ := os.ReadFile(path)
	cfg = append(cfg, fmt.Sprintf("  ship:\n    interval: 20ms\n    retry_max: 100ms\n    https:\n      url: https://%s/fhir\n      ca_file: %s\n", addr, ca)...)
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	trail := filepath.Join(data, "audit", "audit.log")
	runNode(t, path)
	mu.Lock()
	if len(received) != 0 {
		t.Fatalf("records arrived at an endpoint that is down")
	}
	mu.Unlock()
	first, _ := os.ReadFile(trail)
	before := bytes.Count(first, []byte("\n"))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: handler, TLSConfig: tlsConf, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = up.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { up.Close() })
	runNodeUntil(t, path, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) > before
	})
	raw, _ := os.ReadFile(trail)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	mu.Lock()
	defer mu.Unlock()
	if len(received) <= before || len(problems) > 0 {
		t.Fatalf("after the restart: %d of %d records of the first run arrived; %v", len(received), before, problems)
	}
	for i, g := range received {
		sum := sha256.Sum256([]byte(lines[i]))
		if g.hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("record %d arrived with hash %s, not its line's", i+1, g.hash)
		}
	}
	t.Logf("%d records of the first run, %d delivered of %d in the trail", before, len(received), len(lines))
}
