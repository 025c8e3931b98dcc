package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// ownPagesConfig offers two sign-in providers (so /.telegate/login shows
// the chooser) and a route only clinicians may open (a 403 for a
// patient). See runWithDevOP for the verbs.
const ownPagesConfig = `
data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
tls:
  hosts:
    - names: [localhost]
      mode: local
providers:
  - id: dev
    display_name: Development sign-in
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[6]s
    scopes: [openid, profile, email, groups]
    roles:
      claim: groups
      map:
        clinicians: [clinician]
        patients: [patient]
  - id: partner
    display_name: Partner clinic sign-in
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[6]s
    scopes: [openid, profile, email, groups]
routes:
  - id: clinic
    path: /clinic/
    upstream: http://127.0.0.1:9
    policy:
      allow:
        - roles: [clinician]
  - id: public
    path: /public/
    upstream: http://127.0.0.1:9
    policy:
      public: true
log:
  format: text
`

// cookieValues returns the values of every cookie p's browser holds.
func (p *page) cookieValues() []string {
	p.t.Helper()
	var out []string
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
		if err != nil {
			return err
		}
		for _, c := range res.Cookies {
			out = append(out, c.Value)
		}
		return nil
	}))
	return out
}

// sendLanguage makes p's browser send Accept-Language: langs with every
// request, as a browser set up in that language does.
func (p *page) sendLanguage(langs string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": langs}})
		return err
	}))
}

// auditIn loads p's page again for a browser preferring lang and audits
// it.
func (p *page) auditIn(axe, artifacts, name, lang string) {
	p.t.Helper()
	here := eval[string](p, `location.href`)
	p.do(chromedp.Navigate("about:blank"))
	p.sendLanguage(map[string]string{"en": "en-GB,en;q=0.9", "es": "es-MX,es;q=0.9,en;q=0.5"}[lang])
	p.do(chromedp.Navigate(here))
	p.audit(axe, artifacts, name, lang)
}

