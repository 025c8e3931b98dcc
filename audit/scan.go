package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// SegmentEventType is the type of the record that starts a new segment
// (NewSegment). Its attributes record the gap it follows:
//
//	segment               the new segment's number
//	prev_segment          the segment before it
//	prev_records          records of prev_segment present in the trail
//	prev_checkpoint_size  the size of prev_segment's latest checkpoint
//	prev_checkpoint_root  that checkpoint's root hash (base64)
//	missing               prev_checkpoint_size - prev_records (0 or more)
//
// and its reason field the operator's reason.
const SegmentEventType = "audit.segment"

// Gap is a recorded gap: records of a segment that its checkpoints cover
// but the trail no longer holds, acknowledged by the first record of the
// next segment (NewSegment).
type Gap struct {
	// Segment is the segment the records are missing from.
	Segment uint64
	// Present is how many of its records the trail holds.
	Present int64
	// CheckpointSize is the size of its latest checkpoint.
	CheckpointSize int64
	// Missing is CheckpointSize - Present: records Present+1..CheckpointSize.
	Missing int64
	// Line is the line of the record that starts the next segment.
	Line int
	// Reason is the operator's reason given to NewSegment.
	Reason string
	// Time is when the next segment was started.
	Time time.Time
}

// walkState is what a walk over a trail learnt: where the chain ends,
// which segment is open and its tree.
type walkState struct {
	lines   int    // complete lines
	offset  int64  // bytes of complete lines
	seq     uint64 // seq of the last line
	prev    string // hash of the last line
	segment uint64 // the open segment
	tree    tree   // the open segment's tree
	// lastCheckpoint is the largest size of the open segment's
	// checkpoints (all matched).
	lastCheckpoint int64
	checkpoints    int // checkpoints matched against records
	gaps           []Gap
	ignored        int    // checkpoints of segments before the file's first
	partial        []byte // an incomplete last line, not part of the chain
}

// walker walks a trail's lines, checking the chain (seq, prev, and the mac
// when key is set), building each segment's tree and checking it against
// the checkpoints.
type walker struct {
	key []byte
	st  walkState
	// cps holds the checkpoints by segment, each sorted by size; next[s]
	// is the index of the first not yet reached.
	cps  map[uint64][]Checkpoint
	next map[uint64]int
	// good is the last size of the open segment known to match a
	// checkpoint (0 at its start), at line goodLine+1, byte goodOffset.
	good       int64
	goodLine   int
	goodOffset int64
	segLine    int // first line of the open segment
	first      uint64
	// each, when set, receives every record once its chain, mac and
	// segment are checked (before the checkpoints reached at it): its
	// line number, sequence number, open segment and bytes (without the
	// newline; valid only during the call). An error from it ends the
	// walk with that error.
	each func(lineNo int, seq, segment uint64, b []byte) error
}

// walk reads a trail from r and checks it (see Verify for what is
// checked). key nil skips the macs. The error is a *VerifyError for a
// break, or a read error; an incomplete last line is not an error here
// but left in walkState.partial.
func walk(r io.Reader, key []byte, cps []Checkpoint) (*walkState, error) {
	return walkEach(r, key, cps, nil)
}

