package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// guestsConfig is visitsConfig (visits of three) with account-less guests
// allowed.
var guestsConfig = func() string {
	c := visitsNode
	c.VisitsMore += "  guests_without_account: true\n"
	return c.String()
}()

// recordPeerConnections keeps every RTCPeerConnection the page makes in
// window.__pcs, so a test can read each connection's own inbound media.
func (p *page) recordPeerConnections() {
	p.onNewDocument(`(() => {
  window.__pcs = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) { const pc = new Orig(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Orig.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Orig);
})();`)
}

// startMediaWatch starts, in p, a watch over every peer connection's
// inbound video bytes that runs until window.__watchEnd (Unix ms; set by
// endMediaWatch) or 30 s; awaitMediaWatch returns, per connection that
// received video, when (Unix ms) its bytes last grew.
func (p *page) startMediaWatch() {
	eval[bool](p, `(() => { window.__watchEnd = Date.now() + 30000; window.__watch = (async () => {
  const last = new Map(), prev = new Map();
  while (Date.now() < window.__watchEnd) {
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      let b = 0;
      try { (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') b += s.bytesReceived || 0; }); } catch (_) { continue; }
      if (b > 0 && b !== prev.get(pc)) { prev.set(pc, b); last.set(pc, Date.now()); }
    }
    await new Promise(r => setTimeout(r, 40));
  }
  return JSON.stringify([...last.values()]);
})(); return true; })()`)
}

// endMediaWatch ends p's watch at end.
func (p *page) endMediaWatch(end time.Time) {
	eval[bool](p, fmt.Sprintf(`(() => { window.__watchEnd = %d; return true; })()`, end.UnixMilli()))
}

func (p *page) awaitMediaWatch() []int64 {
	var out []int64
	if err := json.Unmarshal([]byte(eval[string](p, `window.__watch`)), &out); err != nil {
		p.t.Fatalf("%s: media watch: %v", p.name, err)
	}
	return out
}

