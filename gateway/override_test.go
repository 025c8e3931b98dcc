package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// scanSplits scans body cut in two at every place with a fresh scanner of
// newScanner, and checks that it finds the override name (want) each time.
func scanSplits(t *testing.T, newScanner func() fieldScanner, body string, want bool) {
	t.Helper()
	for cut := 0; cut <= len(body); cut++ {
		s := newScanner()
		s.scan([]byte(body[:cut]))
		s.scan([]byte(body[cut:]))
		s.end()
		if s.overrides() != want {
			t.Errorf("%q cut at %d: found %v, want %v", body, cut, s.overrides(), want)
		}
	}
}

// TestFormScannerSplits: the scanner finds the override name whatever
// the boundaries between the chunks a body arrives in.
func TestFormScannerSplits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"_method=PUT", true},
		{"a=1&_method=PUT", true},
		{"a=1&%5Fmethod=PUT", true},
		{"a=1&%5fMeThOd", true},
		{"_method[x]=1", true},
		{"++_method=1", true},
		{"a=1;.method=1", true},
		{"a=_method&b=%5Fmethod", false},
		{"_methods=1&x_method=1&method=1", false},
		{"%_method=1", false}, // a malformed escape is text: "%_method"
		{"_meth%zzod=1", false},
		{"_method%=1", false},
		{"", false},
	} {
		scanSplits(t, func() fieldScanner { return &formScanner{} }, tc.body, tc.want)
	}
}

// TestJSONScannerSplits: a JSON body's top-level member names are found
// whatever the chunks the body arrives in; names deeper down, values and
// members of a top-level array are not names the override is read from.
func TestJSONScannerSplits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"_method":"PUT"}`, true},
		{` { "a" : 1 , "_METHOD" : "PUT" }`, true},
		{`{"\u005fmethod":"PUT"}`, true},
		{`{"_meth\u006fd":"PUT"}`, true},
		{`{"a":"x\"y","_method":1}`, true},
		{"\xef\xbb\xbf{\"_method\":1}", true},
		{`{"a":{"_method":"PUT"}}`, false},
		{`{"a":["_method"],"b":"_method"}`, false},
		{`[{"_method":"PUT"}]`, false},
		{`{"_methods":1,"x_method":2}`, false},
		{`{"a":"_method"}`, false},
		{`{"\u005gmethod":1}`, false},
		{``, false},
	} {
		scanSplits(t, func() fieldScanner { return &jsonScanner{} }, tc.body, tc.want)
	}
}

func TestIsFormBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ctype []string
		want  bool
	}{
		{nil, true},
		{[]string{"application/x-www-form-urlencoded"}, true},
		{[]string{" APPLICATION/X-WWW-FORM-URLENCODED ;charset=utf-8"}, true},
		{[]string{"application/json", "application/x-www-form-urlencoded"}, true},
		{[]string{"application/json"}, false},
		{[]string{"text/plain"}, false},
	} {
		h := http.Header{}
		for _, v := range tc.ctype {
			h.Add("Content-Type", v)
		}
		if got := isFormBody(h); got != tc.want {
			t.Errorf("isFormBody(%q) = %v, want %v", tc.ctype, got, tc.want)
		}
	}
}

// TestDelimiterCounterSplits: the delimiter count of a multipart body is
// the same whatever the chunks it arrives in, overlapping occurrences
// included.
func TestDelimiterCounterSplits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pat, text string
		want      int
	}{
		{"--b", "--b\r\nx\r\n--b--\r\n", 2},
		{"--a--a", "--a--a--a--a", 3},
		{"---", "-----", 3},
		{"--b", "-b--", 0},
		{"--boundary", "", 0},
	} {
		for cut := 0; cut <= len(tc.text); cut++ {
			c := newKMPCounter(tc.pat)
			c.write([]byte(tc.text[:cut]))
			c.write([]byte(tc.text[cut:]))
			if c.n != tc.want {
				t.Errorf("%q in %q cut at %d: %d, want %d", tc.pat, tc.text, cut, c.n, tc.want)
			}
		}
	}
}

// TestMultipartStreamPassesOnlyScanned: a multipart body past the
// read-ahead passes on only what mime/multipart has parsed, whatever the
// pieces the client's body arrives in: a part naming the override field
// never reaches the upstream, not even before the body is cut.
func TestMultipartStreamPassesOnlyScanned(t *testing.T) {
	t.Parallel()
	const b = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
	part := func(d, v string) string { return "--" + b + "\r\nContent-Disposition: " + d + "\r\n\r\n" + v + "\r\n" }
	for _, size := range []int{formReadAhead + 1000, formReadAhead + 5000, 3 * formReadAhead} {
		body := part(`form-data; name="file"; filename="scan.bin"`, strings.Repeat("x", size)) + part(`form-data; name="_method"`, "DELETE") + "--" + b + "--\r\n"
		for name, src := range map[string]func() io.Reader{
			"whole":    func() io.Reader { return strings.NewReader(body) },
			"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
			"halves":   func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) },
		} {
			f := newFormStream(io.NopCloser(src()), bodyMultipart, b)
			out, err := io.ReadAll(f)
			if !errors.Is(err, errMethodOverride) {
				t.Errorf("%d bytes, %s: error %v, want the override refused", size, name, err)
			}
			if strings.Contains(string(out), "_method") {
				t.Errorf("%d bytes, %s: the override part was passed on (%d of %d bytes)", size, name, len(out), len(body))
			}
		}
	}
}
