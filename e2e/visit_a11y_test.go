package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core release scripts/test installs (npm, pinned).
const axeVersion = "4.10.2"

// axeSource is axe-core's browser build: $TELEGATE_AXE_JS, else where
// scripts/test installs it ($HOME/.cache/telegate-npm/axe-core@<version>).
// Without it the test skips, unless TELEGATE_REQUIRE_AXE is set (as
// scripts/test sets it), when it fails.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TELEGATE_AXE_JS")
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "telegate-npm", "axe-core@"+axeVersion, "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("TELEGATE_REQUIRE_AXE") != "" {
			t.Fatalf("axe-core: %v (scripts/test installs it)", err)
		}
		t.Skipf("axe-core is not installed (scripts/test installs it): %v", err)
	}
	return string(b)
}

// axeViolations loads axe-core into p's page and returns what it finds at
// WCAG 2.1 AA, one line per rule and element ("" when nothing).
func (p *page) axeViolations(axe string) string {
	p.t.Helper()
	if !eval[bool](p, `typeof window.axe === 'object'`) {
		eval[bool](p, axe+"\n;true")
		if v := eval[string](p, `axe.version`); v != axeVersion {
			p.t.Fatalf("axe-core %s loaded, want %s (the version scripts/test pins)", v, axeVersion)
		}
	}
	return eval[string](p, `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
  .then(r => r.violations.flatMap(v => v.nodes.map(n => v.id + ' (' + v.impact + ') at ' + n.target.join(' ') + ': ' + n.failureSummary.replace(/\s+/g, ' '))).join('\n'))`)
}

// viewport sizes p's page as a desktop (mobile false) or a phone.
func (p *page) viewport(width, height int64, mobile bool) {
	p.t.Helper()
	scale := 1.0
	if mobile {
		scale = 3
	}
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: width, Height: height, DeviceScaleFactor: scale, Mobile: mobile,
		})
		return err
	}))
}

// acceptLanguage makes p's browser prefer langs (an Accept-Language value,
// RFC 9110 §12.5.4), as a browser set up in that language does.
func (p *page) acceptLanguage(langs string) {
	p.t.Helper()
	ua := eval[string](p, `navigator.userAgent`)
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: langs})
		return err
	}))
}

// audit checks p's current page in lang at desktop and phone sizes: <html
// lang> is lang, the pressed language switch button (on a page with one)
// is lang's, axe-core
// finds nothing at WCAG 2.1 AA, the page is no wider than the phone, and a
// screenshot of each size goes to artifacts as <name>-<lang>-<size>.png.
func (p *page) audit(axe, artifacts, name, lang string) {
	p.t.Helper()
	p.waitFor("the page in "+lang, fmt.Sprintf(`document.readyState === 'complete' && document.documentElement.lang === %q && (document.querySelector('#language-switch') === null || document.querySelector('#language-switch [aria-pressed=true]')?.dataset.lang === %q)`, lang, lang), 10*time.Second)
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}, {"phone-landscape", 844, 390, true}} {
		p.viewport(size.width, size.height, size.mobile)
		time.Sleep(200 * time.Millisecond) // a layout pass
		if v := p.axeViolations(axe); v != "" {
			p.t.Errorf("%s page (%s, %s): WCAG 2.1 AA violations:\n%s", name, lang, size.name, v)
		}
		if w := eval[float64](p, `document.documentElement.scrollWidth`); w > float64(size.width)+1 {
			wide := eval[string](p, fmt.Sprintf(`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > %d).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`, size.width))
			p.t.Errorf("%s page (%s, %s): %v px wide on a %d px screen: %s", name, lang, size.name, w, size.width, wide)
		}
		if f := p.controlFaults(); f != "" {
			p.t.Errorf("%s page (%s, %s): controls laid out badly:\n%s", name, lang, size.name, f)
		}
		p.screenshot(artifacts, fmt.Sprintf("%s-%s-%s.png", name, lang, size.name))
	}
	p.viewport(1024, 900, false)
}

