package gateway

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/telegate/telegate/scope"
)

// MethodOverrideParam is the form field and query parameter that
// frameworks (Rack::MethodOverride, Laravel, Symfony, Express
// method-override) read as the request's method in place of the one sent.
// An upstream that honours it would run another method than the one the
// route's methods rule admitted, so telegate refuses it (400) in a query,
// in a form body and among the top-level names of a JSON body, whatever
// the route's inspection setting.
const MethodOverrideParam = "_method"

// formReadAhead is how much of a form body is read before the request is
// forwarded: a form body up to this size that names MethodOverrideParam
// is refused before the upstream is contacted.
const formReadAhead = 64 << 10

// errMethodOverride ends a form body that names MethodOverrideParam.
var errMethodOverride = errors.New("form body names " + MethodOverrideParam)

// nameFold folds a form or query field name, byte by byte as it is
// decoded, the ways upstreams read it: ASCII letters in lower case,
// leading spaces dropped and ' ' and '.' read as '_' (PHP), the name
// ending at '[' ("_method[]" is "_method" to PHP and Rack) and at NUL
// (PHP registers a decoded name as a C string: "_method%00x" is
// "_method"). It keeps the first 8 bytes, enough to tell
// MethodOverrideParam.
type nameFold struct {
	buf    [8]byte
	n      int
	long   bool // more than len(buf) bytes
	closed bool // '[' seen
}

func (k *nameFold) add(b byte) {
	switch {
	case k.closed:
		return
	case b == ' ' && k.n == 0 && !k.long:
		return
	case b == '[' || b == 0:
		k.closed = true
		return
	case 'A' <= b && b <= 'Z':
		b += 'a' - 'A'
	case b == ' ' || b == '.':
		b = '_'
	}
	if k.n == len(k.buf) {
		k.long = true
		return
	}
	k.buf[k.n] = b
	k.n++
}

func (k *nameFold) isOverride() bool {
	return !k.long && string(k.buf[:k.n]) == MethodOverrideParam
}

// isMethodOverrideName reports whether a decoded field name is read as
// MethodOverrideParam by some upstream (nameFold): "_method", "_METHOD",
// " _method", ".method", "_method[]".
func isMethodOverrideName(name string) bool {
	var k nameFold
	for i := 0; i < len(name); i++ {
		k.add(name[i])
	}
	return k.isOverride()
}

// formScanner finds MethodOverrideParam among the field names of an
// application/x-www-form-urlencoded body (WHATWG URL §5.1) as it streams
// by, whatever the chunk boundaries: names end at '=', '&', ';' (read as
// a separator by some parsers) or the end of the body; '+' is a space;
// "%XX" is decoded (a malformed escape is kept as text).
type formScanner struct {
	inValue bool
	pct     int  // 0, or the bytes of "%X" seen (1 or 2)
	hi      byte // the first hex digit after '%'
	name    nameFold
	found   bool
}

func (s *formScanner) scan(p []byte) {
	for _, c := range p {
		if s.inValue {
			if c == '&' || c == ';' {
				s.inValue = false
				s.name = nameFold{}
			}
			continue
		}
		switch s.pct {
		case 1:
			if ishex(c) {
				s.hi, s.pct = c, 2
				continue
			}
			s.pct = 0
			s.name.add('%')
		case 2:
			s.pct = 0
			if ishex(c) {
				s.name.add(unhex(s.hi)<<4 | unhex(c))
				continue
			}
			s.name.add('%')
			s.name.add(s.hi)
		}
		switch c {
		case '%':
			s.pct = 1
		case '+':
			s.name.add(' ')
		case '=', '&', ';':
			s.endName()
			s.inValue = c == '='
		default:
			s.name.add(c)
		}
	}
}

// end is the end of the body: the last name ends there.
func (s *formScanner) end() {
	if !s.inValue {
		switch s.pct {
		case 1:
			s.name.add('%')
		case 2:
			s.name.add('%')
			s.name.add(s.hi)
		}
		s.pct = 0
		s.endName()
	}
}

func (s *formScanner) endName() {
	if s.name.isOverride() {
		s.found = true
	}
	s.name = nameFold{}
}

func (s *formScanner) overrides() bool { return s.found }

