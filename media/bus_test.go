package media

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// TestRedisSignalingAcrossNodes: two media services share one
// redis-server; the clinician's socket is on node 1, the patient's on
// node 2. Welcome, peer-joined and peer-left cross the nodes; messages
// arrive with the server-stamped sender and the SDP unchanged; the
// fingerprint rule holds on the sender's node; a participant's newer
// socket on the other node replaces the older; removal and the end of
// the visit on one node close the sockets and revoke the relay on the
// other within 1 s.
func TestRedisSignalingAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{})
	vid, host, pid := n1.admitted()

	dr := n1.mustDial("dr", vid)
	if w := readType(t, dr, "welcome"); len(w.Peers) != 0 {
		t.Fatalf("welcome %+v", w)
	}
	pat := n2.mustDial("pat", vid)
	w := readType(t, pat, "welcome")
	if w.Self != pid || len(w.Peers) != 1 || w.Peers[0].ID != host || w.Peers[0].Name != "Dr. Ada Owner" {
		t.Fatalf("welcome on node 2: %+v", w)
	}
	if j := readType(t, dr, "peer-joined"); j.Peer == nil || j.Peer.ID != pid || j.Peer.Name != "Pat Patient" {
		t.Fatalf("peer-joined on node 1: %+v", j)
	}

	sdp := testSDP(fpOf(1), "ufA", "pwApwApwApwApwApwApwA")
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": sdp, "from": host}) // a forged sender is ignored
	if got := readType(t, dr, "offer"); got.From != pid || got.SDP != sdp {
		t.Fatalf("offer across nodes from %q, SDP unchanged %v", got.From, got.SDP == sdp)
	}
	sendJSON(t, dr, map[string]any{"type": "answer", "sdp": testSDP(fpOf(100), "uf2", "pw2pw2pw2pw2pw2pw2pw2pw2")})
	if a := readType(t, pat, "answer"); a.From != host {
		t.Fatalf("answer across nodes from %q", a.From)
	}
	cand := "candidate:1 1 udp 2113937151 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0"
	sendJSON(t, pat, map[string]any{"type": "candidate", "to": host, "candidate": map[string]any{"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0}})
	if c := readType(t, dr, "candidate"); c.From != pid || c.Candidate.Candidate != cand {
		t.Fatalf("candidate across nodes %+v", c)
	}

	// A new certificate without an ICE restart is refused on node 2; node
	// 1 hears that the patient left.
	sendJSON(t, pat, map[string]any{"type": "offer", "sdp": testSDP(fpOf(50), "ufA", "pwApwApwApwApwApwApwA")})
	if code := closeStatus(t, pat); code != statusFingerprint {
		t.Fatalf("fingerprint swap on node 2: close %d, want %d", code, statusFingerprint)
	}
	if l := readType(t, dr, "peer-left"); l.ID != pid {
		t.Fatalf("peer-left on node 1: %+v", l)
	}

	// The patient comes back on node 1, then on node 2: the socket on node
	// 1 is replaced.
	pat1 := n1.mustDial("pat", vid)
	readType(t, pat1, "welcome")
	readType(t, dr, "peer-joined")
	pat2 := n2.mustDial("pat", vid)
	if w := readType(t, pat2, "welcome"); len(w.Peers) != 1 || w.Peers[0].ID != host {
		t.Fatalf("welcome after moving to node 2: %+v", w)
	}
	if code := closeStatus(t, pat1); code != statusReplaced {
		t.Fatalf("older socket on node 1: close %d, want %d", code, statusReplaced)
	}
	if j := readType(t, dr, "peer-joined"); j.Peer.ID != pid {
		t.Fatalf("peer-joined after the move: %+v", j)
	}
	sendJSON(t, dr, map[string]any{"type": "candidate", "to": pid, "candidate": map[string]any{"candidate": cand}})
	if c := readType(t, pat2, "candidate"); c.From != host {
		t.Fatalf("candidate to the moved patient: %+v", c)
	}

	// Removed on node 1: the socket on node 2 closes, node 2's relay
	// revokes, within 1 s.
	if st, _ := n2.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusOK || !n2.relay.isAdmitted(vid, pid) {
		t.Fatalf("ICE on node 2: %d", st)
	}
	start := time.Now()
	if st, _ := n1.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != http.StatusNoContent {
		t.Fatalf("remove on node 1: %d", st)
	}
	closedWithin(t, "removed patient's socket on node 2", pat2, statusRemoved, start)
	if n2.relay.isAdmitted(vid, pid) {
		t.Error("node 2's relay still admits the removed participant")
	}

	// Ended on node 2: the clinician's socket on node 1 closes, node 1's
	// relay ends the visit, within 1 s.
	start = time.Now()
	if st, _ := n2.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
		t.Fatalf("end on node 2: %d", st)
	}
	closedWithin(t, "clinician's socket on node 1 after the end on node 2", dr, statusEnded, start)
	if !n1.relay.wasEnded(vid) {
		t.Error("node 1's relay did not end the visit")
	}
}

// TestRedisSessionEndedAcrossNodes: a sign-in session that ends on one
// node closes its socket on the other.
func TestRedisSessionEndedAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, _, _, pat := patientOnNode2(t)
	start := time.Now()
	n1.svc.SessionEnded(users["pat"].SessionID, users["pat"])
	closedWithin(t, "socket on node 2 after sign-out on node 1", pat, statusSignedOut, start)
}

