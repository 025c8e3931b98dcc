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
// followed by a blank line and the signature line. The files are
// <CheckpointDir>/<segment>-<size>.ckpt (zero padded, so they sort), and
// the verifier key (note's verifier key format, public) is
// <CheckpointDir>/VerifierKeyFile.
const (
	// VerifierKeyFile is the name of the verifier key file in the
	// checkpoint directory.
	VerifierKeyFile = "checkpoint.vkey"
	// CheckpointsKept is how many checkpoint files of the current segment
	// are kept; older ones are removed (the last one of every earlier
	// segment is always kept).
	CheckpointsKept = 256
	// checkpointExt ends every checkpoint file name.
	checkpointExt = ".ckpt"
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

// LoadCheckpoints reads every *.ckpt file in dir and returns the
// checkpoints signed by v (sorted by segment, then size, then time) and a
// problem for each file that is not one (another signer, a bad signature,
// not a checkpoint). A directory that does not exist holds no checkpoint.
// Errors: a directory that cannot be read.
func LoadCheckpoints(dir string, v note.Verifier) ([]Checkpoint, []CheckpointProblem, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	var (
		cps      []Checkpoint
		problems []CheckpointProblem
	)
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), checkpointExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: read checkpoint: %w", err)
		}
		c, err := OpenCheckpoint(b, v)
		if err != nil {
			problems = append(problems, CheckpointProblem{path, err.Error()})
			continue
		}
		c.File = path
		cps = append(cps, c)
	}
	sortCheckpoints(cps)
	return cps, problems, nil
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

// checkpointSigner signs checkpoints and writes them to a directory.
type checkpointSigner struct {
	dir    string
	signer note.Signer
	vkey   string
	// witness, when set, is handed every checkpoint written
	// (Log.SetCheckpointWitness).
	witness atomic.Pointer[WitnessFunc]
}

// sign returns c's signed note, c.Origin set to the signer's name.
func (s *checkpointSigner) sign(c Checkpoint) ([]byte, error) {
	c.Origin = s.signer.Name()
	return note.Sign(&note.Note{Text: c.text()}, s.signer)
}

// write signs c and writes it to its file in the directory (written
// whole: a temporary file, fsync, rename, fsync of the directory), then
// removes the oldest checkpoints of c's segment beyond CheckpointsKept,
// and hands it to the witness, if any.
func (s *checkpointSigner) write(c Checkpoint) error {
	msg, err := s.sign(c)
	if err != nil {
		return err
	}
	if err := writeFileSynced(s.dir, c.fileName(), msg, 0o644); err != nil {
		return err
	}
	s.prune(c.Segment)
	if w := s.witness.Load(); w != nil {
		c.Origin = s.signer.Name()
		(*w)(c, msg)
	}
	return nil
}

// prune removes the oldest checkpoint files of segment beyond
// CheckpointsKept (by name, which sorts by size).
func (s *checkpointSigner) prune(segment uint64) {
	names, err := filepath.Glob(filepath.Join(s.dir, fmt.Sprintf("%06d-*%s", segment, checkpointExt)))
	if err != nil || len(names) <= CheckpointsKept {
		return
	}
	slices.Sort(names)
	for _, n := range names[:len(names)-CheckpointsKept] {
		_ = os.Remove(n)
	}
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
