package media

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// waiter is someone in a visit's waiting room, as the tests of the
// guest's waiting room see them: what they are, and how they reach the
// pre-call check and the chat.
type waiter struct {
	what string
	pid  string
	// check posts the pre-call check of vid; chat opens its chat socket
	// (nil when refused). Each returns the answer's status.
	check func(vid string) int
	chat  func(vid string) (*websocket.Conn, int)
}

// waiters puts into visit vid (invite inv) its patient (as user pat),
// a signed-in guest (as user signedIn) and an account-less guest, each
// with a guest link of their own, all waiting.
func (h *harness) waiters(vid, inv, pat, signedIn string) []waiter {
	h.t.Helper()
	asUser := func(what, user, pid string) waiter {
		return waiter{what: what, pid: pid,
			check: func(vid string) int { st, _ := h.do(user, "POST", "/.telegate/visits/"+vid+"/check", nil); return st },
			chat: func(vid string) (*websocket.Conn, int) {
				c, resp, err := h.dialAt(user, vid, "chat", h.srv.URL)
				if err != nil {
					if resp == nil {
						h.t.Fatalf("chat as %s: %v", user, err)
					}
					return nil, resp.StatusCode
				}
				h.t.Cleanup(func() { c.CloseNow() })
				return c, http.StatusSwitchingProtocols
			}}
	}
	pid := h.join(pat, inv)
	st, m := h.do(signedIn, "POST", "/.telegate/visits/guest", map[string]any{"link": h.guestLink(vid, labelClinician, "")})
	if st != http.StatusOK {
		h.t.Fatalf("signed-in guest join: %d %v", st, m)
	}
	gpid := m["self"].(map[string]any)["id"].(string)
	cookie, apid := h.guestJoin(h.guestLink(vid, labelInterpreter, ""), "Ana Interpreter")
	return []waiter{asUser("patient", pat, pid), asUser("signed-in guest", signedIn, gpid), {what: "account-less guest", pid: apid,
		check: func(vid string) int {
			st, _, _ := h.guestDo(cookie, "POST", "/.telegate/visits/"+vid+"/check", nil)
			return st
		},
		chat: func(vid string) (*websocket.Conn, int) { return h.guestDialAt(cookie, vid, "chat") }}}
}

// auditOf is the decision and reason of each audit record of type typ
// from index from on.
func auditOf(h *harness, from int, typ string) []string {
	var out []string
	for _, e := range h.sink.all()[from:] {
		if e.Type == typ {
			out = append(out, e.Decision+" "+e.Reason)
		}
	}
	return out
}

