package media

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// chatDial opens the visit's waiting-room chat socket as user.
func (h *harness) chatDial(user, visitID string) *websocket.Conn {
	h.t.Helper()
	c, resp, err := h.dialAt(user, visitID, "chat", h.srv.URL)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		h.t.Fatalf("chat as %s: %v (status %d)", user, err, st)
	}
	h.t.Cleanup(func() { c.CloseNow() })
	readChat(h.t, c, "welcome")
	return c
}

// readChat reads chat messages until one of type typ arrives.
func readChat(t *testing.T, c *websocket.Conn, typ string) chatServerMsg {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m chatServerMsg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("server sent non-JSON %q", b)
		}
		if m.Type == typ {
			return m
		}
	}
}

// TestWaitingRoomChat: a waiting patient and the clinician write to each
// other; the server names the sender; nothing of the text reaches the
// audit trail; someone not in the waiting room cannot open the chat.
func TestWaitingRoomChat(t *testing.T) {
	h := newHarness(t, config.Visits{})
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	dr := h.chatDial("dr", vid)
	pat := h.chatDial("pat", vid)

	const hello = "Chat-canary: I am in the waiting room"
	sendJSON(t, pat, map[string]any{"type": "chat", "text": hello})
	m := readChat(t, dr, "chat")
	if m.From != pid || m.Name != "Pat Patient" || m.Text != hello || m.To != pid {
		t.Fatalf("the clinician got %+v", m)
	}
	const reply = "Chat-canary: I will be with you in five minutes"
	sendJSON(t, dr, map[string]any{"type": "chat", "text": reply, "to": pid})
	m = readChat(t, pat, "chat")
	if m.Name != "Dr. Ada Owner" || m.Text != reply {
		t.Fatalf("the patient got %+v", m)
	}
	for _, e := range h.sink.all() {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "Chat-canary") {
			t.Fatalf("chat text in the audit trail: %s", b)
		}
	}
	// Another patient, not in this waiting room, and another clinician.
	for _, u := range []string{"pat2", "dr2"} {
		if _, resp, err := h.dialAt(u, vid, "chat", h.srv.URL); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s opened the chat: %v", u, err)
		}
	}
	// A foreign Origin.
	if _, resp, err := h.dialAt("pat", vid, "chat", "https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign origin opened the chat: %v", err)
	}
}

// TestRegression_WaitingRoomChatBounds tries each bound of the chat: a
// message too long, an unknown field (a forged sender), a patient naming
// a recipient, too many messages — each closes that socket (1008) and no
// other; sign-out, admission and the visit's end close the chat.
func TestRegression_WaitingRoomChatBounds(t *testing.T) {
	h := newHarness(t, config.Visits{})
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	dr := h.chatDial("dr", vid)
	for name, msg := range map[string]any{
		"too long":      map[string]any{"type": "chat", "text": strings.Repeat("x", chatMaxChars+1)},
		"forged sender": map[string]any{"type": "chat", "text": "hi", "from": "someone-else"},
		"a recipient":   map[string]any{"type": "chat", "text": "hi", "to": pid},
		"empty":         map[string]any{"type": "chat", "text": " \u200b "},
		"unknown type":  map[string]any{"type": "offer", "text": "hi"},
	} {
		c := h.chatDial("pat", vid)
		sendJSON(t, c, msg)
		if st := closeStatus(t, c); st != websocket.StatusPolicyViolation {
			t.Errorf("%s: closed with %v, want 1008", name, st)
		}
	}
	c := h.chatDial("pat", vid)
	for range chatBurst + 5 {
		if err := writeMsg(c, map[string]any{"type": "chat", "text": "again"}); err != nil {
			break
		}
	}
	closed := closeStatus(t, c)
	if closed != websocket.StatusPolicyViolation {
		t.Errorf("over the rate: closed with %v, want 1008", closed)
	}
	stillOpen(t, "the clinician", dr)
	// A reconnect does not refill the allowance.
	c = h.chatDial("pat", vid)
	sendJSON(t, c, map[string]any{"type": "chat", "text": "after a reconnect"})
	if st := closeStatus(t, c); st != websocket.StatusPolicyViolation {
		t.Errorf("a new socket refilled the allowance: closed with %v", st)
	}

	// Sign-out closes the chat.
	h.join("pat3", inv)
	c = h.chatDial("pat3", vid)
	h.svc.SessionEnded("sess-pat3", nil)
	if st := closeStatus(t, c); st != statusSignedOut {
		t.Errorf("signed out: the chat closed with %v", st)
	}

	// Admission ends the waiting-room chat; the visit's end closes the
	// clinician's.
	h.clock.Add(time.Minute)
	vid2, inv2 := h.createVisit("dr", nil)
	pid2 := h.join("pat2", inv2)
	c2 := h.chatDial("pat2", vid2)
	dr2 := h.chatDial("dr", vid2)
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid2+"/admit", map[string]any{"participant": pid2}); st != http.StatusNoContent {
		t.Fatalf("admit: %d %v", st, m)
	}
	if st := closeStatus(t, c2); st != websocket.StatusNormalClosure {
		t.Errorf("admitted: the chat closed with %v", st)
	}
	if _, resp, err := h.dialAt("pat2", vid2, "chat", h.srv.URL); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("an admitted patient reopened the waiting-room chat: %v", err)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid2+"/end", nil); st != http.StatusNoContent {
		t.Fatalf("end: %d", st)
	}
	if st := closeStatus(t, dr2); st != statusEnded {
		t.Errorf("ended: the clinician's chat closed with %v", st)
	}
	if _, resp, err := h.dialAt("dr", vid2, "chat", h.srv.URL); err == nil || resp.StatusCode != http.StatusGone {
		t.Errorf("the chat of an ended visit opened: %v", err)
	}
}

