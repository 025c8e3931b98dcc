package gateway

import (
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
)

// multipartHeld is how much of a multipart body's stream is held back
// until the whole body is scanned: mime/multipart reads ahead of what it
// has parsed by at most its buffer (4 KiB, peekBufferSize in
// mime/multipart), so bytes it has read but not yet parsed are never
// passed on; twice that, as a margin.
const multipartHeld = 8 << 10

// multipartScan reads a multipart body (RFC 7578, RFC 2046 §5.1) with
// mime/multipart as it streams by, and refuses it when a part names
// MethodOverrideParam (errMethodOverride) or when the body could read
// differently to another parser (errMultipart):
//   - a part's Content-Disposition (every field of the part whose name is
//     Content-Disposition in any case, '_' for '-') that mime.ParseMediaType
//     refuses, or with an extended or continued name parameter ("name*",
//     "name*0": RFC 7578 §4.2 sends names as they are, and parsers differ
//     on which of "name" and "name*" wins);
//   - a part whose own Content-Type is multipart/* (the nested multipart
//     of RFC 2388 §4.6, which some parsers open and others do not);
//   - a delimiter ("--" and the boundary) anywhere that mime/multipart did
//     not read as one: in the preamble, inside a part (after a bare LF, or
//     followed by other text), or in the epilogue;
//   - a body that ends before its close delimiter, or that mime/multipart
//     cannot parse.
//
// A part's name is refused in every spelling isMethodOverrideName folds,
// also after removing backslashes (a quoted-pair some parsers undo) or
// percent-decoding, whatever the disposition type and whether or not the
// part carries a filename.
type multipartScan struct {
	f       *formStream
	mr      *multipart.Reader
	part    *multipart.Part
	scratch []byte
	parts   int  // parts mime/multipart read
	closed  bool // mime/multipart read the close delimiter
	srcEOF  bool
	srcErr  error // the client's body failed (over its limit, gone)
	delims  kmpCounter
}

func newMultipartScan(f *formStream, boundary string) *multipartScan {
	m := &multipartScan{f: f, delims: newKMPCounter("--" + boundary)}
	m.mr = multipart.NewReader(multipartTee{m}, boundary)
	return m
}

// multipartTee is the body as mime/multipart reads it: every byte read
// from the client is counted for delimiters and kept in pending.
type multipartTee struct{ m *multipartScan }

func (t multipartTee) Read(p []byte) (int, error) {
	n, err := t.m.f.src.Read(p)
	t.m.delims.write(p[:n])
	t.m.f.push(p[:n])
	switch {
	case err == io.EOF:
		t.m.srcEOF = true
	case err != nil:
		t.m.srcErr = err
	}
	return n, err
}

// step reads the body one step further: the next part's header, a piece
// of the current part, or after the close delimiter the epilogue.
func (m *multipartScan) step() {
	f := m.f
	if m.scratch == nil {
		m.scratch = make([]byte, 4<<10)
	}
	switch {
	case m.closed:
		if m.srcEOF {
			m.finish()
			return
		}
		if _, err := (multipartTee{m}).Read(m.scratch); err != nil && err != io.EOF {
			f.fail(err)
		}
	case m.part == nil:
		p, err := m.mr.NextRawPart()
		switch {
		case err == io.EOF:
			m.closed = true
		case err != nil:
			f.fail(m.readError(err))
		default:
			m.parts++
			m.part = p
			if err := checkPart(p); err != nil {
				f.fail(err)
			}
		}
	default:
		_, err := m.part.Read(m.scratch)
		switch {
		case err == io.EOF:
			m.part = nil
		case err != nil:
			f.fail(m.readError(err))
		}
	}
}

// readError is a read error of mime/multipart: the client's own (a body
// over its limit, a connection gone) as it is, else errMultipart.
func (m *multipartScan) readError(error) error {
	if m.srcErr != nil {
		return m.srcErr
	}
	return errMultipart
}

// finish ends a body read whole: each delimiter must be one that
// mime/multipart read (one before each part, and the close delimiter).
func (m *multipartScan) finish() {
	if m.delims.n != m.parts+1 {
		m.f.fail(errMultipart)
		return
	}
	m.f.done = true
}

// checkPart refuses a part that names MethodOverrideParam or whose
// headers could read differently (see multipartScan).
func checkPart(p *multipart.Part) error {
	for k, vs := range p.Header {
		switch {
		case strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "Content-Type"):
			for _, v := range vs {
				mt, _, _ := strings.Cut(v, ";")
				if mt = strings.TrimSpace(mt); len(mt) >= len("multipart/") && strings.EqualFold(mt[:len("multipart/")], "multipart/") {
					return errMultipart
				}
			}
		case strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "Content-Disposition"):
			for _, v := range vs {
				if err := checkDisposition(v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkDisposition refuses a Content-Disposition value that
// mime.ParseMediaType refuses, that has an extended or continued name
// parameter, or whose name is read as MethodOverrideParam.
func checkDisposition(v string) error {
	_, params, err := mime.ParseMediaType(v)
	if err != nil || hasExtendedName(v) {
		return errMultipart
	}
	name := params["name"]
	if isMethodOverrideName(name) || isMethodOverrideName(strings.ReplaceAll(name, `\`, "")) {
		return errMethodOverride
	}
	if d, err := url.PathUnescape(name); err == nil && isMethodOverrideName(d) {
		return errMethodOverride
	}
	return nil
}

// hasExtendedName reports whether a Content-Disposition value has a
// parameter "name*" or "name*N" (RFC 2231 §3, §4), in any case; quoted
// strings are skipped.
func hasExtendedName(v string) bool {
	inQuote, esc := false, false
	start := -1 // start of the current parameter's name
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote && esc:
			esc = false
		case inQuote && c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == ';':
			start = i + 1
		case c == '=' && start >= 0:
			key := strings.TrimSpace(v[start:i])
			if len(key) >= len("name*") && strings.EqualFold(key[:len("name*")], "name*") {
				return true
			}
			start = -1
		}
	}
	return false
}

// kmpCounter counts the occurrences of a pattern, overlapping ones
// included, in a stream written to it in pieces of any size
// (Knuth–Morris–Pratt).
type kmpCounter struct {
	pat  string
	fail []int // fail[i]: the longest proper border of pat[:i+1]
	k    int   // bytes of pat matched
	n    int   // occurrences
}

func newKMPCounter(pat string) kmpCounter {
	fail := make([]int, len(pat))
	for i, k := 1, 0; i < len(pat); i++ {
		for k > 0 && pat[i] != pat[k] {
			k = fail[k-1]
		}
		if pat[i] == pat[k] {
			k++
		}
		fail[i] = k
	}
	return kmpCounter{pat: pat, fail: fail}
}

func (c *kmpCounter) write(p []byte) {
	for _, b := range p {
		for c.k > 0 && b != c.pat[c.k] {
			c.k = c.fail[c.k-1]
		}
		if b == c.pat[c.k] {
			c.k++
		}
		if c.k == len(c.pat) {
			c.n++
			c.k = c.fail[c.k-1]
		}
	}
}
