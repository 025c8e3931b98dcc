package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

func TestVisitFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)

	// Waiting: nothing before admission.
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Fatalf("ICE before admission: %d, want 403", st)
	}
	if _, resp, err := h.dial("pat", vid, h.srv.URL); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("signal before admission: %v, want 403", err)
	}
	// The clinician sees the patient waiting, by name.
	st, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	if st != 200 || m["waiting"].(float64) != 1 {
		t.Fatalf("visit view: %d %v", st, m)
	}
	var found bool
	for _, p := range m["participants"].([]any) {
		pm := p.(map[string]any)
		if pm["id"] == pid && pm["name"] == "Pat Patient" && pm["state"] == "waiting" {
			found = true
		}
	}
	if !found {
		t.Fatalf("waiting patient not listed: %v", m["participants"])
	}
	// The patient's view carries neither the title nor other names.
	_, pm := h.do("pat", "GET", "/.telegate/visits/"+vid, nil)
	if pm["title"] != nil || pm["participants"] != nil || pm["self"].(map[string]any)["state"] != "waiting" {
		t.Fatalf("patient view leaks or is wrong: %v", pm)
	}

	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != http.StatusNoContent {
		t.Fatalf("admit: %d %v", st, m)
	}
	st, ice := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil)
	if st != 200 || ice["iceTransportPolicy"] != "relay" {
		t.Fatalf("ICE after admission: %d %v", st, ice)
	}
	srv := ice["iceServers"].([]any)[0].(map[string]any)
	if !strings.HasSuffix(srv["username"].(string), ":"+vid+":"+pid) || srv["credential"] == "" {
		t.Fatalf("credential not bound to the participant: %v", srv)
	}
	urls := srv["urls"].([]any)
	if len(urls) != 2 || urls[0] != fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", h.relay.addr.Port) || !strings.HasPrefix(urls[1].(string), "turns:127.0.0.1:") {
		t.Fatalf("urls = %v", urls)
	}
	if !h.relay.isAdmitted(vid, pid) {
		t.Fatal("relay was not told of the admission")
	}
	_, pm = h.do("pat", "GET", "/.telegate/visits/"+vid, nil)
	if pm["call_url"] != "/.telegate/visits/"+vid+"/call" {
		t.Fatalf("admitted patient has no call URL: %v", pm)
	}

	// Audit: every decision, no title or name.
	want := map[string]bool{"visit.create": false, "visit.join": false, "visit.admit": false}
	for _, e := range h.sink.all() {
		if _, ok := want[e.Type]; ok && e.Decision == "allow" {
			want[e.Type] = true
		}
		b, _ := json.Marshal(e)
		for _, phi := range []string{"Secret diagnosis", "Pat Patient", "Ada Owner", inv} {
			if strings.Contains(string(b), phi) {
				t.Errorf("audit event %s carries %q", e.Type, phi)
			}
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("no %s audit event", k)
		}
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{DefaultParticipants: 3})
	vidA, invA := h.createVisit("dr", nil)
	pidA := h.join("pat", invA)
	vidB, invB := h.createVisit("dr", nil)
	pidB := h.join("pat2", invB)
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vidA+"/admit", map[string]any{"participant": pidA}); st != 204 {
		t.Fatal("admit A")
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vidB+"/admit", map[string]any{"participant": pidB}); st != 204 {
		t.Fatal("admit B")
	}
	// pat3 waits in A.
	pid3 := h.join("pat3", invA)

	cases := []struct {
		name   string
		user   string
		method string
		path   string
		body   any
		want   int
	}{
		{"patient cannot admit", "pat", "POST", "/.telegate/visits/" + vidA + "/admit", map[string]any{"participant": pid3}, 403},
		{"patient cannot decline", "pat", "POST", "/.telegate/visits/" + vidA + "/decline", map[string]any{"participant": pid3}, 403},
		{"patient cannot end", "pat", "POST", "/.telegate/visits/" + vidA + "/end", nil, 403},
		{"patient cannot create", "pat", "POST", "/.telegate/visits", map[string]any{"title": "x"}, 403},
		{"patient A cannot see B", "pat", "GET", "/.telegate/visits/" + vidB, nil, 403},
		{"patient A gets no credentials for B", "pat", "GET", "/.telegate/visits/" + vidB + "/ice", nil, 403},
		{"patient A cannot admit into B", "pat", "POST", "/.telegate/visits/" + vidB + "/admit", map[string]any{"participant": pidB}, 403},
		{"other clinician cannot admit", "dr2", "POST", "/.telegate/visits/" + vidA + "/admit", map[string]any{"participant": pid3}, 403},
		{"other clinician cannot remove", "dr2", "POST", "/.telegate/visits/" + vidA + "/remove", map[string]any{"participant": pidA}, 403},
		{"other clinician cannot end", "dr2", "POST", "/.telegate/visits/" + vidA + "/end", nil, 403},
		{"other clinician cannot reissue invite", "dr2", "POST", "/.telegate/visits/" + vidA + "/invite", nil, 403},
		{"other clinician gets no credentials", "dr2", "GET", "/.telegate/visits/" + vidA + "/ice", nil, 403},
		{"anonymous gets 401", "", "GET", "/.telegate/visits/" + vidA, nil, 401},
		{"anonymous ICE gets 401", "", "GET", "/.telegate/visits/" + vidA + "/ice", nil, 401},
		{"unknown visit", "dr", "GET", "/.telegate/visits/aaaaaaaaaaaaaaaaaaaaaaaaaa", nil, 404},
		{"waiting patient gets no ICE", "pat3", "GET", "/.telegate/visits/" + vidA + "/ice", nil, 403},
		{"admitted patient gets ICE", "pat", "GET", "/.telegate/visits/" + vidA + "/ice", nil, 200},
		{"owner sees visit", "dr", "GET", "/.telegate/visits/" + vidA, nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, m := h.do(c.user, c.method, c.path, c.body)
			if st != c.want {
				t.Fatalf("%s %s as %q: %d %v, want %d", c.method, c.path, c.user, st, m, c.want)
			}
		})
	}
	// Signaling into a foreign visit.
	if _, resp, err := h.dial("pat", vidB, h.srv.URL); err == nil || resp.StatusCode != 403 {
		t.Fatalf("patient A signaling into B: %v", err)
	}
	// The waiting patient was neither admitted nor declined by the others.
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vidA, nil)
	if m["waiting"].(float64) != 1 {
		t.Fatalf("waiting count changed: %v", m)
	}
	denied := 0
	for _, e := range h.sink.all() {
		if e.Type == "visit.admit" && e.Decision == "deny" {
			denied++
		}
	}
	if denied < 3 {
		t.Fatalf("refused admissions not audited: %d", denied)
	}
}

