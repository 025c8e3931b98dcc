package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// guestsConfig is visitsConfig (visits of three) with account-less guests
// allowed.
var guestsConfig = strings.Replace(visitsConfig, "  waiting_grace: 10s\n", "  waiting_grace: 10s\n  guests_without_account: true\n", 1)

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

// startMediaWatch starts, in p, a watch of ms milliseconds over every
// peer connection's inbound video bytes; awaitMediaWatch returns, per
// connection that received video, when (Unix ms) its bytes last grew.
func (p *page) startMediaWatch(ms int) {
	eval[bool](p, fmt.Sprintf(`(() => { window.__watch = (async () => {
  const last = new Map(), prev = new Map(), end = Date.now() + %d;
  while (Date.now() < end) {
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      let b = 0;
      try { (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') b += s.bytesReceived || 0; }); } catch (_) { continue; }
      if (b > 0 && b !== prev.get(pc)) { prev.set(pc, b); last.set(pc, Date.now()); }
    }
    await new Promise(r => setTimeout(r, 40));
  }
  return JSON.stringify([...last.values()]);
})(); return true; })()`, ms))
}

func (p *page) awaitMediaWatch() []int64 {
	var out []int64
	if err := json.Unmarshal([]byte(eval[string](p, `window.__watch`)), &out); err != nil {
		p.t.Fatalf("%s: media watch: %v", p.name, err)
	}
	return out
}

var allocationsRE = regexp.MustCompile(`(?m)^telegate_media_relay_allocations_active ([0-9.e+]+)$`)

// allocations is the relay's open TURN allocations.
func (d *demo) allocations(t *testing.T) float64 {
	m := allocationsRE.FindStringSubmatch(d.metrics(t))
	if m == nil {
		t.Fatal("no telegate_media_relay_allocations_active in the metrics")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestVisitGuestInterpreter: during a call the clinician invites an
// interpreter by a single-use guest link; the interpreter joins without
// an account, waits and is admitted; all three see each other's video
// (inbound frames on every connection, relay only), each with the other
// two named by the label the server gives and a security code that both
// sides of the pair show alike. The clinician removes the interpreter:
// within 1 s the relay has closed their allocations and video from them
// stops on both remaining pages, while the clinician and the patient go
// on seeing each other; the used link does not let them back in.
func TestVisitGuestInterpreter(t *testing.T) {
	d := runWithDevOP(t, guestsConfig)
	d.logVisitOnFailure()
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	interp := newPage(t, newCtx, "interpreter")
	for _, p := range []*page{dr, pat, interp} {
		p.recordPeerConnections()
	}
	startCall(t, d.Base(), dr, pat, artifacts)

	// The clinician makes a guest link from the call page.
	dr.waitFor("the guest invite form", `document.querySelector('#call-guest-invite [data-testid=make-guest-link]') !== null`, 15*time.Second)
	dr.do(
		chromedp.SetValue(chromedp.CSS(`#call-guest-invite select`), "interpreter"),
		chromedp.SetValue(chromedp.CSS(`#call-guest-invite [data-testid=guest-invite-name]`), "Ana Interpreter"),
		chromedp.Click(chromedp.CSS(`#call-guest-invite [data-testid=make-guest-link]`)),
	)
	dr.waitFor("the guest link", `document.querySelector('#call-guest-invite [data-testid=guest-link]').value.includes('/.telegate/visits/guest?link=')`, 15*time.Second)
	link := eval[string](dr, `document.querySelector('#call-guest-invite [data-testid=guest-link]').value`)

	// The interpreter opens it, without an account, and waits.
	interp.do(chromedp.Navigate(link))
	interp.waitFor("the guest form", `document.querySelector('#guest-form') && !document.querySelector('#guest-form').hidden`, 15*time.Second)
	if got := eval[string](interp, `document.querySelector('#guest-invited').textContent`); !strings.Contains(got, "Ana Interpreter") || !strings.Contains(got, "Interpreter") {
		t.Fatalf("guest page says %q", got)
	}
	interp.screenshot(artifacts, "visit-guest.png")
	interp.do(chromedp.Click(chromedp.CSS("#guest-join")))
	interp.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room')`, 15*time.Second)
	if strings.Contains(eval[string](interp, `location.href`), "link=") {
		t.Fatal("the used guest link stays in the address bar")
	}

	// The clinician admits from the call page's waiting list.
	dr.waitFor("the waiting interpreter", `document.querySelector('#call-waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	if lbl := eval[string](dr, `document.querySelector('#call-waiting-list .role').dataset.label`); lbl != "interpreter" {
		t.Fatalf("waiting list labels the guest %q", lbl)
	}
	dr.do(chromedp.Click(chromedp.CSS("#call-waiting-list button[data-action=admit]")))
	interp.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)

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

	// The clinician removes the interpreter.
	const watchMs = 3500
	for _, p := range []*page{dr, pat} {
		p.startMediaWatch(watchMs)
	}
	before := d.allocations(t)
	time.Sleep(400 * time.Millisecond)
	// The click, as the clinician makes it; the time is the page's (the
	// same clock as this test's: one machine).
	removed := time.UnixMilli(int64(eval[float64](dr, fmt.Sprintf(`(() => { const b = document.querySelector('#roster-list button[data-action=remove][data-participant=%q]'); const at = Date.now(); b.click(); return at; })()`, ids[interp]))))
	var relayGone time.Duration
	for relayGone == 0 && time.Since(removed) < 3*time.Second {
		if d.allocations(t) < before {
			relayGone = time.Since(removed)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if relayGone == 0 || relayGone > time.Second {
		t.Errorf("relay allocations %v before removal, %v after 3 s (gone after %v); want fewer within 1 s", before, d.allocations(t), relayGone)
	}
	time.Sleep(time.Duration(watchMs)*time.Millisecond - time.Since(removed) + 300*time.Millisecond)
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
			t.Logf("%s: video from the removed interpreter last arrived %v after the removal", p.name, stopped[0].Round(time.Millisecond))
		}
		p.waitFor("the interpreter off the list", rows+`.length === 1`, 5*time.Second)
	}
	t.Logf("relay: the interpreter's allocations closed %v after the removal", relayGone.Round(time.Millisecond))
	interp.waitFor("told they were removed", `document.querySelector('#call-status').textContent.includes('removed')`, 5*time.Second)

	// The used link lets nobody in again, the interpreter included.
	interp.do(chromedp.Navigate(link))
	interp.waitFor("the refusal", `document.querySelector('#waiting-status').textContent.includes('already been used')`, 15*time.Second)
}