// TestRegression_PreCallCheckOnlyForTheWaitingRoom: the pre-call check's
// credentials go only to someone waiting in (or admitted to) a live visit,
// at most one check every few seconds; they allocate on the relay as a
// check of their own, never as the participant (whose /ice stays 403
// until admission).
func TestRegression_PreCallCheckOnlyForTheWaitingRoom(t *testing.T) {
	h := newHarness(t, config.Visits{})
	vid, inv := h.createVisit("dr", nil)
	h.join("pat", inv)
	st, m := h.do("pat", "POST", "/.telegate/visits/"+vid+"/check", nil)
	if st != http.StatusOK {
		t.Fatalf("check: %d %v", st, m)
	}
	var cj checkJSON
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &cj); err != nil {
		t.Fatal(err)
	}
	for _, c := range []iceConfig{cj.Caller, cj.Callee} {
		if c.ICETransportPolicy != "relay" || len(c.ICEServers) != 1 || !strings.Contains(c.ICEServers[0].Username, ":check-") {
			t.Fatalf("check configuration %+v", c)
		}
		if strings.Contains(c.ICEServers[0].Username, vid) {
			t.Errorf("the check's credential names the visit: %s", c.ICEServers[0].Username)
		}
		if err := h.allocate(c.ICEServers[0].Username, c.ICEServers[0].Credential); err != nil {
			t.Errorf("a check credential does not allocate: %v", err)
		}
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Errorf("/ice for a waiting patient after a check: %d", st)
	}
	if st, _ := h.do("pat", "POST", "/.telegate/visits/"+vid+"/check", nil); st != http.StatusTooManyRequests {
		t.Errorf("a second check at once: %d, want 429", st)
	}
	for _, u := range []string{"pat2", ""} {
		if st, _ := h.do(u, "POST", "/.telegate/visits/"+vid+"/check", nil); st != http.StatusForbidden && st != http.StatusUnauthorized {
			t.Errorf("a check by %q: %d", u, st)
		}
	}
	// Without the CSRF header.
	req, _ := http.NewRequest("POST", h.srv.URL+"/.telegate/visits/"+vid+"/check", nil)
	req.Header.Set("X-Test-User", "pat")
	if st, _ := h.send(req); st != http.StatusForbidden {
		t.Errorf("a check without the CSRF header: %d", st)
	}
	h.clock.Add(checkEvery)
	if st, _ := h.do("pat", "POST", "/.telegate/visits/"+vid+"/check", nil); st != http.StatusOK {
		t.Errorf("a check after the pause: %d", st)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
		t.Fatal(st)
	}
	h.clock.Add(checkEvery)
	if st, _ := h.do("pat", "POST", "/.telegate/visits/"+vid+"/check", nil); st != http.StatusGone {
		t.Errorf("a check in an ended visit: %d, want 410", st)
	}
}