func TestAllowAnyClinician(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{AllowAnyClinician: true})
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	if st, m := h.do("dr2", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != 204 {
		t.Fatalf("any clinician admit: %d %v", st, m)
	}
	if st, _ := h.do("pat", "POST", "/.telegate/visits/"+vid+"/end", nil); st != 403 {
		t.Fatal("patient ended a visit")
	}
}

func TestInviteRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{InviteTTL: time.Hour})
	vid, inv := h.createVisit("dr", nil)
	other, _ := h.createVisit("dr", nil)
	parts := strings.Split(unescape(inv), ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name, tok string
		want      int
	}{
		{"tampered signature", parts[0] + "." + parts[1] + "." + parts[2] + "." + flip(parts[3]), 403},
		{"extended expiry", parts[0] + "." + "9999999999" + "." + parts[2] + "." + parts[3], 403},
		{"other generation", parts[0] + "." + parts[1] + ".9." + parts[3], 403},
		{"generation left out", parts[0] + "." + parts[1] + "." + parts[3], 403},
		{"other visit", other + "." + parts[1] + "." + parts[2] + "." + parts[3], 403},
		{"truncated", parts[0] + "." + parts[1], 403},
		{"empty", "", 403},
		{"garbage", "not-an-invite", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if st, m := h.do("pat", "POST", "/.telegate/visits/join", map[string]any{"invite": c.tok}); st != c.want {
				t.Fatalf("%d %v, want %d", st, m, c.want)
			}
		})
	}
	h.clock.Add(time.Hour + time.Second)
	if st, m := h.do("pat", "POST", "/.telegate/visits/join", map[string]any{"invite": inv}); st != 403 || m["reason"] != "invite-expired" {
		t.Fatalf("expired invite: %d %v", st, m)
	}
	// A fresh invite from the owner works again.
	st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/invite", nil)
	if st != 200 {
		t.Fatalf("reissue: %d %v", st, m)
	}
	u := m["url"].(string)
	h.join("pat", u[strings.Index(u, "invite=")+7:])
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	body := `{"title":"t"}`
	cases := []struct {
		name   string
		user   string
		origin string
		site   string
		csrf   bool
		want   int
	}{
		{"same origin with header", "dr", h.srv.URL, "", true, 201},
		{"fetch metadata with header", "dr", "", "same-origin", true, 201},
		{"no custom header", "dr", h.srv.URL, "", false, 403},
		{"foreign origin", "dr", "https://evil.example", "", true, 403},
		{"scheme mismatch", "dr", strings.Replace(h.srv.URL, "http:", "https:", 1), "", true, 403},
		{"no origin, cross-site", "dr", "", "cross-site", true, 403},
		{"bearer service needs no CSRF", "svc", "", "", false, 400}, // reaches validation: owner missing
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.srv.URL+"/.telegate/visits", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Test-User", c.user)
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			if c.site != "" {
				req.Header.Set("Sec-Fetch-Site", c.site)
			}
			if c.csrf {
				req.Header.Set("X-Telegate-CSRF", "1")
			}
			if st, m := h.send(req); st != c.want {
				t.Fatalf("%d %v, want %d", st, m, c.want)
			}
		})
	}
}

