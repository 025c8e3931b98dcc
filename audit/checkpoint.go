package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoints. Every record of the trail is also a leaf of an RFC 6962
// Merkle tree (one tree per segment, see NewSegment); a checkpoint is a
// signed statement of that tree's size and root hash, kept outside the
// trail (Options.CheckpointDir, on another volume), so that records cut
// from the end of the trail — which leave the chain intact — are found:
// the trail is then shorter than, or does not hash to, its latest
// checkpoint.
//
// A checkpoint is a signed note (golang.org/x/mod/sumdb/note, Ed25519) in
// the tlog-checkpoint layout (c2sp.org/tlog-checkpoint): its text is
//
//	<origin>             the signer's name, "telegate-audit/<node>"
//	<size>               records in the segment, decimal
//	<root>               base64 of the tree head (RFC 6962 §2.1)
//	segment <n>          the segment, from 1
//	time <RFC 3339>      when it was signed, UTC
//
// followed by a blank line and the signature line. The log appends each
// checkpoint to one file, <CheckpointDir>/CheckpointLogFile, as a frame
//
//	checkpoint <n>\n     the frame header: n, decimal, is the note's length
//	<signed note>        n bytes
//
// fsynced after each append; a frame torn by a crash (the file ends inside
// it) is what an interrupted append leaves, ignored by LoadCheckpoints and
// cut by the next OpenTrail, and every frame before it stays valid. Earlier
// versions wrote each checkpoint to a file of its own,
// <CheckpointDir>/<segment>-<size>.ckpt (zero padded, so they sort);
// those are still read. The verifier key (note's verifier key format,
// public) is <CheckpointDir>/VerifierKeyFile.
const (
	// VerifierKeyFile is the name of the verifier key file in the
	// checkpoint directory.
	VerifierKeyFile = "checkpoint.vkey"
	// CheckpointLogFile is the name of the file in the checkpoint
	// directory the log appends its checkpoints to.
	CheckpointLogFile = "checkpoints.log"
	// CheckpointsKept is how many checkpoints of the current segment the
	// checkpoint log keeps at least: once it holds twice as many, it is
	// rewritten with the last CheckpointsKept of the current segment and
	// the last one of every earlier segment (a new file, fsynced, renamed
	// over the log, the directory fsynced).
	CheckpointsKept = 256
	// checkpointExt ends every checkpoint file name of earlier versions.
	checkpointExt = ".ckpt"
	// frameHeader starts every frame of the checkpoint log.
	frameHeader = "checkpoint "
	// maxNoteBytes caps the length a frame header may declare.
	maxNoteBytes = 16 << 10
	// originPrefix starts every checkpoint signer's name.
	originPrefix = "telegate-audit/"
)

// Checkpoint is one signed tree head of a segment of the trail.
type Checkpoint struct {
	// Origin is the signer's name, "telegate-audit/<node>".
	Origin string
	// Segment numbers the trail's segments from 1.
	Segment uint64
	// Size is the number of records of the segment the tree covers.
	Size int64
	// Root is the tree head (RFC 6962 §2.1) of those records.
	Root tlog.Hash
	// Time is when the checkpoint was signed (UTC, from its signer's clock).
	Time time.Time
	// File is the file it was read from ("" for one not read from a file).
	File string
	// Offset is the byte offset of its frame in File when File is a
	// checkpoint log (CheckpointLogFile); 0 otherwise.
	Offset int64
}

// text is the checkpoint's note text.
func (c Checkpoint) text() string {
	return fmt.Sprintf("%s\n%d\n%s\nsegment %d\ntime %s\n", c.Origin, c.Size,
		base64.StdEncoding.EncodeToString(c.Root[:]), c.Segment, c.Time.UTC().Format(time.RFC3339Nano))
}

// fileName is the checkpoint's file name in its directory.
func (c Checkpoint) fileName() string {
	return fmt.Sprintf("%06d-%016d%s", c.Segment, c.Size, checkpointExt)
}

