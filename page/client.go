package page

import (
	"encoding/json"
	"sync"
)

// ClientCataloguePath is where the visit pages' script loads its words:
// ClientJS, served by the media service beside the script (media/web's
// strings.js imports it as ./catalogue.js).
const ClientCataloguePath = "/.telegate/visit/catalogue.js"

// ClientCatalogue returns the visit pages' words in every language of
// Languages, language → key → text: each key of clientWords with its
// English msgid said in that language (T). The catalogue has every
// translation (TestRegression_UntranslatedPageString).
func ClientCatalogue() map[string]map[string]string {
	out := make(map[string]map[string]string, len(Languages))
	for _, l := range Languages {
		m := make(map[string]string, len(clientWords))
		for k, msgid := range clientWords {
			m[k] = T(l, msgid)
		}
		out[l] = m
	}
	return out
}

// ClientJS returns the visit pages' catalogue as a JavaScript module
// (text/javascript, UTF-8) exporting catalogue (ClientCatalogue) and
// languageNames (LanguageNames), the same bytes on every call: the one
// catalogue's words, served to the browser rather than copied into it.
var ClientJS = sync.OnceValue(func() []byte {
	cat, err := json.Marshal(ClientCatalogue())
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	names, _ := json.Marshal(LanguageNames)
	return []byte("// The visit pages' words, from telegate's one catalogue (page/catalogue.go).\n" +
		"export const catalogue = " + string(cat) + ";\n" +
		"export const languageNames = " + string(names) + ";\n")
})

// ClientText returns the visit pages' word key (a key of the catalogue
// ClientJS serves, such as "lobby.admit") in lang, placeholders left as
// they are; ok is false for a key the catalogue does not have. The media
// service writes a visit page's own text with it, so the page arrives in
// its language before its script runs.
func ClientText(lang, key string) (text string, ok bool) {
	msgid, ok := clientWords[key]
	if !ok {
		return "", false
	}
	return T(lang, msgid), true
}
