package gateway

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/pathtext"
)

func TestCanonicalPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string
		semi bool
		err  error
	}{
		{"/", "/", false, nil},
		{"/a/b/", "/a/b/", false, nil},
		{"/%61dmin", "/admin", false, nil},
		{"/%7Euser", "/~user", false, nil},
		{"/a%22b", "/a%22b", false, nil},
		{"/a%3cb", "/a%3Cb", false, nil},
		{"/a%21b", "/a%21b", false, nil},
		{"/ADMIN", "/ADMIN", false, nil},
		{"/a;b", "/a;b", true, nil},
		{"/caf\xc3\xa9", "/caf%C3%A9", false, nil},
		{"/a\"b", "/a%22b", false, nil},
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", false, nil},
		{"", "", false, ErrNotOriginForm},
		{"a/b", "", false, ErrNotOriginForm},
		{"*", "", false, ErrNotOriginForm},
		{"/a?b", "", false, ErrNotOriginForm}, // the query is cut off before
		{"//a", "", false, ErrEmptySegment},
		{"/a//b", "", false, ErrEmptySegment},
		{"/a/./b", "", false, ErrDotSegment},
		{"/a/../b", "", false, ErrDotSegment},
		{"/a/..", "", false, ErrDotSegment},
		{"/.", "", false, ErrDotSegment},
		{"/a/.b", "/a/.b", false, nil},
		{"/a/..b", "/a/..b", false, nil},
		{"/%2e%2e/a", "", false, ErrEncodedSeparator},
		{"/%2E/a", "", false, ErrEncodedSeparator},
		{"/.%2e/a", "", false, ErrEncodedSeparator},
		{"/a%2fb", "", false, ErrEncodedSeparator},
		{"/a%2Fb", "", false, ErrEncodedSeparator},
		{"/a%5cb", "", false, ErrEncodedSeparator},
		{"/a%5Cb", "", false, ErrEncodedSeparator},
		{"/a\\b", "", false, ErrBackslash},
		{"/a%00", "", false, ErrControlChar},
		{"/a\x00", "", false, ErrControlChar},
		{"/a%0a", "", false, ErrControlChar},
		{"/a\x7f", "", false, ErrControlChar},
		{"/a%7F", "", false, ErrControlChar},
		{"/a#b", "", false, ErrFragment},
		{"/a%", "", false, ErrBadPercent},
		{"/a%4", "", false, ErrBadPercent},
		{"/a%zz", "", false, ErrBadPercent},
		// Delimiters servers decode, trim or rewrite.
		{"/a%20b", "", false, ErrWhitespace},
		{"/a%3fb", "", false, ErrEncodedDelimiter},
		{"/a%3Bb", "", false, ErrEncodedDelimiter},
		{"/a%23b", "", false, ErrEncodedDelimiter},
		{"/a%25b", "", false, ErrDoubleEncoding},
		{"/a%252e", "", false, ErrDoubleEncoding},
		{"/a b", "", false, ErrWhitespace},
		{"/a%09", "", false, ErrControlChar},
		{"/admin./x", "", false, ErrTrailingDot},
		{"/admin.", "", false, ErrTrailingDot},
		{"/a/.../b", "", false, ErrTrailingDot},
		{"/a/b.c/", "/a/b.c/", false, nil},
		{"/a/", "/a/", false, nil},
		// Unicode.
		{"/caf%C3%A9", "/caf%C3%A9", false, nil},
		{"/%E6%97%A5%E6%9C%AC", "/%E6%97%A5%E6%9C%AC", false, nil},
		{"/%C0%AF", "", false, ErrInvalidUTF8},
		{"/%ED%A0%80", "", false, ErrInvalidUTF8},
		{"/a\xff", "", false, ErrInvalidUTF8},
		{"/%EF%BC%8Fadmin", "", false, ErrNotNormalised}, // fullwidth solidus
		{"/%EF%BD%81dmin", "", false, ErrNotNormalised},  // fullwidth a
		{"/%EF%AC%81le", "", false, ErrNotNormalised},    // ligature fi
		{"/x%C2%B2", "", false, ErrNotNormalised},        // superscript two
		{"/cafe%CC%81", "", false, ErrNotNormalised},     // decomposed é
		{"/a%E2%80%8Bb", "", false, ErrInvisible},        // zero-width space
		{"/a%E2%80%8D", "", false, ErrInvisible},         // zero-width joiner
		{"/%EF%BB%BFa", "", false, ErrInvisible},         // byte order mark
		{"/a%C2%A0", "", false, ErrInvisible},            // no-break space
		{"/a%E2%80%AEb", "", false, ErrInvisible},        // right-to-left override
		{"/a%E2%81%A6b", "", false, ErrInvisible},        // left-to-right isolate
		{"/a%C2%ADb", "", false, ErrInvisible},           // soft hyphen
		{"/a%E3%80%80b", "", false, ErrInvisible},        // ideographic space
		{"/a%C2%85b", "", false, ErrInvisible},           // next line (C1 control)
		{"/a\xe2\x80\x8bb", "", false, ErrInvisible},     // raw zero-width space
	}
	for _, tc := range cases {
		got, semi, err := CanonicalPath(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want || semi != tc.semi {
			t.Errorf("CanonicalPath(%q) = %q, %v, %v; want %q, %v, %v", tc.in, got, semi, err, tc.want, tc.semi, tc.err)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"app.example.test", "app.example.test"},
		{"APP.Example.Test", "app.example.test"},
		{"app.example.test.", "app.example.test"},
		{"app.example.test:8443", "app.example.test"},
		{"app.example.test.:443", "app.example.test"},
		{"127.0.0.1:443", "127.0.0.1"},
		{"[::1]:443", "::1"},
		{"[::1]", "::1"},
		{"", ""},
		{"a b", ""},
		{"a..b", ""},
		{".a", ""},
		{"a:b", ""},
		{"[::1", ""},
		{"[1.2.3.4]", ""},
		{"a/b", ""},
		{"a@b", ""},
	}
	for _, tc := range cases {
		got, err := CanonicalHost(tc.in)
		if tc.want == "" && err == nil || tc.want != "" && (err != nil || got != tc.want) {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// fuzzRouter has routes whose prefixes differ from each other only past
// a case fold, one of them with a case-insensitive upstream.
func fuzzRouter(t testing.TB) *router {
	rt, err := newRouter(&config.Config{Routes: []config.Route{
		{ID: "root", Hosts: []string{"a.test"}, Path: "/"},
		{ID: "clinic", Hosts: []string{"a.test"}, Path: "/clinic/"},
		{ID: "admin", Hosts: []string{"a.test"}, Path: "/clinic/admin/"},
		{ID: "files", Hosts: []string{"a.test"}, Path: "/files/", UpstreamCaseInsensitive: true},
		{ID: "cafe", Hosts: []string{"a.test"}, Path: "/café/", NormalizeUnicodePaths: true},
		{ID: "strasse", Hosts: []string{"a.test"}, Path: "/strasse/"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// FuzzCanonicalPath checks the canonical form's properties: idempotent;
// no dot segments, no empty segments but a trailing one, no segment
// ending in '.' or a space; no encoded separators, delimiters, '%',
// spaces or controls; only pchar, "/" and upper-case percent-encodings;
// decoded text valid UTF-8, in NFC and NFKC, with no invisible
// characters; an NFKC-normalised path is canonical itself. And the
// router: paths that are the same with letter case folded are never
// routed, without a refusal, to different routes (a route whose upstream
// is case-insensitive takes every case).
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/%61dmin", "/a/../b", "/%2e%2e", "/a;b", "/caf\xc3\xa9", "/a%2520", "//", "/a%7e", "/\x00", "/a%zz",
		"/CLINIC/x", "/clinic/ADMIN/", "/Files/x", "/stra%C3%9Fe/", "/CAF%C3%89/", "/%EF%BD%83linic/", "/a./", "/a%20", "/%C0%AF", "/a%E2%80%8B",
		"/caf%EF%BD%85/", "/%EF%BC%8Fadmin"} {
		f.Add(s)
	}
	rt := fuzzRouter(f)
	f.Fuzz(func(t *testing.T, in string) {
		if out, _, err := canonicalPathNFKC(in); err == nil {
			if again, _, err := canonicalPath(out); err != nil || again != out {
				t.Fatalf("NFKC form not canonical: %q → %q → %q, %v", in, out, again, err)
			}
		}
		out, _, err := CanonicalPath(in)
		if err != nil {
			return
		}
		again, _, err := CanonicalPath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
		if out[0] != '/' || strings.Contains(out, "//") {
			t.Fatalf("%q → %q: empty segment", in, out)
		}
		segs := strings.Split(out, "/")
		for _, seg := range segs {
			if strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
				t.Fatalf("%q → %q: segment %q ends in '.' or space", in, out, seg)
			}
		}
		lower := strings.ToLower(out)
		for _, bad := range []string{"%2e", "%2f", "%5c", "%3b", "%3f", "%23", "%25", "%20", "%00", "\\", "#", " "} {
			if strings.Contains(lower, bad) {
				t.Fatalf("%q → %q contains %q", in, out, bad)
			}
		}
		for i := 0; i < len(out); i++ {
			c := out[i]
			if c == '%' {
				if i+2 >= len(out) || !ishex(out[i+1]) || !ishex(out[i+2]) || strings.ToUpper(out[i+1:i+3]) != out[i+1:i+3] {
					t.Fatalf("%q → %q: bad escape at %d", in, out, i)
				}
				if v := unhex(out[i+1])<<4 | unhex(out[i+2]); isUnreserved(v) || v < 0x20 || v == 0x7f {
					t.Fatalf("%q → %q: needless or control escape at %d", in, out, i)
				}
				continue
			}
			if c != '/' && !isPchar(c) {
				t.Fatalf("%q → %q: byte %q outside pchar", in, out, c)
			}
		}
		text := decodePath(out)
		if !utf8.ValidString(text) || !norm.NFC.IsNormalString(text) || !norm.NFKC.IsNormalString(text) {
			t.Fatalf("%q → %q: decoded %q is not valid NFC/NFKC UTF-8", in, out, text)
		}
		for _, r := range text {
			if r > 0x7f && pathtext.Invisible(r) {
				t.Fatalf("%q → %q: invisible %U", in, out, r)
			}
		}
		// Case: every case variant that is canonical routes to the same
		// route, or is refused.
		route, reason := rt.pick("a.test", out, false)
		if reason != "" {
			return
		}
		for _, v := range []string{strings.ToUpper(out), pathtext.Fold(out), strings.ToUpper(pathtext.Fold(out)), strings.ToUpper(out[:len(out)/2]) + out[len(out)/2:]} {
			cv, _, err := CanonicalPath(v)
			if err != nil || pathtext.Fold(cv) != pathtext.Fold(out) {
				continue
			}
			r2, reason2 := rt.pick("a.test", cv, false)
			if reason2 == "" && r2 != route {
				t.Fatalf("%q routes to %v but its case variant %q to %v", out, routeID(route), cv, routeID(r2))
			}
		}
	})
}

func routeID(r *config.Route) string {
	if r == nil {
		return "(none)"
	}
	return r.ID
}

// TestCanonicalPathAllocations: a path that is already canonical ASCII
// costs no allocation, with or without escapes and ';'.
func TestCanonicalPathAllocations(t *testing.T) {
	for _, p := range []string{"/", "/clinic/patients/123/notes", "/a%22b/c;d=1/", "/~user/x:y@z!$&'()*+,=", "/api/v1/visits/abc-def_ghi.json"} {
		if n := testing.AllocsPerRun(200, func() {
			if _, _, err := CanonicalPath(p); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("CanonicalPath(%q): %.0f allocations, want 0", p, n)
		}
	}
	rt := fuzzRouter(t)
	for _, p := range []string{"/clinic/patients/123/notes", "/FILES/x", "/x/y/z"} {
		if n := testing.AllocsPerRun(200, func() { rt.pick("a.test", p, false) }); n != 0 {
			t.Errorf("pick(%q): %.0f allocations, want 0", p, n)
		}
	}
}

// TestCanonicalPathNFKC: a route that normalises Unicode paths gets the
// NFKC form, matched and forwarded; normalisation that would add a
// delimiter, invalid UTF-8 and invisible characters stay refused.
func TestCanonicalPathNFKC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"/%EF%BD%81dmin/", "/admin/", nil},              // fullwidth a
		{"/%EF%AC%81le", "/file", nil},                   // ligature fi
		{"/x%C2%B2", "/x2", nil},                         // superscript two
		{"/cafe%CC%81/", "/caf%C3%A9/", nil},             // decomposed é → NFC
		{"/caf%C3%A9/", "/caf%C3%A9/", nil},              // already NFKC
		{"/a/b", "/a/b", nil},                            // ASCII
		{"/%EF%BC%8Fadmin", "", ErrNotNormalised},        // fullwidth solidus would be '/'
		{"/a%EF%BC%8E%EF%BC%8E/x", "", ErrNotNormalised}, // fullwidth dots would be ".."
		{"/a%E2%80%A4", "", ErrNotNormalised},            // one dot leader would be '.'
		{"/%EF%BC%9Ax", "", ErrNotNormalised},            // fullwidth colon
		{"/%EF%BD%81%E2%80%8B", "", ErrInvisible},        // zero-width space
		{"/%EF%BD%81%C0%AF", "", ErrInvalidUTF8},         // overlong
		{"/%EF%BD%81/../x", "", ErrDotSegment},
	} {
		got, _, err := canonicalPathNFKC(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("canonicalPathNFKC(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, p := range []string{"/clinic/patients/123/notes", "/%61pi/v1/visits/abc%C3%A9def/x", "/caf%C3%A9/%E6%97%A5%E6%9C%AC"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := CanonicalPath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
