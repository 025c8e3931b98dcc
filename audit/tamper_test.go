package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// trailFixture is a trail of records written by a real Log with
// checkpoints every `every` records.
type trailFixture struct {
	dir, file, ckDir, skey, vkey string
	lines                        []string // with their newlines
	rotate                       int64    // Options.RotateSize; 0 none
	ekey                         []byte   // Options.EncryptionKey
}

func newSignerKey(t testing.TB, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// writeTrail writes n request records, a checkpoint after every `every`,
// and one at Close.
func writeTrail(t testing.TB, n, every int) *trailFixture {
	t.Helper()
	return writeTrailWith(t, n, every, 0, nil)
}

// writeTrailWith is writeTrail rotating at rotate bytes (0: never) and
// sealing with ekey (nil: plain).
func writeTrailWith(t testing.TB, n, every int, rotate int64, ekey []byte) *trailFixture {
	t.Helper()
	dir := t.TempDir()
	fx := &trailFixture{dir: dir, file: filepath.Join(dir, "audit", "audit.log"), ckDir: filepath.Join(dir, "ck"), rotate: rotate, ekey: ekey}
	fx.skey, fx.vkey = newSignerKey(t, "telegate-audit/test-node")
	l, err := OpenTrail(fx.options())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Commit(context.Background(), Event{Type: "request", RequestID: fmt.Sprintf("r%d", i+1), RouteID: "clinic",
			Method: "GET", Path: "/clinic/", Status: 200, Client: "192.0.2.1", Decision: "allow", Reason: "rule:0"}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%every == 0 {
			if err := l.sync(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fx.lines = fx.read(t)
	if len(fx.lines) != n {
		t.Fatalf("%d lines, want %d", len(fx.lines), n)
	}
	return fx
}

func (fx *trailFixture) options() Options {
	rotate := fx.rotate
	if rotate == 0 {
		rotate = 1 << 40
	}
	return Options{File: fx.file, Key: testKey, CheckpointDir: fx.ckDir, CheckpointKey: fx.skey,
		CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour, Logger: quietLogger(),
		RotateSize: rotate, EncryptionKey: fx.ekey}
}

// trail is the fixture's trail, to read.
func (fx *trailFixture) trail() Trail { return Trail{File: fx.file, EncryptionKey: fx.ekey} }

// read returns every line of the trail, across its segment files.
func (fx *trailFixture) read(t testing.TB) []string {
	t.Helper()
	r, err := fx.trail().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1]
}

func (fx *trailFixture) write(t testing.TB, lines []string) {
	t.Helper()
	if err := os.WriteFile(fx.file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// offset is the byte offset of line (1-based) in the original trail.
func (fx *trailFixture) offset(line int) int64 {
	var n int64
	for _, l := range fx.lines[:min(line-1, len(fx.lines))] {
		n += int64(len(l))
	}
	return n
}

// verify runs VerifyTrail as `telegate audit verify` does by default:
// the trail, the checkpoints and the public key, no secret.
func (fx *trailFixture) verify(t testing.TB, key []byte) (Report, error) {
	t.Helper()
	v, err := ReadVerifierKey(filepath.Join(fx.ckDir, VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err := fx.trail().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return VerifyTrail(r, VerifyOptions{Key: key, Verifier: v, CheckpointDir: fx.ckDir})
}

// signCheckpoint writes a checkpoint of the tree over lines, signed with
// skey, as file name in the checkpoint directory.
func (fx *trailFixture) signCheckpoint(t testing.TB, skey, name string, lines []string) {
	t.Helper()
	var tr tree
	for _, l := range lines {
		tr.add([]byte(strings.TrimSuffix(l, "\n")))
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	c := Checkpoint{Origin: s.Name(), Segment: 1, Size: tr.n, Root: tr.root(), Time: time.Now().UTC()}
	msg, err := note.Sign(&note.Note{Text: c.text()}, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fx.ckDir, name), msg, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRegression_AuditTamper: every way of changing a trail that was
// checkpointed is found, with the first bad record named by line and
// byte offset, from the trail, the checkpoints and the public key alone
// (and with the HMAC key too). A cut tail used to verify "ok".
func TestRegression_AuditTamper(t *testing.T) {
	t.Parallel()
	const n, every = 20, 4 // checkpoints at 4, 8, 12, 16, 20
	cp := func(ls []string) []string { return append([]string(nil), ls...) }
	flip := func(l string) string {
		i := strings.Index(l, `"status":200`) + len(`"status":20`)
		return l[:i] + "1" + l[i+1:]
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, fx *trailFixture)
		line   int    // first bad line
		want   string // in the reason
	}{
		{"byte flip", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines)
			ls[4] = flip(ls[4])
			fx.write(t, ls)
		}, 5, "edited"},
		{"byte flip in the last line", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines)
			ls[19] = flip(ls[19])
			fx.write(t, ls)
		}, 17, "do not hash to the root"},
		{"deleted line", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines)
			fx.write(t, append(ls[:6], ls[7:]...))
		}, 7, "missing"},
		{"deleted first line", func(t *testing.T, fx *trailFixture) { fx.write(t, fx.lines[1:]) }, 1, "missing"},
		{"reordered lines", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines)
			ls[8], ls[9] = ls[9], ls[8]
			fx.write(t, ls)
		}, 9, "missing"},
		{"cut tail: 1 record", func(t *testing.T, fx *trailFixture) { fx.write(t, fx.lines[:n-1]) }, 20, "cut from the end"},
		{"cut tail: 10 records", func(t *testing.T, fx *trailFixture) { fx.write(t, fx.lines[:n-10]) }, 11, "cut from the end"},
		{"cut tail: all but one", func(t *testing.T, fx *trailFixture) { fx.write(t, fx.lines[:1]) }, 2, "cut from the end"},
		{"cut tail: all records", func(t *testing.T, fx *trailFixture) { fx.write(t, nil) }, 1, "cut from the end"},
		{"emptied file", func(t *testing.T, fx *trailFixture) {
			if err := os.Truncate(fx.file, 0); err != nil {
				t.Fatal(err)
			}
		}, 1, "records 1..20"},
		{"cut tail, checkpoints re-signed with the node's key", func(t *testing.T, fx *trailFixture) {
			// Whoever has the node's data directory can sign; the older
			// checkpoints on the other volume still show the cut.
			fx.write(t, fx.lines[:10])
			fx.signCheckpoint(t, fx.skey, "000001-0000000000000010.ckpt", fx.lines[:10])
		}, 11, "cut from the end"},
		{"forked checkpoint", func(t *testing.T, fx *trailFixture) {
			// A checkpoint signed by the right key over another history
			// of records 1..8.
			ls := cp(fx.lines[:8])
			ls[6] = flip(ls[6])
			fx.signCheckpoint(t, fx.skey, "000001-0000000000000008.ckpt", ls)
		}, 5, "forked"},
		{"two checkpoints of one size disagree", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines[:12])
			ls[10] = flip(ls[10])
			fx.signCheckpoint(t, fx.skey, "fork-0000000000000012.ckpt", ls)
		}, 9, "forked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := writeTrail(t, n, every)
			tt.tamper(t, fx)
			for _, key := range [][]byte{nil, testKey} {
				_, err := fx.verify(t, key)
				var ve *VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("key %v: VerifyTrail = %v; want a *VerifyError", key != nil, err)
				}
				line := tt.line
				if key != nil && strings.HasPrefix(tt.name, "byte flip") {
					line = map[string]int{"byte flip": 5, "byte flip in the last line": 20}[tt.name]
				}
				if ve.Line != line || ve.Offset != fx.offset(line) || (key == nil && !strings.Contains(ve.Reason, tt.want)) {
					t.Fatalf("key %v: %v; want line %d at byte %d, reason containing %q", key != nil, err, line, fx.offset(line), tt.want)
				}
			}
			// A node refuses to continue it.
			if l, err := OpenTrail(fx.options()); err == nil {
				l.Close()
				t.Fatal("OpenTrail continued a tampered trail")
			} else if te := (*TrailError)(nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "telegate audit verify") {
				t.Fatalf("OpenTrail: %v", err)
			}
		})
	}
	t.Run("replaced checkpoint", func(t *testing.T) {
		t.Parallel()
		fx := writeTrail(t, n, every)
		other, otherV := newSignerKey(t, "telegate-audit/test-node")
		fx.signCheckpoint(t, other, "000001-0000000000000020.ckpt", fx.lines[:10])
		_, err := fx.verify(t, nil)
		var p CheckpointProblem
		if !errors.As(err, &p) || !strings.HasSuffix(p.File, "000001-0000000000000020.ckpt") || !strings.Contains(p.Reason, "not signed by the verifier key") {
			t.Fatalf("VerifyTrail = %v; want the replaced checkpoint named", err)
		}
		// The verifier key file replaced as well: the key recorded
		// elsewhere still finds it.
		if err := os.WriteFile(filepath.Join(fx.ckDir, VerifierKeyFile), []byte(otherV+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		v, _ := ParseVerifierKey(fx.vkey)
		f, _ := os.Open(fx.file)
		defer f.Close()
		if _, err := VerifyTrail(f, VerifyOptions{Verifier: v, CheckpointDir: fx.ckDir}); !errors.As(err, &p) {
			t.Fatalf("VerifyTrail with the recorded key = %v", err)
		}
		if l, err := OpenTrail(fx.options()); err == nil {
			l.Close()
			t.Fatal("OpenTrail accepted a checkpoint directory of another key")
		}
	})
}

// TestUntouchedTrailVerifies: a trail written over several opens, with
// checkpoints, verifies with the public key alone and with the HMAC key.
func TestUntouchedTrailVerifies(t *testing.T) {
	t.Parallel()
	fx := writeTrail(t, 10, 3)
	l, err := OpenTrail(fx.options())
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), Event{Type: "node.stop"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range [][]byte{nil, testKey} {
		rep, err := fx.verify(t, key)
		if err != nil || rep.Records != 11 || rep.Latest == nil || rep.Latest.Size != 11 || rep.Checkpoints != 5 || len(rep.Gaps) != 0 {
			t.Fatalf("VerifyTrail = %+v, %v", rep, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(fx.ckDir, VerifierKeyFile))
	if strings.TrimSpace(string(b)) != fx.vkey {
		t.Fatalf("verifier key file %q, want %q", b, fx.vkey)
	}
}

// TestRegression_AuditCutRefusedAtStart: a trail cut below its latest
// checkpoint is not continued (the cut would become undetectable); a new
// segment records the gap, after which the trail opens and verifies with
// the gap reported.
func TestRegression_AuditCutRefusedAtStart(t *testing.T) {
	t.Parallel()
	for _, keep := range []int{0, 1, 7, 11} {
		t.Run(fmt.Sprintf("keep %d of 12", keep), func(t *testing.T) {
			t.Parallel()
			fx := writeTrail(t, 12, 4)
			fx.write(t, fx.lines[:keep])
			_, err := OpenTrail(fx.options())
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("records %d..12", keep+1)) || !strings.Contains(err.Error(), "new-segment") {
				t.Fatalf("OpenTrail of a cut trail: %v", err)
			}
			o := fx.options()
			o.NewSegmentReason = "disk restored from backup"
			l, err := OpenTrail(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l, err = OpenTrail(fx.options())
			if err != nil {
				t.Fatalf("OpenTrail after new segment: %v", err)
			}
			if err := l.Commit(context.Background(), Event{Type: "request", RequestID: "after"}); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, key := range [][]byte{nil, testKey} {
				rep, err := fx.verify(t, key)
				if err != nil {
					t.Fatal(err)
				}
				want := Gap{Segment: 1, Present: int64(keep), CheckpointSize: 12, Missing: int64(12 - keep), Line: keep + 1, Reason: "disk restored from backup"}
				if len(rep.Gaps) != 1 || rep.Segment != 2 || rep.Records != keep+2 {
					t.Fatalf("report %+v", rep)
				}
				g := rep.Gaps[0]
				g.Time = time.Time{}
				if g != want {
					t.Fatalf("gap %+v, want %+v", g, want)
				}
			}
			// Cutting the new segment is found again.
			ls := fx.read(t)
			fx.write(t, ls[:len(ls)-1])
			if _, err := fx.verify(t, nil); err == nil || !strings.Contains(err.Error(), "segment 2") {
				t.Fatalf("cut of the new segment: %v", err)
			}
		})
	}
}

// TestNewSegmentRefusesEditedTrail: new-segment accepts a cut, not an
// edit.
func TestNewSegmentRefusesEditedTrail(t *testing.T) {
	t.Parallel()
	fx := writeTrail(t, 8, 4)
	ls := append([]string(nil), fx.lines...)
	ls[2] = strings.Replace(ls[2], `"allow"`, `"deny!"`, 1)
	fx.write(t, ls)
	o := fx.options()
	o.NewSegmentReason = "x"
	if l, err := OpenTrail(o); err == nil {
		l.Close()
		t.Fatal("a new segment continued an edited trail")
	}
	if !bytes.Equal([]byte(strings.Join(fx.read(t), "")), []byte(strings.Join(ls, ""))) {
		t.Fatal("the refused trail was changed")
	}
}
