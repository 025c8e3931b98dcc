package media

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
)

// waitingCount is how many people the host sees waiting in vid.
func (h *harness) waitingCount(vid string) int {
	h.t.Helper()
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	n, _ := m["waiting"].(float64)
	return int(n)
}

// guestSessionDenials are the visit.guest-session denials recorded since
// the sink held from events.
func guestSessionDenials(h *harness, from int) []audit.Event {
	var out []audit.Event
	for _, e := range h.sink.all()[from:] {
		if e.Type == "visit.guest-session" && e.Decision == "deny" {
			out = append(out, e)
		}
	}
	return out
}

// hostActions are the endpoints of visit vid only its host may use, each
// with the type of its audit record.
func hostActions(vid string) []struct{ path, typ string } {
	var out []struct{ path, typ string }
	for _, a := range []string{"invite", "guests", "admit", "decline", "remove", "end"} {
		typ := "visit." + a
		if a == "guests" {
			typ = "visit.guest-link"
		}
		out = append(out, struct{ path, typ string }{"/.telegate/visits/" + vid + "/" + a, typ})
	}
	return out
}

// TestRegression_WaitingRoomBoundOnReturn: visits.max_waiting bounds the
// waiting room however people come into it, coming back after they had
// left included: an account-less guest whose page polls again, a patient
// who opens the invite again and a signed-in guest who opens a new guest
// link all stay out while the room is full, and get in once it has room.
func TestRegression_WaitingRoomBoundOnReturn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{MaxWaiting: 3, WaitingGrace: 30 * time.Second, DefaultParticipants: 8, MaxGuestLinks: 8}))
	vid, inv := h.createVisit("dr", nil)
	cookie, _ := h.guestJoin(h.guestLink(vid, labelInterpreter, ""), "")
	h.join("pat", inv)
	if st, m := h.do("bench-c", "POST", "/.telegate/visits/guest", map[string]any{"link": h.guestLink(vid, labelFamily, "")}); st != http.StatusOK {
		t.Fatalf("signed-in guest joins: %d %v", st, m)
	}
	h.clock.Add(31 * time.Second)
	h.svc.sweep()
	if n := h.waitingCount(vid); n != 0 {
		t.Fatalf("after the grace %d still waiting", n)
	}
	var newcomers []string
	for _, u := range []string{"bench-a", "bench-b", "bench-d"} {
		newcomers = append(newcomers, h.join(u, inv))
	}

	// The account-less guest's page polls: still left, the room stays at 3.
	st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid, nil)
	if self, _ := m["self"].(map[string]any); st != http.StatusOK || self["state"] != stateLeft {
		t.Errorf("account-less guest back into a full room: %d %v", st, m)
	}
	// The patient opens the invite again.
	if st, m := h.do("pat", "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(inv)}); st != http.StatusConflict || m["reason"] != "waiting-room-full" {
		t.Errorf("patient back into a full room: %d %v", st, m)
	}
	// The signed-in guest opens a new link; the link stays unused.
	link := h.guestLink(vid, labelClinician, "")
	if st, m := h.do("bench-c", "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st != http.StatusConflict || m["reason"] != "waiting-room-full" {
		t.Errorf("signed-in guest back into a full room: %d %v", st, m)
	}
	if n := h.waitingCount(vid); n != 3 {
		t.Fatalf("waiting room holds %d, bound 3", n)
	}

	// Room again: each comes back.
	for _, pid := range newcomers {
		h.do("dr", "POST", "/.telegate/visits/"+vid+"/decline", map[string]any{"participant": pid})
	}
	if st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid, nil); m["self"].(map[string]any)["state"] != stateWaiting {
		t.Errorf("account-less guest with room: %d %v", st, m)
	}
	if st, m := h.do("pat", "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(inv)}); st != http.StatusOK {
		t.Errorf("patient with room: %d %v", st, m)
	}
	if st, m := h.do("bench-c", "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st != http.StatusOK || m["self"].(map[string]any)["label"] != labelClinician {
		t.Errorf("signed-in guest with room: %d %v", st, m)
	}
}