// controlFaults lists, one a line ("" when none), the visible form
// controls of p's page that people would find hard to use: a select or
// text field whose text is smaller than the page's (16 px) or that is
// shorter than 36 px (a thumb's target), and a button whose parts sit
// side by side as columns with one of them broken over several lines.
func (p *page) controlFaults() string {
	p.t.Helper()
	return eval[string](p, `(() => {
  const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const where = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.dataset.testid ? '[' + e.dataset.testid + ']' : '');
  const out = [];
  for (const e of document.querySelectorAll('select, input:not([type=checkbox]):not([type=radio]):not([type=file]):not([type=hidden])')) {
    if (!shown(e)) continue;
    const fs = parseFloat(getComputedStyle(e).fontSize), h = e.getBoundingClientRect().height;
    if (fs < 16 || h < 36) out.push(where(e) + ': ' + fs + ' px text, ' + Math.round(h) + ' px tall');
  }
  for (const b of document.querySelectorAll('button, .button')) {
    const parts = [...b.children].filter(shown);
    if (!shown(b) || parts.length < 2) continue;
    const r0 = parts[0].getBoundingClientRect();
    const beside = parts.slice(1).some(c => { const r = c.getBoundingClientRect(); return r.top < r0.bottom && r.bottom > r0.top && r.left >= r0.right - 1; });
    const broken = parts.some(c => c.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(c).fontSize) * 1.25);
    if (beside && broken) out.push(where(b) + ': "' + b.textContent.trim() + '" broken into columns');
  }
  return out.join('\n');
})()`)
}