func TestServiceCreatesForClinician(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	st, m := h.do("svc", "POST", "/.telegate/visits", map[string]any{"title": "t", "owner": map[string]any{"iss": "https://staff-idp", "sub": "dr-1"}})
	if st != 201 {
		t.Fatalf("service create: %d %v", st, m)
	}
	vid := m["id"].(string)
	// The named clinician owns it.
	if st, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil); st != 200 || m["manage"] != true {
		t.Fatalf("owner view: %d %v", st, m)
	}
	if st, _ := h.do("dr2", "GET", "/.telegate/visits/"+vid, nil); st != 403 {
		t.Fatal("another clinician sees the visit")
	}
}

func TestJoinPageRedirectsToSignIn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	_, inv := h.createVisit("dr", nil)
	req, _ := http.NewRequest("GET", h.srv.URL+"/.telegate/visits/join?invite="+inv, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/.telegate/login?rd=") ||
		!strings.Contains(loc, "%2F.telegate%2Fvisits%2Fjoin%3Finvite%3D") {
		t.Fatalf("anonymous join page: %d %q", resp.StatusCode, loc)
	}
	// Signed in: the page, with a strict CSP.
	req.Header.Set("X-Test-User", "pat")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("join page: %d csp %q", resp.StatusCode, csp)
	}
	// The API answers 401 JSON.
	if st, _ := h.do("", "POST", "/.telegate/visits/join", map[string]any{"invite": inv}); st != 401 {
		t.Fatalf("anonymous join API: %d", st)
	}
}