// jsonScanner finds MethodOverrideParam among the member names of a JSON
// body's top-level object (RFC 8259 §4) as it streams by, whatever the
// chunk boundaries: Laravel reads a JSON body's top-level members as the
// request's form fields, "_method" among them, and Express's
// method-override is commonly told to read req.body._method. Names are
// decoded ("\u005fmethod") and folded as form field names are
// (nameFold). The scanner does not validate the JSON: whatever is not a
// top-level name is skipped by its brackets and strings.
type jsonScanner struct {
	started bool // the first byte that is not whitespace was seen
	object  bool // the body is an object
	depth   int  // brackets open outside strings
	inStr   bool
	isName  bool // the string being read may be a top-level name
	esc     int  // 0; 1 after '\'; 2-5: digits of "\uXXXX" read + 1
	u       rune
	name    nameFold
	colon   bool // a top-level string that folds to the override ended; a ':' makes it a name
	found   bool
}

func (s *jsonScanner) scan(p []byte) {
	for _, c := range p {
		if s.inStr {
			s.stringByte(c)
			continue
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
			!s.started && (c == 0xef || c == 0xbb || c == 0xbf) { // a byte order mark
			continue
		}
		if s.colon && c == ':' {
			s.found = true
		}
		s.colon = false
		if !s.started {
			s.started, s.object = true, c == '{'
		}
		switch c {
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
		case '"':
			s.inStr, s.isName, s.name = true, s.object && s.depth == 1, nameFold{}
		}
	}
}

// stringByte reads c inside a string.
func (s *jsonScanner) stringByte(c byte) {
	switch {
	case s.esc == 1:
		s.esc = 0
		switch c {
		case 'u':
			s.esc, s.u = 2, 0
			return
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		s.nameByte(c)
	case s.esc >= 2:
		if !ishex(c) {
			s.esc = 0 // malformed: not a name any parser reads
			s.nameByte(0xff)
			return
		}
		s.u = s.u<<4 | rune(unhex(c))
		if s.esc++; s.esc == 6 {
			s.esc = 0
			if s.u < 0x80 {
				s.nameByte(byte(s.u))
			} else {
				s.nameByte(0xff)
			}
		}
	case c == '\\':
		s.esc = 1
	case c == '"':
		s.inStr = false
		s.colon = s.isName && s.name.isOverride()
	default:
		s.nameByte(c)
	}
}

func (s *jsonScanner) nameByte(c byte) {
	if s.isName {
		s.name.add(c)
	}
}

func (s *jsonScanner) end()            {}
func (s *jsonScanner) overrides() bool { return s.found }

// fieldScanner finds MethodOverrideParam in a body as it streams by:
// formScanner, jsonScanner.
type fieldScanner interface {
	scan(p []byte)
	// end is the end of the body.
	end()
	overrides() bool
}

// bodyKind is how an upstream may read a request body as form fields.
type bodyKind uint8

const (
	bodyOther     bodyKind = iota // not a form
	bodyForm                      // application/x-www-form-urlencoded, or untyped
	bodyMultipart                 // multipart/*, with its boundary
	bodyAmbiguous                 // a multipart type that cannot be read unambiguously
	bodyJSON                      // a JSON type (".../json", "...+json"), read as fields by some
)

// maxBoundary is the longest multipart boundary, RFC 2046 §5.1.1.
const maxBoundary = 70

// formKind reports whether an upstream may parse the body as form fields
// and how: a Content-Type of application/x-www-form-urlencoded (any case,
// any parameters), or none at all (Rack reads a POST without one as a
// form), is bodyForm; multipart/form-data, and every other multipart/*
// type (Rack parses multipart/mixed and multipart/related as forms too),
// is bodyMultipart with its boundary parameter. A JSON type (isJSONType)
// is bodyJSON. A multipart type beside
// another Content-Type field, without a boundary of 1 to 70 characters
// (RFC 2046 §5.1.1) or with parameters mime.ParseMediaType refuses
// (duplicates among them) is bodyAmbiguous: the boundary another parser
// would use is not known.
func formKind(h http.Header) (bodyKind, string) {
	cts := h.Values("Content-Type")
	if len(cts) == 0 {
		return bodyForm, ""
	}
	kind := bodyOther
	for _, ct := range cts {
		// The media type ends at ';', and for PHP and Rack at ',' or a
		// space too: "application/x-www-form-urlencoded,text/plain" is a
		// form to them.
		mt := strings.TrimSpace(ct)
		if i := strings.IndexAny(mt, ";, \t"); i >= 0 {
			mt = mt[:i]
		}
		switch {
		case len(mt) >= len("multipart/") && strings.EqualFold(mt[:len("multipart/")], "multipart/"):
			if len(cts) != 1 {
				return bodyAmbiguous, ""
			}
			_, params, err := mime.ParseMediaType(ct)
			b := params["boundary"]
			if err != nil || b == "" || len(b) > maxBoundary {
				return bodyAmbiguous, ""
			}
			return bodyMultipart, b
		case mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded"):
			kind = bodyForm
		case kind == bodyOther && isJSONType(mt):
			kind = bodyJSON
		}
	}
	return kind, ""
}

// isJSONType reports whether a media type (without parameters) is one
// that frameworks parse as JSON: it names "/json" or "+json", in any case
// (Laravel's isJson, RFC 6839 §3.1 suffixes).
func isJSONType(mt string) bool {
	l := strings.ToLower(mt)
	return strings.Contains(l, "/json") || strings.Contains(l, "+json")
}

// isFormBody reports whether formKind reads h as a urlencoded form.
func isFormBody(h http.Header) bool {
	k, _ := formKind(h)
	return k == bodyForm
}

// errMultipart ends a multipart body that cannot be read unambiguously.
var errMultipart = errors.New("multipart body cannot be read unambiguously")

// refusalReason is the reason a body scan refused err for, or "" when
// err is not a refusal (a read error of the client's body).
func refusalReason(err error) scope.Reason {
	switch {
	case errors.Is(err, errMethodOverride):
		return scope.ReasonBodyMethodOverride
	case errors.Is(err, errMultipart):
		return scope.ReasonBodyMultipart
	}
	return ""
}

// refuseMethodOverride refuses, with 400, a form body (formKind) whose
// fields name MethodOverrideParam in any of its spellings
// (isMethodOverrideName; "%5Fmethod", "_METHOD", "_method[]"): the names
// of a urlencoded body (formScanner), the part names of a multipart
// body (multipartScan) and the top-level member names of a JSON body
// (jsonScanner). A multipart body that cannot be read
// unambiguously is refused too (400, scope.ReasonBodyMultipart), and so is
// such a body content-coded, in a charset that is not ASCII-compatible
// (readableCoding), or JSON that starts as UTF-16 or UTF-32 (wideJSON)
// (400, scope.ReasonBodyEncoding). The
// query is checked by canonicalise.
//
// The body is never held whole: the first formReadAhead bytes are read
// and scanned before the request is forwarded, so a body up to that size
// is refused before the upstream hears of it. The rest of a longer body
// is scanned as it streams to the upstream, and its last byte is held back
// until the end has been scanned: a body found to name the field is cut
// before it is complete (the upstream gets an incomplete request it cannot
// parse as a form) and the client gets 400.
func (g *generation) refuseMethodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		kind, boundary := formKind(r.Header)
		if kind == bodyOther {
			next.ServeHTTP(w, r)
			return
		}
		if kind == bodyAmbiguous {
			refuse(w, r, http.StatusBadRequest, scope.ReasonBodyMultipart)
			return
		}
		if !readableCoding(r.Header) {
			refuse(w, r, http.StatusBadRequest, scope.ReasonBodyEncoding)
			return
		}
		f := newFormStream(r.Body, kind, boundary)
		for !f.done && f.err == nil && len(f.pending) <= formReadAhead {
			f.more()
		}
		if f.err != nil {
			if reason := refusalReason(f.err); reason != "" {
				refuse(w, r, http.StatusBadRequest, reason)
			} else {
				g.proxyError(w, r, f.err)
			}
			return
		}
		if kind == bodyJSON && wideJSON(f.pending) {
			refuse(w, r, http.StatusBadRequest, scope.ReasonBodyEncoding)
			return
		}
		if f.done {
			r.Body = readCloser{bytes.NewReader(f.pending), r.Body}
		} else {
			stateFrom(r.Context()).form = f
			r.Body = f
		}
		next.ServeHTTP(w, r)
	})
}