// TestRegression_GuestSessionOutOfScope: an account-less guest's session
// cookie stands for that guest on its own visit's status, relay
// credentials, signaling and call page only. Presented anywhere else —
// the host's actions on its own visit, other visits, the visits list and
// create — or altered (other visit, other guest, later expiry), expired,
// or signed by another deployment's key, it opens nothing (401, or 403
// where the endpoint asks no sign-in) and each attempt is audited; a
// signed-in caller stays who they are with a guest cookie beside their
// session.
func TestRegression_GuestSessionOutOfScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{}))
	vidA, _, patPID := h.admitted()
	vidB, _ := h.createVisit("dr", nil)
	cookie, gid := h.guestJoin(h.guestLink(vidA, labelInterpreter, ""), "")
	h.do("dr", "POST", "/.telegate/visits/"+vidA+"/admit", map[string]any{"participant": gid})
	if st, _, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vidA+"/ice", nil); st != http.StatusOK {
		t.Fatalf("own visit's relay credentials: %d", st)
	}

	// A restart keeps the session good (the key is the deployment's).
	h.restart()
	if st, _, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vidA+"/ice", nil); st != http.StatusOK {
		t.Fatalf("own visit's relay credentials after a restart: %d", st)
	}

	from := len(h.sink.all())
	var out []struct{ method, path string }
	for _, a := range hostActions(vidA) {
		out = append(out, struct{ method, path string }{"POST", a.path})
	}
	out = append(out, []struct{ method, path string }{
		{"GET", "/.telegate/visits/" + vidA + "/"},
		{"GET", "/.telegate/visits/" + vidB},
		{"GET", "/.telegate/visits/" + vidB + "/ice"},
		{"GET", "/.telegate/visits"},
		{"POST", "/.telegate/visits"},
		{"GET", "/.telegate/visits/lobby"},
	}...)
	for _, try := range out {
		var body any
		if try.method == "POST" {
			body = map[string]any{"participant": patPID, "label": labelOther}
		}
		st, m, _ := h.guestDo(cookie, try.method, try.path, body)
		if st != http.StatusUnauthorized && st != http.StatusSeeOther && (st != http.StatusNotFound || !strings.HasSuffix(try.path, "/")) {
			t.Errorf("guest session on %s %s: %d %v", try.method, try.path, st, m)
		}
	}
	d := guestSessionDenials(h, from)
	if len(d) != len(out) {
		t.Fatalf("%d out-of-scope uses audited, want %d: %+v", len(d), len(out), d)
	}
	for _, e := range d {
		if e.Reason != "guest-session-out-of-scope" || e.Attrs["visit"] != vidA || e.Issuer != guestIssuer {
			t.Errorf("audit of an out-of-scope use: %+v", e)
		}
	}
	// Nothing the guest tried took effect.
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vidA, nil)
	if m["status"] != "open" {
		t.Fatalf("visit after the guest's attempts: %v", m)
	}
	for _, p := range m["participants"].([]any) {
		if p := p.(map[string]any); p["state"] != stateAdmitted {
			t.Errorf("participant after the guest's attempts: %v", p)
		}
	}

	// Altered and foreign cookies, on the guest's own endpoints.
	parts := strings.Split(cookie.Value, ".")
	other := newHarnessWith(t, withoutAccount(config.Visits{}), func(o *harness) { o.key = bytes.Repeat([]byte{9}, 32) })
	ovid, _, _ := other.admitted()
	foreign, _ := other.guestJoin(other.guestLink(ovid, labelOther, ""), "")
	foreign.Value = vidA + foreign.Value[len(ovid):]
	forged := map[string]string{
		"other visit":    vidB + "." + strings.Join(parts[1:], "."),
		"other guest":    parts[0] + "." + newID() + "." + parts[2] + "." + parts[3],
		"later expiry":   parts[0] + "." + parts[1] + ".9999999999." + parts[3],
		"flipped MAC":    strings.Join(parts[:3], ".") + "." + flip(parts[3]),
		"no MAC":         strings.Join(parts[:3], "."),
		"another key":    foreign.Value,
		"garbage":        "x" + strings.Repeat(".", 3),
		"patient's link": h.guestLink(vidA, labelFamily, ""),
	}
	from = len(h.sink.all())
	for name, v := range forged {
		c := *cookie
		c.Value = v
		if st, m, _ := h.guestDo(&c, "GET", "/.telegate/visits/"+vidA+"/ice", nil); st != http.StatusUnauthorized {
			t.Errorf("%s: %d %v", name, st, m)
		}
		if g, st := h.guestDial(&c, vidA); g != nil || st != http.StatusUnauthorized {
			t.Errorf("%s on signaling: %d", name, st)
		}
	}
	d = guestSessionDenials(h, from)
	if len(d) != 2*len(forged) {
		t.Fatalf("%d forged sessions audited, want %d", len(d), 2*len(forged))
	}
	for _, e := range d {
		if e.Reason != "guest-session-invalid" || e.Subject != "" {
			t.Errorf("audit of a forged session: %+v", e)
		}
	}

	// A signed-in caller with a guest cookie beside their session is
	// themselves: no guest's access for a stranger, the host stays host.
	for user, want := range map[string]int{"pat2": http.StatusForbidden, "dr": http.StatusOK} {
		req, _ := http.NewRequest("GET", h.srv.URL+"/.telegate/visits/"+vidA+"/ice", nil)
		req.Header.Set("X-Test-User", user)
		req.AddCookie(cookie)
		if st, m := h.send(req); st != want {
			t.Errorf("%s with a guest cookie: %d %v, want %d", user, st, m, want)
		}
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/.telegate/visits/"+vidA, nil)
	req.Header.Set("X-Test-User", "dr")
	req.AddCookie(cookie)
	if st, m := h.send(req); st != http.StatusOK || m["manage"] != true || m["self"].(map[string]any)["label"] != labelHost {
		t.Errorf("host with a guest cookie: %d %v", st, m)
	}

	// Expired (the session outlives the longest visit and a link's life,
	// then no more).
	from = len(h.sink.all())
	h.clock.Add(h.svc.cfg.MaxDuration + h.svc.cfg.GuestLinkTTL + time.Second)
	if st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vidA, nil); st != http.StatusUnauthorized {
		t.Errorf("expired guest session: %d %v", st, m)
	}
	if d := guestSessionDenials(h, from); len(d) != 1 || d[0].Reason != "guest-session-expired" {
		t.Errorf("expired session audited as %+v", d)
	}
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// TestGuestLinkSecretsStayOutOfAuditAndErrors: a guest link and a guest
// session are bearer secrets. Neither appears in any audit record of
// issuing, checking, redeeming or refusing them; and a refused link says
// nothing about which visits exist (a made-up MAC on a real visit, on an
// unknown one and on a real link answer the same).
func TestGuestLinkSecretsStayOutOfAuditAndErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{}))
	vid, _, _ := h.admitted()
	link := h.guestLink(vid, labelInterpreter, "")
	h.guestDo(nil, "POST", "/.telegate/visits/guest/check", map[string]any{"link": link})
	cookie, _ := h.guestJoin(link, "")
	h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link})
	h.guestDo(cookie, "POST", "/.telegate/visits/"+vid+"/end", nil)

	parts := strings.Split(link, ".")
	fake := strings.Repeat("A", 43)
	var answers []string
	for _, tok := range []string{
		parts[0] + "." + parts[1] + "." + parts[2] + "." + fake,
		newID() + "." + parts[1] + "." + parts[2] + "." + fake,
		parts[0] + "." + newID() + "." + parts[2] + "." + fake,
	} {
		st, m, _ := h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": tok})
		b, _ := json.Marshal(m)
		answers = append(answers, http.StatusText(st)+string(b))
	}
	if answers[0] != answers[1] || answers[1] != answers[2] || !strings.Contains(answers[0], "guest-link-invalid") {
		t.Errorf("refusals differ by what exists: %q", answers)
	}

	all, _ := json.Marshal(h.sink.all())
	for name, secret := range map[string]string{"link": link, "link MAC": parts[3], "session": cookie.Value, "session MAC": cookie.Value[strings.LastIndexByte(cookie.Value, '.')+1:]} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("the %s is in the audit trail", name)
		}
	}
}