func TestDeclinedPatientGetsNoICE(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/decline", map[string]any{"participant": pid}); st != 204 {
		t.Fatal("decline")
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != 403 {
		t.Fatalf("declined patient got ICE: %d", st)
	}
	// Rejoining does not bring them back, and admitting now fails.
	if st, m := h.do("pat", "POST", "/.telegate/visits/join", map[string]any{"invite": inv}); st != 403 || m["reason"] != "declined" {
		t.Fatalf("declined rejoin: %d %v", st, m)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != 409 {
		t.Fatalf("admit after decline: %d", st)
	}
	if h.relay.isAdmitted(vid, pid) {
		t.Fatal("declined participant admitted on the relay")
	}
}

func TestThirdParticipantRefusedAtCapTwo(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{DefaultParticipants: 2})
	vid, _, _ := h.admitted()
	_, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/invite", nil)
	u := m["url"].(string)
	inv := u[strings.Index(u, "invite=")+7:]
	if st, m := h.do("pat2", "POST", "/.telegate/visits/join", map[string]any{"invite": inv}); st != 409 || m["reason"] != "full" {
		t.Fatalf("third participant: %d %v", st, m)
	}
	// Also when they got into the waiting room before the visit filled.
	vid2, inv2 := h.createVisit("dr", nil)
	p1 := h.join("pat", inv2)
	p2 := h.join("pat2", inv2)
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid2+"/admit", map[string]any{"participant": p1}); st != 204 {
		t.Fatal("admit first")
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid2+"/admit", map[string]any{"participant": p2}); st != 409 {
		t.Fatalf("admit over cap: %d", st)
	}
	if st, _ := h.do("pat2", "GET", "/.telegate/visits/"+vid2+"/ice", nil); st != 403 {
		t.Fatal("over-cap participant got ICE")
	}
}

func TestEndRevokesEverything(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	c := h.mustDial("pat", vid)
	readType(t, c, "welcome")
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != 204 {
		t.Fatal("end")
	}
	if m := readType(t, c, "ended"); m.Type != "ended" {
		t.Fatal("no ended message")
	}
	if code := closeStatus(t, c); code != statusEnded {
		t.Fatalf("close code %d, want %d", code, statusEnded)
	}
	for _, u := range []string{"pat", "dr"} {
		if st, _ := h.do(u, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusGone {
			t.Fatalf("ICE after end for %s: %d", u, st)
		}
	}
	if !h.relay.wasEnded(vid) || h.relay.isAdmitted(vid, pid) {
		t.Fatal("relay not told the visit ended")
	}
	if _, resp, err := h.dial("pat", vid, h.srv.URL); err == nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("signal after end: %v", err)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != http.StatusGone {
		t.Fatalf("admit after end: %d", st)
	}
}

func TestMaxDurationEndsVisit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{MaxDuration: 30 * time.Minute})
	vid, _, _ := h.admitted()
	h.clock.Add(29 * time.Minute)
	h.svc.sweep()
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != 200 {
		t.Fatalf("before max duration: %d", st)
	}
	h.clock.Add(2 * time.Minute)
	h.svc.sweep()
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusGone {
		t.Fatalf("after max duration: %d", st)
	}
	if !h.relay.wasEnded(vid) {
		t.Fatal("relay not told")
	}
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	if m["status"] != "ended" || m["end_reason"] != "max-duration" {
		t.Fatalf("visit after max duration: %v", m)
	}
	// Retention deletes it later.
	h.clock.Add(25 * time.Hour)
	h.svc.sweep()
	if st, _ := h.do("dr", "GET", "/.telegate/visits/"+vid, nil); st != 404 {
		t.Fatalf("after retention: %d", st)
	}
}

func TestRestartKeepsVisits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	_, inv := h.createVisit("dr", nil)
	h.restart()
	st, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	if st != 200 || m["title"] != "Secret diagnosis follow-up" || m["status"] != "open" {
		t.Fatalf("after restart: %d %v", st, m)
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != 200 {
		t.Fatalf("admitted patient after restart: %d", st)
	}
	// Invites signed before the restart still work (the key persisted).
	h.join("pat2", inv)
	if !h.relay.isAdmitted(vid, pid) {
		t.Fatal("relay admission not restored")
	}
}

