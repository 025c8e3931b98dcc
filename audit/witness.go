package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"golang.org/x/mod/sumdb/note"
)

// WitnessFunc receives a checkpoint as it is written, with its signed
// note (the bytes checkpoint_dir holds for it). It is called on the
// trail's syncer goroutine and must not block (hand the note on, e.g. to
// a webhook outbox).
type WitnessFunc func(c Checkpoint, note []byte)

// SetCheckpointWitness has every checkpoint written from now on handed
// to fn as well (nil: no longer), and hands it the latest checkpoint of
// the current segment already in the checkpoint directory at once, so a
// witness set at start learns where the trail stood (for instance the
// checkpoint written when the node last stopped). A copy of the
// checkpoints kept off the host is what shows records cut from the end
// of the trail when the checkpoint directory was rolled back or emptied
// with it (VerifyOptions.Witnessed). A trail without checkpoints
// (no CheckpointDir) has nothing to hand on.
func (l *Log) SetCheckpointWitness(fn WitnessFunc) {
	if l.ckpt == nil {
		return
	}
	if fn == nil {
		l.ckpt.witness.Store(nil)
		return
	}
	l.ckpt.witness.Store(&fn)
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		return
	}
	cps, _, err := LoadCheckpoints(l.ckpt.dir, v)
	if err != nil || len(cps) == 0 {
		return
	}
	last := cps[len(cps)-1]
	last.File = ""
	// Ed25519 signatures are deterministic: the note signed again is the
	// one the directory holds.
	if msg, err := l.ckpt.sign(last); err == nil {
		fn(last, msg)
	}
}

// OpenCheckpoint returns the checkpoint of a signed note (as the
// checkpoint directory holds it, or as a witness kept it) signed by v.
// Errors: a note not signed by v (another signer, a bad signature), not a
// checkpoint, or an origin other than v's name.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%s", noteProblem(err, v))
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("origin %q is not the signer %q", c.Origin, v.Name())
	}
	return c, nil
}

// ReadCheckpointFile reads one signed checkpoint note from path (a copy a
// witness kept: the note itself, or the JSON body of the
// "audit.checkpoint" webhook, whose "note" member holds it) and opens it
// with v (OpenCheckpoint). Its File is path. Errors are CheckpointProblem
// for a note that is not a checkpoint of v, or the error reading the
// file.
func ReadCheckpointFile(path string, v note.Verifier) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: read checkpoint: %w", err)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var body struct {
			Note string `json:"note"`
		}
		if err := json.Unmarshal(t, &body); err != nil || body.Note == "" {
			return Checkpoint{}, CheckpointProblem{path, "a JSON object without a \"note\" string"}
		}
		b = []byte(body.Note)
	}
	c, err := OpenCheckpoint(b, v)
	if err != nil {
		return Checkpoint{}, CheckpointProblem{path, err.Error()}
	}
	c.File = path
	return c, nil
}

// sortCheckpoints orders cps by segment, then size, then time.
func sortCheckpoints(cps []Checkpoint) {
	slices.SortFunc(cps, func(a, b Checkpoint) int {
		if a.Segment != b.Segment {
			return cmpU(a.Segment, b.Segment)
		}
		if a.Size != b.Size {
			return cmpU(a.Size, b.Size)
		}
		return a.Time.Compare(b.Time)
	})
}
