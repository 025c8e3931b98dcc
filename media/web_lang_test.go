package media

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
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