func TestVisitStoreIsSealed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	h.admitted()
	h.restart()
	b, err := readAllFile(h.dir + "/visits.db")
	if err != nil {
		t.Fatal(err)
	}
	for _, phi := range []string{"Secret diagnosis", "Pat Patient", "Ada Owner"} {
		if strings.Contains(string(b), phi) {
			t.Fatalf("visits.db holds %q in clear", phi)
		}
	}
}

func TestRemoveClosesSocketAndRevokes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	c := h.mustDial("pat", vid)
	readType(t, c, "welcome")
	start := time.Now()
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != 204 {
		t.Fatal("remove")
	}
	if code := closeStatus(t, c); code != statusRemoved {
		t.Fatalf("close code %d", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("socket closed after %v", d)
	}
	if h.relay.isAdmitted(vid, pid) {
		t.Fatal("relay still admits the removed participant")
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != 403 {
		t.Fatalf("removed participant ICE: %d", st)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": mustHost(t, h, vid)}); st != 409 {
		t.Fatal("host removed")
	}
}

func mustHost(t *testing.T, h *harness, vid string) string {
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	return m["self"].(map[string]any)["id"].(string)
}

func TestSessionEndedClosesSocketAndRevokes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	c := h.mustDial("pat", vid)
	readType(t, c, "welcome")
	h.svc.SessionEnded("sess-pat", users["pat"])
	if code := closeStatus(t, c); code != statusSignedOut {
		t.Fatalf("close code %d", code)
	}
	if h.relay.isAdmitted(vid, pid) {
		t.Fatal("relay still admits after sign-out")
	}
	// Signing in again and reopening the call works.
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != 200 || !h.relay.isAdmitted(vid, pid) {
		t.Fatalf("after sign-in again: %d", st)
	}
}

func TestSignalHandshakeRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, _ := h.admitted()
	cases := []struct {
		name, user, origin string
		want               int
	}{
		{"no identity", "", h.srv.URL, 401},
		{"foreign origin", "pat", "https://evil.example", 403},
		{"sibling port", "pat", "http://127.0.0.1:1", 403},
		{"no origin", "pat", "", 403},
		{"not a participant", "pat2", h.srv.URL, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, resp, err := h.dial(c.user, vid, c.origin)
			if err == nil {
				conn.CloseNow()
				t.Fatal("upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != c.want {
				t.Fatalf("got %v, want %d", resp, c.want)
			}
		})
	}
}

func TestSignalForwardsWithServerStampedSender(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, host, pid := h.admitted()
	dr := h.mustDial("dr", vid)
	if w := readType(t, dr, "welcome"); w.Self != host || len(w.Peers) != 0 {
		t.Fatalf("welcome %+v", w)
	}
	pat := h.mustDial("pat", vid)
	w := readType(t, pat, "welcome")
	if w.Self != pid || len(w.Peers) != 1 || w.Peers[0].ID != host || w.Peers[0].Name != "Dr. Ada Owner" || w.EndsAt == nil {
		t.Fatalf("welcome %+v", w)
	}
	if j := readType(t, dr, "peer-joined"); j.Peer == nil || j.Peer.ID != pid {
		t.Fatalf("peer-joined %+v", j)
	}
	sdp := testSDP(fpOf(1), "uf1", "pw1pw1pw1pw1pw1pw1pw1pw1")
	// A forged sender is ignored.
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": sdp, "from": host})
	got := readType(t, dr, "offer")
	if got.From != pid || got.SDP != sdp {
		t.Fatalf("forwarded offer from %q, SDP unchanged %v", got.From, got.SDP == sdp)
	}
	mid := "0"
	sendJSON(t, dr, map[string]any{"type": "answer", "sdp": testSDP(fpOf(100), "uf2", "pw2pw2pw2pw2pw2pw2pw2pw2")})
	if a := readType(t, pat, "answer"); a.From != host {
		t.Fatalf("answer from %q", a.From)
	}
	cand := "candidate:1 1 udp 2113937151 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0"
	sendJSON(t, pat, map[string]any{"type": "candidate", "to": host, "candidate": map[string]any{"candidate": cand, "sdpMid": mid, "sdpMLineIndex": 0}})
	if c := readType(t, dr, "candidate"); c.From != pid || c.Candidate.Candidate != cand || *c.Candidate.SDPMid != "0" {
		t.Fatalf("candidate %+v", c)
	}
	sendJSON(t, pat, map[string]any{"type": "ping"})
	readType(t, pat, "pong")
	pat.Close(websocket.StatusNormalClosure, "")
	if l := readType(t, dr, "peer-left"); l.ID != pid {
		t.Fatalf("peer-left %+v", l)
	}
}

