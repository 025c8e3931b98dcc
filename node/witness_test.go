package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/internal/webhook"
)

// witness is an audit.witness receiver on loopback: it checks each
// delivery's signature and keeps the body of the largest checkpoint.
type witness struct {
	mu       sync.Mutex
	latest   []byte
	size     int64
	problems []string
}

func (w *witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, _ := strconv.ParseInt(r.Header.Get("X-Telegate-Timestamp"), 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Header.Get("X-Telegate-Signature") != webhook.Sign([]byte("witness-secret"), ts, body) {
		w.problems = append(w.problems, "a delivery with a bad signature")
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b struct {
		Type string `json:"type"`
		Size int64  `json:"size"`
		Note string `json:"note"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Type != "audit.checkpoint" || b.Note == "" || r.Header.Get("X-Telegate-Event") != "audit.checkpoint" {
		w.problems = append(w.problems, fmt.Sprintf("not a checkpoint delivery: %.200s", body))
		return
	}
	if b.Size > w.size {
		w.size, w.latest = b.Size, body
	}
}

func (w *witness) kept() (int64, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.latest
}

// TestRegression_CutTailWithItsCheckpoints: records cut from the end of
// the trail together with its checkpoint directory — rolled back to an
// earlier copy, or emptied — leave a trail that its own checkpoints call
// whole; the checkpoints audit.witness received off the host show the
// cut (`telegate audit verify --witnessed`). Members: the tail cut to an
// earlier checkpoint with the directory rolled back to it; all records
// but the first cut and the directory emptied; everything cut.
func TestRegression_CutTailWithItsCheckpoints(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	w := &witness{}
	srv := httptest.NewTLSServer(w)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "witness-ca.pem")
	secret := filepath.Join(dir, "witness.secret")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("witness-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := nodeConfigWith(t, rdb, fmt.Sprintf("audit:\n  checkpoint_every: 5\n  witness:\n    url: %s/checkpoints\n    secret_file: %s\n    ca_file: %s\n", srv.URL, secret, ca))
	r, _ := runNode(t, cfg)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}} // loopback only, the node's local CA
	t.Cleanup(hc.CloseIdleConnections)
	send := func(n int) {
		for i := range n {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s/visit-%d", r.ListenAddr, i), nil)
			req.Host = "localhost"
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	waitWitness := func(atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if size, _ := w.kept(); size >= atLeast {
				return
			}
			if time.Now().After(deadline) {
				size, _ := w.kept()
				t.Fatalf("the witness kept a checkpoint of %d records, want at least %d", size, atLeast)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send(10)
	waitWitness(5)
	// An earlier copy of the checkpoint directory and of the trail, as an
	// intruder would keep to put back.
	early := filepath.Join(dir, "early-checkpoints")
	copyDir(t, cfg.Audit.CheckpointDir, early)
	earlyCPs := loadCPs(t, early)
	earlySize := earlyCPs[len(earlyCPs)-1].Size
	send(30)
	waitWitness(earlySize + 25)
	w.mu.Lock()
	for _, p := range w.problems {
		t.Error(p)
	}
	w.mu.Unlock()
	_, body := w.kept()
	kept := filepath.Join(dir, "witnessed.json")
	if err := os.WriteFile(kept, body, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := audit.ReadVerifierKey(filepath.Join(cfg.Audit.CheckpointDir, audit.VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	witnessed, err := audit.ReadCheckpointFile(kept, v)
	if err != nil {
		t.Fatalf("the witness's copy does not open with the node's verifier key: %v", err)
	}
	// The note alone opens too.
	var b struct{ Note string }
	_ = json.Unmarshal(body, &b)
	noteFile := filepath.Join(dir, "witnessed.note")
	if err := os.WriteFile(noteFile, []byte(b.Note), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := audit.ReadCheckpointFile(noteFile, v); err != nil || c.Size != witnessed.Size {
		t.Errorf("the note alone: %v, %v", c, err)
	}
	lines := trailLines(t, cfg.Audit.File)
	if int64(len(lines)) < witnessed.Size {
		t.Fatalf("the trail holds %d records, the witness %d", len(lines), witnessed.Size)
	}
	for _, m := range []struct {
		name  string
		keep  int64  // records of the trail kept
		ckpts string // the checkpoint directory put back ("": emptied)
	}{
		{"tail cut to an earlier checkpoint, directory rolled back", earlySize, early},
		{"all but the first record cut, directory emptied", 1, ""},
		{"every record cut, directory emptied", 0, ""},
	} {
		t.Run(m.name, func(t *testing.T) {
			cut := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(cut, []byte(strings.Join(lines[:m.keep], "")), 0o600); err != nil {
				t.Fatal(err)
			}
			ck := t.TempDir()
			if m.ckpts != "" {
				copyDir(t, m.ckpts, ck)
			}
			verify := func(o audit.VerifyOptions) error {
				o.Verifier, o.CheckpointDir = v, ck
				f, err := audit.OpenForVerify(audit.Trail{File: cut}, true)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				_, err = audit.VerifyTrail(f, o)
				return err
			}
			if err := verify(audit.VerifyOptions{}); err != nil {
				t.Fatalf("the cut trail and its own checkpoints already disagree (%v): the member does not test the witness", err)
			}
			err := verify(audit.VerifyOptions{Witnessed: []audit.Checkpoint{witnessed}})
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), "cut from the end") {
				t.Fatalf("with the witness's checkpoint: %v, want the cut named", err)
			}
			if !strings.Contains(err.Error(), strconv.FormatInt(m.keep+1, 10)) {
				t.Errorf("the error does not name the first missing record %d: %v", m.keep+1, err)
			}
		})
	}
}

// trailLines is the trail's lines, each with its newline.
func trailLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewReader(bytes.NewReader(b))
	for {
		l, err := sc.ReadString('\n')
		if err != nil {
			return lines
		}
		lines = append(lines, l)
	}
}

func loadCPs(t *testing.T, dir string) []audit.Checkpoint {
	t.Helper()
	v, err := audit.ReadVerifierKey(filepath.Join(dir, audit.VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cps, problems, err := audit.LoadCheckpoints(dir, v)
	if err != nil || len(problems) > 0 || len(cps) == 0 {
		t.Fatalf("checkpoints of %s: %v %v %d", dir, err, problems, len(cps))
	}
	return cps
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