// TestOwnPagesAccessibleInEnglishAndSpanish checks telegate's own pages —
// the sign-in chooser, a 404, a 403 and the signed-out page — with
// axe-core at WCAG 2.1 AA in English and Spanish (chosen from
// Accept-Language) at desktop and phone sizes, screenshots as artefacts.
// An anonymous 404 names nobody; the 403 a patient meets names them and
// offers sign-out and switch account, whose signed-out page offers
// signing in with another account (prompt=select_account, through the
// chooser); no page shows a cookie's value or a token.
func TestOwnPagesAccessibleInEnglishAndSpanish(t *testing.T) {
	axe := axeSource(t)
	d := runWithDevOP(t, ownPagesConfig)
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	base := d.Base()
	p := newPage(t, newCtx, "patient")
	p.do(chromedp.Navigate("about:blank"))

	noSecrets := func(what string) {
		t.Helper()
		html := eval[string](p, `document.documentElement.outerHTML`)
		for _, v := range p.cookieValues() {
			if len(v) >= 8 && strings.Contains(html, v) {
				t.Errorf("%s shows a cookie's value", what)
			}
		}
		if strings.Contains(html, "eyJ") {
			t.Errorf("%s shows what looks like a JWT", what)
		}
	}
	names := func(what, who string) {
		t.Helper()
		got := eval[string](p, `(document.querySelector('[data-testid=signed-in-as]')?.textContent ?? '') + '|' + (document.querySelector('[data-testid=sign-out]') !== null) + '|' + (document.querySelector('[data-testid=switch-account]') !== null)`)
		want := "|false|false"
		if who != "" {
			want = who + "|true|true"
		}
		if !strings.HasSuffix(got, want) || who != "" && !strings.Contains(got, who) {
			t.Errorf("%s: account bar %q, want %q", what, got, want)
		}
	}

	// Anonymous: the chooser and a 404, naming nobody.
	p.do(chromedp.Navigate(base + "/.telegate/login?rd=/clinic/"))
	p.waitFor("the chooser", `document.querySelectorAll('.choices a').length === 2`, 20*time.Second)
	names("anonymous chooser", "")
	p.auditIn(axe, artifacts, "signin-chooser", "en")
	p.auditIn(axe, artifacts, "signin-chooser", "es")
	if h := eval[string](p, `document.querySelector('h1').textContent`); h != "Iniciar sesión" {
		t.Errorf("Spanish chooser heading %q", h)
	}
	p.do(chromedp.Navigate(base + "/.telegate/no-such-page"))
	p.waitFor("the 404 page", `document.querySelector('h1') !== null`, 10*time.Second)
	names("anonymous 404", "")
	p.auditIn(axe, artifacts, "error-404-anonymous", "en")
	if rid := eval[string](p, `document.querySelector('.rid code')?.textContent ?? ''`); len(rid) < 8 {
		t.Errorf("404 page without its request id: %q", rid)
	}
	p.auditIn(axe, artifacts, "error-404-anonymous", "es")
	if s := eval[string](p, `document.querySelector('main').innerText`); !strings.Contains(s, "Página no encontrada") || !strings.Contains(s, "Revise que la dirección") {
		t.Errorf("Spanish 404 says %q", s)
	}
	noSecrets("the anonymous 404")

	// A patient signs in and meets a 403 that names them.
	p.sendLanguage("en-GB,en;q=0.9")
	p.do(chromedp.Navigate(base + "/.telegate/login?rd=/clinic/"))
	p.waitFor("the chooser", `document.querySelectorAll('.choices a').length === 2`, 20*time.Second)
	p.do(chromedp.Click(chromedp.CSS(`.choices a`)))
	p.waitFor("the sign-in form", `document.querySelector('#username') !== null`, 20*time.Second)
	p.do(
		chromedp.SetValue(chromedp.CSS("#username"), "patient@demo.test"),
		chromedp.SetValue(chromedp.CSS("#password"), "demo"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	p.waitFor("the 403 page", `location.pathname === '/clinic/' && document.querySelector('[data-testid=signed-in-as]') !== null`, 20*time.Second)
	names("the 403", "Demo Patient")
	if s := eval[string](p, `document.querySelector('main').innerText`); !strings.Contains(s, "You cannot open this page") || !strings.Contains(s, "switch account") {
		t.Errorf("403 says %q", s)
	}
	noSecrets("the 403")
	p.auditIn(axe, artifacts, "error-403", "en")
	p.auditIn(axe, artifacts, "error-403", "es")
	names("the Spanish 403", "Demo Patient")
	if s := eval[string](p, `document.querySelector('[data-testid=switch-account]').textContent`); s != "Cambiar de cuenta" {
		t.Errorf("Spanish switch-account button %q", s)
	}
	p.do(chromedp.Navigate(base + "/.telegate/no-such-page"))
	p.waitFor("the 404 page", `document.querySelector('h1') !== null`, 10*time.Second)
	names("a signed-in 404", "Demo Patient")
	noSecrets("a signed-in 404")
	p.auditIn(axe, artifacts, "error-404", "es")
	p.auditIn(axe, artifacts, "error-404", "en")

	// Switch account: signed out, then offered another account first.
	p.do(chromedp.Navigate(base + "/clinic/"))
	p.waitFor("the 403 page", `document.querySelector('[data-testid=switch-account]') !== null`, 10*time.Second)
	p.do(chromedp.Click(chromedp.CSS(`[data-testid=switch-account]`)))
	p.waitFor("the signed-out page", `location.pathname === '/.telegate/signed-out' && document.querySelector('[data-testid=sign-in-other]') !== null`, 20*time.Second)
	if first := eval[string](p, `document.querySelector('.actions a').dataset.testid ?? ''`); first != "sign-in-other" {
		t.Errorf("switching account: the signed-out page's first choice is %q", first)
	}
	names("the signed-out page", "")
	noSecrets("the signed-out page")
	p.audit(axe, artifacts, "signed-out", "en")
	p.auditIn(axe, artifacts, "signed-out", "es")
	p.do(chromedp.Click(chromedp.CSS(`[data-testid=sign-in-other]`)))
	p.waitFor("the chooser", `document.querySelectorAll('.choices a').length === 2`, 20*time.Second)
	if hrefs := eval[string](p, `[...document.querySelectorAll('.choices a')].map(a => a.href).join(' ')`); strings.Count(hrefs, "prompt=select_account") != 2 {
		t.Errorf("chooser after switching account links %s", hrefs)
	}
	names("the chooser after signing out", "")
	if t.Failed() {
		t.Logf("screenshots in %s", artifacts)
	}
}

// setLangCookie puts value into p's browser as telegate's language choice
// for base, as a browser that kept an old or a tampered one would send it.
func (p *page) setLangCookie(base, value string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{Name: "telegate_lang", Value: value, URL: base + "/", SameSite: network.CookieSameSiteLax})
		return err
	}))
}