// switchLanguage presses p's language switch button for lang.
func (p *page) switchLanguage(lang string) {
	p.t.Helper()
	sel := fmt.Sprintf(`#language-switch [data-lang=%q]`, lang)
	p.do(chromedp.Click(chromedp.CSS(sel)))
	// A click at the button's place can miss it on a busy page whose
	// layout moved between finding the button and clicking (a picture
	// arriving): press it again until the page speaks lang.
	deadline := time.Now().Add(10 * time.Second)
	for !eval[bool](p, fmt.Sprintf(`document.documentElement.lang === %q`, lang)) {
		if time.Now().After(deadline) {
			p.t.Fatalf("the language switch to %s did not take", lang)
		}
		_ = eval[bool](p, fmt.Sprintf(`(document.querySelector(%q).click(), true)`, sel))
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVisitPagesAccessibleInEnglishAndSpanish holds a visit in two
// Chromium contexts, one browser preferring English and one Spanish
// (Accept-Language), and checks the lobby (with the waiting-room chat),
// the waiting room, its pre-call check, the call page, the guest page and
// the guest's waiting page with its pre-call check and chat with axe-core at WCAG 2.1 AA in both languages at desktop and phone
// sizes. The Spanish browser gets Spanish pages unasked; the language
// switch changes a page's words and <html lang> at once, and the choice
// is remembered on that browser across pages and reloads.
func TestVisitPagesAccessibleInEnglishAndSpanish(t *testing.T) {
	axe := axeSource(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDemo(t, dataDir, freePort(t), freePort(t))
	d.logVisitOnFailure()
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	base := d.Base()
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")

	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(
		chromedp.SetValue(chromedp.CSS("#visit-title"), "Accessibility visit"),
		chromedp.Click(chromedp.CSS("#create-visit")),
	)
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)

	// A browser that prefers Spanish gets the waiting room in Spanish.
	pat.do(chromedp.Navigate("about:blank"))
	pat.acceptLanguage("es-MX,es;q=0.9,en;q=0.5")
	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room in Spanish", `document.querySelector('#waiting-status').textContent.includes('sala de espera')`, 15*time.Second)
	if h := eval[string](pat, `document.querySelector('h1').textContent`); h != "Consulta por video" {
		t.Errorf("Spanish waiting room heading %q", h)
	}
	dr.waitFor("the waiting patient", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)

	dr.audit(axe, artifacts, "lobby", "en")
	pat.audit(axe, artifacts, "waiting-room", "es")
	dr.switchLanguage("es")
	if h := eval[string](dr, `document.querySelector('#create-heading').textContent`); h != "Nueva consulta" {
		t.Errorf("lobby after switching to Spanish: heading %q", h)
	}
	// Words the page showed before the switch are said again in Spanish.
	if s := eval[string](dr, `document.querySelector('#lobby-status').textContent + ' | ' + document.querySelector('#invite-expires').textContent + ' | ' + document.querySelector('#waiting-list button[data-action=admit]').getAttribute('aria-label')`); !strings.HasPrefix(s, "Consulta creada.") || !strings.Contains(s, "| Válido hasta ") || !strings.HasSuffix(s, "| Admitir a Demo Patient") {
		t.Errorf("lobby after switching to Spanish shows %q", s)
	}
	dr.audit(axe, artifacts, "lobby", "es")
	pat.switchLanguage("en")
	pat.audit(axe, artifacts, "waiting-room", "en")
	// The pre-call check: preview, device choice, meter, test sound and
	// verdict, in both languages.
	if v, _ := pat.runPrecallCheck(); v == "failed" || v == "error" {
		t.Errorf("the pre-call check ended %q", v)
	}
	pat.do(chromedp.Click(chromedp.CSS("#precall-sound")))
	pat.waitFor("the test sound's caption", `document.querySelector('#precall-sound-caption').textContent !== ''`, 5*time.Second)
	pat.audit(axe, artifacts, "precall", "en")
	pat.switchLanguage("es") // remembered into the call page
	if s := eval[string](pat, `document.querySelector('#precall-verdict').textContent + ' | ' + document.querySelector('#precall-sound-caption').textContent + ' | ' + document.querySelector('#precall-heading').textContent`); !strings.HasPrefix(s, "Su conexión") || !strings.Contains(s, "| Sonido de prueba") || !strings.HasSuffix(s, "| Compruebe antes de la consulta") {
		t.Errorf("the pre-call check after switching to Spanish shows %q", s)
	}
	pat.audit(axe, artifacts, "precall", "es")

	// The clinician's choice outlives a reload.
	dr.do(chromedp.Reload())
	dr.waitFor("the lobby in Spanish after a reload", `document.documentElement.lang === 'es' && document.querySelector('#create-heading').textContent === 'Nueva consulta'`, 15*time.Second)
	dr.waitFor("the waiting patient", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	admitAndConnect(base, dr, pat)
	if s := eval[string](pat, `document.querySelector('#hangup').textContent`); s != "Colgar" {
		t.Errorf("Spanish call page: hang-up button %q", s)
	}
	pat.audit(axe, artifacts, "call", "es")
	dr.audit(axe, artifacts, "call-host", "es")
	dr.switchLanguage("en")
	dr.audit(axe, artifacts, "call-host", "en")

	// The guest page a guest link opens, in a browser that prefers
	// Spanish (the demo lets guests join without an account, so the page
	// shows both ways in).
	dr.do(
		chromedp.SetValue(chromedp.CSS(`#call-guest-invite select`), "family"),
		chromedp.Click(chromedp.CSS(`#call-guest-invite [data-testid=make-guest-link]`)),
	)
	dr.waitFor("the guest link", `document.querySelector('#call-guest-invite [data-testid=guest-link]').value.includes('link=')`, 15*time.Second)
	link := eval[string](dr, `document.querySelector('#call-guest-invite [data-testid=guest-link]').value`)
	guest := newPage(t, newCtx, "guest")
	guest.do(chromedp.Navigate("about:blank"))
	guest.acceptLanguage("es-ES,es;q=0.9")
	guest.do(chromedp.Navigate(link))
	guest.waitFor("the guest page in Spanish", `document.querySelector('#guest-invited').textContent.includes('Familiar') && !document.querySelector('#guest-form').hidden`, 15*time.Second)
	guest.audit(axe, artifacts, "guest", "es")
	guest.switchLanguage("en")
	if s := eval[string](guest, `document.querySelector('#guest-invited').textContent + ' | ' + document.querySelector('#guest-join').textContent`); s != "You are invited to a video visit as: Family member. | Join without an account" {
		t.Errorf("guest page after switching to English shows %q", s)
	}
	guest.audit(axe, artifacts, "guest", "en")
	// The guest's waiting page with its pre-call check, in both languages.
	guest.do(chromedp.SetValue(chromedp.CSS("#guest-name"), "Fam Guest"), chromedp.Click(chromedp.CSS("#guest-join")))
	guest.waitFor("the guest's waiting room", `document.querySelector('#waiting-status').textContent.includes('You are in the waiting room') && !document.querySelector('#wchat').hidden`, 15*time.Second)
	if v, _ := guest.runPrecallCheck(); v == "failed" || v == "error" {
		t.Errorf("the guest's pre-call check ended %q", v)
	}
	guest.do(chromedp.Click(chromedp.CSS("#precall-sound")))
	guest.waitFor("the test sound's caption", `document.querySelector('#precall-sound-caption').textContent !== ''`, 5*time.Second)
	guest.audit(axe, artifacts, "guest-precall", "en")
	guest.switchLanguage("es")
	if s := eval[string](guest, `document.querySelector('#precall-verdict').textContent + ' | ' + document.querySelector('#precall-heading').textContent + ' | ' + document.querySelector('#wchat-heading').textContent`); !strings.HasPrefix(s, "Su conexión") || !strings.HasSuffix(s, "| Compruebe antes de la consulta | Escribir a la clínica") {
		t.Errorf("the guest's pre-call check after switching to Spanish shows %q", s)
	}
	guest.audit(axe, artifacts, "guest-precall", "es")
	if t.Failed() {
		t.Logf("screenshots in %s", artifacts)
	}
	// The Spanish pages say nothing in English that the catalogue has in Spanish.
	body := eval[string](pat, `document.body.innerText`)
	for _, en := range []string{"Hang up", "Security code", "Connection"} {
		if strings.Contains(body, en) {
			t.Errorf("Spanish call page shows %q", en)
		}
	}
}