// auditTime returns the time of the first record of type typ in d's
// audit trail, waiting up to 5 s for it.
func (d *demo) auditTime(t *testing.T, typ string) time.Time {
	t.Helper()
	re := regexp.MustCompile(`"time":"([^"]+)","type":"` + regexp.QuoteMeta(typ) + `"`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log"))
		if m := re.FindSubmatch(b); m != nil {
			at, err := time.Parse(time.RFC3339Nano, string(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			return at
		}
	}
	t.Fatalf("no %s record in the audit trail", typ)
	return time.Time{}
}

// gauge reads the unlabelled metric name from d's metrics.
func (d *demo) gauge(t *testing.T, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindStringSubmatch(d.metrics(t))
	if m == nil {
		t.Fatalf("no %s in the metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// allocations is the relay's open TURN allocations.
func (d *demo) allocations(t *testing.T) float64 {
	return d.gauge(t, "telegate_media_relay_allocations_active")
}

// TestVisitGuestInterpreter: during a call the clinician invites an
// interpreter by a single-use guest link; the interpreter joins without
// an account and, waiting, has what the patient's waiting room has (the
// pre-call check through the relay, the chat with the clinician:
// guestWaitingRoom); they are admitted; all three see each other's video
// (inbound frames on every connection, relay only), each with the other
// two named by the label the server gives and a security code that both
// sides of the pair show alike. The clinician removes the interpreter:
// within 1 s the relay has closed their allocations and video from them
// stops on both remaining pages, while the clinician and the patient go
// on seeing each other; the used link does not let them back in.
func TestVisitGuestInterpreter(t *testing.T) {
	d, dr, pat, interp, link, artifacts := threePartyCall(t, func(p *page) { p.recordPeerConnections() }, guestWaitingRoom)

	// Everyone sees the other two, with server labels, receiving video
	// from each through the relay.
	rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
	for _, p := range []*page{dr, pat, interp} {
		p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
		p.waitFor("video from both", rows+`.every(li => Number(li.dataset.inboundVideoFrames) > 30 && li.dataset.candidates === 'relay/relay')`, 45*time.Second)
	}
	want := map[*page][]string{dr: {"interpreter", "patient"}, pat: {"host", "interpreter"}, interp: {"host", "patient"}}
	for p, labels := range want {
		got := eval[string](p, rows+`.map(li => li.dataset.label).sort().join(',')`)
		if got != strings.Join(labels, ",") {
			t.Errorf("%s sees labels %s, want %v", p.name, got, labels)
		}
		f0 := eval[string](p, rows+`.map(li => li.dataset.inboundVideoFrames).join(',')`)
		p.waitFor("frames still arriving from both", fmt.Sprintf(`%s.every((li, i) => Number(li.dataset.inboundVideoFrames) > Number(%q.split(',')[i]) + 10)`, rows, f0), 20*time.Second)
	}
	// Each pair's security code is the same on both of its sides.
	ids := map[*page]string{}
	for _, p := range []*page{dr, pat, interp} {
		ids[p] = eval[string](p, `document.querySelector('#roster-list li[data-self]').dataset.participant`)
		p.waitFor("every security code", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 15*time.Second)
	}
	codeOf := func(p, other *page) string {
		return eval[string](p, fmt.Sprintf(`document.querySelector('#roster-list li[data-participant=%q] .peer-code').dataset.code`, ids[other]))
	}
	for _, pair := range [][2]*page{{dr, pat}, {dr, interp}, {pat, interp}} {
		if a, b := codeOf(pair[0], pair[1]), codeOf(pair[1], pair[0]); a != b {
			t.Errorf("security code of %s and %s: %s on one side, %s on the other", pair[0].name, pair[1].name, a, b)
		}
	}
	pat.screenshot(artifacts, "visit-call-three.png")
	// What the three-party mesh costs the relay (a measurement).
	b0, t0 := d.gauge(t, "telegate_media_relay_bytes_total"), time.Now()
	time.Sleep(3 * time.Second)
	rate := (d.gauge(t, "telegate_media_relay_bytes_total") - b0) * 8 / time.Since(t0).Seconds() / 1e6
	t.Logf("three-party mesh: %.2f Mbit/s relayed for the visit, %v allocations", rate, d.allocations(t))

	// The clinician removes the interpreter. Times are measured from the
	// click (the page's clock, the same as this test's: one machine) and
	// from telegate's removal (its audit record): the 1 s is telegate's,
	// the click's way to it depends on how loaded the machine is.
	for _, p := range []*page{dr, pat} {
		p.startMediaWatch()
	}
	before := d.allocations(t)
	time.Sleep(400 * time.Millisecond)
	clicked := time.UnixMilli(int64(eval[float64](dr, fmt.Sprintf(`(() => { const b = document.querySelector('#roster-list button[data-action=remove][data-participant=%q]'); const at = Date.now(); b.click(); return at; })()`, ids[interp]))))
	var relayGoneAt time.Time
	for relayGoneAt.IsZero() && time.Since(clicked) < 5*time.Second {
		if d.allocations(t) < before {
			relayGoneAt = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	removed := d.auditTime(t, "visit.remove")
	end := removed.Add(3 * time.Second)
	for _, p := range []*page{dr, pat} {
		p.endMediaWatch(end)
	}
	time.Sleep(time.Until(end) + 300*time.Millisecond)
	t.Logf("the click reached telegate's removal in %v", removed.Sub(clicked).Round(time.Millisecond))
	if relayGoneAt.IsZero() || relayGoneAt.Sub(removed) > time.Second {
		t.Errorf("relay allocations %v before the removal, %v after (fewer %v after it); want fewer within 1 s", before, d.allocations(t), relayGoneAt.Sub(removed))
	} else {
		t.Logf("relay: the interpreter's allocations closed within %v of the removal (%v of the click)", relayGoneAt.Sub(removed).Round(time.Millisecond), relayGoneAt.Sub(clicked).Round(time.Millisecond))
	}
	for _, p := range []*page{dr, pat} {
		var stopped, flowing, lasts []time.Duration
		for _, ms := range p.awaitMediaWatch() {
			at := time.UnixMilli(ms).Sub(removed)
			lasts = append(lasts, at)
			if at > 2*time.Second {
				flowing = append(flowing, at)
			} else {
				stopped = append(stopped, at)
			}
		}
		if len(stopped) != 1 || len(flowing) != 1 || stopped[0] > time.Second {
			t.Errorf("%s: inbound video last grew at %v after the removal (per connection); want one connection stopped within 1 s and one still flowing", p.name, lasts)
		} else {
			t.Logf("%s: video from the removed interpreter last arrived %v after the removal (%v after the click)", p.name, stopped[0].Round(time.Millisecond), (stopped[0] + removed.Sub(clicked)).Round(time.Millisecond))
		}
		p.waitFor("the interpreter off the list", rows+`.length === 1`, 5*time.Second)
	}
	interp.waitFor("told they were removed", `document.querySelector('#call-status').textContent.includes('removed')`, 5*time.Second)

	// The used link lets nobody in again, the interpreter included.
	interp.do(chromedp.Navigate(link))
	interp.waitFor("the refusal", `document.querySelector('#waiting-status').textContent.includes('already been used')`, 15*time.Second)
}

// threePartyCall starts the demo with guests allowed in without an
// account and holds a call as README's walk-through does: the clinician
// dr, the patient pat and an interpreter guest g ("Ana Interpreter",
// through link), each page first prepared by prepare when it is not nil;
// waiting, when not nil, runs while g waits to be admitted.
func threePartyCall(t *testing.T, prepare func(*page), waiting func(t *testing.T, dr, g *page)) (d *demo, dr, pat, g *page, link, artifacts string) {
	t.Helper()
	d = runWithDevOP(t, guestsConfig)
	d.logVisitOnFailure()
	newCtx := chromium(t)
	artifacts = artifactsDir(t)
	dr = newPage(t, newCtx, "clinician")
	pat = newPage(t, newCtx, "patient")
	g = newPage(t, newCtx, "interpreter")
	if prepare != nil {
		for _, p := range []*page{dr, pat, g} {
			prepare(p)
		}
	}
	startCall(t, d.Base(), dr, pat, artifacts)
	link = inviteGuest(t, dr, g, "Ana Interpreter", artifacts, waiting)
	return d, dr, pat, g, link, artifacts
}

// inviteGuest has dr, on a call page, make an interpreter's guest link for
// name; g opens it, joins without an account and waits; dr admits g from
// the call page's waiting list, after waiting (when not nil) has run. The
// guest page's screenshot goes to artifacts. It returns the link once g
// is on the call page.
func inviteGuest(t *testing.T, dr, g *page, name, artifacts string, waiting func(t *testing.T, dr, g *page)) (link string) {
	t.Helper()
	// The clinician makes a guest link from the call page.
	dr.waitFor("the guest invite form", `document.querySelector('#call-guest-invite [data-testid=make-guest-link]') !== null`, 15*time.Second)
	dr.do(
		chromedp.SetValue(chromedp.CSS(`#call-guest-invite select`), "interpreter"),
		chromedp.SetValue(chromedp.CSS(`#call-guest-invite [data-testid=guest-invite-name]`), name),
		chromedp.Click(chromedp.CSS(`#call-guest-invite [data-testid=make-guest-link]`)),
	)
	dr.waitFor("the guest link", `document.querySelector('#call-guest-invite [data-testid=guest-link]').value.includes('/.telegate/visits/guest?link=')`, 15*time.Second)
	link = eval[string](dr, `document.querySelector('#call-guest-invite [data-testid=guest-link]').value`)

	// The guest opens it, without an account, and waits.
	g.do(chromedp.Navigate(link))
	g.waitFor("the guest form", `document.querySelector('#guest-form') && !document.querySelector('#guest-form').hidden`, 15*time.Second)
	if got := eval[string](g, `document.querySelector('#guest-invited').textContent`); !strings.Contains(got, name) || !strings.Contains(got, "Interpreter") {
		t.Fatalf("guest page says %q", got)
	}
	g.screenshot(artifacts, "visit-guest.png")
	g.do(chromedp.Click(chromedp.CSS("#guest-join")))
	g.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room')`, 15*time.Second)
	if strings.Contains(eval[string](g, `location.href`), "link=") {
		t.Fatal("the used guest link stays in the address bar")
	}
	if waiting != nil {
		waiting(t, dr, g)
	}

	// The clinician admits from the call page's waiting list.
	dr.waitFor("the waiting guest", `document.querySelector('#call-waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	if lbl := eval[string](dr, `document.querySelector('#call-waiting-list .role').dataset.label`); lbl != "interpreter" {
		t.Fatalf("waiting list labels the guest %q", lbl)
	}
	g.admitted = time.Now()
	dr.do(chromedp.Click(chromedp.CSS("#call-waiting-list button[data-action=admit]")))
	g.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	return link
}

// guestWaitingRoom: the guest g, waiting, runs the pre-call check (a
// verdict through the relay, the camera preview) and writes with the
// clinician, who is on the host's call page (its waiting-room chat), both
// ways, each side naming the other.
func guestWaitingRoom(t *testing.T, dr, g *page) {
	t.Helper()
	// Nothing asked of the camera until the guest asks for the check.
	if eval[bool](g, `document.querySelector('#precall-video').srcObject !== null`) {
		t.Error("the guest's waiting page has the camera on before the check")
	}
	started := time.Now()
	verdict, figures := g.runPrecallCheck()
	t.Logf("the guest's pre-call check: %s in %v (%s)", verdict, time.Since(started).Round(time.Millisecond), figures)
	g.checkVerdict(verdict, figures)
	g.waitFor("the camera preview", `document.querySelector('#precall-video').videoWidth > 0`, 10*time.Second)

	chatBothWays(t, g, dr, "#host-panel ", "Ana Interpreter", "Chat-canary: the interpreter is ready", "Chat-canary: thank you, letting you in now")
}

// TestRegression_CallKeepsRemainingPeer: when one of two others leaves a
// three-person call, the call page does not say the call is empty: the
// one still there takes the main picture, and the connection state, the
// status line and the security code are theirs. Tried from each side
// that stays: the clinician and the guest, when the patient (the first
// person each of them saw) is removed.
func TestRegression_CallKeepsRemainingPeer(t *testing.T) {
	_, dr, pat, g, _, artifacts := threePartyCall(t, nil, nil)
	rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
	for _, p := range []*page{dr, pat, g} {
		p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
		p.waitFor("every security code", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 15*time.Second)
	}
	// The name beside the main picture is the participant whose security
	// code is shown there, on every page, before anyone leaves: the
	// stage is one person, not the last one who joined.
	stage := `(() => { const name = document.querySelector('#remote-name').textContent;
		const row = ` + rows + `.find(li => li.querySelector('.name').textContent === name);
		return row ? (row.querySelector('.peer-code').dataset.code === document.querySelector('#security-code').dataset.code ? 'ok' : 'the code is another participant\'s') : 'named ' + JSON.stringify(name); })()`
	for _, p := range []*page{dr, pat, g} {
		p.waitFor("the stage's security code", `/^[0-9]{6}$/.test(document.querySelector('#security-code').dataset.code || '')`, 15*time.Second)
		if got := eval[string](p, stage); got != "ok" {
			t.Errorf("%s: the main picture's name and code disagree: %s", p.name, got)
		}
	}
	patID := eval[string](pat, `document.querySelector('#roster-list li[data-self]').dataset.participant`)
	dr.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#roster-list button[data-action=remove][data-participant=%q]`, patID))))
	pat.waitFor("told they were removed", `document.querySelector('#call-status').textContent.includes('removed')`, 15*time.Second)
	// Nobody is on the removed patient's stage: no name is shown there.
	if tag := eval[string](pat, `(() => { const n = document.querySelector('#remote-name'); return n.getClientRects().length ? n.textContent || '(an empty tag)' : ''; })()`); tag != "" {
		t.Errorf("the removed patient's stage still names %q", tag)
	}
	for p, other := range map[*page]string{dr: "Ana Interpreter", g: "Dr. Demo Clinician"} {
		p.waitFor("the patient off the list", rows+`.length === 1`, 15*time.Second)
		p.waitFor("connected with the one left", `document.querySelector('#connection-state').dataset.state === 'connected'`, 15*time.Second)
		if got := eval[string](p, `document.querySelector('#remote-name').textContent`); got != other {
			t.Errorf("%s: the main picture is named %q, want %q", p.name, got, other)
		}
		if got := eval[string](p, stage); got != "ok" {
			t.Errorf("%s: after the patient left, the main picture's name and code disagree: %s", p.name, got)
		}
		if st := eval[string](p, `document.querySelector('#call-status').textContent`); strings.Contains(st, "Waiting") || (p == dr && !strings.Contains(st, "Demo Patient")) {
			t.Errorf("%s: status %q, want one that the patient left or none about leaving", p.name, st)
		}
		code := eval[string](p, `document.querySelector('#security-code').dataset.code || ''`)
		if want := eval[string](p, rows+`[0].querySelector('.peer-code').dataset.code`); code != want {
			t.Errorf("%s: security code %q, want %q (the one shared with %s)", p.name, code, want, other)
		}
		if n := eval[float64](p, `document.querySelector('#remote-video').srcObject ? document.querySelector('#remote-video').srcObject.getVideoTracks().length : 0`); n != 1 {
			t.Errorf("%s: the main picture has %v video tracks", p.name, n)
		}
	}
	g.screenshot(artifacts, "visit-call-after-leave.png")
}

// TestRegression_MainPictureFollowsWhoIsLeft: whichever way one of three
// goes — removed by the host, hung up, their page closed — each page
// still in the call shows, in the main picture, the one other person
// still there: their name, live video from a connection that is open,
// their security code and connection state; no other picture, and
// neither the main picture nor the "In the call" list names the one who
// went. Each member leaves someone on the stage of at least one page
// that stays (the clinician's stage is the patient's, the patient's the
// clinician's).
func TestRegression_MainPictureFollowsWhoIsLeft(t *testing.T) {
	removeByHost := func(t *testing.T, dr, leaver *page) {
		id := eval[string](leaver, `document.querySelector('#roster-list li[data-self]').dataset.participant`)
		dr.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#roster-list button[data-action=remove][data-participant=%q]`, id))))
	}
	hangUp := func(t *testing.T, _, leaver *page) { leaver.do(chromedp.Click(chromedp.CSS(`#hangup`))) }
	closePage := func(t *testing.T, _, leaver *page) { leaver.do(chromedp.Navigate("about:blank")) }
	for _, m := range []struct {
		name   string
		leaver string // clinician, patient or interpreter
		leave  func(t *testing.T, dr, leaver *page)
		// told is what the page that went says, when it still shows.
		told string
	}{
		{"the host removes the patient", "patient", removeByHost, "removed"},
		{"the clinician hangs up", "clinician", hangUp, "left the call"},
		{"the patient's page is closed", "patient", closePage, ""},
	} {
		t.Run(m.name, func(t *testing.T) {
			_, dr, pat, g, _, _ := threePartyCall(t, func(p *page) { p.recordPeerConnections() }, nil)
			pages := map[string]*page{"clinician": dr, "patient": pat, "interpreter": g}
			names := map[string]string{"clinician": "Dr. Demo Clinician", "patient": "Demo Patient", "interpreter": "Ana Interpreter"}
			rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
			for _, p := range pages {
				p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
				p.waitFor("every security code", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 30*time.Second)
			}
			leaver := pages[m.leaver]
			m.leave(t, dr, leaver)
			if m.told != "" {
				leaver.waitFor("told they are out of the call", fmt.Sprintf(`document.querySelector('#call-status').textContent.includes(%q)`, m.told), 15*time.Second)
				if tag := eval[string](leaver, `document.querySelector('#remote-name').textContent`); tag != "" {
					t.Errorf("%s: the page that went still names %q in the main picture", leaver.name, tag)
				}
			}
			for who, p := range pages {
				if who == m.leaver {
					continue
				}
				var other string
				for o := range pages {
					if o != who && o != m.leaver {
						other = o
					}
				}
				p.waitForNothing("the main picture showing "+names[other], stageShows(names[other], names[m.leaver]), 20*time.Second)
			}
		})
	}
}

// stageShows is a script that says (a short text) what on a call page
// is not as it is with want the one other person in the call and gone
// someone who left it, or "" when all is: the list names want alone; the
// main picture is named want and shows live video of a connection still
// open, with the security code of want's row and a connected state; no
// other picture is shown; neither the stage nor the list names gone.
func stageShows(want, gone string) string {
	return fmt.Sprintf(`(() => {
  const want = %q, gone = %q;
  const rows = [...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')];
  const names = rows.map(li => li.querySelector('.name').textContent);
  if (names.length !== 1 || names[0] !== want) return 'the list names ' + JSON.stringify(names);
  const tag = document.querySelector('#remote-name').textContent;
  if (tag !== want) return 'the main picture is named ' + JSON.stringify(tag);
  const v = document.querySelector('#remote-video');
  const tr = v.srcObject && v.srcObject.getVideoTracks()[0];
  if (!tr || tr.readyState !== 'live') return 'the main picture has no live video';
  if (!window.__pcs.some(pc => pc.connectionState !== 'closed' && pc.getReceivers().some(r => r.track === tr))) return 'the main picture is from a closed connection';
  if (!(v.videoWidth > 0)) return 'the main picture shows nothing';
  const more = [...document.querySelectorAll('#stage video.remote')].filter(x => x !== v);
  if (more.length) return more.length + ' more pictures: ' + more.map(x => x.getAttribute('aria-label')).join(', ');
  const stage = document.querySelector('#stage');
  const said = stage.innerText + ' ' + [...stage.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label')).join(' ') + ' ' + document.querySelector('#roster-list').innerText;
  if (said.includes(gone)) return 'the stage or the list still names ' + gone;
  const code = document.querySelector('#security-code').dataset.code;
  if (!code || code !== rows[0].querySelector('.peer-code').dataset.code) return 'the security code shown is ' + JSON.stringify(code || '') + ', not the one with ' + want;
  const st = document.querySelector('#connection-state').dataset.state;
  if (st !== 'connected') return 'the connection state is ' + st;
  return '';
})()`, want, gone)
}

// waitForNothing polls script (which returns what is amiss, or "") in p
// until it returns "", up to timeout; then it reports the last answer.
func (p *page) waitForNothing(what, script string, timeout time.Duration) {
	p.t.Helper()
	var amiss string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if amiss = eval[string](p, script); amiss == "" {
			return
		}
	}
	p.t.Errorf("%s: waiting for %s: %s", p.name, what, amiss)
}

// holdableRelayCredentials lets a test hold back p's requests for relay
// credentials (GET …/ice): window.__holdIce() holds every one from then
// on, window.__releaseIce() lets them go; window.__iceExpires is when
// the latest credentials the page received expire (Unix ms).
func holdableRelayCredentials(p *page) {
	p.onNewDocument(`(() => {
  const orig = window.fetch.bind(window);
  window.__iceHold = null;
  window.__iceExpires = 0;
  window.fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input.url, location.href);
    if (!url.pathname.endsWith('/ice')) return orig(input, init);
    while (window.__iceHold) await window.__iceHold;
    const r = await orig(input, init);
    r.clone().json().then(j => { if (j && j.expires) window.__iceExpires = Math.max(window.__iceExpires, new Date(j.expires).getTime()); }).catch(() => {});
    return r;
  };
  window.__holdIce = () => { let go; window.__iceHold = new Promise(r => { go = r; }); window.__releaseIce = () => { window.__iceHold = null; go(); return true; }; return true; };
})();`)
}

// TestRegression_NewConnectionGetsFreshRelayCredentials: a page whose
// relay credentials expired (their refresh came late: here held back)
// gets fresh ones before it makes a new connection, instead of
// gathering with the expired ones (no relay candidate, so no
// connection). Tried on both pages already in the call, the clinician's
// and the patient's, when an interpreter joins: each answers the
// newcomer's offer on a new connection, and all three end up connected,
// each with a security code for both others.
func TestRegression_NewConnectionGetsFreshRelayCredentials(t *testing.T) {
	var prepared []*page
	prepare := func(p *page) {
		p.recordPeerConnections()
		holdableRelayCredentials(p)
		prepared = append(prepared, p)
	}
	_, dr, pat, g, _, _ := threePartyCall(t, prepare, func(t *testing.T, _, _ *page) {
		// While the interpreter waits, the clinician's and the patient's
		// pages get no new credentials until theirs have expired.
		for _, p := range prepared[:2] {
			eval[bool](p, `window.__holdIce()`)
		}
		for _, p := range prepared[:2] {
			p.waitFor("its relay credentials expired", `window.__iceExpires > 0 && Date.now() > window.__iceExpires + 500`, 30*time.Second)
		}
	})
	// The interpreter's offers are out; a moment for them to arrive,
	// then the credentials come again.
	g.waitFor("offers to both", `window.__pcs.length >= 2 && window.__pcs.every(pc => pc.localDescription)`, 30*time.Second)
	time.Sleep(2 * time.Second)
	for _, p := range []*page{dr, pat} {
		eval[bool](p, `window.__releaseIce()`)
	}
	rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
	for _, p := range []*page{dr, pat, g} {
		p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
		p.waitFor("a security code with each", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 45*time.Second)
	}
}
