package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// markDocument marks p's current document, so kept reports whether it is
// still the same one (no reload, no navigation since).
func (p *page) markDocument() {
	p.t.Helper()
	eval[bool](p, `(() => { window.__sameDocument = true; return true; })()`)
}

// kept reports whether p shows the document markDocument marked.
func (p *page) kept() bool { return eval[bool](p, `window.__sameDocument === true`) }

// inboundVideo is p's call page's received video bytes, as its figures show.
func (p *page) inboundVideo() string {
	return eval[string](p, `document.querySelector('#stats').dataset.inboundVideoBytes || '0'`)
}

// TestRegression_LanguageSwitchKeepsTheVisit: the language switch on a
// visit page changes the words in place and the visit goes on, in every
// place a visit can be in; the choice then decides every page over the
// browser's Accept-Language, and a choice telegate does not speak is
// ignored and never shown back. Both browsers prefer English.
//   - the lobby: switched from the keyboard to Spanish, the same document
//     speaks Spanish (<html lang>, headings, the pressed button);
//   - the waiting room: the patient switches to Spanish and back, on the
//     same document, and is still the one waiting in the clinician's
//     list, once, with the same participant id;
//   - the call: each side switches mid-call; the page's words change, the
//     call stays on the same peer connection, connected, video still
//     arriving on both sides, and the other side is told of no leaving;
//   - a reload of the call page comes back in the chosen language (over
//     Accept-Language) and connected; telegate's own 404 page follows;
//   - a cookie value that is no language of telegate's ("fr", "ES",
//     "es-MX", markup) is ignored by the call page and the own page alike
//     (Accept-Language decides, in English and in Spanish) and appears
//     nowhere in them.
func TestRegression_LanguageSwitchKeepsTheVisit(t *testing.T) {
	d, _, artifacts, dr, pat := visitPages(t)
	base := d.Base()
	pat.recordPeerConnections()
	for _, p := range []*page{dr, pat} {
		p.do(chromedp.Navigate("about:blank"))
		p.acceptLanguage("en-US,en;q=0.9")
	}
	defer func() {
		if t.Failed() {
			t.Logf("clinician: %s, patient: %s", dr.screenshot(artifacts, "lang-clinician.png"), pat.screenshot(artifacts, "lang-patient.png"))
		}
	}()
	switchState := func(p *page) string {
		return eval[string](p, `document.documentElement.lang + ' ' + [...document.querySelectorAll('#language-switch button')].map(b => b.lang + ':' + b.getAttribute('aria-pressed')).join(',')`)
	}

	// The lobby.
	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.waitFor("the lobby in English", `document.querySelector('#create-heading').textContent === 'New visit'`, 15*time.Second)
	dr.markDocument()
	dr.pressLanguage("es")
	dr.waitFor("the lobby in Spanish", `document.querySelector('#create-heading').textContent === 'Nueva consulta' && document.documentElement.hasAttribute('data-lang-chosen')`, 10*time.Second)
	if s := switchState(dr); s != "es en:false,es:true" || !dr.kept() {
		t.Errorf("the lobby after its switch: %q, same document %v", s, dr.kept())
	}
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Language visit"), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)

	// The waiting room.
	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room')`, 15*time.Second)
	dr.waitFor("the waiting patient", `document.querySelectorAll('#waiting-list button[data-action=admit]').length === 1`, 15*time.Second)
	visitID := eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	// The visit's participants as telegate has them, and the lobby's list.
	waiting := func() string {
		return eval[string](dr, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json()).then(v => v.participants.map(p => p.name + '=' + p.id + ':' + p.state + (p.away ? ':away' : '')).join(' '))`, visitID)) +
			" | " + eval[string](dr, `[...document.querySelectorAll('#waiting-list button[data-action=admit]')].map(b => b.dataset.participant).join(' ')`)
	}
	before := waiting()
	pat.markDocument()
	pat.pressLanguage("es")
	pat.waitFor("the waiting room in Spanish", `document.querySelector('#waiting-status').textContent.includes('sala de espera') && document.documentElement.lang === 'es'`, 10*time.Second)
	pat.switchLanguage("en")
	pat.waitFor("the waiting room in English again", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room') && document.documentElement.lang === 'en'`, 10*time.Second)
	pat.switchLanguage("es")
	pat.waitFor("the waiting room in Spanish again", `document.querySelector('#waiting-status').textContent.includes('sala de espera') && document.documentElement.hasAttribute('data-lang-chosen')`, 10*time.Second)
	if after := waiting(); after != before || !strings.Contains(before, "Demo Patient=") || !strings.Contains(before, ":waiting |") || !pat.kept() {
		t.Errorf("the waiting list was %q before the patient's switches, %q after; same waiting-room document %v", before, after, pat.kept())
	}

	// The call.
	admitAndConnect(base, dr, pat)
	for _, p := range []*page{dr, pat} {
		p.waitFor("video arriving", `Number(document.querySelector('#stats').dataset.inboundVideoBytes) > 0`, 20*time.Second)
		p.markDocument()
	}
	pcs := eval[float64](pat, `window.__pcs.length`)
	for _, step := range []struct {
		who    *page
		other  *page
		lang   string
		hangUp string
	}{{pat, dr, "en", "Hang up"}, {dr, pat, "en", "Hang up"}, {pat, dr, "es", "Colgar"}} {
		v0, o0 := step.who.inboundVideo(), step.other.inboundVideo()
		step.who.pressLanguage(step.lang)
		step.who.waitFor("the call page in "+step.lang, fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#hangup').textContent === %q`, step.lang, step.hangUp), 10*time.Second)
		for _, p := range []*page{step.who, step.other} {
			b0 := v0
			if p == step.other {
				b0 = o0
			}
			p.waitFor("video still arriving after "+step.who.name+"'s switch", fmt.Sprintf(`Number(document.querySelector('#stats').dataset.inboundVideoBytes) > %s + 20000`, b0), 20*time.Second)
			if st := eval[string](p, `document.querySelector('#connection-state').dataset.state`); st != "connected" || !p.kept() {
				t.Errorf("%s after %s switched to %s: %s, same call document %v", p.name, step.who.name, step.lang, st, p.kept())
			}
		}
		if s := eval[string](step.other, `document.querySelector('#call-status').textContent`); strings.Contains(s, "left") || strings.Contains(s, "salió") || strings.Contains(s, "Reconnect") {
			t.Errorf("%s is told %q when %s switched language", step.other.name, s, step.who.name)
		}
	}
	if n := eval[float64](pat, `window.__pcs.length`); n != pcs || eval[string](pat, `window.__pcs[window.__pcs.length - 1].connectionState`) != "connected" {
		t.Errorf("the patient's call has %v peer connections after the switches, %v before; the last is %s", n, pcs, eval[string](pat, `window.__pcs[window.__pcs.length - 1].connectionState`))
	}

	// A reload and an own page: the choice wins over Accept-Language.
	pat.do(chromedp.Reload())
	pat.waitFor("the call page again, in Spanish", `document.documentElement.lang === 'es' && document.documentElement.hasAttribute('data-lang-chosen') && document.querySelector('#hangup').textContent === 'Colgar'`, 15*time.Second)
	pat.waitFor("connected again", `document.querySelector('#connection-state').dataset.state === 'connected'`, 45*time.Second)
	callURL := eval[string](pat, `location.href`)
	pat.do(chromedp.Navigate(base + "/.telegate/no-such-page"))
	pat.waitFor("the 404 page in Spanish", `document.readyState === 'complete' && document.querySelector('h1')?.textContent === 'Página no encontrada'`, 15*time.Second)
	if s := switchState(pat); s != "es en:false,es:true" {
		t.Errorf("the own page's switch after the visit page's choice: %q", s)
	}

	// Values that are no choice.
	for _, v := range []string{"fr", "ES", "es-MX", "%3Cb%3Ees%3C%2Fb%3E"} {
		for _, accept := range []struct{ header, lang, hangUp, notFound string }{{"en-GB,en;q=0.9", "en", "Hang up", "Page not found"}, {"es-MX,es;q=0.9", "es", "Colgar", "Página no encontrada"}} {
			what := fmt.Sprintf("with choice %q and Accept-Language %s", v, accept.header)
			pat.do(chromedp.Navigate("about:blank"))
			pat.acceptLanguage(accept.header)
			pat.setLangCookie(base, v)
			pat.do(chromedp.Navigate(callURL))
			pat.waitFor("the call page "+what, fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#hangup').textContent === %q && !document.documentElement.hasAttribute('data-lang-chosen')`, accept.lang, accept.hangUp), 15*time.Second)
			if s := switchState(pat); s != accept.lang+" en:"+fmt.Sprint(accept.lang == "en")+",es:"+fmt.Sprint(accept.lang == "es") {
				t.Errorf("the call page's switch %s: %q", what, s)
			}
			pat.do(chromedp.Navigate(base + "/.telegate/no-such-page"))
			pat.waitFor("the 404 page "+what, fmt.Sprintf(`document.readyState === 'complete' && document.querySelector('h1')?.textContent === %q`, accept.notFound), 15*time.Second)
			if html := eval[string](pat, `document.documentElement.outerHTML`); strings.Contains(html, "<b>es") || strings.Contains(html, "es-MX") || strings.Contains(html, `lang="fr"`) || strings.Contains(html, `lang="ES"`) {
				t.Errorf("the 404 page %s shows the value back", what)
			}
		}
	}
}