// TestGuestNamesAreBoundedText: what a host names a guest link and what
// an account-less guest types as their name reach the others as at most
// 80 characters of text, without control or bidirectional formatting
// characters (markup stays text: the pages only ever set textContent).
func TestGuestNamesAreBoundedText(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{DefaultParticipants: 6}))
	vid, _, _ := h.admitted()
	for _, try := range []struct{ host, typed, want string }{
		{"", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"},
		{"", "Ana\u202Egnp.exe\u2066\u200F\x00\x1b[31m\r\nX", "Anagnp.exe[31mX"},
		{"Dr\u202E. Evil\u2069", "ignored", "Dr. Evil"},
		{"", strings.Repeat("é", 200), strings.Repeat("é", 80)},
	} {
		_, gid := h.guestJoin(h.guestLink(vid, labelOther, try.host), try.typed)
		_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
		for _, p := range m["participants"].([]any) {
			if p := p.(map[string]any); p["id"] == gid && p["name"] != try.want {
				t.Errorf("host %q typed %q: shown as %q, want %q", try.host, try.typed, p["name"], try.want)
			}
		}
	}
}

// TestGuestEndpointsRefuseCrossSite: redeeming a guest link is checked
// like every state-changing visit request (same-origin Origin, or
// Sec-Fetch-Site, and X-Telegate-CSRF), with an account and without one;
// a refused attempt leaves the link unused. A guest session's signaling
// needs a same-origin Origin as everyone's does.
func TestGuestEndpointsRefuseCrossSite(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{DefaultParticipants: 4}))
	vid, _, _ := h.admitted()
	link := h.guestLink(vid, labelFamily, "")
	for name, set := range map[string]func(*http.Request){
		"cross-site Origin":        func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") },
		"null Origin":              func(r *http.Request) { r.Header.Set("Origin", "null") },
		"no CSRF header":           func(r *http.Request) { r.Header.Del("X-Telegate-CSRF") },
		"no Origin, cross-site":    func(r *http.Request) { r.Header.Del("Origin"); r.Header.Set("Sec-Fetch-Site", "cross-site") },
		"no Origin, no fetch data": func(r *http.Request) { r.Header.Del("Origin") },
	} {
		for _, user := range []string{"", "pat2"} {
			b, _ := json.Marshal(map[string]any{"link": link})
			req, _ := http.NewRequest("POST", h.srv.URL+"/.telegate/visits/guest", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", h.srv.URL)
			req.Header.Set("X-Telegate-CSRF", "1")
			if user != "" {
				req.Header.Set("X-Test-User", user)
			}
			set(req)
			if st, m, resp := h.sendResp(req); st != http.StatusForbidden || m["reason"] != "csrf" || len(resp.Cookies()) != 0 {
				t.Errorf("%s (user %q): %d %v", name, user, st, m)
			}
		}
	}
	// The link is still good, and the session's signaling checks Origin.
	cookie, gid := h.guestJoin(link, "")
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gid})
	hdr := http.Header{"Origin": {"https://evil.example"}, "Cookie": {cookie.Name + "=" + cookie.Value}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.srv.URL, "http")+"/.telegate/visits/"+vid+"/signal", &websocket.DialOptions{HTTPHeader: hdr}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		if c != nil {
			c.CloseNow()
		}
		t.Errorf("guest signaling from another origin: %v %v", resp, err)
	}
	// Once the visit ends the session is good for its status only.
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil)
	for _, p := range []string{"/ice"} {
		if st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid+p, nil); st != http.StatusGone {
			t.Errorf("guest %s after the end: %d %v", p, st, m)
		}
	}
	if c, st := h.guestDial(cookie, vid); c != nil || st != http.StatusGone {
		t.Errorf("guest signaling after the end: %d", st)
	}
	if st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid, nil); st != http.StatusOK || m["status"] != "ended" || m["call_url"] != nil {
		t.Errorf("guest status after the end: %d %v", st, m)
	}
}

