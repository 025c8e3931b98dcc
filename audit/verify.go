package audit

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/mod/sumdb/note"
)

// VerifyError names the first line of an audit file that breaks the chain,
// the tree or a checkpoint.
type VerifyError struct {
	// Line is the 1-based line number counted from the trail's first
	// line, across its segment files (for records missing from the end,
	// the line the first of them would be on).
	Line int
	// File is the segment file holding that line, when the trail was read
	// by path (Trail.Open); "" for a trail read from an io.Reader.
	File string
	// Offset is the byte offset in File (or the reader) where that line
	// starts; in a sealed file, the offset in its decrypted lines, or for
	// a block that does not open, the block's byte offset in the file.
	Offset int64
	// Reason says what is wrong and what it means (edited, deleted,
	// reordered, cut, forked).
	Reason string
	// cut: records are missing from the end of the open segment, and
	// nothing else is wrong.
	cut bool
}

// Error implements error: "audit: line N (byte O): reason", or with the
// file "audit: FILE: line N of the trail (byte O of the file): reason".
func (e *VerifyError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("audit: %s: line %d of the trail (byte %d of the file): %s", e.File, e.Line, e.Offset, e.Reason)
	}
	return fmt.Sprintf("audit: line %d (byte %d): %s", e.Line, e.Offset, e.Reason)
}

// macSuffixLen is len(`,"mac":"` + 64 hex + `"}`).
const macSuffixLen = 8 + 64 + 2

// Verify walks an audit file's chain from its first line with the HMAC
// key and no checkpoints, and returns the number of lines that verified;
// see VerifyTrail. It cannot see records cut cleanly from the end of the
// file: VerifyTrail with the checkpoints does.
func Verify(r io.Reader, key []byte) (n int, err error) {
	if len(key) == 0 {
		return 0, errors.New("audit: empty key")
	}
	rep, err := VerifyTrail(r, VerifyOptions{Key: key})
	return rep.Records, err
}

// VerifyOptions says what VerifyTrail checks beyond the chain of seq and
// prev hashes.
type VerifyOptions struct {
	// Key is the HMAC key (audit.key). With it every line's mac is
	// checked too; nil checks the rest, which needs no secret.
	Key []byte
	// Verifier checks the checkpoints' signatures (ReadVerifierKey); nil
	// with Checkpoints empty checks none.
	Verifier note.Verifier
	// CheckpointDir holds the checkpoints (LoadCheckpoints); "" none.
	CheckpointDir string
	// Witnessed are checkpoints kept off the host (ReadCheckpointFile of
	// the notes a witness received, config audit.witness), checked like
	// those of CheckpointDir: the trail must hold each, so a tail cut
	// together with a rolled-back or emptied CheckpointDir still shows.
	// They need Verifier.
	Witnessed []Checkpoint
}

// Report is what VerifyTrail found.
type Report struct {
	// Records is the number of lines that verified (before the first bad
	// one, if any).
	Records int
	// Segments is the number of segments seen; Segment the last one.
	Segments, Segment uint64
	// Checkpoints is the number of checkpoints matched against records.
	Checkpoints int
	// Ignored counts checkpoints of segments before the file's first
	// (the file starts with a new segment).
	Ignored int
	// Latest is the latest checkpoint of the last segment, if any.
	Latest *Checkpoint
	// Gaps are the recorded gaps (NewSegment), in order.
	Gaps []Gap
}

// VerifyTrail walks an audit file from its first line and checks:
//   - the chain: every line is a record (JSON ending in a mac), seq
//     counts from 1, prev is the SHA-256 of the line before; with
//     o.Key, every mac (HMAC-SHA256, see Log);
//   - the tree: each segment's records, as leaves of an RFC 6962 tree,
//     hash to the root of every checkpoint of that segment at its size;
//   - the end: no checkpoint covers more records than the trail holds,
//     unless a segment record acknowledges them (NewSegment; reported as
//     a Gap, not an error);
//   - the checkpoints: every file in o.CheckpointDir is signed by
//     o.Verifier.
//
// err is nil when all hold, and otherwise names the first bad line
// (*VerifyError: line number, byte offset, why — edited, deleted,
// reordered, truncated mid-record, cut from the end, or not matching a
// checkpoint, which is either changed records or a forked checkpoint), or
// the first bad checkpoint file (CheckpointProblem). Errors reading r or
// the directory are returned as they are. VerifyTrail reads r once,
// holding one line and the tree's frontier (at most 64 hashes) at a time.
// With r a *Reader (Trail.Open), a trail of several segment files, the
// *VerifyError names the file (VerifyError.File) and the offset in it.
func VerifyTrail(r io.Reader, o VerifyOptions) (Report, error) {
	return verifyTrail(r, o, nil)
}

// verifyTrail is VerifyTrail calling each for every record (walkEach).
func verifyTrail(r io.Reader, o VerifyOptions, each func(lineNo int, seq, segment uint64, b []byte) error) (Report, error) {
	var cps []Checkpoint
	if o.Verifier != nil && o.CheckpointDir != "" {
		var problems []CheckpointProblem
		var err error
		cps, problems, err = LoadCheckpoints(o.CheckpointDir, o.Verifier)
		if err != nil {
			return Report{}, err
		}
		if len(problems) > 0 {
			return Report{}, problems[0]
		}
	} else if o.CheckpointDir != "" || len(o.Witnessed) > 0 {
		return Report{}, errors.New("audit: checkpoints need the verifier key")
	}
	if len(o.Witnessed) > 0 {
		cps = append(slices.Clip(cps), o.Witnessed...)
		sortCheckpoints(cps)
	}
	st, err := walkEach(r, o.Key, cps, each)
	if tr, ok := r.(*Reader); ok {
		placeError(tr, err)
	}
	rep := Report{Records: st.lines, Segment: st.segment, Segments: uint64(len(st.gaps)) + 1,
		Checkpoints: st.checkpoints, Ignored: st.ignored, Gaps: st.gaps}
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Segment == st.segment {
			rep.Latest = &cps[i]
			break
		}
	}
	if err == nil && len(st.partial) > 0 {
		err = &VerifyError{Line: st.lines + 1, Offset: st.offset, Reason: fmt.Sprintf(
			"incomplete last line (%d bytes without a newline): the file was truncated in the middle of a record (telegate cuts it at its next start, recording audit.recover)", len(st.partial))}
		if tr, ok := r.(*Reader); ok {
			placeError(tr, err)
		}
	}
	if tr, ok := r.(*Reader); ok && err == nil {
		if torn, at, tail := tr.TornTail(); torn {
			file, _, _ := tr.lastFile()
			err = &VerifyError{Line: st.lines + 1, File: file, Offset: at, Reason: fmt.Sprintf(
				"incomplete last block (%d bytes): the file was truncated in the middle of a write (telegate cuts it at its next start, recording audit.recover)", len(tail))}
		}
	}
	return rep, err
}

// placeError sets the file and the offset in it of a *VerifyError found
// in the lines read by r.
func placeError(r *Reader, err error) {
	var ve *VerifyError
	if errors.As(err, &ve) && ve.File == "" {
		ve.File, ve.Offset = r.locate(ve.Offset)
	}
}
