package page

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeReturnPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
	}{
		{"/", "/"},
		{"/app/", "/app/"},
		{"/app/chart?id=7&tab=notes", "/app/chart?id=7&tab=notes"},
		{"/search?q=a%20b", "/search?q=a%20b"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"/app/#section", "/app/#section"},
		{"", "/"},
		{"app", "/"},
		{"//evil.example", "/"},
		{"//evil.example/path", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/\\/evil.example", "/"},
		{"/%09/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%0D%0ALocation:%20https://evil", "/"},
		{"/%00", "/"},
		{"/%7f", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"/%2f/evil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%255Cevil.example", "/"},
		{"/%252F%252Fevil.example", "/"},
		{"/%25252F%25252Fevil.example", "/"},
		{"/%zz", "/"},
		{"https:evil.example", "/"},
		{"https://evil.example", "/"},
		{"http://gw.hospital.example.evil.example/", "/"},
		{"//gw.hospital.example.evil.example/", "/"},
		{"user@evil.example", "/"},
		{"//user@evil.example", "/"},
		{"/user@evil.example", "/user@evil.example"}, // a path, not userinfo
		{"javascript:alert(1)", "/"},
		{"JaVaScRiPt:alert(1)", "/"},
		{"data:text/html,x", "/"},
		{" /app", "/"},
		{"/app /x", "/"},
		{"/\tapp", "/"},
		{"/app\n", "/"},
		{"/é", "/"},
		{"/" + strings.Repeat("a", maxReturnLen), "/"},
	}
	for _, tc := range cases {
		if got := SafeReturnPath(tc.in); got != tc.want {
			t.Errorf("SafeReturnPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// returnIsSameOrigin is the property SafeReturnPath guarantees: resolved
// against the gateway's origin, the result stays on that origin.
func returnIsSameOrigin(t *testing.T, in, out string) {
	if out == "/" {
		return
	}
	if out != in {
		t.Fatalf("SafeReturnPath(%q) = %q: rewritten instead of kept or refused", in, out)
	}
	base, _ := url.Parse("https://gw.hospital.example/app/")
	ref, err := url.Parse(out)
	if err != nil {
		t.Fatalf("accepted %q that does not parse: %v", out, err)
	}
	if res := base.ResolveReference(ref); res.Host != "gw.hospital.example" || res.Scheme != "https" || res.User != nil {
		t.Fatalf("accepted %q resolves to %s", out, res)
	}
	if strings.HasPrefix(out, "//") || strings.ContainsAny(out, "\\\t\r\n ") {
		t.Fatalf("accepted %q", out)
	}
	// A browser treats backslashes and stripped tab/newline as slashes.
	for d, i := out, 0; i < 4; i++ {
		nd, err := url.PathUnescape(d)
		if err != nil || nd == d {
			break
		}
		d = nd
		if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") || strings.ContainsAny(d, "\\\t\r\n") {
			t.Fatalf("accepted %q decodes to %q", out, d)
		}
	}
	// And the redirect it becomes keeps the origin.
	req, _ := http.NewRequest("GET", "https://gw.hospital.example/.telegate/callback/x", nil)
	loc, err := req.URL.Parse(out)
	if err != nil || loc.Host != "gw.hospital.example" {
		t.Fatalf("redirect to %q leaves the origin", out)
	}
}

func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{"/", "/app/?a=b", "//evil", "/\\evil", "/%09/evil", "https:evil", "user@evil",
		"javascript:alert(1)", "/%2F%2Fevil", "/%252F%252Fevil", "/a#b", "/caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SafeReturnPath(in)
		if !utf8.ValidString(out) && out != in {
			t.Fatalf("invalid output %q", out)
		}
		returnIsSameOrigin(t, in, out)
	})
}