// String names the checkpoint for messages: its file, or its segment and
// size.
func (c Checkpoint) String() string {
	if c.File != "" && filepath.Base(c.File) == CheckpointLogFile {
		return fmt.Sprintf("checkpoint at byte %d of %s (segment %d, %d records)", c.Offset, c.File, c.Segment, c.Size)
	}
	if c.File != "" {
		return fmt.Sprintf("checkpoint %s (segment %d, %d records)", c.File, c.Segment, c.Size)
	}
	return fmt.Sprintf("checkpoint of segment %d at %d records", c.Segment, c.Size)
}

// parseCheckpoint parses a verified note's text.
func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 5 {
		return Checkpoint{}, errors.New("not a checkpoint: too few lines")
	}
	c := Checkpoint{Origin: lines[0]}
	var err error
	if c.Size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || c.Size < 0 {
		return Checkpoint{}, errors.New("not a checkpoint: bad size")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, errors.New("not a checkpoint: bad root hash")
	}
	copy(c.Root[:], root)
	for _, l := range lines[3:] {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "segment":
			if c.Segment, err = strconv.ParseUint(v, 10, 64); err != nil || c.Segment == 0 {
				return Checkpoint{}, errors.New("not a checkpoint: bad segment")
			}
		case "time":
			if c.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return Checkpoint{}, errors.New("not a checkpoint: bad time")
			}
		}
	}
	if c.Segment == 0 || c.Time.IsZero() {
		return Checkpoint{}, errors.New("not a checkpoint: no segment or time line")
	}
	return c, nil
}

// CheckpointProblem is a file in the checkpoint directory that is not a
// checkpoint signed by the verifier key: replaced, forged or damaged.
type CheckpointProblem struct {
	// File is the file's path.
	File string
	// Reason says what is wrong.
	Reason string
}

// Error implements error: "audit: checkpoint FILE: reason".
func (p CheckpointProblem) Error() string {
	return fmt.Sprintf("audit: checkpoint %s: %s", p.File, p.Reason)
}

// LoadCheckpoints reads the checkpoint log (CheckpointLogFile) and every
// *.ckpt file in dir and returns the checkpoints signed by v (sorted by
// segment, then size, then time) and a problem for each frame or file
// that is not one (another signer, a bad signature, not a checkpoint, or
// bytes of the log that are no frame). A frame torn at the log's end is
// not a problem: it is skipped (OpenTrail cuts it). A directory that does
// not exist holds no checkpoint.
// Errors: a directory or file that cannot be read.
func LoadCheckpoints(dir string, v note.Verifier) ([]Checkpoint, []CheckpointProblem, error) {
	cps, problems, _, err := loadCheckpoints(dir, v)
	return cps, problems, err
}

// loadCheckpoints is LoadCheckpoints, also returning the length of the
// checkpoint log's whole frames (where a torn frame starts, or its size).
func loadCheckpoints(dir string, v note.Verifier) ([]Checkpoint, []CheckpointProblem, int64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	var (
		cps      []Checkpoint
		problems []CheckpointProblem
		whole    int64
	)
	// open verifies one signed note read from path (at offset off of a
	// log) and keeps the checkpoint or the problem.
	open := func(path string, off int64, b []byte) {
		c, err := OpenCheckpoint(b, v)
		if err != nil {
			reason := err.Error()
			if filepath.Base(path) == CheckpointLogFile {
				reason = fmt.Sprintf("the frame at byte %d: %s", off, reason)
			}
			problems = append(problems, CheckpointProblem{path, reason})
			return
		}
		c.File, c.Offset = path, off
		cps = append(cps, c)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || (!strings.HasSuffix(name, checkpointExt) && name != CheckpointLogFile) {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("audit: read checkpoint: %w", err)
		}
		if name != CheckpointLogFile {
			open(path, 0, b)
			continue
		}
		frames, end, damaged := logFrames(b)
		for _, f := range frames {
			open(path, f.off, b[f.start:f.end])
		}
		if damaged {
			problems = append(problems, CheckpointProblem{path, fmt.Sprintf("the bytes from %d on are not a checkpoint frame (edited or damaged)", end)})
		}
		whole = end
	}
	sortCheckpoints(cps)
	return cps, problems, whole, nil
}

// logFrame is one whole frame of a checkpoint log: it starts at off, its
// note is b[start:end].
type logFrame struct {
	off, start, end int64
}

