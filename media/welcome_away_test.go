package media

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// TestRegression_WelcomeTellsAwayFromLeft: a page that meets the call
// (welcome) learns who is in it and who is only away — admitted, not
// connected now, not hung up: their signaling lost, so they may come
// back — and of everyone else that they left. Tried with the patient not
// yet connected, their socket lost (away), hung up with "bye" (left),
// connected again after hanging up (in the call, then away when lost
// again), and removed by the host (left).
func TestRegression_WelcomeTellsAwayFromLeft(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, pid := h.admitted()
	welcome := func(what string) string {
		t.Helper()
		dr := h.mustDial("dr", vid)
		defer dr.Close(websocket.StatusNormalClosure, "")
		m := readType(t, dr, "welcome")
		var peers []string
		for _, p := range m.Peers {
			peers = append(peers, p.ID)
		}
		if m.Away == nil {
			t.Fatalf("%s: the welcome has no away list", what)
		}
		return fmt.Sprintf("peers %v away %v", peers, *m.Away)
	}
	for _, step := range []struct {
		what string
		do   func()
		want string
	}{
		{"the patient not connected yet", func() {}, fmt.Sprintf("peers [] away [%s]", pid)},
		{"the patient's socket lost", func() {
			pat := h.mustDial("pat", vid)
			readType(t, pat, "welcome")
			pat.CloseNow()
		}, fmt.Sprintf("peers [] away [%s]", pid)},
		{"the patient hung up", func() {
			pat := h.mustDial("pat", vid)
			readType(t, pat, "welcome")
			sendJSON(t, pat, map[string]string{"type": "bye"})
			closeStatus(t, pat)
		}, "peers [] away []"},
		{"the patient connected again after hanging up", func() {
			pat := h.mustDial("pat", vid)
			readType(t, pat, "welcome")
			if got := welcome("the patient in the call"); got != fmt.Sprintf("peers [%s] away []", pid) {
				t.Errorf("with the patient connected again: %s", got)
			}
			pat.CloseNow()
		}, fmt.Sprintf("peers [] away [%s]", pid)},
		{"the patient removed", func() {
			if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != http.StatusNoContent {
				t.Fatalf("remove: %d %v", st, m)
			}
		}, "peers [] away []"},
	} {
		step.do()
		// The server's peer-left for a lost socket comes once it has read
		// the close; the welcome is asked for until then.
		var got string
		for range 50 {
			if got = welcome(step.what); got == step.want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != step.want {
			t.Errorf("%s: the clinician's welcome says %s, want %s", step.what, got, step.want)
		}
	}
}