// patientOnNode2 starts two nodes, admits the patient to a visit created
// on node 1 and opens the patient's socket on node 2.
func patientOnNode2(t *testing.T) (n1, n2 *harness, vid string, pat *websocket.Conn) {
	t.Helper()
	n1, n2 = twoNodes(t, config.Visits{})
	vid, _, _ = n1.admitted()
	pat = n2.mustDial("pat", vid)
	readType(t, pat, "welcome")
	return n1, n2, vid, pat
}

// closedWithin fails unless c closes with code within 1 s of start.
func closedWithin(t *testing.T, what string, c *websocket.Conn, code websocket.StatusCode, start time.Time) {
	t.Helper()
	if got := closeStatus(t, c); got != code {
		t.Fatalf("%s: close %d, want %d", what, got, code)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%s: closed %v after, want ≤ 1 s", what, d)
	}
}

// TestRedisSignalingIgnoresGoneNode: the presence a node left behind when
// it stopped without closing its sockets (its heartbeat gone) is not shown
// to a participant opening a socket elsewhere.
func TestRedisSignalingIgnoresGoneNode(t *testing.T) {
	t.Parallel()
	n1, n2, vid, _ := patientOnNode2(t)
	n2.svc.bus.close() // as a node that died: presence stays, heartbeat goes
	dr := n1.mustDial("dr", vid)
	if w := readType(t, dr, "welcome"); len(w.Peers) != 0 {
		t.Fatalf("welcome lists a peer on a node that is gone: %+v", w.Peers)
	}
}

// TestRedisSignalingPeerOnDeadNodeLeaves: peers already in a call hear
// that a participant left when its node's heartbeat goes.
func TestRedisSignalingPeerOnDeadNodeLeaves(t *testing.T) {
	t.Parallel()
	n1, n2, vid, pat := patientOnNode2(t)
	dr := n1.mustDial("dr", vid)
	w := readType(t, dr, "welcome")
	if len(w.Peers) != 1 {
		t.Fatalf("welcome %+v", w)
	}
	readType(t, pat, "peer-joined")
	n1.svc.bus.dropGone() // a live node's peer stays
	sendJSON(t, dr, map[string]any{"type": "ping"})
	if m, err := readMsg(t, dr); err != nil || m.Type != "pong" {
		t.Fatalf("after a heartbeat with every node alive: %+v, %v; want only the pong", m, err)
	}
	n2.svc.bus.close()    // as a node that died
	n1.svc.bus.dropGone() // the next heartbeat
	if l := readType(t, dr, "peer-left"); l.ID != w.Peers[0].ID {
		t.Fatalf("peer-left %+v, want the patient %s", l, w.Peers[0].ID)
	}
}

// TestRedisSignalingDropsReplayedMessages: a sealed bus message replayed
// into Redis later (here an "ended" a minute old) is not acted on.
func TestRedisSignalingDropsReplayedMessages(t *testing.T) {
	t.Parallel()
	n1, _, vid, pat := patientOnNode2(t)
	b := n1.svc.bus
	plain, _ := json.Marshal(envelope{Kind: "ended", Node: b.node, Visit: vid, At: time.Now().Add(-time.Minute).UnixMilli()})
	sealed, err := b.c.sealWith([]byte(busAD), plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Publish(context.Background(), b.allChan(), sealed).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	stillOpen(t, "the patient on node 2", pat)
}
