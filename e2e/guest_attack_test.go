package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAttackGuestSession: on the running node, an account-less guest's
// session cookie, sent by hand to every part of the gateway besides its
// own visit, opens nothing — the upstream routes (/, /clinic/, /admin/),
// the visits list and create, the host's actions on the guest's own
// visit, sign-out, the break-glass review — and every one of those requests has its audit
// record; neither the guest link nor the session cookie appears in the
// log or the audit trail; and guessing at guest links from one source
// is cut off by the per-client rate limit.
func TestAttackGuestSession(t *testing.T) {
	a := startAttackDemo(t)
	m := visitPost(t, a.clinician, a.Base(), "/.telegate/visits", map[string]any{"title": "visit", "participants": 3})
	id, _ := m["id"].(string)
	iu, _ := url.Parse(m["invite"].(map[string]any)["url"].(string))
	j := visitPost(t, a.patient, a.Base(), "/.telegate/visits/join", map[string]any{"invite": iu.Query().Get("invite")})
	pid, _ := j["self"].(map[string]any)["id"].(string)
	visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/admit", map[string]any{"participant": pid})
	m = visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/guests", map[string]any{"label": "interpreter"})
	u, err := url.Parse(m["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	link := u.Query().Get("link")
	guest := newBrowser(t, a.demo)
	j = visitPost(t, guest, a.Base(), "/.telegate/visits/guest", map[string]any{"link": link, "name": "Ana"})
	gid, _ := j["self"].(map[string]any)["id"].(string)
	cookie := guest.cookie(a.Base()+"/.telegate/visits/", "telegate_visit_guest")
	if cookie == nil || gid == "" {
		t.Fatalf("account-less guest join: %v, cookie %v", j, cookie)
	}
	visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/admit", map[string]any{"participant": gid})

	send := func(method, path string) *http.Response {
		t.Helper()
		req := mustRequest(t, method, a.Base()+path, "application/json")
		req.Header.Set("Cookie", cookie.Name+"="+cookie.Value)
		req.Header.Set("Origin", a.Base())
		req.Header.Set("X-Telegate-CSRF", "1")
		if method == "POST" {
			req.Header.Set("Content-Type", "application/json")
			req.Body = http.NoBody
		}
		resp, _ := guest.do(guest.noRedirect(), req)
		return resp
	}
	if resp := send("GET", "/.telegate/visits/"+id+"/ice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("guest's own relay credentials: %d", resp.StatusCode)
	}
	var refused []string
	for _, try := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/clinic/"}, {"GET", "/admin/"},
		{"GET", "/.telegate/visits"}, {"POST", "/.telegate/visits"},
		{"POST", "/.telegate/visits/" + id + "/admit"}, {"POST", "/.telegate/visits/" + id + "/remove"},
		{"POST", "/.telegate/visits/" + id + "/end"}, {"POST", "/.telegate/visits/" + id + "/guests"},
		{"POST", "/.telegate/visits/" + id + "/invite"}, {"POST", "/.telegate/logout"},
		{"GET", "/.telegate/break-glass/uses"},
	} {
		resp := send(try.method, try.path)
		if try.path == "/.telegate/logout" && resp.StatusCode == http.StatusSeeOther {
			// Signing out nobody: to the signed-out page, every other
			// session untouched (checked below).
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/.telegate/signed-out") {
				t.Errorf("guest session on sign-out: to %s", loc)
			}
		} else if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusForbidden {
			t.Errorf("guest session on %s %s: %d", try.method, try.path, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusFound && !strings.HasPrefix(loc, "/.telegate/login?") {
			t.Errorf("guest session on %s %s: redirected to %s", try.method, try.path, loc)
		}
		refused = append(refused, resp.Header.Get("X-Request-Id"))
	}
	// The visit and the patient are as they were.
	if resp, body := a.clinician.do(a.clinician.noRedirect(), mustRequest(t, "GET", a.Base()+"/.telegate/visits/"+id, "application/json")); resp.StatusCode != http.StatusOK ||
		!strings.Contains(string(body), `"status":"open"`) || !strings.Contains(string(body), pid) {
		t.Fatalf("visit after the guest's attempts: %d %s", resp.StatusCode, body)
	}

	if resp, _ := a.patient.do(a.patient.noRedirect(), mustRequest(t, "GET", a.Base()+"/.telegate/visits/"+id+"/ice", "application/json")); resp.StatusCode != http.StatusOK {
		t.Fatalf("patient after the guest's attempts: %d", resp.StatusCode)
	}

	// Guessing at links: one source is rate-limited well before any
	// guess could matter (each guess is a 256-bit MAC).
	limited := 0
	for range 300 {
		req := mustRequest(t, "POST", a.Base()+"/.telegate/visits/guest", "application/json")
		req.Header.Set("Origin", a.Base())
		req.Header.Set("X-Telegate-CSRF", "1")
		req.Header.Set("Content-Type", "application/json")
		req.Body = http.NoBody
		resp, _ := guest.do(guest.noRedirect(), req)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("300 guesses at guest links from one source were never rate-limited")
	}

	time.Sleep(300 * time.Millisecond)
	raw, err := os.ReadFile(filepath.Join(a.dataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rid := range refused {
		if rid == "" || !strings.Contains(string(raw), `"request_id":"`+rid+`"`) {
			t.Errorf("no audit record for refused request %q", rid)
		}
	}
	if n := strings.Count(string(raw), `"reason":"guest-session-out-of-scope"`); n < 7 {
		t.Errorf("%d uses of the guest session on visits endpoints it is not for audited as such, want 7", n)
	}
	mac := link[strings.LastIndexByte(link, '.')+1:]
	smac := cookie.Value[strings.LastIndexByte(cookie.Value, '.')+1:]
	logs := logLines(a.demo)
	for name, secret := range map[string]string{"guest link": link, "guest link MAC": mac, "guest session": cookie.Value, "guest session MAC": smac} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit trail holds the %s", name)
		}
	}
}
