package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// guestFromLobby has dr, on the lobby with its visit made, make a guest
// link for role (named name by the clinician, or "" to let the guest say
// it); g opens it, joins without an account (as self when the link names
// nobody) and waits in the waiting room.
func guestFromLobby(t *testing.T, dr, g *page, role, name, self string) {
	t.Helper()
	before := eval[string](dr, `document.querySelector('#lobby-guest-invite [data-testid=guest-link]').value`)
	dr.do(chromedp.SetValue(chromedp.CSS(`#lobby-guest-invite select`), role))
	if name != "" {
		dr.do(chromedp.SetValue(chromedp.CSS(`#lobby-guest-invite [data-testid=guest-invite-name]`), name))
	}
	dr.do(chromedp.Click(chromedp.CSS(`#lobby-guest-invite [data-testid=make-guest-link]`)))
	dr.waitFor("the "+role+"'s guest link", fmt.Sprintf(`(v => v.includes('/.telegate/visits/guest?link=') && v !== %q)(document.querySelector('#lobby-guest-invite [data-testid=guest-link]').value)`, before), 15*time.Second)
	link := eval[string](dr, `document.querySelector('#lobby-guest-invite [data-testid=guest-link]').value`)
	g.do(chromedp.Navigate(link))
	g.waitFor("the guest form", `document.querySelector('#guest-form') && !document.querySelector('#guest-form').hidden`, 15*time.Second)
	if self != "" {
		g.do(chromedp.SetValue(chromedp.CSS("#guest-name"), self))
	}
	g.do(chromedp.Click(chromedp.CSS("#guest-join")))
	g.waitFor("the guest's waiting room", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room')`, 15*time.Second)
}

// TestRegression_GuestWaitingRoomInTheBrowser: guests waiting to be let
// in have the patient's waiting room, on the one waiting-room part and
// code of both waiting pages, with the clinician on the lobby (the host's
// call page is TestVisitGuestInterpreter's). Tried for each kind of
// guest link, both without an account, beside a waiting patient:
//   - an interpreter whose link the clinician named, and a family member
//     who names themselves, each run the pre-call check to a verdict in
//     plain words through telegate's relay, with the camera preview;
//   - each writes to the clinic and the lobby reads it under their name,
//     and the clinician's reply chosen for them reaches them;
//   - each waiting person (the patient too) reads only what the clinic
//     wrote to them;
//   - once a guest is admitted, the clinic can no longer write to them
//     in the waiting room, as for a patient.
func TestRegression_GuestWaitingRoomInTheBrowser(t *testing.T) {
	d, newCtx, artifacts, dr, pat := visitPagesOn(t, guestsConfig)
	base := d.Base()
	interp := newPage(t, newCtx, "interpreter")
	fam := newPage(t, newCtx, "family member")
	defer func() {
		if t.Failed() {
			for _, p := range []*page{dr, pat, interp, fam} {
				t.Logf("%s: %s", p.name, p.screenshot(artifacts, "guest-waiting-"+strings.ReplaceAll(p.name, " ", "-")+".png"))
			}
		}
	}()

	patientWaiting(base, dr, pat, "Guests visit", 4)

	guests := []struct {
		p                *page
		role, name, self string
	}{
		{interp, "interpreter", "Ana Interpreter", ""},
		{fam, "family", "", "Fam Member"},
	}
	for _, g := range guests {
		guestFromLobby(t, dr, g.p, g.role, g.name, g.self)
	}

	// The pre-call check, for each guest.
	for _, g := range guests {
		if eval[bool](g.p, `document.querySelector('#precall-video').srcObject !== null`) {
			t.Errorf("%s's waiting page has the camera on before the check", g.p.name)
		}
		verdict, figures := g.p.runPrecallCheck()
		t.Logf("%s's pre-call check: %s (%s)", g.p.name, verdict, figures)
		g.p.checkVerdict(verdict, figures)
		g.p.waitFor("the camera preview", `document.querySelector('#precall-video').videoWidth > 0`, 10*time.Second)
	}

	// The chat: each waiting person writes and is answered, by name.
	writers := []struct {
		p    *page
		name string
	}{{interp, "Ana Interpreter"}, {fam, "Fam Member"}, {pat, "Demo Patient"}}
	for _, w := range writers {
		ask := "Chat-canary: " + w.name + " is ready"
		w.p.waitFor("the waiting page's chat", `!document.querySelector('#wchat').hidden`, 10*time.Second)
		dr.waitFor(w.name+" in the lobby's chat", fmt.Sprintf(`[...document.querySelectorAll('#wchat-to option')].some(o => o.textContent === %q)`, w.name), 15*time.Second)
		w.p.sendWaitingChat(ask)
		dr.waitFor(w.name+"'s message in the lobby", fmt.Sprintf(`document.querySelector('#wchat-log').textContent.includes(%q)`, w.name+": "+ask), 15*time.Second)
		chatsTo(t, dr, w.p, w.name, "Chat-canary: thank you, "+w.name)
		if got := eval[string](w.p, `document.querySelector('#wchat-log li:last-child strong').textContent`); got != "Dr. Demo Clinician: " {
			t.Errorf("%s reads the reply from %q", w.p.name, got)
		}
	}
	for _, w := range writers {
		log := eval[string](w.p, `document.querySelector('#wchat-log').textContent`)
		for _, other := range writers {
			if other.name != w.name && strings.Contains(log, "thank you, "+other.name) {
				t.Errorf("%s reads the clinic's reply to %s: %q", w.p.name, other.name, log)
			}
		}
	}

	// Admitted, a guest leaves the waiting room's chat, as a patient does.
	dr.do(chromedp.Click(chromedp.CSS(`#waiting-list button[data-action=admit][aria-label="Admit Ana Interpreter"]`)))
	interp.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	dr.waitFor("the interpreter gone from the chat's To list", `![...document.querySelectorAll('#wchat-to option')].some(o => o.textContent === 'Ana Interpreter') && [...document.querySelectorAll('#wchat-to option')].some(o => o.textContent === 'Fam Member')`, 15*time.Second)
}
