package media

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// reissueToken asks for a new invite link of vid as dr and returns its token.
func (h *harness) reissueToken(vid string) string {
	h.t.Helper()
	st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/invite", nil)
	if st != http.StatusOK {
		h.t.Fatalf("new invite link: %d %v", st, m)
	}
	u := m["url"].(string)
	return unescape(u[strings.Index(u, "invite=")+len("invite="):])
}

// TestRegression_InviteLinkReplaced: "New invite link" revokes every
// earlier link of the visit — made a moment before, in the same second,
// or before a restart — while the newest one works and people already
// waiting or admitted keep their place whichever link they open again.
func TestRegression_InviteLinkReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{InviteTTL: time.Hour})
	vid, first := h.createVisit("dr", nil)
	waitingPID := h.join("pat", first)

	// Two new links within the same second (the clock does not move).
	second := h.reissueToken(vid)
	third := h.reissueToken(vid)
	refused := func(who, tok, what string) {
		t.Helper()
		st, m := h.do(who, "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(tok)})
		if st != http.StatusForbidden || m["reason"] != "invite-replaced" {
			t.Fatalf("%s: %d %v, want 403 invite-replaced", what, st, m)
		}
	}
	refused("pat2", first, "the first link after two new ones")
	refused("pat2", second, "the second link, replaced in the same second")

	// Already waiting: the old link still shows the same place.
	if pid := h.join("pat", first); pid != waitingPID {
		t.Fatalf("the waiting patient reopening the old link got participant %s, had %s", pid, waitingPID)
	}
	// The newest link works.
	h.join("pat2", third)

	// Generations survive a restart.
	h.restart()
	refused("pat3", second, "a replaced link after a restart")
	h.join("pat3", third)
	fourth := h.reissueToken(vid)
	refused("bench-new", third, "the third link after the fourth")
	h.join("bench-new", fourth)
}

// TestRegression_WaitingRoomPresence: a patient whose waiting-room page
// stops asking (tab closed) is shown to the clinician as away within a
// few seconds, is off the list after visits.waiting_grace, and is back
// in the waiting room on opening the link (or the page) again; a patient
// whose page keeps asking is never away.
func TestRegression_WaitingRoomPresence(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{InviteTTL: time.Hour, WaitingGrace: 30 * time.Second})
	vid, inv := h.createVisit("dr", nil)
	gone := h.join("pat", inv)
	stays := h.join("pat2", inv)
	listed := func() map[string]map[string]any {
		t.Helper()
		_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
		out := map[string]map[string]any{}
		for _, p := range m["participants"].([]any) {
			pm := p.(map[string]any)
			out[pm["id"].(string)] = pm
		}
		return out
	}
	poll := func(user string) map[string]any {
		t.Helper()
		st, m := h.do(user, "GET", "/.telegate/visits/"+vid, nil)
		if st != http.StatusOK {
			t.Fatalf("%s polls: %d %v", user, st, m)
		}
		return m
	}
	if l := listed(); l[gone]["away"] == true || l[stays]["away"] == true {
		t.Fatalf("away right after joining: %v", l)
	}
	for range 4 { // 8 s: pat2's page polls every 2 s, pat's not at all
		h.clock.Add(2 * time.Second)
		poll("pat2")
		h.svc.sweep()
	}
	l := listed()
	if l[gone]["away"] != true || l[gone]["state"] != "waiting" {
		t.Fatalf("a patient unheard for 8 s: %v", l[gone])
	}
	if l[stays]["away"] == true {
		t.Fatalf("a patient whose page polls is away: %v", l[stays])
	}
	for range 12 { // 24 s more: past the 30 s grace for pat
		h.clock.Add(2 * time.Second)
		poll("pat2")
		h.svc.sweep()
	}
	l = listed()
	if _, ok := l[gone]; ok {
		t.Fatalf("a patient gone for 32 s (grace 30 s) is still listed: %v", l[gone])
	}
	if l[stays]["state"] != "waiting" {
		t.Fatalf("the polling patient: %v", l[stays])
	}
	// Admitting someone who left is refused; declining is allowed.
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gone}); st != http.StatusConflict {
		t.Fatalf("admit after leaving: %d %v", st, m)
	}
	// Opening the page again brings them back, as waiting and present.
	if m := poll("pat"); m["self"].(map[string]any)["state"] != "waiting" {
		t.Fatalf("the patient who came back: %v", m["self"])
	}
	if l := listed(); l[gone]["state"] != "waiting" || l[gone]["away"] == true {
		t.Fatalf("the patient who came back, as the clinician sees them: %v", l[gone])
	}
	// So does opening the link again, after leaving a second time.
	h.clock.Add(31 * time.Second)
	h.svc.sweep()
	if pid := h.join("pat", inv); pid != gone {
		t.Fatalf("rejoining made participant %s, had %s", pid, gone)
	}
	if l := listed(); l[gone]["state"] != "waiting" {
		t.Fatalf("after rejoining: %v", l[gone])
	}
}