// readableCoding reports whether a body with header h is one the body
// scanners read as an upstream may: no Content-Encoding but "identity"
// (an upstream that inflates a gzip body would read fields the scanner
// never saw), and no charset parameter naming a charset that is not
// ASCII-compatible (asciiCharset), in which "_method" is other bytes.
func readableCoding(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	for _, ct := range h.Values("Content-Type") {
		_, params, err := mime.ParseMediaType(ct)
		if err != nil {
			if strings.Contains(strings.ToLower(ct), "charset") {
				return false
			}
			continue
		}
		if cs, ok := params["charset"]; ok && !asciiCharset(cs) {
			return false
		}
	}
	return true
}

// asciiCharset reports whether a charset name (RFC 2978) is one whose
// ASCII characters are their ASCII bytes: UTF-8, US-ASCII, ISO 8859 and
// the Windows-125x code pages, in any case.
func asciiCharset(cs string) bool {
	cs = strings.ToLower(strings.TrimSpace(cs))
	switch cs {
	case "utf-8", "utf8", "us-ascii", "ascii", "latin1":
		return true
	}
	return strings.HasPrefix(cs, "iso-8859-") || strings.HasPrefix(cs, "windows-125")
}

// wideJSON reports whether a JSON body starts as UTF-16 or UTF-32 text
// (a NUL among its first two bytes, or a UTF-16 byte order mark), which
// parsers that detect the encoding (RFC 4627 §3) decode, and which the
// scanner would not read.
func wideJSON(start []byte) bool {
	if len(start) >= 2 && (start[0] == 0xff && start[1] == 0xfe || start[0] == 0xfe && start[1] == 0xff) {
		return true
	}
	for i := 0; i < len(start) && i < 2; i++ {
		if start[i] == 0 {
			return true
		}
	}
	return false
}

