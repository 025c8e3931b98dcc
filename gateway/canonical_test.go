package gateway

import (
	"errors"
	"strings"
	"testing"
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
		{"/a%20b", "/a%20b", false, nil},
		{"/a%3fb", "/a%3Fb", false, nil},
		{"/a%25b", "/a%25b", false, nil},
		{"/ADMIN", "/ADMIN", false, nil},
		{"/a;b", "/a;b", true, nil},
		{"/caf\xc3\xa9", "/caf%C3%A9", false, nil},
		{"/a\"b", "/a%22b", false, nil},
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", false, nil},
		{"", "", false, ErrNotOriginForm},
		{"a/b", "", false, ErrNotOriginForm},
		{"*", "", false, ErrNotOriginForm},
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
		{"/a%252e", "/a%252e", false, nil}, // decoded once only: "%2e" text, not a dot
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

// FuzzCanonicalPath checks the canonical form's properties: idempotent,
// no dot segments, no empty segments, no encoded separators or controls,
// only pchar, "/" and upper-case percent-encodings.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/%61dmin", "/a/../b", "/%2e%2e", "/a;b", "/caf\xc3\xa9", "/a%2520", "//", "/a%7e", "/\x00", "/a%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
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
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q → %q: dot segment", in, out)
			}
		}
		lower := strings.ToLower(out)
		for _, bad := range []string{"%2e", "%2f", "%5c", "%00", "\\", "#"} {
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
	})
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, p := range []string{"/clinic/patients/123/notes", "/%61pi/v1/visits/abc%20def/x"} {
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
