package page

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLang(t *testing.T) {
	for h, want := range map[string]string{
		"":                                    "en",
		"es":                                  "es",
		"es-MX,es;q=0.9,en;q=0.5":             "es",
		"en-GB,en;q=0.9":                      "en",
		"fr-FR":                               "en",
		"fr, es;q=0.5":                        "es",
		"en;q=0.1, es;q=0.9":                  "es",
		"de;q=0.9, en;q=0.2":                  "en",
		"es-419":                              "es",
		"*":                                   "en",
		"es;q=0":                              "en",
		"not a \x00 header;;;q=x,":            "en",
		"es-MX,es;q=0.9;q=0.9,en;q=0.5;q=0.8": "es",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", h)
		if got := Lang(r); got != want {
			t.Errorf("Accept-Language %q: %s, want %s", h, got, want)
		}
	}
}

// TestRegression_LanguageChoiceValues: the language chosen with a switch
// (LangCookie) wins over Accept-Language only when it is exactly one of
// Languages. Every other value — unknown or unsupported languages, other
// cases, regions, lists, padding, markup, an overlong value — is no
// choice: the page follows Accept-Language (Spanish or English, whichever
// the browser prefers), never a fixed default. The switch's endpoint
// (ServeLang) remembers only such a value: anything else, more than one,
// another method or a cross-site request is refused with the cookie left
// alone; its way back is a same-origin path only.
func TestRegression_LanguageChoiceValues(t *testing.T) {
	lang := func(accept string, cookies ...string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", accept)
		for _, c := range cookies {
			r.Header.Add("Cookie", LangCookie+"="+c)
		}
		return Lang(r)
	}
	for _, c := range Languages {
		for _, accept := range []string{"es-MX,es;q=0.9", "en-GB,en;q=0.9", ""} {
			if got := lang(accept, c); got != c {
				t.Errorf("choice %q, Accept-Language %q: %s, want the choice", c, accept, got)
			}
		}
	}
	if got := lang("en", "fr", "es"); got != "es" {
		t.Errorf("an unknown choice before a known one: %s, want es", got)
	}
	bad := []string{"fr", "de", "ES", "Es", "EN", "es-MX", "es_ES", "es-419", "spanish", "Español", "", " es",
		"es,en", "\"fr\"", "<script>", "es%00", "%65%73", "*", strings.Repeat("es", 600)}
	for _, v := range bad {
		for accept, want := range map[string]string{"es-MX,es;q=0.9": "es", "en-GB,en;q=0.9": "en", "": "en"} {
			if got := lang(accept, v); got != want {
				t.Errorf("choice %q, Accept-Language %q: %s, want %s (from Accept-Language)", v, accept, got, want)
			}
		}
	}

	post := func(body string, set func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "https://gw.example"+LangPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		if set != nil {
			set(r)
		}
		w := httptest.NewRecorder()
		ServeLang(w, r)
		return w
	}
	noCookie := func(what string, w *httptest.ResponseRecorder, status int) {
		t.Helper()
		if w.Code != status || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s: %d, cookies %v; want %d and none", what, w.Code, w.Result().Cookies(), status)
		}
	}
	// In a form, too, what a cookie header would cut off ("es;", "es ").
	for _, v := range append(bad[:len(bad)-1], "es ", "es;", "en;q=1", "es\x00", "es\n") {
		noCookie("lang="+v, post(url.Values{"lang": {v}, "rd": {"/clinic/"}}.Encode(), nil), http.StatusBadRequest)
	}
	noCookie("no lang", post("rd=/clinic/", nil), http.StatusBadRequest)
	noCookie("two langs", post("lang=es&lang=en", nil), http.StatusBadRequest)
	noCookie("an overlong body", post("lang=es&rd=/"+strings.Repeat("a", 8<<10), nil), http.StatusBadRequest)
	noCookie("cross-site", post("lang=es", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }), http.StatusForbidden)
	noCookie("another origin", post("lang=es", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }), http.StatusForbidden)
	get := httptest.NewRecorder()
	ServeLang(get, httptest.NewRequest("GET", LangPath+"?lang=es", nil))
	noCookie("GET", get, http.StatusMethodNotAllowed)
	if a := get.Header().Get("Allow"); a != "POST" {
		t.Errorf("GET: Allow %q", a)
	}

	for rd, want := range map[string]string{
		"/clinic/?a=b": "/clinic/?a=b", "/.telegate/login?rd=%2Fclinic%2F": "/.telegate/login?rd=%2Fclinic%2F",
		"//evil.example/": "/", "https://evil.example/": "/", "/\\evil.example": "/", "/%2F%2Fevil.example": "/", "": "/",
	} {
		w := post(url.Values{"lang": {"es"}, "rd": {rd}}.Encode(), func(r *http.Request) { r.Header.Set("Origin", "https://gw.example") })
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Errorf("rd %q: %d to %q, want 303 to %q", rd, w.Code, w.Header().Get("Location"), want)
		}
		cs := w.Result().Cookies()
		if len(cs) != 1 || cs[0].Name != LangCookie || cs[0].Value != "es" || cs[0].Path != "/" || !cs[0].HttpOnly || !cs[0].Secure ||
			cs[0].SameSite != http.SameSiteLaxMode || cs[0].MaxAge != int(LangMaxAge/time.Second) {
			t.Errorf("rd %q: cookies %+v", rd, cs)
		}
	}
	if w := post("lang=en", func(r *http.Request) { r.Header.Set("Accept", "application/json") }); w.Code != http.StatusNoContent || len(w.Result().Cookies()) != 1 {
		t.Errorf("from a visit page's script: %d %v, want 204 and the cookie", w.Code, w.Result().Cookies())
	}
}

