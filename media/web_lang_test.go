package media

import (
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
)

// TestVisitPagesServedInTheChosenLanguage: a visit page is served in the
// language page.Lang decides — the one chosen with a language switch
// (marked data-lang-chosen), else the browser's — which its script then
// speaks; a cookie that names no language of telegate's is no choice.
func TestVisitPagesServedInTheChosenLanguage(t *testing.T) {
	t.Parallel()
	// Every page starts as <html lang="en">, which inLanguage sets.
	pages, _ := filepath.Glob("web/*.html")
	for _, f := range pages {
		b, _ := os.ReadFile(f)
		if strings.HasPrefix(string(b), "<!doctype html>") && strings.Count(string(b), `<html lang="en">`) != 1 {
			t.Errorf("%s does not start its document as <html lang=\"en\">", f)
		}
	}
	h := newHarness(t, config.Visits{})
	for _, tc := range []struct{ cookie, accept, want string }{
		{"", "", `<html lang="en">`},
		{"", "es-MX,es;q=0.9", `<html lang="es">`},
		{"es", "en-GB", `<html lang="es" data-lang-chosen="">`},
		{"en", "es", `<html lang="en" data-lang-chosen="">`},
		{"fr", "es", `<html lang="es">`},
		{"ES", "en", `<html lang="en">`},
		{"es-MX", "", `<html lang="en">`},
	} {
		req, _ := http.NewRequest("GET", h.srv.URL+"/.telegate/visits/guest", nil)
		req.Header.Set("Accept-Language", tc.accept)
		if tc.cookie != "" {
			req.AddCookie(&http.Cookie{Name: page.LangCookie, Value: tc.cookie})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), tc.want) || strings.Count(string(b), "<html") != 1 {
			t.Errorf("choice %q, Accept-Language %q: page starts %q, want %s", tc.cookie, tc.accept, string(b[:min(len(b), 80)]), tc.want)
		}
		if v := resp.Header.Get("Vary"); !strings.Contains(v, "Cookie") {
			t.Errorf("Vary %q", v)
		}
	}
}

// TestVisitPagesWordsFromTheOneCatalogue: the visit pages' script gets
// its words from the server, made from telegate's one catalogue
// (page.ClientJS at page.ClientCataloguePath), as a script this page's
// CSP lets it import; web/ holds no catalogue of its own (strings.js
// imports it, and no file of web/ has a Spanish text of it).
func TestVisitPagesWordsFromTheOneCatalogue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	resp, err := http.Get(h.srv.URL + page.ClientCataloguePath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%s: %d %q %q", page.ClientCataloguePath, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"))
	}
	if string(b) != string(page.ClientJS()) {
		t.Errorf("%s is not page.ClientJS", page.ClientCataloguePath)
	}
	cat := page.ClientCatalogue()
	for _, l := range page.Languages {
		if cat[l]["lobby.admit"] == "" || !strings.Contains(string(b), cat[l]["lobby.admit"]) {
			t.Errorf("%s lacks %s's lobby.admit %q", page.ClientCataloguePath, l, cat[l]["lobby.admit"])
		}
	}
	files, _ := filepath.Glob("web/*")
	for _, f := range files {
		src, _ := os.ReadFile(f)
		for _, k := range []string{"lobby.admitName", "call.noPath", "html.waiting.precall-heading", "wait.inRoom"} {
			if es := cat["es"][k]; es == "" || strings.Contains(string(src), es) {
				t.Errorf("%s has %s's Spanish %q itself (or the catalogue lacks it)", f, k, es)
			}
		}
	}
	if src, _ := os.ReadFile("web/strings.js"); !strings.Contains(string(src), "from './"+filepath.Base(page.ClientCataloguePath)+"'") {
		t.Error("web/strings.js does not import the served catalogue")
	}
}

// TestRegression_VisitPageWordsOnlyInTheCatalogue: the visit pages' files
// hold no words of their own — no text, aria-label or placeholder outside
// the catalogue, which had drifted from the copy a file kept — and each
// page is served with every word the catalogue gives its keys (data-t,
// data-t-label, data-t-placeholder) in the page's language, so it reads
// right before its script runs.
func TestRegression_VisitPageWordsOnlyInTheCatalogue(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("web/*.html")
	textOf := regexp.MustCompile(`>([^<]*)<`)
	attrOf := regexp.MustCompile(`\s(aria-label|placeholder|title|alt)="([^"]*)"`)
	comment := regexp.MustCompile(`(?s)<!--.*?-->`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		src := comment.ReplaceAllString(string(b), "")
		for _, m := range textOf.FindAllStringSubmatch(src, -1) {
			if s := strings.TrimSpace(m[1]); s != "" {
				t.Errorf("%s has words of its own: %q", f, s)
			}
		}
		for _, m := range attrOf.FindAllString(src, -1) {
			t.Errorf("%s has words of its own: %s", f, m)
		}
	}
	h := newHarness(t, config.Visits{})
	keyed := regexp.MustCompile(`<[a-z][a-z0-9]*\s[^>]*\bdata-t(-label|-placeholder)?="([a-zA-Z0-9.-]+)"[^>]*>([^<]*)`)
	for _, path := range []string{"/.telegate/visits/lobby", "/.telegate/visits/join", "/.telegate/visits/guest", "/.telegate/visits/" + strings.Repeat("a", 26) + "/call"} {
		for _, lang := range page.Languages {
			req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
			req.AddCookie(&http.Cookie{Name: page.LangCookie, Value: lang})
			req.Header.Set("X-Test-User", "dr")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
			n := 0
			for _, m := range keyed.FindAllStringSubmatch(string(b), -1) {
				n++
				want, ok := page.ClientText(lang, m[2])
				if !ok || want == "" {
					t.Errorf("%s (%s): key %s has no words", path, lang, m[2])
					continue
				}
				got := m[3]
				if m[1] != "" {
					attr := map[string]string{"-label": "aria-label", "-placeholder": "placeholder"}[m[1]]
					a := regexp.MustCompile(`\s` + attr + `="([^"]*)"`).FindStringSubmatch(m[0])
					if a == nil {
						t.Errorf("%s (%s): %s without its %s", path, lang, m[2], attr)
						continue
					}
					got = a[1]
				}
				if html.UnescapeString(got) != want {
					t.Errorf("%s (%s): %s reads %q, want %q", path, lang, m[2], html.UnescapeString(got), want)
				}
			}
			if n < 5 {
				t.Errorf("%s (%s): only %d words found", path, lang, n)
			}
		}
	}
}
