package media

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// holdAllocation makes a TURN allocation (RFC 8656 §7.2) on h's relay with
// the credential and keeps it until the test ends.
func (h *harness) holdAllocation(username, password string) {
	h.t.Helper()
	end, err := h.allocation(username, password)
	if err != nil {
		h.t.Fatalf("allocation: %v", err)
	}
	h.t.Cleanup(end)
}

// closedAfterRunOn reads c until it closes and checks that it closed with
// 1001 (going away), runOn or more after the drain began.
func closedAfterRunOn(t *testing.T, what string, c *websocket.Conn, began time.Time, runOn time.Duration) {
	t.Helper()
	if st := closeStatus(t, c); st != websocket.StatusGoingAway {
		t.Errorf("%s closed with %v, want 1001", what, st)
	}
	if d := time.Since(began); d < runOn {
		t.Errorf("%s closed %v into the drain, before its %v", what, d, runOn)
	}
}

// TestRegression_DrainDropsCalls: a draining node must not drop the
// calls it carries, whichever part of a call is on it. Two nodes on one
// Redis, visits.drain_timeout 1.5 s; the node whose relay the visit is
// given drains while
//   - a participant's signaling socket is on it: the socket stays open
//     and carries the other node's messages for the drain timeout, then
//     closes with 1001 (the page reconnects elsewhere), not at once;
//   - its relay carries the visit (a live allocation): after the drain
//     timeout the visit moves to the other node's relay and the pages —
//     the socket on the other node and the one on the draining node —
//     are told "relay-moved" (fresh ICE servers, ICE restart), and /ice
//     on either node hands out the other relay;
//   - the drain ends (Drained) once the moved call's allocation is idle,
//     long before the deadline.
//
// And a relay whose node died without a word (its registration still in
// Redis) is not handed out again: the next /ice probes it and moves the
// visit at once, without waiting for the registration to lapse.
func TestRegression_DrainDropsCalls(t *testing.T) {
	t.Parallel()
	const runOn = 1500 * time.Millisecond
	n1, n2 := twoNodes(t, config.Visits{ICEHost: "127.0.0.1", DrainTimeout: runOn})
	relayNode := func(urls []string) *harness {
		t.Helper()
		a, ok := udpAddrOf(urls)
		switch {
		case ok && a.String() == n1.relay.addr.String():
			return n1
		case ok && a.String() == n2.relay.addr.String():
			return n2
		}
		t.Fatalf("ICE URLs %v name neither relay", urls)
		return nil
	}
	// The node whose relay the visit is given drains (d); o is the other.
	vid, host, pid := n1.admitted()
	d := relayNode(n1.iceURLsOf("dr", vid))
	o := n1
	if d == n1 {
		o = n2
	}
	user, pass := o.iceCred("pat", vid)
	if !d.admittedWithin(vid, pid) { // the admission crosses the bus
		t.Fatal("the visit's relay does not admit the patient")
	}
	d.holdAllocation(user, pass)
	dr := d.mustDial("dr", vid) // on the draining node
	readType(t, dr, "welcome")
	pat := o.mustDial("pat", vid)
	readType(t, pat, "welcome")
	readType(t, dr, "peer-joined")

	began := time.Now()
	close(d.draining) // the gateway's drain signal
	d.svc.BeginDrain(began.Add(20 * time.Second))

	// The socket on the draining node carries the call meanwhile.
	time.Sleep(runOn / 2)
	if err := writeMsg(pat, candidate(host, 1, 100)); err != nil {
		t.Fatal(err)
	}
	if m := readType(t, dr, "candidate"); m.From != pid {
		t.Fatalf("candidate from %q, want the patient", m.From)
	}

	// Then the call moves: both pages are told.
	for _, c := range []*websocket.Conn{pat, dr} {
		readType(t, c, "relay-moved")
	}
	if d := time.Since(began); d < runOn {
		t.Errorf("the call was moved %v into the drain, before its %v", d, runOn)
	}
	for _, h := range []*harness{n1, n2} {
		if got := relayNode(h.iceURLsOf("pat", vid)); got != o {
			t.Errorf("/ice after the move hands out the draining relay")
		}
	}
	// The draining node's socket closes with 1001, after the run-on.
	closedAfterRunOn(t, "the socket on the draining node", dr, began, runOn)
	select {
	case <-d.svc.Drained():
		t.Logf("drained after %v", time.Since(began).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not end once the moved call's allocation was idle")
	}
	// The socket on the other node stays.
	if err := writeMsg(pat, map[string]any{"type": "ping"}); err != nil {
		t.Errorf("the socket on the other node is gone: %v", err)
	}

	// A relay that dies without a word: o's is now the visit's.
	if err := o.relay.Server.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// d is draining: with o's relay dead, it takes the visit back rather
	// than hand out a relay that does not answer.
	if got := relayNode(d.iceURLsOf("dr", vid)); got != d {
		t.Errorf("/ice after the visit's relay died hands it out still")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("finding the dead relay took %v", d)
	}
}

// TestRegression_DrainDropsCallsOnOneNode: without Redis there is no
// other relay to move to; a drain still lets the call run on for
// visits.drain_timeout — the socket open, the allocation kept — then
// closes the socket with 1001 and ends at once, not at the deadline.
func TestRegression_DrainDropsCallsOnOneNode(t *testing.T) {
	t.Parallel()
	const runOn = time.Second
	h := newHarness(t, config.Visits{DrainTimeout: runOn})
	vid, _, _ := h.admitted()
	user, pass := h.iceCred("pat", vid)
	h.holdAllocation(user, pass)
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	began := time.Now()
	close(h.draining)
	h.svc.BeginDrain(began.Add(20 * time.Second))
	closedAfterRunOn(t, "the socket", pat, began, runOn)
	select {
	case <-h.svc.Drained():
	case <-time.After(5 * time.Second):
		t.Fatal("the drain waited for a call that could not move")
	}
	if d := time.Since(began); d > runOn+2*time.Second {
		t.Errorf("the drain took %v", d)
	}
}
