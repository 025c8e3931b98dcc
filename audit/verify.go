package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// VerifyError names the first line of an audit file that breaks the chain.
type VerifyError struct {
	// Line is the 1-based line number.
	Line int
	// Reason says what is wrong and what it means (edited, deleted,
	// reordered, truncated).
	Reason string
}

// Error implements error: "audit: line N: reason".
func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: line %d: %s", e.Line, e.Reason)
}

// macSuffixLen is len(`,"mac":"` + 64 hex + `"}`).
const macSuffixLen = 8 + 64 + 2

// checkLine verifies one line (without newline) on its own: its shape and
// its mac. It returns the line's seq and its prev.
func checkLine(b, key []byte) (uint64, error) {
	seq, _, err := checkLinePrev(b, key)
	return seq, err
}

func checkLinePrev(b, key []byte) (uint64, string, error) {
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
	want := computeMAC(key, h.Prev, canonical)
	if !hmac.Equal(mac, []byte(want)) {
		return 0, "", errors.New("mac does not match: the line was edited (or the key is wrong)")
	}
	return h.Seq, h.Prev, nil
}

// Verify walks an audit file's chain from its first line and returns the
// number of lines that verified. err is nil when the whole input is one
// intact chain, and otherwise a *VerifyError naming the first bad line and
// why:
//   - mac mismatch or malformed JSON: the line was edited (or the key is
//     wrong);
//   - prev is not the hash of the line before, or seq is not the next
//     number: a line was deleted, inserted or reordered;
//   - an incomplete last line: the file was truncated mid-record;
//   - an empty line or one longer than 2*MaxLineBytes: edited.
//
// Verify reads r once, holding one line at a time. It cannot see lines cut
// off cleanly at the end of the file; compare n with the Written count or
// the SIEM's copy for that.
func Verify(r io.Reader, key []byte) (n int, err error) {
	if len(key) == 0 {
		return 0, errors.New("audit: empty key")
	}
	br := bufio.NewReaderSize(r, 2*MaxLineBytes+1)
	var (
		prev   string
		expect uint64 = 1
	)
	for lineNo := 1; ; lineNo++ {
		b, rerr := br.ReadSlice('\n')
		switch {
		case rerr == io.EOF && len(b) == 0:
			return n, nil
		case rerr == io.EOF:
			return n, &VerifyError{lineNo, "incomplete last line: the file was truncated in the middle of a record"}
		case errors.Is(rerr, bufio.ErrBufferFull):
			return n, &VerifyError{lineNo, "line too long: edited"}
		case rerr != nil:
			return n, fmt.Errorf("audit: read line %d: %w", lineNo, rerr)
		}
		b = b[:len(b)-1]
		if len(b) == 0 {
			return n, &VerifyError{lineNo, "empty line: edited"}
		}
		seq, p, err := checkLinePrev(b, key)
		if err != nil {
			return n, &VerifyError{lineNo, err.Error()}
		}
		switch {
		case seq > expect:
			return n, &VerifyError{lineNo, fmt.Sprintf("sequence %d, expected %d: %d line(s) missing before this one (deleted or reordered)", seq, expect, seq-expect)}
		case seq < expect:
			return n, &VerifyError{lineNo, fmt.Sprintf("sequence %d, expected %d: lines reordered or repeated", seq, expect)}
		case p != prev:
			return n, &VerifyError{lineNo, "prev does not match the line before: a line was deleted, inserted or reordered"}
		}
		prev = lineHash(b)
		expect++
		n++
	}
}