// Regression: a participant's DTLS fingerprint must not change mid-visit
// without an ICE restart; otherwise whoever holds the session could swap in
// their own certificate and sit between the two browsers.
func TestFingerprintSwapWithoutICERestartRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, _ := h.admitted()
	dr := h.mustDial("dr", vid)
	readType(t, dr, "welcome")
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	readType(t, dr, "peer-joined")

	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(1), "ufA", "pwApwApwApwApwApwApwA")})
	readType(t, dr, "offer")
	// Same credentials, same fingerprint: fine (renegotiation).
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(1), "ufA", "pwApwApwApwApwApwApwA")})
	readType(t, dr, "offer")
	// ICE restart with a new certificate: fine.
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(50), "ufB", "pwBpwBpwBpwBpwBpwBpwB")})
	readType(t, dr, "offer")
	// New fingerprint, same ICE credentials: refused, socket closed.
	swapped := testSDP(fpOf(200), "ufB", "pwBpwBpwBpwBpwBpwBpwB")
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": swapped})
	if code := closeStatus(t, pat); code != statusFingerprint {
		t.Fatalf("close code %d, want %d", code, statusFingerprint)
	}
	// The swapped offer never reached the clinician.
	for {
		m, err := readMsg(t, dr)
		if err != nil {
			t.Fatalf("clinician socket: %v", err)
		}
		if m.Type == "offer" {
			t.Fatal("swapped offer was forwarded")
		}
		if m.Type == "peer-left" {
			break
		}
	}
	// Only the ufrag changed, not the pwd: also refused (on a new socket).
	pat = h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(201), "ufC", "pwBpwBpwBpwBpwBpwBpwB")})
	if code := closeStatus(t, pat); code != statusFingerprint {
		t.Fatalf("close code %d, want %d", code, statusFingerprint)
	}
	var audited bool
	for _, e := range h.sink.all() {
		if e.Type == "visit.signal" && e.Reason == "fingerprint-change" {
			audited = true
		}
	}
	if !audited {
		t.Fatal("refusal not audited")
	}
}

func TestFingerprintRulePersists(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, _ := h.admitted()
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(1), "ufA", "pwApwApwApwApwApwApwA")})
	sendJSON(t, pat, map[string]any{"type": "ping"})
	readType(t, pat, "pong")
	pat.CloseNow()
	h.restart()
	pat = h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(9), "ufA", "pwApwApwApwApwApwApwA")})
	if code := closeStatus(t, pat); code != statusFingerprint {
		t.Fatalf("close code %d after restart", code)
	}
}

func TestSignalLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{MaxMessageBytes: 4096, MessageRate: 1, MessageBurst: 5})
	vid, _, _ := h.admitted()
	t.Run("too large", func(t *testing.T) {
		c := h.mustDial("pat", vid)
		readType(t, c, "welcome")
		sendJSON(t, c, map[string]any{"type": "offer", "sdp": testSDP(fpOf(1), "u", "p") + strings.Repeat("a=x\r\n", 2000)})
		if code := closeStatus(t, c); code != websocket.StatusMessageTooBig {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("too fast", func(t *testing.T) {
		c := h.mustDial("pat", vid)
		readType(t, c, "welcome")
		for range 10 {
			b, _ := json.Marshal(map[string]any{"type": "ping"})
			if err := c.Write(t.Context(), websocket.MessageText, b); err != nil {
				break
			}
		}
		if code := closeStatus(t, c); code != websocket.StatusPolicyViolation {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		c := h.mustDial("pat", vid)
		readType(t, c, "welcome")
		sendJSON(t, c, map[string]any{"type": "offer", "sdp": "v=0\r\n"}) // no fingerprint
		if code := closeStatus(t, c); code != websocket.StatusPolicyViolation {
			t.Fatalf("close code %d", code)
		}
	})
}

func TestPeerCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{MaxPeers: 1})
	vid, _, _ := h.admitted()
	c := h.mustDial("dr", vid)
	readType(t, c, "welcome")
	if _, resp, err := h.dial("pat", vid, h.srv.URL); err == nil || resp.StatusCode != 503 {
		t.Fatalf("over the peer cap: %v", err)
	}
	// A participant's second socket replaces the first.
	c2 := h.mustDial("dr", vid)
	readType(t, c2, "welcome")
	if code := closeStatus(t, c); code != statusReplaced {
		t.Fatalf("replaced socket code %d", code)
	}
}

func TestStaticClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	for _, p := range []string{"/.telegate/visit.js", "/.telegate/visit/app.js"} {
		resp, err := http.Get(h.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/.telegate/visit/lobby.html", "/.telegate/visit/..%2fmedia.go", "/.telegate/visit/nope.js"} {
		resp, err := http.Get(h.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestCSPHost(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"gw.hospital.example:8443": "connect-src 'self' wss://gw.hospital.example:8443;",
		"[::1]:443":                "connect-src 'self' wss://[::1]:443;",
		"evil; script-src *":       "connect-src 'self';",
	}
	for host, want := range cases {
		if got := cspFor(host); !strings.Contains(got, want) || strings.Count(got, "script-src") != 1 {
			t.Errorf("cspFor(%q) = %q", host, got)
		}
	}
}

// closeError reads until the socket closes and returns the close frame
// the server sent.
func closeError(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	for {
		if _, err := readMsg(t, c); err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("the socket ended without a close frame: %v", err)
			}
			return ce
		}
	}
}

// TestDrainingClosesSocketsWithRestartReason: when the node begins to shut
// down (the gateway closes scope.Scope.Draining) every signaling socket is
// closed at once with 1001 and a reason the page shows while it rejoins;
// a new socket is refused with 503 and Retry-After; the visit and the
// participants' admission stay.
func TestDrainingClosesSocketsWithRestartReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	dr := h.mustDial("dr", vid)
	readType(t, dr, "welcome")
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")

	began := time.Now()
	close(h.draining)
	for name, c := range map[string]*websocket.Conn{"clinician": dr, "patient": pat} {
		ce := closeError(t, c)
		if ce.Code != websocket.StatusGoingAway || ce.Reason != restartReason {
			t.Errorf("%s: closed with %d %q, want 1001 %q", name, ce.Code, ce.Reason, restartReason)
		}
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("the sockets closed %v after the drain began", d)
	}
	conn, resp, err := h.dial("pat", vid, h.srv.URL)
	if err == nil {
		conn.CloseNow()
		t.Fatal("a new signaling socket was accepted while draining")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a new signaling socket while draining: %v, want 503 with Retry-After", resp)
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid, nil); st != http.StatusOK {
		t.Errorf("the visit after the drain began: %d", st)
	}
	if !h.relay.isAdmitted(vid, pid) {
		t.Error("the patient lost relay admission when the node began to drain")
	}
}

