package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// precallVerdicts are the pre-call check's verdicts in English, as
// telegate's catalogue (page/catalogue.go) has them.
var precallVerdicts = map[string]string{
	"good": "Your connection is good.",
	"fair": "Your connection will work,",
	"poor": "Your connection is weak:",
}

// runPrecallCheck starts the pre-call check on p's waiting-room page and
// waits for its verdict; it returns the verdict and the figures shown.
func (p *page) runPrecallCheck() (verdict, figures string) {
	p.t.Helper()
	p.waitFor("the pre-call check", `!document.querySelector('#precall').hidden && !document.querySelector('#precall-start').hidden`, 15*time.Second)
	p.do(chromedp.Click(chromedp.CSS("#precall-start")))
	p.waitFor("the verdict", `['good', 'fair', 'poor', 'failed', 'error'].includes(document.querySelector('#precall-verdict').dataset.verdict)`, 40*time.Second)
	return eval[string](p, `document.querySelector('#precall-verdict').dataset.verdict`), eval[string](p, `document.querySelector('#precall-figures').textContent`)
}

// sendWaitingChat sends text in p's waiting-room chat (the waiting page's,
// or the clinic's to the person chosen in its To list).
func (p *page) sendWaitingChat(text string) {
	p.t.Helper()
	// The socket may still be opening: send until it shows as sent.
	p.do(chromedp.SetValue(chromedp.CSS("#wchat-input"), text), chromedp.Click(chromedp.CSS("#wchat-send")))
	deadline := time.Now().Add(10 * time.Second)
	for eval[string](p, `document.querySelector('#wchat-input').value`) != "" {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: the chat message was not sent: %s", p.name, eval[string](p, `document.querySelector('#wchat-status').textContent`))
		}
		time.Sleep(300 * time.Millisecond)
		p.do(chromedp.Click(chromedp.CSS("#wchat-send")))
	}
}

// chatBothWays has the waiting page w (which the clinic knows as name)
// and the clinic's page dr write to each other in the waiting-room chat:
// ask from w, then reply from dr, each read on the other side with its
// sender named. in scopes dr's chat ("" the lobby's, "#host-panel " the
// host's call page's).
func chatBothWays(t *testing.T, w, dr *page, in, name, ask, reply string) {
	t.Helper()
	w.waitFor("the waiting page's chat", `!document.querySelector('#wchat').hidden`, 10*time.Second)
	dr.waitFor(name+" in the clinic's chat", fmt.Sprintf(`!document.querySelector('%[1]s#wchat').hidden && [...document.querySelectorAll('%[1]s#wchat-to option')].some(o => o.textContent === %[2]q)`, in, name), 15*time.Second)
	w.sendWaitingChat(ask)
	dr.waitFor(name+"'s message", fmt.Sprintf(`document.querySelector('%s#wchat-log').textContent.includes(%q)`, in, name+": "+ask), 15*time.Second)
	dr.sendWaitingChat(reply)
	w.waitFor("the clinician's reply", fmt.Sprintf(`document.querySelector('#wchat-log').textContent.includes(%q)`, reply), 15*time.Second)
	if got := eval[string](w, `document.querySelector('#wchat-log li:last-child strong').textContent`); got != "Dr. Demo Clinician: " {
		t.Errorf("%s reads the reply from %q", w.name, got)
	}
}

// checkVerdict fails the test unless verdict (with figures), from
// runPrecallCheck on p, is one of precallVerdicts, read in plain words,
// with the check's selected pair relayed on both ends.
func (p *page) checkVerdict(verdict, figures string) {
	p.t.Helper()
	want, ok := precallVerdicts[verdict]
	if !ok {
		p.t.Fatalf("%s: the pre-call check on loopback ended %q: %s", p.name, verdict, eval[string](p, `document.querySelector('#precall-verdict').textContent`))
	}
	if text := eval[string](p, `document.querySelector('#precall-verdict').textContent`); !strings.HasPrefix(text, want) {
		p.t.Errorf("%s: verdict %s reads %q", p.name, verdict, text)
	}
	for _, side := range []string{"localCandidateType", "remoteCandidateType"} {
		if ct := eval[string](p, `document.querySelector('#precall-verdict').dataset.`+side); ct != "relay" {
			p.t.Errorf("%s: the check's selected pair: %s %q, want relay", p.name, side, ct)
		}
	}
	if !strings.Contains(figures, "Delay ") || !strings.Contains(figures, "kbit/s") {
		p.t.Errorf("%s: figures %q", p.name, figures)
	}
}

// patientWaiting has the clinician dr sign in to the lobby and make a
// visit titled title for people, and the patient pat sign in through its
// invite link and wait in its waiting room. It returns the invite link.
func patientWaiting(base string, dr, pat *page, title string, people int) (invite string) {
	dr.t.Helper()
	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), title), chromedp.SetValue(chromedp.CSS("#visit-participants"), fmt.Sprint(people)), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite = eval[string](dr, `document.querySelector('#invite-link').value`)
	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	return invite
}

