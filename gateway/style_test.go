package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/telegate/telegate/page"
)

// TestOneStylesheetOnEveryHost: the stylesheet telegate's own pages and
// the visit pages link is served at page.StylePath through the public
// chain, without sign-in, as CSS that browsers may not sniff; an own
// error page links it and its CSP lets it (and only it) style the page.
func TestOneStylesheetOnEveryHost(t *testing.T) {
	t.Parallel()
	tg := newTestGateway(t, nil)
	c := tg.client(tg.ts.Listener.Addr().String())
	resp, err := c.Get("https://" + appHost + page.StylePath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" || !bytes.Equal(b, page.Style) {
		t.Fatalf("stylesheet: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(b))
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+appHost+"/.telegate/no-such-page", nil)
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), `<link rel="stylesheet" href="`+page.StylePath+`">`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "style-src 'self'") {
		t.Errorf("404 page: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), b)
	}
	if strings.Contains(string(b), "<style") {
		t.Error("an own page carries its own styles")
	}
}