type readCloser struct {
	io.Reader
	io.Closer
}

// formStream is a form body being scanned: it passes on only what has
// been scanned, and holds back its last held bytes until the whole body
// is.
type formStream struct {
	src     io.ReadCloser
	pending []byte // read (and, but for the last held bytes, scanned), not yet returned
	held    int    // bytes of pending held back until done
	done    bool   // the whole body is read and scanned
	err     error
	refused atomic.Pointer[scope.Reason]

	// more reads on: the body is read and scanned a step further (into
	// pending), or done is set, or err.
	more func()

	// store holds pending, reused as the body streams by.
	store []byte

	// A urlencoded or JSON body.
	fields fieldScanner
	buf    []byte
}

// push appends p, read and scanned, to pending, in store: moved to the
// front of store when there is no room after it, store grown when
// there is none at all.
func (f *formStream) push(p []byte) {
	if cap(f.pending)-len(f.pending) >= len(p) {
		f.pending = append(f.pending, p...)
		return
	}
	need := len(f.pending) + len(p)
	if need > cap(f.store) {
		store := make([]byte, 0, max(2*need, 4<<10))
		f.pending = append(store, f.pending...)
		f.store = store
	} else {
		f.pending = f.store[:copy(f.store[:cap(f.store)], f.pending)]
	}
	f.pending = append(f.pending, p...)
}

// newFormStream scans src as a body of kind (bodyForm, bodyJSON, or
// bodyMultipart with its boundary).
func newFormStream(src io.ReadCloser, kind bodyKind, boundary string) *formStream {
	f := &formStream{src: src, held: 1}
	switch kind {
	case bodyMultipart:
		f.more = newMultipartScan(f, boundary).step
		f.held = multipartHeld
	case bodyJSON:
		f.fields = &jsonScanner{}
		f.more = f.moreForm
	default:
		f.fields = &formScanner{}
		f.more = f.moreForm
	}
	return f
}

// fail ends the stream with err.
func (f *formStream) fail(err error) {
	f.err = err
	if reason := refusalReason(err); reason != "" {
		f.refused.Store(&reason)
	}
}

// moreForm reads and scans the next chunk of a urlencoded or JSON body.
func (f *formStream) moreForm() {
	if f.buf == nil {
		f.buf = make([]byte, 32<<10)
	}
	n, err := f.src.Read(f.buf)
	f.fields.scan(f.buf[:n])
	f.push(f.buf[:n])
	switch {
	case err == io.EOF:
		f.fields.end()
		f.done = true
	case err != nil:
		f.fail(err)
	}
	if f.fields.overrides() {
		f.fail(errMethodOverride)
	}
}

func (f *formStream) Read(p []byte) (int, error) {
	for {
		if f.err != nil {
			return 0, f.err
		}
		avail := len(f.pending)
		if !f.done {
			avail -= f.held
		}
		if avail > 0 {
			n := copy(p, f.pending[:avail])
			f.pending = f.pending[n:]
			return n, nil
		}
		if f.done {
			return 0, io.EOF
		}
		f.more()
	}
}

func (f *formStream) Close() error { return f.src.Close() }

// refusal is why the body was cut (scope.ReasonBodyMethodOverride,
// scope.ReasonBodyMultipart), or "".
func (f *formStream) refusal() scope.Reason {
	if f == nil {
		return ""
	}
	if r := f.refused.Load(); r != nil {
		return *r
	}
	return ""
}
