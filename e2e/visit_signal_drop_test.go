package e2e

import (
	"fmt"
	"testing"
	"time"
)

// watchInboundVideo starts, in p (prepared by recordPeerConnections), a
// watch that keeps in window.__rx, for every open peer connection, its
// inbound video bytes and when (Unix ms) they last grew.
func (p *page) watchInboundVideo() {
	eval[bool](p, `(() => { window.__rx = new Map(); setInterval(async () => {
  for (const pc of window.__pcs) {
    if (pc.connectionState === 'closed') continue;
    let b = 0;
    try { (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') b += s.bytesReceived || 0; }); } catch (_) { continue; }
    const r = window.__rx.get(pc);
    if (!r || b > r.b) window.__rx.set(pc, { b, at: Date.now() });
  }
}, 250); return true; })()`)
}

// videoFromEveryOther is a script that is true when p has exactly others
// open peer connections, each connected and receiving video that grew
// after since (Unix ms, the page's clock) and in the last second, and the
// call status no longer says it is reconnecting.
func videoFromEveryOther(others int, since int64) string {
	return fmt.Sprintf(`(() => {
  const open = window.__pcs.filter(pc => pc.connectionState !== 'closed');
  if (open.length !== %d) return false;
  const now = Date.now();
  if (!open.every(pc => { const r = window.__rx.get(pc); return pc.connectionState === 'connected' && r && r.at > %d && now - r.at < 1000; })) return false;
  return document.querySelector('#connection-state').dataset.state === 'connected' && !document.querySelector('#call-status').textContent.includes('Reconnecting');
})()`, others, since)
}

// TestRegression_CallRecoversAfterSignalingDrop: in a call of two and of
// three, one page's signaling socket drops alone (its peer connections
// stay; nobody leaves) and the server tells the others it left; when it
// is back, video flows again between every pair and every page's status
// says the call is connected, within the recovery time the other tests
// allow. Tried with the socket of the impolite side of a pair (the lower
// participant id: it wins a collision of offers), of the polite side,
// and of the third person; down for a moment (back at the first
// reconnect) and for seconds (long enough for the others' connections to
// it to have been closed and for its own to have noticed).
func TestRegression_CallRecoversAfterSignalingDrop(t *testing.T) {
	for _, m := range []struct {
		name   string
		three  bool
		which  string // "impolite", "polite" (of the clinician–patient pair), "third"
		downed time.Duration
	}{
		{"two, impolite side, a moment", false, "impolite", 0},
		{"two, polite side, seconds", false, "polite", 6 * time.Second},
		{"three, impolite side, seconds", true, "impolite", 6 * time.Second},
		{"three, polite side, a moment", true, "polite", 0},
		{"three, third person, seconds", true, "third", 6 * time.Second},
	} {
		t.Run(m.name, func(t *testing.T) {
			dead := freePort(t)
			prepare := func(p *page) { p.recordPeerConnections(); holdableSignaling(p, dead) }
			var pages []*page
			var dr, pat *page
			if m.three {
				var g *page
				_, dr, pat, g, _, _ = threePartyCall(t, prepare, nil)
				pages = []*page{dr, pat, g}
			} else {
				d := runWithDevOP(t, guestsConfig)
				d.logVisitOnFailure()
				newCtx := chromium(t)
				dr, pat = newPage(t, newCtx, "clinician"), newPage(t, newCtx, "patient")
				prepare(dr)
				prepare(pat)
				startCall(t, d.Base(), dr, pat, artifactsDir(t))
				pages = []*page{dr, pat}
			}
			others := len(pages) - 1
			rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
			for _, p := range pages {
				p.waitFor("everyone in the call", rows+fmt.Sprintf(`.length === %d`, others), 30*time.Second)
				p.waitFor("every security code", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 30*time.Second)
				p.watchInboundVideo()
			}
			selfID := func(p *page) string {
				return eval[string](p, `document.querySelector('#roster-list li[data-self]').dataset.participant`)
			}
			away := pages[len(pages)-1]
			switch m.which {
			case "impolite", "polite":
				lower, higher := dr, pat
				if selfID(pat) < selfID(dr) {
					lower, higher = pat, dr
				}
				away = lower
				if m.which == "polite" {
					away = higher
				}
			}
			codes := map[*page]string{}
			for _, p := range pages {
				codes[p] = eval[string](p, rows+`.map(li => li.dataset.participant + '=' + li.querySelector('.peer-code').dataset.code).sort().join(',')`)
			}
			eval[bool](away, `window.__dropSignal()`)
			away.waitFor("its signaling down", `!window.__sockets.some(ws => ws.url.includes('/signal') && ws.readyState === 1)`, 10*time.Second)
			time.Sleep(m.downed)
			eval[bool](away, `!(window.__holdSignal = false)`)
			away.waitFor("its signaling back", `window.__sockets.some(ws => ws.url.includes('/signal') && !ws.url.startsWith('wss://127.0.0.1:') && ws.readyState === 1)`, 30*time.Second)
			back := int64(eval[float64](away, `Date.now()`))
			for _, p := range pages {
				p.waitFor(fmt.Sprintf("video from every other page again (%s away)", away.name), videoFromEveryOther(others, back), 30*time.Second)
			}
			// The same pages, the same certificates: the security codes
			// are the ones read aloud before.
			for _, p := range pages {
				p.waitFor("every security code again", rows+fmt.Sprintf(`.length === %d && `, others)+rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 30*time.Second)
				if c := eval[string](p, rows+`.map(li => li.dataset.participant + '=' + li.querySelector('.peer-code').dataset.code).sort().join(',')`); c != codes[p] {
					t.Errorf("%s: security codes %s after the drop, were %s", p.name, c, codes[p])
				}
			}
		})
	}
}
