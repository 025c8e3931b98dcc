package audit

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
)

// VerifyError names the first line of an audit file that breaks the chain,
// the tree or a checkpoint.
type VerifyError struct {
	// Line is the 1-based line number (for records missing from the end,
	// the line the first of them would be on).
	Line int
	// Offset is the byte offset in the file where that line starts.
	Offset int64
	// Reason says what is wrong and what it means (edited, deleted,
	// reordered, cut, forked).
	Reason string
	// cut: records are missing from the end of the open segment, and
	// nothing else is wrong.
	cut bool
}

// Error implements error: "audit: line N (byte O): reason".
func (e *VerifyError) Error() string {
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
	} else if o.CheckpointDir != "" {
		return Report{}, errors.New("audit: checkpoints need the verifier key")
	}
	st, err := walkEach(r, o.Key, cps, each)
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
	}
	return rep, err
}