// logFrames splits a checkpoint log b into its whole frames. end is where
// they end: len(b), or where a torn last frame starts (a header cut
// short, or a note shorter than its header says; or zero bytes, which a
// crash may leave past the data written). damaged reports bytes at end
// that are neither a frame nor a torn one.
func logFrames(b []byte) (frames []logFrame, end int64, damaged bool) {
	off := 0
	for off < len(b) {
		rest := b[off:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return frames, int64(off), !tornHeader(rest)
		}
		digits, ok := bytes.CutPrefix(rest[:i], []byte(frameHeader))
		n, err := strconv.Atoi(string(digits))
		if !ok || err != nil || n <= 0 || n > maxNoteBytes || strconv.Itoa(n) != string(digits) {
			return frames, int64(off), !allZero(rest)
		}
		if len(rest)-i-1 < n {
			return frames, int64(off), false
		}
		start := off + i + 1
		frames = append(frames, logFrame{int64(off), int64(start), int64(start + n)})
		off = start + n
	}
	return frames, int64(off), false
}

// tornHeader reports whether b, which holds no newline, is what an
// interrupted append of a frame header leaves: a prefix of "checkpoint "
// and digits, or zero bytes.
func tornHeader(b []byte) bool {
	if allZero(b) {
		return true
	}
	h := []byte(frameHeader)
	if len(b) <= len(h) {
		return bytes.HasPrefix(h, b)
	}
	if !bytes.HasPrefix(b, h) {
		return false
	}
	for _, c := range b[len(h):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func cmpU[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// noteProblem says why note.Open refused a checkpoint.
func noteProblem(err error, v note.Verifier) string {
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return fmt.Sprintf("not signed by the verifier key %s (replaced or forged)", v.Name())
	case errors.As(err, &invalid):
		return fmt.Sprintf("signature does not verify with the key %s (edited or forged)", v.Name())
	}
	return "not a signed note: " + err.Error()
}

// checkpointSigner signs checkpoints and appends them to the checkpoint
// log of a directory.
type checkpointSigner struct {
	dir    string
	signer note.Signer
	vkey   string
	// f is the checkpoint log, opened for appending at the first write
	// (after OpenTrail cut a torn frame); nil before.
	f *os.File
	// frames are the log's frames, for its compaction.
	frames []signedFrame
	// whole is the length of the log's whole frames when it was loaded
	// (where a torn last frame starts, or its size).
	whole int64
	// witness, when set, is handed every checkpoint written
	// (Log.SetCheckpointWitness).
	witness atomic.Pointer[WitnessFunc]
}

// sign returns c's signed note, c.Origin set to the signer's name.
func (s *checkpointSigner) sign(c Checkpoint) ([]byte, error) {
	c.Origin = s.signer.Name()
	return note.Sign(&note.Note{Text: c.text()}, s.signer)
}

// signedFrame is one frame of the checkpoint log: the checkpoint's
// segment and the frame's bytes.
type signedFrame struct {
	segment uint64
	frame   []byte
}

// frame is the checkpoint log frame of a signed note.
func frame(msg []byte) []byte {
	b := strconv.AppendInt([]byte(frameHeader), int64(len(msg)), 10)
	return append(append(b, '\n'), msg...)
}

// start prepares the signer to append to the checkpoint log of dir: it
// cuts a torn last frame (at s.whole, the length of the log's whole
// frames when cps were loaded from it) and learns the frames of cps the
// log holds, for compaction.
func (s *checkpointSigner) start(cps []Checkpoint) error {
	whole := s.whole
	path := filepath.Join(s.dir, CheckpointLogFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if whole < int64(len(b)) {
		if err := os.Truncate(path, whole); err != nil {
			return fmt.Errorf("cut the torn last frame of %s: %w", path, err)
		}
		b = b[:whole]
	}
	segment := map[int64]uint64{} // a frame's offset → its checkpoint's segment
	for _, c := range cps {
		if c.File == path {
			segment[c.Offset] = c.Segment
		}
	}
	fs, _, _ := logFrames(b)
	for _, f := range fs {
		if seg, ok := segment[f.off]; ok {
			s.frames = append(s.frames, signedFrame{seg, bytes.Clone(b[f.off:f.end])})
		}
	}
	slices.SortStableFunc(s.frames, func(a, b signedFrame) int { return cmpU(a.segment, b.segment) })
	return nil
}

// write signs c and appends it to the checkpoint log (one write, then
// fsync), hands it to the witness, if any, and once the log holds
// 2×CheckpointsKept checkpoints of c's segment compacts it (see
// CheckpointsKept).
func (s *checkpointSigner) write(c Checkpoint) error {
	msg, err := s.sign(c)
	if err != nil {
		return err
	}
	fr := frame(msg)
	if s.f == nil {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(s.dir, CheckpointLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return err
		}
		s.f = f
	}
	if _, err := s.f.Write(fr); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.frames = append(s.frames, signedFrame{c.Segment, fr})
	if w := s.witness.Load(); w != nil {
		c.Origin = s.signer.Name()
		(*w)(c, msg)
	}
	return s.compact(c.Segment)
}

// compact rewrites the checkpoint log once it holds 2×CheckpointsKept
// frames of segment: the last frame of every earlier segment and the
// last CheckpointsKept of segment, written whole (writeFileSynced).
func (s *checkpointSigner) compact(segment uint64) error {
	first := len(s.frames)
	for first > 0 && s.frames[first-1].segment == segment {
		first--
	}
	if len(s.frames)-first < 2*CheckpointsKept {
		return nil
	}
	var kept []signedFrame
	for i, f := range s.frames[:first] {
		if i+1 == first || s.frames[i+1].segment != f.segment {
			kept = append(kept, f)
		}
	}
	kept = append(kept, s.frames[len(s.frames)-CheckpointsKept:]...)
	var b []byte
	for _, f := range kept {
		b = append(b, f.frame...)
	}
	if err := writeFileSynced(s.dir, CheckpointLogFile, b, 0o644); err != nil {
		return err
	}
	// The log is the new file now: append to it from here on.
	old := s.f
	s.f, s.frames = nil, kept
	return old.Close()
}

// close closes the checkpoint log.
func (s *checkpointSigner) close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// writeFileSynced writes dir/name whole (temporary file, fsync, rename,
// fsync of dir), creating dir (0700) when needed.
func writeFileSynced(dir, name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, making the names created or renamed in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// VerifierKey derives the verifier key (note's format,
// "<name>+<hash>+<base64 key>") from a signer key
// ("PRIVATE+KEY+<name>+<hash>+<base64 key>", note.GenerateKey).
// Errors: not an Ed25519 signer key.
func VerifierKey(skey string) (string, error) {
	if _, err := note.NewSigner(skey); err != nil {
		return "", fmt.Errorf("audit: checkpoint signing key: %w", err)
	}
	rest := strings.TrimPrefix(skey, "PRIVATE+KEY+")
	name, rest, _ := strings.Cut(rest, "+")
	_, enc, _ := strings.Cut(rest, "+")
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 1 {
		return "", errors.New("audit: checkpoint signing key is not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// ReadVerifierKey reads a verifier key from path (the key on the file's
// first line; see VerifierKeyFile) and returns its verifier.
// Errors: an unreadable file; not a verifier key.
func ReadVerifierKey(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: verifier key: %w", err)
	}
	return ParseVerifierKey(string(b))
}

// ParseVerifierKey parses a verifier key ("<name>+<hash>+<base64 key>",
// surrounding space ignored).
// Errors: not a note verifier key.
func ParseVerifierKey(s string) (note.Verifier, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	v, err := note.NewVerifier(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("audit: verifier key: %w", err)
	}
	return v, nil
}

// nodeName is the node's name for a new checkpoint key: the host name,
// reduced to what a note key name may hold.
func nodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "node"
	}
	h = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '+' || r > '~' {
			return '-'
		}
		return r
	}, h)
	return originPrefix + h
}

// sameKey reports whether two verifier keys are the same key.
func sameKey(a, b string) bool {
	return bytes.Equal(bytes.TrimSpace([]byte(a)), bytes.TrimSpace([]byte(b)))
}
