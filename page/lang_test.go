package page

import (
	"net/http/httptest"
	"testing"
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