// walkEach is walk calling each for every record (walker.each).
func walkEach(r io.Reader, key []byte, cps []Checkpoint, each func(lineNo int, seq, segment uint64, b []byte) error) (*walkState, error) {
	w := &walker{key: key, cps: map[uint64][]Checkpoint{}, next: map[uint64]int{}, each: each}
	for _, c := range cps {
		w.cps[c.Segment] = append(w.cps[c.Segment], c)
	}
	w.st.segment, w.first, w.segLine = 1, 1, 1
	br := bufio.NewReaderSize(r, 2*MaxLineBytes+1)
	var (
		expect     uint64 = 1
		prevOffset int64
	)
	for lineNo := 1; ; lineNo++ {
		b, rerr := br.ReadSlice('\n')
		switch {
		case rerr == io.EOF && len(b) == 0:
			return &w.st, w.end(lineNo)
		case rerr == io.EOF:
			w.st.partial = bytes.Clone(b)
			return &w.st, w.end(lineNo)
		case errors.Is(rerr, bufio.ErrBufferFull):
			return &w.st, w.fail(lineNo, "line too long: edited")
		case errors.As(rerr, new(*VerifyError)):
			return &w.st, rerr // a file of the trail that breaks off (Reader)
		case rerr != nil:
			return &w.st, fmt.Errorf("audit: read line %d: %w", lineNo, rerr)
		}
		b = b[:len(b)-1]
		if len(b) == 0 {
			return &w.st, w.fail(lineNo, "empty line: edited")
		}
		seq, p, err := parseLine(b, key)
		if err != nil {
			return &w.st, w.fail(lineNo, err.Error())
		}
		switch {
		case seq > expect:
			return &w.st, w.fail(lineNo, fmt.Sprintf("sequence %d, expected %d: %d line(s) missing before this one (deleted or reordered)", seq, expect, seq-expect))
		case seq < expect:
			return &w.st, w.fail(lineNo, fmt.Sprintf("sequence %d, expected %d: lines reordered or repeated", seq, expect))
		case p != w.st.prev && key == nil && lineNo > 1:
			// Without the key a line's own content is not checked: an
			// edit shows in the next line's prev.
			return &w.st, &VerifyError{Line: lineNo - 1, Offset: prevOffset,
				Reason: fmt.Sprintf("its hash is not line %d's prev: this line was edited (or line %d's prev was)", lineNo, lineNo)}
		case p != w.st.prev:
			return &w.st, w.fail(lineNo, "prev does not match the line before: a line was deleted, inserted or reordered")
		}
		if bytes.Contains(b, []byte(`"type":"`+SegmentEventType+`"`)) {
			if err := w.startSegment(lineNo, b); err != nil {
				return &w.st, err
			}
		}
		if w.each != nil {
			if err := w.each(lineNo, seq, w.st.segment, b); err != nil {
				return &w.st, err
			}
		}
		w.st.tree.add(b)
		prevOffset = w.st.offset
		w.st.offset += int64(len(b)) + 1
		w.st.lines = lineNo
		w.st.seq = seq
		w.st.prev = lineHash(b)
		expect++
		if err := w.reach(lineNo + 1); err != nil {
			return &w.st, err
		}
	}
}

// fail is a *VerifyError at line lineNo, which starts at the current offset.
func (w *walker) fail(lineNo int, reason string) *VerifyError {
	return &VerifyError{Line: lineNo, Offset: w.st.offset, Reason: reason}
}

// reach checks the open segment's checkpoints whose size the tree has
// reached; nextLine is the line after the last record.
func (w *walker) reach(nextLine int) error {
	seg := w.st.segment
	list := w.cps[seg]
	for w.next[seg] < len(list) && list[w.next[seg]].Size <= w.st.tree.n {
		c := list[w.next[seg]]
		if c.Size < w.st.tree.n {
			// Only a size-0 checkpoint can be passed by (at a segment's
			// start it is checked there).
			w.next[seg]++
			continue
		}
		if c.Root != w.st.tree.root() {
			return &VerifyError{Line: w.goodLine + 1, Offset: w.goodOffset, Reason: fmt.Sprintf(
				"records %d..%d of segment %d (lines %d..%d) do not hash to the root of %s: a record in that range was changed, or that checkpoint is forked from another history",
				w.good+1, c.Size, seg, w.goodLine+1, nextLine-1, c)}
		}
		w.next[seg]++
		w.st.checkpoints++
		w.st.lastCheckpoint = c.Size
	}
	if w.st.lastCheckpoint == w.st.tree.n && w.good < w.st.tree.n {
		// Every checkpoint of this size matched.
		w.good, w.goodLine, w.goodOffset = w.st.tree.n, nextLine-1, w.st.offset
	}
	return nil
}