// TestRegression_ParticipantCapCountsClinician: the participant cap
// counts the clinician, and every refusal it causes says so — joining a
// full visit, admitting into one — with the number.
func TestRegression_ParticipantCapCountsClinician(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{InviteTTL: time.Hour})
	vid, inv := h.createVisit("dr", map[string]any{"title": "x", "participants": 3})
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	if m["participants_cap"] != float64(3) {
		t.Fatalf("participants_cap %v", m["participants_cap"])
	}
	p1 := h.join("pat", inv)
	p2 := h.join("pat2", inv)
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": p1}); st != http.StatusNoContent {
		t.Fatalf("admit first: %d %v", st, m)
	}
	p3 := h.join("pat3", inv)
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": p2}); st != http.StatusNoContent {
		t.Fatalf("admit second (clinician + 2 = cap 3): %d %v", st, m)
	}
	check := func(what string, st int, m map[string]any) {
		t.Helper()
		msg, _ := m["error"].(string)
		if st != http.StatusConflict || m["reason"] != "full" || !strings.Contains(msg, "3 people") || !strings.Contains(msg, "clinician and any guests included") {
			t.Fatalf("%s: %d %v, want 409 full naming 3 people, the clinician included", what, st, m)
		}
	}
	st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": p3})
	check("admitting a third guest", st, m)
	st, m = h.do("bench-late", "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(inv)})
	check("joining a full visit", st, m)
}

// TestRegression_SignalingCarriesCallFacts: what the pages need to
// explain and resume a call reaches the others — a participant's media
// state (camera blocked, absent, off) with the sender stamped by the
// server, and each socket's call session in welcome and peer-joined (the
// same after a reconnect of the same page, another after a reload);
// malformed ones are refused.
func TestRegression_SignalingCarriesCallFacts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, host, pid := h.admitted()
	dr := h.mustDial("dr", vid+"?session=pageA1")
	readType(t, dr, "welcome")
	pat := h.mustDial("pat", vid+"?session=patPage7")
	w := readType(t, pat, "welcome")
	if len(w.Peers) != 1 || w.Peers[0].ID != host || w.Peers[0].Session != "pageA1" {
		t.Fatalf("welcome %+v", w)
	}
	if j := readType(t, dr, "peer-joined"); j.Peer.Session != "patPage7" {
		t.Fatalf("peer-joined %+v", j.Peer)
	}
	for _, st := range []string{"blocked", "absent", "off", "on"} {
		sendJSON(t, pat, map[string]any{"type": "media", "media": map[string]any{"audio": "on", "video": st}, "from": host})
		m := readType(t, dr, "media")
		if m.From != pid || m.Media == nil || m.Media.Video != st || m.Media.Audio != "on" {
			t.Fatalf("media %q forwarded as %+v", st, m)
		}
	}
	// The same page reconnecting keeps its session; a reload has another;
	// a session that is not 1–32 letters and digits is none.
	for _, tc := range []struct{ query, want string }{
		{"?session=patPage7", "patPage7"},
		{"?session=reloaded2", "reloaded2"},
		{"?session=" + strings.Repeat("a", 33), ""},
		{"?session=a-b", ""},
	} {
		pat.CloseNow()
		pat = h.mustDial("pat", vid+tc.query)
		readType(t, pat, "welcome")
		if j := readType(t, dr, "peer-joined"); j.Peer.Session != tc.want {
			t.Fatalf("%s: peer-joined session %q, want %q", tc.query, j.Peer.Session, tc.want)
		}
	}
	for _, bad := range []map[string]any{
		{"type": "media", "media": map[string]any{"audio": "on", "video": "loud"}},
		{"type": "media"},
		{"type": "ping", "media": map[string]any{"audio": "on", "video": "on"}},
	} {
		c := h.mustDial("pat", vid)
		readType(t, c, "welcome")
		sendJSON(t, c, bad)
		if st := closeStatus(t, c); st != websocket.StatusPolicyViolation {
			t.Fatalf("%v: closed with %v, want 1008", bad, st)
		}
	}
}