// TestCloseTellsParticipantsTheNodeRestarts: Close closes the sockets
// still open with 1001 and the restart reason, before the relay goes.
func TestCloseTellsParticipantsTheNodeRestarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, _ := h.admitted()
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	done := make(chan error, 1)
	go func() { done <- h.svc.Close() }()
	ce := closeError(t, pat)
	if ce.Code != websocket.StatusGoingAway || ce.Reason != restartReason {
		t.Errorf("closed with %d %q, want 1001 %q", ce.Code, ce.Reason, restartReason)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRegression_ServiceVisitOwnerNameNotInvented: a visit a service
// creates for a clinician stores the owner name it is given (cleaned) and
// none when it is given none — no English word standing in for it; the
// pages call such a clinician by the catalogue's word in the reader's
// language. Tried without owner_name, with an empty one, with only spaces
// and format characters, and with a real name.
func TestRegression_ServiceVisitOwnerNameNotInvented(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	for _, c := range []struct {
		name      string
		ownerName any // nil: not sent
		want      string
	}{
		{"no owner name", nil, ""},
		{"an empty owner name", "", ""},
		{"only spaces and format characters", "  \u200b\t ", ""},
		{"a real name", "  Dr. Rivera ", "Dr. Rivera"},
	} {
		body := map[string]any{"title": "t", "owner": map[string]any{"iss": "https://staff-idp", "sub": "dr-1"}}
		if c.ownerName != nil {
			body["owner_name"] = c.ownerName
		}
		st, m := h.do("svc", "POST", "/.telegate/visits", body)
		if st != 201 {
			t.Fatalf("%s: service create: %d %v", c.name, st, m)
		}
		st, v := h.do("dr", "GET", "/.telegate/visits/"+m["id"].(string), nil)
		if st != 200 {
			t.Fatalf("%s: owner view: %d %v", c.name, st, v)
		}
		var host map[string]any
		for _, p := range v["participants"].([]any) {
			if p := p.(map[string]any); p["role"] == "host" {
				host = p
			}
		}
		if host == nil {
			t.Fatalf("%s: no host in %v", c.name, v["participants"])
		}
		name, has := host["name"]
		if c.want == "" && has {
			t.Errorf("%s: the clinician is stored as %q, want no name", c.name, name)
		}
		if c.want != "" && name != c.want {
			t.Errorf("%s: the clinician is stored as %v, want %q", c.name, name, c.want)
		}
	}
}

// TestRegression_NoNameClaimNotStoredInOneLanguage: a participant whose
// provider sends no usable "name" claim (none, only spaces and format
// characters, not a string) is stored without a name, never with an
// English word ("Guest") that a Spanish reader would then see; the visit
// page names them by their role in the reader's language (nameOf in
// web/app.js).
func TestRegression_NoNameClaimNotStoredInOneLanguage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	// A clinician without a name claim hosts.
	vid, inv := h.createVisit("mail", nil)
	pids := map[string]string{}
	for _, u := range []string{"anon", "blank", "numeric"} {
		pids[h.join(u, inv)] = u
	}
	st, v := h.do("mail", "GET", "/.telegate/visits/"+vid, nil)
	if st != 200 {
		t.Fatalf("host view: %d %v", st, v)
	}
	seen := 0
	for _, p := range v["participants"].([]any) {
		p := p.(map[string]any)
		if p["role"] != "host" && pids[p["id"].(string)] == "" {
			continue
		}
		seen++
		if name, has := p["name"]; has {
			t.Errorf("participant %v (role %v) stored as %q, want no name", pids[fmt.Sprint(p["id"])], p["role"], name)
		}
	}
	if seen != 4 {
		t.Fatalf("saw %d of the host and 3 patients: %v", seen, v["participants"])
	}
}