// startSegment closes the open segment at the segment record b (line
// lineNo) and opens the one b starts.
func (w *walker) startSegment(lineNo int, b []byte) error {
	var l line
	if err := json.Unmarshal(b, &l); err != nil || l.Type != SegmentEventType {
		return nil // an attribute that reads like one, not a segment record
	}
	num := func(k string) (int64, error) {
		v, err := strconv.ParseInt(l.Attrs[k], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("segment record without a valid %s", k)
		}
		return v, nil
	}
	seg, err1 := num("segment")
	prevSeg, err2 := num("prev_segment")
	present, err3 := num("prev_records")
	size, err4 := num("prev_checkpoint_size")
	root, err5 := base64.StdEncoding.DecodeString(l.Attrs["prev_checkpoint_root"])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return w.fail(lineNo, err.Error())
	}
	if err5 != nil || (len(root) != tlog.HashSize && len(root) != 0) {
		return w.fail(lineNo, "segment record without a valid prev_checkpoint_root")
	}
	if lineNo == 1 {
		// The file starts with a new segment: earlier segments are not in
		// it, and prev_segment had no record left.
		w.st.segment, w.first = uint64(prevSeg), uint64(prevSeg)
		for s, list := range w.cps {
			if s < w.first {
				w.st.ignored += len(list)
				delete(w.cps, s)
			}
		}
	}
	if uint64(prevSeg) != w.st.segment || uint64(seg) != w.st.segment+1 {
		return w.fail(lineNo, fmt.Sprintf("segment record for segment %d after %d, but this is segment %d", seg, prevSeg, w.st.segment))
	}
	if present != w.st.tree.n {
		return w.fail(lineNo, fmt.Sprintf("segment record says segment %d kept %d records, but it has %d before this line", prevSeg, present, w.st.tree.n))
	}
	list := w.cps[w.st.segment]
	for _, c := range list[w.next[w.st.segment]:] {
		switch {
		case c.Size > size:
			return w.fail(lineNo, fmt.Sprintf("segment record acknowledges segment %d up to %d records, but %s covers %d: records %d..%d are missing and not recorded",
				prevSeg, size, c, c.Size, size+1, c.Size))
		case c.Size == size && !bytes.Equal(c.Root[:], root):
			return w.fail(lineNo, fmt.Sprintf("segment record names another root for segment %d at %d records than %s", prevSeg, size, c))
		}
	}
	w.st.gaps = append(w.st.gaps, Gap{Segment: w.st.segment, Present: present, CheckpointSize: max(size, present),
		Missing: max(size-present, 0), Line: lineNo, Reason: l.Reason, Time: l.Time})
	w.st.segment = uint64(seg)
	w.st.tree = tree{}
	w.st.lastCheckpoint = 0
	w.good, w.goodLine, w.goodOffset, w.segLine = 0, lineNo-1, w.st.offset, lineNo
	return w.reach(lineNo)
}

// end checks, at the end of the trail (line lineNo would be next), that
// no checkpoint covers records the trail does not hold.
func (w *walker) end(lineNo int) error {
	if err := w.reach(lineNo); err != nil {
		return err
	}
	seg := w.st.segment
	if list := w.cps[seg]; w.next[seg] < len(list) {
		c := list[len(list)-1]
		return &VerifyError{Line: lineNo, Offset: w.st.offset, cut: true, Reason: fmt.Sprintf(
			"the trail ends after %d records of segment %d, but %s covers %d: records %d..%d (lines %d..%d) are missing — cut from the end",
			w.st.tree.n, seg, c, c.Size, w.st.tree.n+1, c.Size, lineNo, lineNo+int(c.Size-w.st.tree.n)-1)}
	}
	for s, list := range w.cps {
		if s > seg && len(list) > 0 {
			c := list[len(list)-1]
			return &VerifyError{Line: lineNo, Offset: w.st.offset, Reason: fmt.Sprintf(
				"the trail ends in segment %d, but %s is of segment %d: its %d records are missing — cut from the end",
				seg, c, s, c.Size)}
		}
	}
	return nil
}

// parseLine checks one line (without newline) on its own: its shape and,
// when key is set, its mac. It returns the line's seq and prev.
func parseLine(b, key []byte) (uint64, string, error) {
	if len(b) < macSuffixLen+2 || b[0] != '{' || !bytes.HasPrefix(b[len(b)-macSuffixLen:], []byte(`,"mac":"`)) || !bytes.HasSuffix(b, []byte(`"}`)) {
		return 0, "", errors.New("not an audit record (no trailing mac): edited or truncated")
	}
	mac := b[len(b)-macSuffixLen+8 : len(b)-2]
	canonical := make([]byte, 0, len(b)-macSuffixLen+1)
	canonical = append(canonical, b[:len(b)-macSuffixLen]...)
	canonical = append(canonical, '}')
	var h header
	dec := json.NewDecoder(bytes.NewReader(canonical))
	if err := dec.Decode(&h); err != nil || dec.More() {
		return 0, "", errors.New("not valid JSON: edited or truncated")
	}
	if h.Seq == 0 {
		return 0, "", errors.New("no sequence number: edited")
	}
	if key != nil && !hmac.Equal(mac, []byte(computeMAC(key, h.Prev, canonical))) {
		return 0, "", errors.New("mac does not match: the line was edited (or the key is wrong)")
	}
	return h.Seq, h.Prev, nil
}
