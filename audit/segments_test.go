package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testEncryptionKey = bytes.Repeat([]byte{0x17}, EncryptionKeySize)

// fileLines is the number of lines in each of the trail's files.
func (fx *trailFixture) fileLines(t testing.TB) (files []string, lines []int) {
	t.Helper()
	files, err := fx.trail().Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		r := &Reader{t: fx.trail(), files: []string{f}}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Count(b, []byte{'\n'}))
	}
	return files, lines
}

// TestRotationContinuesChain: a trail rotated by size over several opens,
// plain or sealed, is one chain and one tree across its segment files:
// every record verifies with the checkpoints, in order.
func TestRotationContinuesChain(t *testing.T) {
	t.Parallel()
	for _, ekey := range [][]byte{nil, testEncryptionKey} {
		t.Run(map[bool]string{false: "plain", true: "sealed"}[ekey != nil], func(t *testing.T) {
			t.Parallel()
			fx := writeTrailWith(t, 30, 7, 1000, ekey)
			l, err := OpenTrail(fx.options())
			if err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if err := l.Commit(context.Background(), Event{Type: "request", RequestID: "later"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			files, lines := fx.fileLines(t)
			if len(files) < 6 {
				t.Fatalf("%d files (%v), want rotation at 1000 bytes", len(files), lines)
			}
			total := 0
			for i, n := range lines {
				total += n
				if i < len(lines)-1 && n == 0 {
					t.Fatalf("rotated file %s is empty", files[i])
				}
			}
			for _, key := range [][]byte{nil, testKey} {
				rep, err := fx.verify(t, key)
				if err != nil || rep.Records != 40 || total != 40 || rep.Latest == nil || rep.Latest.Size != 40 || rep.Segments != 1 {
					t.Fatalf("VerifyTrail = %+v, %v (lines %v)", rep, err, lines)
				}
			}
			ls := fx.read(t)
			for i, l := range ls {
				if !strings.HasPrefix(l, `{"seq":`+strconv.Itoa(i+1)+`,`) {
					t.Fatalf("line %d: %s", i+1, l)
				}
			}
		})
	}
}

// TestRotationByAge: the open file is rotated at the first write after
// RotateAge.
func TestRotationByAge(t *testing.T) {
	t.Parallel()
	fx := writeTrail(t, 1, 1)
	o := fx.options()
	o.RotateAge = 20 * time.Millisecond
	l, err := OpenTrail(o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		time.Sleep(30 * time.Millisecond)
		if err := l.Commit(context.Background(), Event{Type: "request"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, lines := fx.fileLines(t)
	if len(files) < 3 {
		t.Fatalf("files %v (%v), want a rotation per write after 20ms", files, lines)
	}
	if rep, err := fx.verify(t, testKey); err != nil || rep.Records != 4 {
		t.Fatalf("VerifyTrail = %+v, %v", rep, err)
	}
}

// TestRegression_AuditSegmentTamper: the tamper table for trails kept
// in several segment files, plain and sealed: a segment file deleted,
// emptied, reordered or cut (whole records or inside one), and a flipped
// byte of a sealed file, are found with the first bad record named by its
// line in the trail and the file holding it, from the trail, the
// checkpoints and the public key alone; a node refuses to continue it.
func TestRegression_AuditSegmentTamper(t *testing.T) {
	t.Parallel()
	const n, every = 24, 4
	type seg struct {
		files []string
		lines []int // lines per file
		start []int // first line of each file (1-based)
	}
	tests := []struct {
		name   string
		sealed bool
		tamper func(t *testing.T, s seg)
		// line and file (index into s.files) of the first bad record.
		where func(s seg) (line, file int)
		want  string
	}{
		{"deleted middle segment file", false, func(t *testing.T, s seg) { rm(t, s.files[1]) },
			func(s seg) (int, int) { return s.start[1], 2 }, "missing"},
		{"emptied middle segment file", false, func(t *testing.T, s seg) { truncate(t, s.files[1], 0) },
			func(s seg) (int, int) { return s.start[1], 2 }, "missing"},
		{"reordered segment files", false, func(t *testing.T, s seg) { swap(t, s.files[1], s.files[2]) },
			func(s seg) (int, int) { return s.start[1], 1 }, "missing"},
		{"middle segment file cut by a record", false, func(t *testing.T, s seg) {
			b := read(t, s.files[1])
			truncate(t, s.files[1], int64(bytes.LastIndexByte(b[:len(b)-1], '\n')+1))
		}, func(s seg) (int, int) { return s.start[2] - 1, 2 }, "missing"},
		{"middle segment file cut inside a record", false, func(t *testing.T, s seg) {
			truncate(t, s.files[1], int64(len(read(t, s.files[1]))-10))
		}, func(s seg) (int, int) { return s.start[2] - 1, 1 }, "cut"},
		{"newest segment files deleted", false, func(t *testing.T, s seg) {
			for _, f := range s.files[len(s.files)-3:] {
				rm(t, f)
			}
		}, func(s seg) (int, int) { return s.start[len(s.files)-3], -1 }, "cut from the end"},
		{"sealed: flipped ciphertext byte", true, func(t *testing.T, s seg) {
			b := read(t, s.files[1])
			b[len(b)-20] ^= 1 // in its last block, the record of its last line
			write(t, s.files[1], b)
		}, func(s seg) (int, int) { return s.start[1] + s.lines[1] - 1, 1 }, "does not decrypt"},
		{"sealed: flipped byte in a block's length", true, func(t *testing.T, s seg) {
			b := read(t, s.files[1])
			b[len(sealMagic)+1+saltSize+4] ^= 1
			write(t, s.files[1], b)
		}, func(s seg) (int, int) { return s.start[1], 1 }, "decrypt"},
		{"sealed: deleted middle segment file", true, func(t *testing.T, s seg) { rm(t, s.files[2]) },
			func(s seg) (int, int) { return s.start[2], 3 }, "missing"},
		{"sealed: middle segment file cut inside a block", true, func(t *testing.T, s seg) {
			truncate(t, s.files[1], int64(len(read(t, s.files[1]))-3))
		}, func(s seg) (int, int) { return s.start[1] + s.lines[1] - 1, 1 }, "cut"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ekey []byte
			if tt.sealed {
				ekey = testEncryptionKey
			}
			fx := writeTrailWith(t, n, every, 1000, ekey)
			var s seg
			s.files, s.lines = fx.fileLines(t)
			if len(s.files) < 5 {
				t.Fatalf("files %v", s.lines)
			}
			next := 1
			for _, c := range s.lines {
				s.start = append(s.start, next)
				next += c
			}
			line, file := tt.where(s)
			tt.tamper(t, s)
			for _, key := range [][]byte{nil, testKey} {
				_, err := fx.verify(t, key)
				var ve *VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("key %v: VerifyTrail = %v; want a *VerifyError", key != nil, err)
				}
				if ve.Line != line || (file >= 0 && ve.File != s.files[file]) || !strings.Contains(ve.Reason, tt.want) {
					wf := "-"
					if file >= 0 {
						wf = s.files[file]
					}
					t.Fatalf("key %v: %v; want line %d in %s, reason containing %q (lines per file %v)", key != nil, err, line, wf, tt.want, s.lines)
				}
			}
			if l, err := OpenTrail(fx.options()); err == nil {
				l.Close()
				t.Fatal("OpenTrail continued a tampered trail")
			} else if te := (*TrailError)(nil); !errors.As(err, &te) {
				t.Fatalf("OpenTrail: %v", err)
			}
		})
	}
}

// TestSealedAtRest: a sealed trail's files hold none of its records'
// fields in the clear; without the key it is not read; a block torn by a
// crash is cut at the next open (recorded), after which it verifies; a
// plain trail that starts being sealed rotates its plain file first.
func TestSealedAtRest(t *testing.T) {
	t.Parallel()
	fx := writeTrailWith(t, 12, 4, 1500, testEncryptionKey)
	files, _ := fx.fileLines(t)
	for _, f := range files {
		b := read(t, f)
		for _, s := range []string{`"seq"`, "request_id", "clinic", "192.0.2.1", `"r1"`, "allow", "rule:0", "mac"} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s holds %q in the clear", f, s)
			}
		}
	}
	r, _ := Trail{File: fx.file}.Open()
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("reading without the key: %v", err)
	}
	r.Close()
	other := bytes.Repeat([]byte{0x18}, EncryptionKeySize)
	r, _ = Trail{File: fx.file, EncryptionKey: other}.Open()
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("reading with another key: %v", err)
	}
	r.Close()

	// A crash inside a write leaves part of a block.
	f, err := os.OpenFile(fx.file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{frameBlock, 0, 0, 1, 0, 9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := fx.verify(t, nil); err == nil || !strings.Contains(err.Error(), "incomplete last block") {
		t.Fatalf("torn block: %v", err)
	}
	l, err := OpenTrail(fx.options())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := fx.verify(t, testKey)
	if err != nil || rep.Records != 13 {
		t.Fatalf("after the cut: %+v, %v", rep, err)
	}
	if ls := fx.read(t); !strings.Contains(ls[12], `"audit.recover"`) || !strings.Contains(ls[12], `"bytes":"8"`) {
		t.Fatalf("last record %s, want audit.recover of 8 bytes", ls[12])
	}

	// Plain, then sealed.
	px := writeTrail(t, 3, 3)
	px.ekey = testEncryptionKey
	l, err = OpenTrail(px.options())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(context.Background(), Event{Type: "request", RequestID: "sealed"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, lines := px.fileLines(t)
	if len(files) != 2 || lines[0] != 3 || lines[1] != 1 || bytes.Contains(read(t, files[1]), []byte("sealed")) {
		t.Fatalf("files %v lines %v", files, lines)
	}
	if rep, err := px.verify(t, testKey); err != nil || rep.Records != 4 {
		t.Fatalf("plain then sealed: %+v, %v", rep, err)
	}
}

// TestSealedNoncesNeverRepeat: every session of a file — each open —
// has its own salt, so no (key, nonce) pair is used twice even when the
// block counter starts at 0 again.
func TestSealedNoncesNeverRepeat(t *testing.T) {
	t.Parallel()
	fx := writeTrailWith(t, 2, 1, 0, testEncryptionKey)
	for range 2 {
		l, err := OpenTrail(fx.options())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Commit(context.Background(), Event{Type: "request"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b := read(t, fx.file)
	salts := map[string]bool{}
	for off := len(sealMagic); off < len(b); {
		switch b[off] {
		case frameSession:
			salt := string(b[off+1 : off+1+saltSize])
			if salts[salt] {
				t.Fatal("a salt repeated")
			}
			salts[salt] = true
			off += 1 + saltSize
		case frameBlock:
			off += 5 + int(uint32(b[off+1])<<24|uint32(b[off+2])<<16|uint32(b[off+3])<<8|uint32(b[off+4]))
		default:
			t.Fatalf("frame 0x%02x at %d", b[off], off)
		}
	}
	if len(salts) != 3 {
		t.Fatalf("%d sessions, want 3 (one per open)", len(salts))
	}
}

func read(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, f string, b []byte) {
	t.Helper()
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func rm(t *testing.T, f string) {
	t.Helper()
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, f string, n int64) {
	t.Helper()
	if err := os.Truncate(f, n); err != nil {
		t.Fatal(err)
	}
}

func swap(t *testing.T, a, b string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(a), "swap")
	for _, m := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
		if err := os.Rename(m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
}
