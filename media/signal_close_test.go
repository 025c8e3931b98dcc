package media

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// TestRegression_SignalingCloseIgnored: when a visit ends, a participant
// is removed, its session ends or it breaks a rule, its signaling socket
// is gone at the TCP level within 1 s although the client ignores the
// close handshake (never answers the close frame, or reads nothing at
// all): the server sends its close frame and closes the connection
// closeGrace later.
func TestRegression_SignalingCloseIgnored(t *testing.T) {
	t.Parallel()
	const within = time.Second

	// expectGone fails unless r's connection ends within 1 s of start,
	// after a close frame with code (0: none is required).
	expectGone := func(t *testing.T, who string, r *rawClient, start time.Time, code websocket.StatusCode) {
		t.Helper()
		ce, d := r.goneSince(start, within)
		if code != 0 && ce.code != int(code) {
			t.Errorf("%s: close frame %v, want code %d", who, ce, code)
		}
		t.Logf("%s: TCP connection ended %v after the decision (close frame %d %q)", who, d.Round(time.Millisecond), ce.code, ce.reason)
	}

	t.Run("visit ended by the clinician", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, config.Visits{})
		vid, _, _ := h.admitted()
		dr := h.dialRaw("dr", vid, 0)
		dr.readUntil("welcome", 3*time.Second)
		pat := h.dialRaw("pat", vid, 0)
		pat.readUntil("welcome", 3*time.Second)
		start := time.Now()
		if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
			t.Fatalf("end: %d %v", st, m)
		}
		expectGone(t, "the patient", pat, start, statusEnded)
		expectGone(t, "the clinician", dr, start, statusEnded)
	})

	t.Run("participant removed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, config.Visits{})
		vid, _, pid := h.admitted()
		dr := h.mustDial("dr", vid)
		readType(t, dr, "welcome")
		pat := h.dialRaw("pat", vid, 0)
		pat.readUntil("welcome", 3*time.Second)
		start := time.Now()
		if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != http.StatusNoContent {
			t.Fatalf("remove: %d %v", st, m)
		}
		expectGone(t, "the patient", pat, start, statusRemoved)
		readType(t, dr, "peer-left")
		stillOpen(t, "the clinician", dr)
	})

	t.Run("session ended", func(t *testing.T) {
		t.Parallel()
		h, _, pat := connectedPatient(t, config.Visits{})
		start := time.Now()
		h.svc.SessionEnded("sess-pat", users["pat"])
		expectGone(t, "the patient", pat, start, statusSignedOut)
	})

	t.Run("visit reached its maximum duration", func(t *testing.T) {
		t.Parallel()
		h, _, pat := connectedPatient(t, config.Visits{MaxDuration: 30 * time.Minute})
		h.clock.Add(31 * time.Minute)
		start := time.Now()
		h.svc.sweep()
		expectGone(t, "the patient", pat, start, statusEnded)
	})

	t.Run("replaced by a newer socket", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, config.Visits{})
		vid, _, _ := h.admitted()
		old := h.dialRaw("pat", vid, 0)
		old.readUntil("welcome", 3*time.Second)
		start := time.Now()
		c := h.mustDial("pat", vid)
		readType(t, c, "welcome")
		expectGone(t, "the replaced socket", old, start, statusReplaced)
		stillOpen(t, "the new socket", c)
	})

	t.Run("malformed message", func(t *testing.T) {
		t.Parallel()
		_, _, pat := connectedPatient(t, config.Visits{})
		start := time.Now()
		if err := pat.send(map[string]any{"type": "offer", "sdp": "v=0\r\n"}); err != nil {
			t.Fatal(err)
		}
		expectGone(t, "the patient", pat, start, statusPolicy)
	})

	t.Run("node shutting down", func(t *testing.T) {
		t.Parallel()
		h, _, pat := connectedPatient(t, config.Visits{})
		start := time.Now()
		close(h.draining)
		expectGone(t, "the patient", pat, start, statusGoingAway)
	})

	t.Run("visit ended while the client reads nothing", func(t *testing.T) {
		t.Parallel()
		// Small TCP buffers and a client that stops reading: the
		// server's write to it is stuck when the visit ends.
		h := newHarnessSndbuf(t, config.Visits{}, 8192)
		vid, _, pid := h.admitted()
		pat := h.dialRaw("pat", vid, 8192)
		pat.readUntil("welcome", 3*time.Second)
		dr := h.mustDial("dr", vid)
		readType(t, dr, "welcome")
		for i := range 100 {
			if err := writeMsg(dr, candidate(pid, i, 1000)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond) // the writer fills the buffers
		start := time.Now()
		if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
			t.Fatalf("end: %d %v", st, m)
		}
		// Still reading nothing for the whole second: the server must
		// have closed the connection by itself. What is left in the
		// buffers then drains at once, and the connection ends.
		time.Sleep(within)
		_, d := pat.gone(300 * time.Millisecond)
		t.Logf("the patient: buffered data drained and the connection ended %v after it read again (%v after the end)", d.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if code := closeStatus(t, dr); code != statusEnded {
			t.Fatalf("the clinician: close code %d", code)
		}
	})
}

// connectedPatient starts a harness with c, an admitted visit, and the
// patient's raw signaling socket past its welcome.
func connectedPatient(t *testing.T, c config.Visits) (*harness, string, *rawClient) {
	t.Helper()
	h := newHarness(t, c)
	vid, _, _ := h.admitted()
	pat := h.dialRaw("pat", vid, 0)
	pat.readUntil("welcome", 3*time.Second)
	return h, vid, pat
}