// TestVisitPreCallCheckAndWaitingRoomChat holds a visit in two Chromium
// contexts. The waiting patient runs the pre-call check: the camera
// preview and microphone meter come up, the test sound is captioned, and
// the network check goes through telegate's relay (the selected pair is
// relayed on both ends) to a verdict in plain words. A microphone chosen
// there is remembered across a reload and used when the call starts. The
// patient and the clinician write to each other in the waiting room, both
// ways, and the chat is gone once the patient is admitted; on the host's
// call page the clinician writes with someone who arrives later.
func TestVisitPreCallCheckAndWaitingRoomChat(t *testing.T) {
	d, newCtx, artifacts, dr, pat := visitPages(t)
	pat.watchMedia(false)
	base := d.Base()
	invite := patientWaiting(base, dr, pat, "Pre-call visit", 3)
	visitID := eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	// Nothing asked of the camera until the patient asks for the check.
	if n := eval[float64](pat, `window.__gum`); n != 0 {
		t.Fatalf("the waiting room asked for the camera %v times before the check", n)
	}

	// The check: a verdict through the relay.
	started := time.Now()
	verdict, figures := pat.runPrecallCheck()
	t.Logf("pre-call check: %s in %v (%s); %s", verdict, time.Since(started).Round(time.Millisecond), figures,
		eval[string](pat, `JSON.stringify(document.querySelector('#precall-verdict').dataset)`))
	pat.checkVerdict(verdict, figures)
	// The check's credentials never gave the waiting patient the call's.
	if st := eval[float64](pat, fmt.Sprintf(`fetch('/.telegate/visits/%s/ice').then(r => r.status)`, visitID)); st != 403 {
		t.Errorf("ICE for the waiting patient after the check: %v", st)
	}
	pat.waitFor("the camera preview", `document.querySelector('#precall-video').videoWidth > 0`, 10*time.Second)
	pat.waitFor("the microphone meter moving", `Number(document.querySelector('#precall-level').dataset.level || 0) > 0`, 10*time.Second)
	pat.do(chromedp.Click(chromedp.CSS("#precall-sound")))
	pat.waitFor("the test sound's caption", `document.querySelector('#precall-sound-caption').textContent.startsWith('Test sound playing')`, 5*time.Second)
	t.Logf("pre-call check screenshot: %s", pat.screenshot(artifacts, "visit-precall-check.png"))

	// Choose the last microphone; it is remembered across a reload.
	mics := eval[float64](pat, `document.querySelectorAll('#precall-mic option').length`)
	if mics < 2 {
		t.Fatalf("%v microphones to choose from (Chromium's fake devices have three)", mics)
	}
	mic := eval[string](pat, `(() => { const s = document.querySelector('#precall-mic'); s.value = s.options[s.options.length - 1].value; s.dispatchEvent(new Event('change')); return s.value; })()`)
	pat.waitFor("the preview on the chosen microphone", fmt.Sprintf(`document.querySelector('#precall-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === %q`, mic), 10*time.Second)
	pat.do(chromedp.Reload())
	pat.waitFor("the waiting room again", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	// A remembered camera that is gone: the preview falls back to another.
	eval[bool](pat, `(() => { const d = JSON.parse(localStorage.getItem('telegate.devices')); d.videoinput = 'a-camera-unplugged-since'; localStorage.setItem('telegate.devices', JSON.stringify(d)); return true; })()`)
	pat.do(chromedp.Click(chromedp.CSS("#precall-start")))
	pat.waitFor("a picture from another camera", `document.querySelector('#precall-video').videoWidth > 0`, 15*time.Second)
	pat.waitFor("the remembered microphone", fmt.Sprintf(`document.querySelector('#precall-mic').value === %q && document.querySelector('#precall-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === %q`, mic, mic), 15*time.Second)

	// Waiting-room chat, both ways.
	chatBothWays(t, pat, dr, "", "Demo Patient", "Chat-canary: is the clinic running late?", "Chat-canary: five more minutes, thank you for waiting")
	t.Logf("waiting-room chat: %s, %s", pat.screenshot(artifacts, "visit-waiting-chat.png"), dr.screenshot(artifacts, "visit-lobby-chat.png"))

	// Admitted: the call starts on the remembered microphone.
	dr.do(chromedp.Click(chromedp.CSS("#waiting-list button[data-action=admit]")))
	pat.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	pat.waitFor("the call's microphone", fmt.Sprintf(`document.querySelector('#local-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === %q`, mic), 15*time.Second)
	dr.waitFor("the chat gone with nobody waiting", `document.querySelector('#wchat-to option') === null`, 15*time.Second)

	// On the host's call page, with someone arriving later.
	dr.do(chromedp.Navigate(base + "/.telegate/visits/" + visitID + "/call"))
	dr.waitFor("the call page", `document.querySelector('#connection-state').dataset.state === 'connected'`, 45*time.Second)
	late := newPage(t, newCtx, "later arrival")
	late.signIn(invite, "admin@demo.test", "/.telegate/visits/join")
	late.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	dr.waitFor("the waiting-room chat on the call page", `!document.querySelector('#host-panel #wchat').hidden && document.querySelector('#host-panel #wchat-to option') !== null`, 15*time.Second)
	const late1 = "Chat-canary: I am the interpreter"
	late.sendWaitingChat(late1)
	dr.waitFor("the later arrival's message on the call page", fmt.Sprintf(`document.querySelector('#host-panel #wchat-log').textContent.includes(%q)`, late1), 15*time.Second)
	dr.sendWaitingChat("Chat-canary: one moment please")
	late.waitFor("the host's reply from the call", `document.querySelector('#wchat-log').textContent.includes('one moment please')`, 15*time.Second)
}
