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
	"slices"
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

// appendRecord opens the trail with o, commits one request record with
// request id id and closes it; OpenTrail's refusal is fatal, naming why.
func (fx *trailFixture) appendRecord(t testing.TB, o Options, id, why string) {
	t.Helper()
	l, err := OpenTrail(o)
	if err != nil {
		t.Fatalf("OpenTrail %s: %v", why, err)
	}
	if err := l.Commit(context.Background(), Event{Type: "request", RequestID: id}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkpointLog reads the checkpoint log: its path, its bytes and its
// whole frames.
func (fx *trailFixture) checkpointLog(t testing.TB) (string, []byte, []logFrame) {
	t.Helper()
	path := filepath.Join(fx.ckDir, CheckpointLogFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fs, _, _ := logFrames(b)
	return path, b, fs
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
// skey, as file name in the checkpoint directory (the layout of earlier
// versions), or appends it to the checkpoint log when name is
// CheckpointLogFile.
func (fx *trailFixture) signCheckpoint(t testing.TB, skey, name string, lines []string) {
	t.Helper()
	if name == CheckpointLogFile {
		fx.appendLog(t, frame(fx.signedNote(t, skey, lines)))
		return
	}
	if err := os.WriteFile(filepath.Join(fx.ckDir, name), fx.signedNote(t, skey, lines), 0o644); err != nil {
		t.Fatal(err)
	}
}

// appendLog appends b to the checkpoint log.
func (fx *trailFixture) appendLog(t testing.TB, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(fx.ckDir, CheckpointLogFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// signedNote is a checkpoint of the tree over lines as a note signed with
// skey.
func (fx *trailFixture) signedNote(t testing.TB, skey string, lines []string) []byte {
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
	return msg
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
		{"cut tail, a checkpoint re-signed and appended to the log", func(t *testing.T, fx *trailFixture) {
			fx.write(t, fx.lines[:10])
			fx.signCheckpoint(t, fx.skey, CheckpointLogFile, fx.lines[:10])
		}, 11, "cut from the end"},
		{"forked checkpoint appended to the log", func(t *testing.T, fx *trailFixture) {
			ls := cp(fx.lines[:8])
			ls[6] = flip(ls[6])
			fx.signCheckpoint(t, fx.skey, CheckpointLogFile, ls)
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
	// A frame of the checkpoint log replaced, edited, or bytes that are
	// no frame put between frames: the log and the byte are named, and a
	// node refuses to continue.
	other, _ := newSignerKey(t, "telegate-audit/test-node")
	for _, tt := range []struct {
		name   string
		tamper func(fx *trailFixture, b []byte, last int64) []byte
		want   string
	}{
		{"replaced frame of the log", func(fx *trailFixture, b []byte, last int64) []byte {
			return append(b[:last], frame(fx.signedNote(t, other, fx.lines))...)
		}, "not signed by the verifier key"},
		{"edited frame of the log", func(fx *trailFixture, b []byte, last int64) []byte {
			i := int(last) + bytes.Index(b[last:], []byte("\ntime ")) + len("\ntime 2")
			b[i]++ // the year, within the signed text
			return b
		}, "signature does not verify"},
		{"bytes between frames of the log", func(fx *trailFixture, b []byte, last int64) []byte {
			return slices.Concat(b[:last], []byte("checkpoint x\n"), b[last:])
		}, "not a checkpoint frame"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := writeTrail(t, n, every)
			path, b, fs := fx.checkpointLog(t)
			last := fs[len(fs)-1].off
			if err := os.WriteFile(path, tt.tamper(fx, b, last), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := fx.verify(t, nil)
			var p CheckpointProblem
			if !errors.As(err, &p) || p.File != path || !strings.Contains(p.Reason, fmt.Sprintf("%d", last)) || !strings.Contains(p.Reason, tt.want) {
				t.Fatalf("VerifyTrail = %v; want the log's frame at byte %d named, %q", err, last, tt.want)
			}
			if l, err := OpenTrail(fx.options()); err == nil {
				l.Close()
				t.Fatal("OpenTrail accepted a tampered checkpoint log")
			}
		})
	}
}

// TestRegression_CheckpointLogTornFrame: a crash in the middle of an
// append leaves the checkpoint log ending inside a frame (or in zero
// bytes). The frames before it still verify the trail; the next open cuts
// the torn frame and appends after the whole ones.
func TestRegression_CheckpointLogTornFrame(t *testing.T) {
	t.Parallel()
	const n, every = 20, 4
	for _, tt := range []struct {
		name string
		tail func(fr []byte) []byte // what is left of the appended frame fr
	}{
		{"in the header", func(fr []byte) []byte { return fr[:4] }},
		{"in the length", func(fr []byte) []byte { return fr[:len(frameHeader)+1] }},
		{"after the header", func(fr []byte) []byte { return fr[:bytes.IndexByte(fr, '\n')+1] }},
		{"in the note", func(fr []byte) []byte { return fr[:len(fr)/2] }},
		{"one byte short", func(fr []byte) []byte { return fr[:len(fr)-1] }},
		{"zero bytes", func(fr []byte) []byte { return make([]byte, len(fr)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := writeTrail(t, n, every)
			// Records 21 and 22 are written, their checkpoint's append torn.
			l, err := OpenTrail(fx.options())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := l.Commit(context.Background(), Event{Type: "request", RequestID: fmt.Sprint("late", i)}); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(fx.ckDir, CheckpointLogFile)
			before, _ := os.ReadFile(path)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(path)
			torn := tt.tail(after[len(before):])
			if err := os.WriteFile(path, append(before, torn...), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := fx.verify(t, testKey)
			if err != nil || rep.Latest == nil || rep.Latest.Size != n || rep.Records != n+2 {
				t.Fatalf("VerifyTrail with a torn last frame = %+v, %v; want %d records, the latest checkpoint at %d", rep, err, n+2, n)
			}
			fx.appendRecord(t, fx.options(), "after", "with a torn last frame")
			rep, err = fx.verify(t, testKey)
			if err != nil || rep.Latest == nil || rep.Latest.Size != n+3 {
				t.Fatalf("VerifyTrail after the next open = %+v, %v; want the latest checkpoint at %d", rep, err, n+3)
			}
			b, _ := os.ReadFile(path)
			if !bytes.HasPrefix(b, before) {
				t.Fatal("the whole frames before the torn one changed")
			}
			if _, end, damaged := logFrames(b); damaged || end != int64(len(b)) {
				t.Fatalf("the log after the next open ends in a torn frame at %d of %d bytes", end, len(b))
			}
		})
	}
}

// TestCheckpointFilesOfEarlierVersionsRead: a checkpoint directory of one
// file per checkpoint (the layout before the checkpoint log) still
// verifies its trail and shows a cut; a node continues it, appending to
// the log beside the files.
func TestCheckpointFilesOfEarlierVersionsRead(t *testing.T) {
	t.Parallel()
	const n, every = 12, 4
	fx := writeTrail(t, n, every)
	path, b, fs := fx.checkpointLog(t)
	v, _ := ParseVerifierKey(fx.vkey)
	for _, f := range fs {
		c, err := OpenCheckpoint(b[f.start:f.end], v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fx.ckDir, c.fileName()), b[f.start:f.end], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	rep, err := fx.verify(t, testKey)
	if err != nil || rep.Checkpoints != len(fs) || rep.Latest == nil || rep.Latest.Size != n || !strings.HasSuffix(rep.Latest.File, ".ckpt") {
		t.Fatalf("VerifyTrail with checkpoint files = %+v, %v", rep, err)
	}
	fx.appendRecord(t, fx.options(), "after", "with checkpoint files")
	rep, err = fx.verify(t, testKey)
	if err != nil || rep.Latest == nil || rep.Latest.Size != n+1 || rep.Latest.File != path {
		t.Fatalf("VerifyTrail after continuing = %+v, %v", rep, err)
	}
	// Cut below the files' latest checkpoint (and the log's): found.
	fx.write(t, fx.lines[:n-1])
	if _, err := fx.verify(t, nil); err == nil || !strings.Contains(err.Error(), "cut from the end") {
		t.Fatalf("cut trail with checkpoint files: %v", err)
	}
}

// TestCheckpointLogCompacted: the checkpoint log stays bounded — between
// CheckpointsKept and 2×CheckpointsKept frames of the open segment, and
// the last checkpoint of each earlier segment — and still verifies the
// trail and shows a cut of either segment.
func TestCheckpointLogCompacted(t *testing.T) {
	t.Parallel()
	fx := writeTrail(t, 3, 1)
	o := fx.options()
	o.NewSegmentReason = "test"
	l, err := OpenTrail(o)
	if err != nil {
		t.Fatal(err)
	}
	const more = 2*CheckpointsKept + 10
	for i := range more {
		if err := l.Commit(context.Background(), Event{Type: "request", RequestID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if err := l.sync(true); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, b, fs := fx.checkpointLog(t)
	v, _ := ParseVerifierKey(fx.vkey)
	perSegment := map[uint64][]int64{}
	for _, f := range fs {
		c, err := OpenCheckpoint(b[f.start:f.end], v)
		if err != nil {
			t.Fatal(err)
		}
		perSegment[c.Segment] = append(perSegment[c.Segment], c.Size)
	}
	s1, s2 := perSegment[1], perSegment[2]
	if len(s1) != 1 || s1[0] != 3 || len(s2) < CheckpointsKept || len(s2) >= 2*CheckpointsKept || s2[len(s2)-1] != more+1 {
		t.Fatalf("the log holds segment 1 at sizes %v, segment 2 at %d sizes ending %d", s1, len(s2), s2[len(s2)-1])
	}
	rep, err := fx.verify(t, testKey)
	if err != nil || rep.Segment != 2 || rep.Latest == nil || rep.Latest.Size != more+1 {
		t.Fatalf("VerifyTrail of the compacted log = %+v, %v", rep, err)
	}
	ls := fx.read(t)
	fx.write(t, ls[:len(ls)-1])
	if _, err := fx.verify(t, nil); err == nil || !strings.Contains(err.Error(), "cut from the end") {
		t.Fatalf("cut of segment 2 with a compacted log: %v", err)
	}
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
			fx.appendRecord(t, fx.options(), "after", "after new segment")
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