// TestRedisWaitingRoomChatAcrossNodes: with the visits on Redis, the
// patient's chat socket on node 1 and the clinician's on node 2 write to
// each other, each message with the sender the server stamped; a patient
// who joins after the clinician's socket opened is reached too, and only
// the participant named gets a clinician's message; the visit's end on
// node 1 closes the clinician's chat on node 2 within 1 s.
func TestRedisWaitingRoomChatAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{})
	vid, inv := n1.createVisit("dr", nil)
	pid := n1.join("pat", inv)
	pat := n1.chatDial("pat", vid)
	dr := n2.chatDial("dr", vid)

	sendJSON(t, pat, map[string]any{"type": "chat", "text": "I am in the waiting room"})
	m := readChat(t, dr, "chat")
	if m.From != pid || m.Name != "Pat Patient" || m.To != pid || m.Text != "I am in the waiting room" {
		t.Fatalf("the clinician on node 2 got %+v", m)
	}
	sendJSON(t, dr, map[string]any{"type": "chat", "text": "Five minutes", "to": pid})
	m = readChat(t, pat, "chat")
	if m.Name != "Dr. Ada Owner" || m.From == "" || m.From == pid || m.To != pid || m.Text != "Five minutes" {
		t.Fatalf("the patient on node 1 got %+v", m)
	}

	// A second patient joins on node 1 after the clinician's socket on
	// node 2 opened: node 2 reads the waiting room from Redis.
	pid2 := n1.join("pat2", inv)
	pat2 := n1.chatDial("pat2", vid)
	sendJSON(t, dr, map[string]any{"type": "chat", "text": "For the second patient", "to": pid2})
	if m := readChat(t, pat2, "chat"); m.To != pid2 || m.Name != "Dr. Ada Owner" {
		t.Fatalf("the second patient got %+v", m)
	}
	sendJSON(t, pat2, map[string]any{"type": "chat", "text": "Thank you"})
	if m := readChat(t, dr, "chat"); m.From != pid2 || m.Name != "Second Patient" {
		t.Fatalf("the clinician got %+v from the second patient", m)
	}
	// The first patient saw neither: the next thing it reads is a pong.
	sendJSON(t, pat, map[string]any{"type": "ping"})
	if m := readChat(t, pat, "pong"); m.Type != "pong" {
		t.Fatal(m)
	}

	start := time.Now()
	if st, _ := n1.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
		t.Fatalf("end on node 1: %d", st)
	}
	closedWithin(t, "clinician's chat on node 2 after the end on node 1", dr, statusEnded, start)
}