// TestRegression_GuestWaitingRoomLikeThePatients: a guest waiting for
// admission has what the patient's waiting room has, and is authorised
// for it exactly as the patient is. Both waiting pages (the patient's
// and the guest's) carry the pre-call check and the chat with the clinic,
// once each; a waiting guest — signed in or without an account — gets the
// check's relay configurations and writes with the clinician; in each
// later state (admitted, declined, removed, the visit ended) the check
// and the chat answer a guest with the patient's status and audit the
// same decision; a guest's session presented on another visit's check
// and chat opens neither (401) and is audited as out of scope.
func TestRegression_GuestWaitingRoomLikeThePatients(t *testing.T) {
	t.Parallel()
	// The pages: each page that waits for admission shows the waiting
	// room's parts, from the one file that has them.
	parts := []string{`id="precall"`, `id="precall-start"`, `id="precall-video"`, `id="precall-level"`, `id="precall-sound"`, `id="precall-network"`, `id="precall-verdict"`,
		`id="wchat"`, `id="wchat-log"`, `id="wchat-form"`, `id="wchat-input"`}
	for _, name := range []string{"join.html", "guest.html"} {
		b, err := pageHTML(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if includeRE.Match(b) || strings.Contains(string(b), "<!--#include") {
			t.Errorf("%s is served with an include line left in it", name)
		}
		for _, p := range parts {
			if n := strings.Count(string(b), " "+p); n != 1 {
				t.Errorf("%s has %s %d times, want once", name, p, n)
			}
		}
		raw, _ := os.ReadFile("web/" + name)
		if regexp.MustCompile(`id="(precall|wchat)`).Match(raw) {
			t.Errorf("web/%s writes the waiting room's parts itself instead of including waiting-room.html", name)
		}
	}

	h := newHarness(t, withoutAccount(config.Visits{}))
	type outcome struct{ check, chat int }
	for _, tc := range []struct {
		state string
		act   func(vid string, w waiter)
		want  outcome
	}{
		{"waiting", nil, outcome{http.StatusOK, http.StatusSwitchingProtocols}},
		{"admitted", func(vid string, w waiter) { h.decide(vid, "admit", w.pid) }, outcome{http.StatusOK, http.StatusForbidden}},
		{"declined", func(vid string, w waiter) { h.decide(vid, "decline", w.pid) }, outcome{http.StatusForbidden, http.StatusForbidden}},
		{"removed", func(vid string, w waiter) { h.decide(vid, "admit", w.pid); h.decide(vid, "remove", w.pid) }, outcome{http.StatusForbidden, http.StatusForbidden}},
		{"ended", nil, outcome{http.StatusGone, http.StatusGone}},
	} {
		vid, inv := h.createVisit("dr", map[string]any{"participants": 6})
		ws := h.waiters(vid, inv, "pat", "pat2")
		if tc.act != nil {
			for _, w := range ws {
				tc.act(vid, w)
			}
		}
		if tc.state == "ended" {
			if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
				t.Fatalf("end: %d", st)
			}
		}
		var audits []string
		for _, w := range ws {
			from := len(h.sink.all())
			got := outcome{check: w.check(vid)}
			_, got.chat = w.chat(vid)
			if got != tc.want {
				t.Errorf("%s, %s: check %d, chat %d; want %d, %d", tc.state, w.what, got.check, got.chat, tc.want.check, tc.want.chat)
			}
			a := strings.Join(append(auditOf(h, from, "visit.check"), auditOf(h, from, "visit.chat")...), ", ")
			if audits = append(audits, a); a != audits[0] {
				t.Errorf("%s, %s: audited %q, the patient %q", tc.state, w.what, a, audits[0])
			}
		}
		t.Logf("%s: check and chat audited as %q", tc.state, audits[0])
	}

	// Waiting guests write with the clinician, and the clinician back.
	vid, inv := h.createVisit("dr", map[string]any{"participants": 6})
	ws := h.waiters(vid, inv, "pat3", "bench-guest")
	dr := h.chatDial("dr", vid)
	for _, w := range ws[1:] {
		c, st := w.chat(vid)
		if c == nil {
			t.Fatalf("%s: chat %d", w.what, st)
		}
		readChat(t, c, "welcome")
		text := "Chat-canary: " + w.what + " is here"
		sendJSON(t, c, map[string]any{"type": "chat", "text": text})
		if m := readChat(t, dr, "chat"); m.From != w.pid || m.Text != text {
			t.Errorf("the clinician got %+v from the %s", m, w.what)
		}
		sendJSON(t, dr, map[string]any{"type": "chat", "text": "Chat-canary: one moment", "to": w.pid})
		if m := readChat(t, c, "chat"); m.Name != "Dr. Ada Owner" || m.Text != "Chat-canary: one moment" {
			t.Errorf("the %s got %+v", w.what, m)
		}
	}

	// Another visit's guest: their session stands for nothing there.
	other, _ := h.createVisit("dr", nil)
	from := len(h.sink.all())
	acc := ws[2]
	if st := acc.check(other); st != http.StatusUnauthorized {
		t.Errorf("a guest's session on another visit's check: %d, want 401", st)
	}
	if _, st := acc.chat(other); st != http.StatusUnauthorized {
		t.Errorf("a guest's session on another visit's chat: %d, want 401", st)
	}
	d := guestSessionDenials(h, from)
	if len(d) != 2 {
		t.Fatalf("%d out-of-scope uses audited, want 2: %+v", len(d), d)
	}
	for _, e := range d {
		if e.Reason != "guest-session-out-of-scope" || e.Attrs["visit"] != vid {
			t.Errorf("audit of another visit's guest: %+v", e)
		}
	}
}

// decide posts the host's decision action ("admit", "decline",
// "remove") on participant pid of visit vid.
func (h *harness) decide(vid, action, pid string) {
	h.t.Helper()
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/"+action, map[string]any{"participant": pid}); st != http.StatusNoContent {
		h.t.Fatalf("%s %s: %d %v", action, pid, st, m)
	}
}