// TestRegression_UnauditedVisitRefusal: every refusal of a visit
// decision leaves its audit record, whoever is refused: a signed-in
// guest and the patient trying the host's actions (a new invite, a guest
// link, admit, decline, remove, end) and reading a visit they are not
// part of; a new invite is audited when it is issued too.
func TestRegression_UnauditedVisitRefusal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{DefaultParticipants: 4})
	vid, _, patPID := h.admitted()
	vidB, _ := h.createVisit("dr", nil)
	st, m := h.do("bench-g", "POST", "/.telegate/visits/guest", map[string]any{"link": h.guestLink(vid, labelClinician, "")})
	if st != http.StatusOK {
		t.Fatalf("signed-in guest joins: %d %v", st, m)
	}
	gid := m["self"].(map[string]any)["id"].(string)
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gid})

	subjects := map[string]string{"bench-g": "bench-g", "pat": users["pat"].Subject}
	for user, sub := range subjects {
		for _, try := range append(hostActions(vid), struct{ path, typ string }{"/.telegate/visits/" + vidB, "visit.view"}) {
			from := len(h.sink.all())
			method, body := "POST", any(map[string]any{"participant": patPID})
			switch try.typ {
			case "visit.guest-link":
				body = map[string]any{"label": labelOther}
			case "visit.invite":
				body = nil
			case "visit.view":
				method, body = "GET", nil
			}
			if st, m := h.do(user, method, try.path, body); st != http.StatusForbidden {
				t.Errorf("%s: %s %s: %d %v", user, method, try.path, st, m)
			}
			var seen bool
			for _, e := range h.sink.all()[from:] {
				seen = seen || e.Type == try.typ && e.Decision == "deny" && e.Subject == sub && e.Reason != ""
			}
			if !seen {
				t.Errorf("%s: %s refused without a %s deny record", user, try.path, try.typ)
			}
		}
	}
	// Malformed requests to decisions are refused on the record too.
	for _, try := range []struct{ path, typ string }{
		{"/.telegate/visits/" + vid + "/admit", "visit.admit"},
		{"/.telegate/visits/" + vid + "/guests", "visit.guest-link"},
		{"/.telegate/visits/join", "visit.join"},
		{"/.telegate/visits/guest", "visit.guest-join"},
	} {
		from := len(h.sink.all())
		if st, m := h.do("dr", "POST", try.path, map[string]any{"participant": patPID, "extra": 1}); st != http.StatusBadRequest || m["reason"] != "bad-json" {
			t.Errorf("malformed %s: %d %v", try.path, st, m)
		}
		if e := h.sink.all()[from:]; len(e) != 1 || e[0].Type != try.typ || e[0].Decision != "deny" || e[0].Reason != "bad-json" {
			t.Errorf("malformed %s audited as %+v", try.path, e)
		}
	}
	from := len(h.sink.all())
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/invite", nil); st != http.StatusOK {
		t.Fatalf("host's new invite: %d %v", st, m)
	}
	if e := h.sink.all()[from:]; len(e) != 1 || e[0].Type != "visit.invite" || e[0].Decision != "allow" || e[0].Attrs["visit"] != vid {
		t.Errorf("host's new invite audited as %+v", e)
	}
}