// TestRegression_WaitingRoomEventReachesEveryNode tries each waiting-room
// event with its chat sockets on the other node than the one where it
// happens: a message either way, admission, decline, removal from the
// waiting room, the visit's end and sign-out each reach (or close) the
// chat on the other node, within 1 s for the closing ones.
func TestRegression_WaitingRoomEventReachesEveryNode(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{})
	type event struct {
		name string
		// act happens on node 1 to the patient pid of visit vid.
		act  func(vid, pid string)
		code websocket.StatusCode
	}
	decide := func(action string) func(vid, pid string) {
		return func(vid, pid string) {
			if st, m := n1.do("dr", "POST", "/.telegate/visits/"+vid+"/"+action, map[string]any{"participant": pid}); st != http.StatusNoContent {
				t.Fatalf("%s on node 1: %d %v", action, st, m)
			}
		}
	}
	for _, ev := range []event{
		{"admitted", decide("admit"), websocket.StatusNormalClosure},
		{"declined", decide("decline"), websocket.StatusNormalClosure},
		{"removed", decide("remove"), websocket.StatusNormalClosure},
		{"visit ended", func(vid, _ string) {
			if st, _ := n1.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
				t.Fatalf("end on node 1: %d", st)
			}
		}, statusEnded},
		{"signed out", func(string, string) { n1.svc.SessionEnded(users["pat"].SessionID, users["pat"]) }, statusSignedOut},
	} {
		vid, inv := n1.createVisit("dr", nil)
		pid := n1.join("pat", inv)
		pat := n2.chatDial("pat", vid)
		dr1 := n1.chatDial("dr", vid)
		dr2 := n2.chatDial("dr", vid)
		// The message events, both ways across the nodes (and to the
		// clinician's page on the patient's node).
		sendJSON(t, pat, map[string]any{"type": "chat", "text": "hello from node 2"})
		for _, c := range []*websocket.Conn{dr1, dr2} {
			if m := readChat(t, c, "chat"); m.From != pid || m.Text != "hello from node 2" {
				t.Fatalf("%s: a clinician page got %+v", ev.name, m)
			}
		}
		sendJSON(t, dr1, map[string]any{"type": "chat", "text": "hello from node 1", "to": pid})
		for _, c := range []*websocket.Conn{pat, dr2} {
			if m := readChat(t, c, "chat"); m.To != pid || m.Name != "Dr. Ada Owner" || m.Text != "hello from node 1" {
				t.Fatalf("%s: a page on node 2 got %+v", ev.name, m)
			}
		}
		start := time.Now()
		ev.act(vid, pid)
		closedWithin(t, ev.name+": the patient's chat on node 2", pat, ev.code, start)
		if ev.code == statusEnded {
			closedWithin(t, ev.name+": the clinician's chat on node 2", dr2, statusEnded, start)
		} else {
			stillOpen(t, ev.name+": the clinician's chat on node 2", dr2)
		}
		n1.clock.Add(time.Minute)
		n2.clock.Add(time.Minute)
	}
}

// TestRegression_WaitingRoomChatAllowanceAcrossNodes: a participant's
// waiting-room chat allowance is one for every node: a burst split over
// sockets on two nodes (the patient's, a clinician's, each in its own
// visit) is cut once the burst is spent, and what was sent on one node
// counts on the other after a reconnect there; another participant's
// allowance is untouched.
func TestRegression_WaitingRoomChatAllowanceAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{})
	burst := func(c *websocket.Conn, n int, to string) {
		for range n {
			if err := writeMsg(c, map[string]any{"type": "chat", "text": "burst", "to": to}); err != nil {
				return
			}
		}
	}
	for _, who := range []string{"patient", "clinician"} {
		vid, inv := n1.createVisit("dr", nil)
		pid := n1.join("pat", inv)
		user, to := "pat", ""
		if who == "clinician" {
			user, to = "dr", pid
		}
		a := n1.chatDial(user, vid)
		b := n2.chatDial(user, vid)
		// Both sockets are open before either writes: the burst is split.
		stillOpen(t, who+" on node 1", a)
		stillOpen(t, who+" on node 2", b)
		burst(a, chatBurst/2+1, to)
		burst(b, chatBurst/2+1, to)
		ca, cb := closeStatusOrOpen(t, a), closeStatusOrOpen(t, b)
		if ca != websocket.StatusPolicyViolation && cb != websocket.StatusPolicyViolation {
			t.Errorf("%s: %d messages split over two nodes passed (closes %v, %v), want the burst of %d to hold", who, 2*(chatBurst/2+1), ca, cb, chatBurst)
		}
		// A new socket on the other node does not get a fresh allowance.
		c := n2.chatDial(user, vid)
		burst(c, 2, to)
		if st := closeStatusOrOpen(t, c); st != websocket.StatusPolicyViolation {
			t.Errorf("%s: a socket on node 2 after the burst got a fresh allowance (close %v)", who, st)
		}
		// Someone else in the visit still writes.
		other := n2.chatDial("dr", vid)
		if who == "clinician" {
			other = n2.chatDial("pat", vid)
		}
		stillOpen(t, "the other side", other)
		n1.clock.Add(time.Minute)
		n2.clock.Add(time.Minute)
	}
}

// closeStatusOrOpen is c's close status, or -1 when it answers a ping
// (still open).
func closeStatusOrOpen(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	if err := writeMsg(c, map[string]any{"type": "ping"}); err != nil {
		return closeStatus(t, c)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil {
			return websocket.CloseStatus(err)
		}
		var m chatServerMsg
		if json.Unmarshal(b, &m) == nil && m.Type == "pong" {
			return -1
		}
	}
}