// pressLanguage chooses lang with p's language switch from the keyboard:
// the button focused, then Enter.
func (p *page) pressLanguage(lang string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.CSS(fmt.Sprintf(`#language-switch [data-lang=%q]`, lang))), chromedp.KeyEvent(kb.Enter))
}

// TestOwnPagesLanguageSwitch: in a browser that prefers English, the
// language switch of telegate's own 404 page, used from the keyboard,
// turns the page into Spanish (axe-core finds nothing at WCAG 2.1 AA
// either way, the switch labelled and the language shown pressed); the
// choice carries to the visit pages (the lobby comes in Spanish), the
// visit page's switch sets it back to English, and the own page follows.
// A language cookie that is no language telegate speaks ("fr", "ES",
// "es-MX", markup) is ignored: the pages follow Accept-Language, English
// or Spanish.
func TestOwnPagesLanguageSwitch(t *testing.T) {
	axe := axeSource(t)
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	base := d.Base()
	p := newPage(t, newCtx, "clinician")
	p.do(chromedp.Navigate("about:blank"))
	p.acceptLanguage("en-GB,en;q=0.9")

	notFound := base + "/.telegate/no-such-page"
	heading := func(what, want string) {
		t.Helper()
		p.waitFor(what, fmt.Sprintf(`document.readyState === 'complete' && document.querySelector('h1')?.textContent === %q`, want), 15*time.Second)
	}
	p.do(chromedp.Navigate(notFound))
	heading("the 404 page in English", "Page not found")
	if got := eval[string](p, `document.querySelector('#language-switch').getAttribute('aria-label') + ' | ' + [...document.querySelectorAll('#language-switch button')].map(b => b.lang + ':' + b.textContent + ':' + b.getAttribute('aria-pressed')).join(' ')`); got != "Language | en:English:true es:Español:false" {
		t.Errorf("the 404 page's switch: %q", got)
	}
	p.audit(axe, artifacts, "lang-switch-404", "en")
	p.pressLanguage("es")
	heading("the 404 page in Spanish", "Página no encontrada")
	if path := eval[string](p, `location.pathname`); path != "/.telegate/no-such-page" {
		t.Errorf("after the switch the browser is at %s", path)
	}
	p.audit(axe, artifacts, "lang-switch-404", "es")

	// To a visit page and back.
	p.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	p.waitFor("the lobby in Spanish", `document.documentElement.lang === 'es' && document.querySelector('#create-heading').textContent === 'Nueva consulta'`, 15*time.Second)
	p.audit(axe, artifacts, "lang-switch-lobby", "es")
	eval[bool](p, `(() => { document.documentElement.removeAttribute('data-lang-chosen'); return true; })()`)
	p.switchLanguage("en")
	p.waitFor("the choice remembered", `document.documentElement.hasAttribute('data-lang-chosen') && document.querySelector('#create-heading').textContent === 'New visit'`, 10*time.Second)
	p.do(chromedp.Navigate(notFound))
	heading("the 404 page in English again", "Page not found")
	p.pressLanguage("es")
	heading("the 404 page in Spanish again", "Página no encontrada")
	p.do(chromedp.Navigate(base + "/.telegate/visits/lobby"))
	p.waitFor("the lobby in Spanish again", `document.documentElement.lang === 'es' && document.querySelector('#create-heading').textContent === 'Nueva consulta'`, 15*time.Second)

	// Values that are no choice: Accept-Language decides.
	for _, v := range []string{"fr", "ES", "es-MX", "%3Cb%3E"} {
		for accept, want := range map[string][2]string{"en-GB,en;q=0.9": {"en", "Page not found"}, "es-MX,es;q=0.9": {"es", "Página no encontrada"}} {
			p.do(chromedp.Navigate("about:blank"))
			p.acceptLanguage(accept)
			p.setLangCookie(base, v)
			p.do(chromedp.Navigate(notFound))
			heading(fmt.Sprintf("the 404 page with choice %q, Accept-Language %s", v, accept), want[1])
			p.do(chromedp.Navigate(base + "/.telegate/visits/lobby"))
			p.waitFor(fmt.Sprintf("the lobby with choice %q, Accept-Language %s", v, accept), fmt.Sprintf(`document.documentElement.lang === %q && document.querySelector('#create-heading').textContent !== '' && !document.documentElement.hasAttribute('data-lang-chosen')`, want[0]), 15*time.Second)
		}
	}
}
