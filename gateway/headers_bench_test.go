package gateway

import (
	"net/http"
	"testing"
)

// BenchmarkStripClientHeaders removes the fields a client may not send
// a route's upstream (stripClientHeaders: reserved, assertion header, the
// route's strip_request_headers, here none) from a browser-like request
// of 12 fields, one of them reserved, as forwardHeaders and the proxy's
// Rewrite do for every request.
func BenchmarkStripClientHeaders(b *testing.B) {
	h := http.Header{
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding":           {"gzip, deflate, br"},
		"Accept-Language":           {"de-CH,de;q=0.9,en;q=0.8"},
		"Cache-Control":             {"max-age=0"},
		"Cookie":                    {"__Host-telegate=abc; theme=dark"},
		"Referer":                   {"https://app.example.test/clinic/"},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Site":            {"same-origin"},
		"Upgrade-Insecure-Requests": {"1"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
	}
	xff := []string{"203.0.113.9"}
	set := clientHeaderSet("X-Telegate-Assertion", nil)
	b.ReportAllocs()
	for b.Loop() {
		h["X-Forwarded-For"] = xff
		set.strip(h)
	}
	if len(h) != 11 {
		b.Fatalf("%d fields left, want 11", len(h))
	}
}
