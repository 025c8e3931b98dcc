package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestRegression_LanguageSwitchKeepsWhatThePageSays: switching language
// says again, in the new language, what a visit page says now — never the
// words it started with. The patient's waiting status stays "in the
// waiting room" (not "Joining…"); the lobby's title keeps its count and
// stays in the new language when the list refreshes; on the call page a
// muted microphone and a camera turned off still offer Unmute and Camera
// on, the connection still reads Connected and the security code keeps
// its digits (not "Starting" and "––– –––"), both ways.
func TestRegression_LanguageSwitchKeepsWhatThePageSays(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDemo(t, dataDir, freePort(t), freePort(t))
	d.logVisitOnFailure()
	newCtx := chromium(t)
	base := d.Base()
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")

	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-participants"), "2"), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)
	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)

	// The waiting room.
	pat.switchLanguage("es")
	if s := eval[string](pat, `document.querySelector('#waiting-status').textContent`); s != "Está en la sala de espera. El clínico le dejará pasar en breve." {
		t.Errorf("waiting status after switching to Spanish: %q", s)
	}
	// The lobby's title, with its count, after the next refresh of the list.
	dr.waitFor("the count in the title", `document.title.startsWith('(1) ')`, 15*time.Second)
	dr.switchLanguage("es")
	eval[string](dr, `document.title = 'before the refresh'`)
	dr.waitFor("the list's refresh", `document.title !== 'before the refresh'`, 15*time.Second)
	if s := eval[string](dr, `document.title`); s != "(1) en espera · Consultas por video · telegate" {
		t.Errorf("lobby title after switching to Spanish: %q", s)
	}

	// The call page, with the microphone muted and the camera off.
	dr.switchLanguage("en")
	admitAndConnect(base, dr, pat)
	pat.waitFor("the security code", `/^[0-9]{6}$/.test(document.querySelector('#security-code').dataset.code || '')`, 15*time.Second)
	code := eval[string](pat, `document.querySelector('#security-code').textContent`)
	pat.do(chromedp.Click(chromedp.CSS("#mute")), chromedp.Click(chromedp.CSS("#camera")))
	shows := `['#mute', '#camera', '#connection-state', '#security-code'].map(s => document.querySelector(s).textContent).join(' | ')`
	for _, tc := range []struct{ lang, want string }{
		{"en", "Unmute | Camera on | Connected | " + code},
		{"es", "Activar micrófono | Encender cámara | Conectado | " + code},
		{"en", "Unmute | Camera on | Connected | " + code},
	} {
		pat.switchLanguage(tc.lang)
		if got := eval[string](pat, shows); got != tc.want {
			t.Errorf("call page after switching to %s: %q, want %q", tc.lang, got, tc.want)
		}
	}
	if s := eval[string](pat, `document.querySelector('#connection-state').dataset.state`); s != "connected" {
		t.Fatalf("the call is %s", s)
	}
}
