package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func FuzzBearerFromRequest(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer x", "Basic dXNlcg==", "Bearer ", "Bearer a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, _ := http.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set("Authorization", v)
		}
		tok, present, ok := bearerFromRequest(r)
		if ok && (!present || tok == "" || strings.ContainsAny(tok, " \t\r\n\",;")) {
			t.Fatalf("%q → token %q present %v ok %v", v, tok, present, ok)
		}
		if !present && (ok || tok != "") {
			t.Fatalf("%q: not present yet ok", v)
		}
	})
}

func FuzzStripOwnCookies(f *testing.F) {
	s := &View{cookieName: "__Host-telegate", preCookie: "__Host-telegate-login"}
	for _, c := range []string{"__Host-telegate=abc; theme=dark", "a=1;__Host-telegate-login=x;b=2", "__HOST-TELEGATE=x", ";;", "theme"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, hdr string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", hdr)
		s.stripOwnCookies(r)
		for _, c := range r.Cookies() {
			if strings.EqualFold(c.Name, s.cookieName) || strings.EqualFold(c.Name, s.preCookie) {
				t.Fatalf("%q: own cookie %q kept in %q", hdr, c.Name, r.Header.Get("Cookie"))
			}
		}
		for _, line := range r.Header.Values("Cookie") {
			for _, part := range strings.Split(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				if strings.EqualFold(strings.TrimSpace(name), s.cookieName) || strings.EqualFold(strings.TrimSpace(name), s.preCookie) {
					t.Fatalf("%q: own cookie left in %q", hdr, line)
				}
			}
		}
	})
}

func TestStripOwnCookiesKeepsOthers(t *testing.T) {
	t.Parallel()
	s := &View{cookieName: "__Host-telegate", preCookie: "__Host-telegate-login"}
	cases := []struct{ in, want string }{
		{"__Host-telegate=abc; theme=dark", "theme=dark"},
		{"a=1; __Host-telegate-login=x; b=2", "a=1; b=2"},
		{"__Host-telegate=abc", ""},
		{"__host-telegate=abc; x=\"q\"", "x=\"q\""},
		{"theme=dark", "theme=dark"},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tc.in)
		s.stripOwnCookies(r)
		if got := r.Header.Get("Cookie"); got != tc.want {
			t.Errorf("strip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPreAuthTableSingleUseBoundedExpiring(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tbl := newPreAuthTable(3)
	h := tbl.put(&preAuth{State: "s", Expires: now.Add(time.Minute)})
	if rec := tbl.take(h, now); rec == nil || rec.State != "s" {
		t.Fatal("record not returned")
	}
	if tbl.take(h, now) != nil {
		t.Fatal("record returned twice")
	}
	old := tbl.put(&preAuth{Expires: now.Add(time.Minute)})
	if tbl.take(old, now.Add(2*time.Minute)) != nil {
		t.Fatal("expired record returned")
	}
	var hs []string
	for i := 0; i < 5; i++ {
		hs = append(hs, tbl.put(&preAuth{Expires: now.Add(time.Minute)}))
	}
	if tbl.len() != 3 {
		t.Fatalf("table holds %d records, cap 3", tbl.len())
	}
	if tbl.take(hs[0], now) != nil || tbl.take(hs[4], now) == nil {
		t.Fatal("eviction did not drop the oldest record")
	}
	if tbl.take("", now) != nil || tbl.take(strings.Repeat("a", 100), now) != nil {
		t.Fatal("malformed handle matched")
	}
}
