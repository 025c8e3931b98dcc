package page

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// Languages are the languages telegate's own pages are written in, the
// first the default: English and Spanish, the same two the visit pages
// offer (media/web/strings.js).
var Languages = []string{"en", "es"}

var matcher = language.NewMatcher([]language.Tag{language.English, language.Spanish})

// Lang returns the language of r's pages: the best match in Languages for
// its Accept-Language (RFC 9110 §12.5.4; "es-MX", "es;q=0.9, en;q=0.1"
// pick Spanish; a list with malformed weights is read in its order),
// English when nothing matches or the header is absent or unreadable.
func Lang(r *http.Request) string {
	if r == nil {
		return Languages[0]
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
