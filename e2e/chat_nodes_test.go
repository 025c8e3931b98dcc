package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// rawChatJS opens a page's own waiting-room chat socket to its node
// (window.__chat), waits for its welcome and resolves with true, or with
// false when the node refuses it.
const rawChatJS = `new Promise(res => {
  const ws = new WebSocket('wss://' + location.host + '/.telegate/visits/' + %q + '/chat');
  window.__chat = { ws, got: [], code: 0 };
  ws.onmessage = e => { const m = JSON.parse(e.data); window.__chat.got.push(m); if (m.type === 'welcome') res(true); };
  ws.onclose = e => { window.__chat.code = e.code; res(false); };
})`

// rawSendJS sends the given messages and a ping on window.__chat and
// resolves once the pong arrives (0: still open) or the socket closes
// (its close code).
const rawSendJS = `new Promise(res => {
  const c = window.__chat;
  if (c.code) return res(c.code);
  c.ws.addEventListener('message', e => { if (JSON.parse(e.data).type === 'pong') res(0); });
  c.ws.addEventListener('close', e => res(e.code));
  for (const m of %s) c.ws.send(JSON.stringify(m));
  c.ws.send('{"type":"ping"}');
})`

// TestRegression_WaitingRoomChatAcrossNodes: with two nodes sharing
// Redis, the waiting room is one room whatever node each page is on. The
// clinician's lobby on node 1 sees the patient who waits on node 2 and is
// alerted of the arrival; the patient's message reaches the clinician on
// the other node with the sender the server stamped, and the clinician's
// reaches the patient; a second person waiting on the clinician's own
// node chats both ways as before; the patient's allowance holds for a
// burst split over pages on both nodes (one of the sockets is closed,
// 1008); and once the patient is declined on node 1, nothing more is
// delivered on node 2: the clinician's message to them is refused, their
// page's chat is closed and a new chat socket there is refused.
func TestRegression_WaitingRoomChatAcrossNodes(t *testing.T) {
	c := startCluster(t, 2)
	newCtx := c.browser()
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	other := newPage(t, newCtx, "waiting on the clinician's node")
	drBase, patBase := c.nodes[0].Base(), c.nodes[1].Base()

	dr.signIn(drBase+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Chat across nodes"), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)
	invitePath := strings.TrimPrefix(invite, drBase)

	// Arrival on node 2, seen and alerted on node 1.
	pat.signIn(patBase+invitePath, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	vid := eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	dr.waitFor("the patient waiting on node 2", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	dr.waitFor("the arrival caption", `document.querySelector('#alert-caption').textContent.includes('Demo Patient arrived')`, 10*time.Second)

	// Across the nodes, both ways, each line under the stamped name.
	chatsTo(t, pat, dr, "", "Hello from node 2")
	if line := chatLine(dr, "Hello from node 2"); !strings.HasPrefix(line, "Demo Patient:") {
		t.Errorf("the clinician's page shows %q, want it under the patient's name", line)
	}
	chatsTo(t, dr, pat, "Demo Patient", "Hello from node 1")
	if line := chatLine(pat, "Hello from node 1"); !strings.HasPrefix(line, "Dr. Demo Clinician:") {
		t.Errorf("the patient's page shows %q, want it under the clinician's name", line)
	}

	// The same node, both ways.
	other.signIn(drBase+invitePath, "admin@demo.test", "/.telegate/visits/join")
	other.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	dr.waitFor("the second person in the chat's To list", `[...document.querySelectorAll('#wchat-to option')].some(o => o.text === 'Demo Admin')`, 15*time.Second)
	chatsTo(t, other, dr, "", "Hello from the same node")
	chatsTo(t, dr, other, "Demo Admin", "Seen on the same node")
	for _, text := range []string{"Hello from the same node", "Seen on the same node"} {
		if eval[bool](pat, fmt.Sprintf(`document.querySelector('#wchat-log').textContent.includes(%q)`, text)) {
			t.Errorf("the patient's page shows %q, meant for someone else", text)
		}
	}

	// A burst split over the patient's pages on both nodes: both sockets
	// open first, then each sends a little over half the burst.
	pat1 := newPage(t, newCtx, "patient's second page")
	pat1.signIn(drBase+invitePath, "patient@demo.test", "/.telegate/visits/join")
	pat1.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	for _, p := range []*page{pat, pat1} {
		if !eval[bool](p, fmt.Sprintf(rawChatJS, vid)) {
			t.Fatalf("%s: the chat socket was refused", p.name)
		}
	}
	const half = 10/2 + 2 // the burst is 10
	var msgs []string
	for i := range half {
		msgs = append(msgs, fmt.Sprintf(`{"type":"chat","text":"burst %d"}`, i))
	}
	batch := "[" + strings.Join(msgs, ",") + "]"
	closes := []float64{eval[float64](pat, fmt.Sprintf(rawSendJS, batch)), eval[float64](pat1, fmt.Sprintf(rawSendJS, batch))}
	if closes[0] != 1008 && closes[1] != 1008 {
		t.Errorf("%d messages of one patient split over two nodes all passed (closes %v), want the burst to hold", 2*half, closes)
	}

	// Declined on node 1: nothing more reaches node 2.
	pid := eval[string](pat, `window.__chat.got.find(m => m.type === 'welcome').self`)
	dr.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#waiting-list button[data-action=decline][data-participant=%q]`, pid))))
	dr.waitFor("the patient out of the waiting list", fmt.Sprintf(`!document.querySelector('#waiting-list [data-participant=%q]')`, pid), 15*time.Second)
	pat.waitFor("the patient's chat closed", `document.querySelector('#wchat-send').disabled`, 15*time.Second)
	if !eval[bool](dr, fmt.Sprintf(rawChatJS, vid)) {
		t.Fatal("the clinician's chat socket was refused")
	}
	after := fmt.Sprintf(`[{"type":"chat","to":%q,"text":"After the decline"}]`, pid)
	if code := eval[float64](dr, fmt.Sprintf(rawSendJS, after)); code != 0 {
		t.Fatalf("the clinician's socket closed (%v) on a message to the declined patient", code)
	}
	if e := eval[string](dr, `(window.__chat.got.find(m => m.type === 'error') || {}).error || ''`); e != "not-waiting" {
		t.Errorf("a message to the declined patient: error %q, want not-waiting", e)
	}
	if eval[bool](pat, fmt.Sprintf(rawChatJS, vid)) {
		t.Error("the declined patient opened a new chat socket on node 2")
	}
	// The other person waiting still gets the clinician's messages, so a
	// message after the decline would have had time to arrive.
	chatsTo(t, dr, other, "Demo Admin", "Still here after the decline")
	if eval[bool](pat, `document.querySelector('#wchat-log').textContent.includes('After the decline')`) {
		t.Error("the declined patient's page on node 2 shows the message sent after the decline")
	}
}

// chatLine is the waiting-room chat line of p that holds text, or "".
func chatLine(p *page, text string) string {
	return eval[string](p, fmt.Sprintf(`([...document.querySelectorAll('#wchat-log li')].find(l => l.textContent.includes(%q)) || {}).textContent || ''`, text))
}
