package page

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Languages are the languages telegate's pages are written in, its own
// and the visit pages alike (one catalogue, catalogue.go), the first the
// default: English and Spanish.
var Languages = []string{"en", "es"}

// LanguageNames names each language of Languages in itself, for the
// language switch of own pages and of the visit pages (which get it with
// their words, ClientJS).
var LanguageNames = map[string]string{"en": "English", "es": "Español"}

var matcher = language.NewMatcher([]language.Tag{language.English, language.Spanish})

// The language a person chooses with a page's language switch — on
// telegate's own pages (a form, LangPath) and on the visit pages (their
// switch posts to the same endpoint) — is remembered in one cookie,
// LangCookie, whose value is a language of Languages. The server is its
// only reader and writer: Lang decides the language of every page, own
// and visit alike (the visit pages are served with <html lang> set from
// it), so the cookie is HttpOnly. Path=/, SameSite=Lax (it follows a
// link from another site: it is a preference, not a credential),
// Secure on https, kept for LangMaxAge.
const (
	LangCookie = "telegate_lang"
	LangPath   = "/.telegate/lang"
	LangMaxAge = 365 * 24 * time.Hour
)

// Chosen returns the language r's browser chose with a language switch:
// the value of its LangCookie when that is exactly one of Languages. Any
// other value (an unknown or unsupported language, another case, a
// region, anything longer) is no choice.
func Chosen(r *http.Request) (string, bool) {
	if r == nil {
		return "", false
	}
	for _, c := range r.CookiesNamed(LangCookie) {
		if slices.Contains(Languages, c.Value) {
			return c.Value, true
		}
	}
	return "", false
}

// Lang returns the language of r's pages: the one chosen with a language
// switch (Chosen), else the best match in Languages for its
// Accept-Language (RFC 9110 §12.5.4; "es-MX", "es;q=0.9, en;q=0.1" pick
// Spanish; a list with malformed weights is read in its order), English
// when nothing matches or the header is absent or unreadable.
func Lang(r *http.Request) string {
	if r == nil {
		return Languages[0]
	}
	if l, ok := Chosen(r); ok {
		return l
	}
	h := r.Header.Get("Accept-Language")
	if h == "" || len(h) > 512 {
		return Languages[0]
	}
	tags, _, err := language.ParseAcceptLanguage(h)
	if err != nil {
		// A list this parser refuses (a doubled ";q=", say) still names
		// languages in order of preference: take its tags as they come.
		tags = tags[:0]
		for _, part := range strings.Split(h, ",") {
			name, _, _ := strings.Cut(part, ";")
			if t, err := language.Parse(strings.TrimSpace(name)); err == nil {
				tags = append(tags, t)
			}
		}
	}
	if len(tags) == 0 {
		return Languages[0]
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return Languages[0]
	}
	return Languages[i]
}

// T returns msgid, an English sentence (a fmt format when args are
// given), in lang: its entry in the server-side catalogue (catalogue.go),
// or msgid itself in English when the catalogue has none.
func T(lang, msgid string, args ...any) string {
	s := msgid
	if lang != Languages[0] {
		if tr, ok := catalogue[lang][msgid]; ok {
			s = tr
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Translated reports whether msgid has an entry in lang (always true for
// English, the language of the msgids).
func Translated(lang, msgid string) bool {
	if lang == Languages[0] {
		return true
	}
	_, ok := catalogue[lang][msgid]
	return ok
}

// csrf refuses a cross-site language switch (Sec-Fetch-Site, Origin).
var csrf = http.NewCrossOriginProtection()

// ServeLang is the language switch's endpoint (LangPath): POST a form
// (application/x-www-form-urlencoded) with lang, one of Languages, and
// rd, the page to go back to (a same-origin path, SafeReturnPath; "/"
// when absent or unsafe). It remembers lang in LangCookie and answers 303
// to rd — or 204 No Content to a caller that wants JSON (WantsJSON: the
// visit pages' switch, which has already changed its words). It refuses
// other methods (405), a cross-site request (403, as
// http.CrossOriginProtection judges it) and a lang that is not one of
// Languages, more than one lang, or a body over 4 KiB (400), leaving the
// cookie as it was.
func ServeLang(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		Error(w, r, http.StatusMethodNotAllowed, "Method not allowed.", "")
		return
	}
	if err := csrf.Check(r); err != nil {
		Error(w, r, http.StatusForbidden, "This language change did not come from this site.", "Use the language buttons on the page instead.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		Error(w, r, http.StatusBadRequest, "The form could not be read.", "")
		return
	}
	langs := r.PostForm["lang"]
	if len(langs) != 1 || !slices.Contains(Languages, langs[0]) {
		Error(w, r, http.StatusBadRequest, "This language is not offered here.", "Choose one of the languages the page offers.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: LangCookie, Value: langs[0], Path: "/", MaxAge: int(LangMaxAge / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	if WantsJSON(r) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, SafeReturnPath(r.PostForm.Get("rd")), http.StatusSeeOther)
}