// TestOwnPageLanguageSwitch: every own page (an error page here) carries
// the language switch — a labelled nav holding a form that posts to
// LangPath, one button per language named in itself with its lang, the
// page's language pressed — coming back to the page's path without its
// query; a page written only in English has none.
func TestOwnPageLanguageSwitch(t *testing.T) {
	for lang, label := range map[string]string{"en": `aria-label="Language"`, "es": `aria-label="Idioma"`} {
		r := httptest.NewRequest("GET", "/.telegate/callback?code=secret-code&state=st", nil)
		r.AddCookie(&http.Cookie{Name: LangCookie, Value: lang})
		r.Header.Set("Accept-Language", "fr")
		w := httptest.NewRecorder()
		Error(w, r, http.StatusBadRequest, "The sign-in could not be completed.", "")
		body := w.Body.String()
		for _, want := range []string{`<html lang="` + lang + `">`, `<nav id="language-switch"`, label, `action="` + LangPath + `"`, `name="rd" value="/.telegate/callback"`,
			`value="en" lang="en" data-lang="en" data-testid="lang-en" aria-pressed="` + strconv.FormatBool(lang == "en") + `">English</button>`,
			`value="es" lang="es" data-lang="es" data-testid="lang-es" aria-pressed="` + strconv.FormatBool(lang == "es") + `">Español</button>`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s page lacks %s:\n%s", lang, want, body)
			}
		}
		if strings.Contains(body, "secret-code") {
			t.Errorf("the %s page repeats the query", lang)
		}
		if v := w.Header().Get("Vary"); !strings.Contains(v, "Cookie") || !strings.Contains(v, "Accept-Language") {
			t.Errorf("Vary %q", v)
		}
	}
	r := httptest.NewRequest("GET", "/.telegate/break-glass/uses", nil)
	w := httptest.NewRecorder()
	Render(w, r, Doc{Status: http.StatusOK, Title: "Emergency access uses"}, ParseEnglish(`{{define "x"}}<p>x</p>{{end}}`), "x", nil)
	if strings.Contains(w.Body.String(), "language-switch") {
		t.Error("an English-only page offers a language switch")
	}
}
