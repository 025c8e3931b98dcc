package e2e

import (
	"testing"
	"time"
)

// TestRegression_StatusLineAfterSomeoneJoins: when someone joins a call
// in progress, the status line of those already in it says "Connecting…"
// while the newcomer connects, and "Connected." once everyone is — not
// "Connecting…" for the rest of the call (or "Reconnected." after a
// drop meanwhile). Tried on the clinician's and
// the patient's pages when an interpreter joins, and on the
// interpreter's own.
func TestRegression_StatusLineAfterSomeoneJoins(t *testing.T) {
	_, dr, pat, g, _, _ := threePartyCall(t, nil, nil)
	rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
	for _, p := range []*page{dr, pat, g} {
		p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
		p.waitFor("a security code with each", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 30*time.Second)
	}
	for _, p := range []*page{dr, pat, g} {
		// "Reconnected." when a connection came back after a drop meanwhile.
		p.waitFor(`"Connected." with everyone connected`, `['Connected.', 'Reconnected.'].includes(document.querySelector('#call-status').textContent)`, 20*time.Second)
	}
}
