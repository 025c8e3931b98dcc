package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/telegate/telegate/scope"
)

// MethodOverrideParam is the form field and query parameter that
// frameworks (Rack::MethodOverride, Laravel, Symfony, Express
// method-override) read as the request's method in place of the one sent.
// An upstream that honours it would run another method than the one the
// route's methods rule admitted, so telegate refuses it (400) in a query
// and in a form body, whatever the route's inspection setting.
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
// ending at '[' ("_method[]" is "_method" to PHP and Rack). It keeps the
// first 8 bytes, enough to tell MethodOverrideParam.
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
	case b == '[':
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

// isFormBody reports whether an upstream may parse the body as form
// fields: a Content-Type of application/x-www-form-urlencoded (any case,
// any parameters), or none at all (Rack reads a POST without one as a
// form).
func isFormBody(h http.Header) bool {
	cts := h.Values("Content-Type")
	if len(cts) == 0 {
		return true
	}
	for _, ct := range cts {
		mt, _, _ := strings.Cut(ct, ";")
		mt = strings.TrimSpace(mt)
		if mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded") {
			return true
		}
	}
	return false
}

// refuseMethodOverride refuses, with 400, a form body (isFormBody) whose
// fields name MethodOverrideParam in any of its spellings
// (isMethodOverrideName; "%5Fmethod", "_METHOD", "_method[]"). The query
// is checked by canonicalise.
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
		if r.Body == nil || r.Body == http.NoBody || !isFormBody(r.Header) {
			next.ServeHTTP(w, r)
			return
		}
		head, err := io.ReadAll(io.LimitReader(r.Body, formReadAhead+1))
		if err != nil {
			g.proxyError(w, r, err)
			return
		}
		f := &formStream{src: r.Body, pending: head}
		f.sc.scan(head)
		if len(head) <= formReadAhead {
			f.sc.end()
		}
		if f.sc.found {
			refuse(w, r, http.StatusBadRequest, scope.ReasonBodyMethodOverride)
			return
		}
		if len(head) <= formReadAhead {
			r.Body = readCloser{bytes.NewReader(head), r.Body}
		} else {
			stateFrom(r.Context()).form = f
			r.Body = f
		}
		next.ServeHTTP(w, r)
	})
}

type readCloser struct {
	io.Reader
	io.Closer
}

// formStream is a form body past formReadAhead: it scans what it passes
// on and holds back the last byte until the end is scanned.
type formStream struct {
	src     io.ReadCloser
	sc      formScanner
	pending []byte // scanned, not yet returned
	buf     []byte
	eof     bool
	err     error
	found   atomic.Bool
}

func (f *formStream) Read(p []byte) (int, error) {
	for {
		if f.err != nil {
			return 0, f.err
		}
		avail := len(f.pending)
		if !f.eof {
			avail-- // held back
		}
		if avail > 0 {
			n := copy(p, f.pending[:avail])
			f.pending = f.pending[n:]
			return n, nil
		}
		if f.eof {
			return 0, io.EOF
		}
		if f.buf == nil {
			f.buf = make([]byte, 32<<10)
		}
		held := copy(f.buf, f.pending) // 0 or 1 byte
		n, err := f.src.Read(f.buf[held:])
		f.sc.scan(f.buf[held : held+n])
		f.pending = f.buf[:held+n]
		switch {
		case err == io.EOF:
			f.eof = true
			f.sc.end()
		case err != nil:
			f.err = err
		}
		if f.sc.found {
			f.found.Store(true)
			f.err = errMethodOverride
		}
	}
}

func (f *formStream) Close() error { return f.src.Close() }

// named reports whether the body was cut for naming MethodOverrideParam.
func (f *formStream) named() bool { return f != nil && f.found.Load() }
