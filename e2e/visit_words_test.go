package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shortDate is moment (RFC 3339) as p's browser writes a short date and
// time in lang's locale: how the visit pages show a moment.
func shortDate(p *page, moment, lang string) string {
	p.t.Helper()
	if moment == "" {
		p.t.Fatal("no moment to show")
	}
	return eval[string](p, fmt.Sprintf(`new Date(%q).toLocaleString(%q, { dateStyle: 'short', timeStyle: 'short' })`, moment, lang))
}

// chatLines is what each line of p's chat log sel says.
func chatLines(p *page, sel string) string {
	return eval[string](p, fmt.Sprintf(`[...document.querySelectorAll('%s li')].map(li => li.textContent).join(' | ')`, sel))
}

// TestRegression_LanguageSwitchSaysShownValuesAgain: words a visit page
// already shows that carry a value — a moment, a name, what someone
// typed — are said again in the new language after a switch, the moment
// as a date in the new language's locale, the name and the typed text as
// they were; and back again. Tried on:
//   - the lobby: the invite's "Valid until …", the visit's "Scheduled … ·
//     Ends by …", a guest link's "made for … until …", the waiting-room
//     chat's lines from the patient (their name) and to them ("You: To
//     …: …");
//   - the waiting room: the patient's own line ("You: …") and the
//     clinician's (their name);
//   - the call: the patient's line and the clinician's received file, on
//     both sides ("You: File: …", "<name>: File: …").
//
// The typed texts hold catalogue words and dates of their own ("You",
// "Valid until …"), which must not change.
func TestRegression_LanguageSwitchSaysShownValuesAgain(t *testing.T) {
	d, _, artifacts, dr, pat := visitPages(t)
	base := d.Base()
	defer func() {
		if t.Failed() {
			t.Logf("clinician: %s, patient: %s", dr.screenshot(artifacts, "values-clinician.png"), pat.screenshot(artifacts, "values-patient.png"))
		}
	}()

	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Values visit"),
		chromedp.SetValue(chromedp.CSS("#visit-scheduled"), "2026-12-24T18:05"),
		chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)
	dr.do(chromedp.SetValue(chromedp.CSS(`#lobby-guest-invite select`), "interpreter"),
		chromedp.Click(chromedp.CSS(`#lobby-guest-invite [data-testid=make-guest-link]`)))
	dr.waitFor("the guest link", `document.querySelector('#lobby-guest-invite [data-testid=guest-link]').value.includes('link=')`, 15*time.Second)
	guestLink := eval[string](dr, `document.querySelector('#lobby-guest-invite [data-testid=guest-link]').value`)

	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	visitID := eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	const ask = "Wchat-canary: You said Valid until 12/24/26, 6:05 PM?"
	const reply = "Wchat-canary: Yes, Scheduled 6:05 PM"
	chatBothWays(t, pat, dr, "", "Demo Patient", ask, reply)

	// The waiting room.
	for _, tc := range []struct{ lang, want string }{
		{"es", "Usted: " + ask + " | Dr. Demo Clinician: " + reply},
		{"en", "You: " + ask + " | Dr. Demo Clinician: " + reply},
	} {
		pat.switchLanguage(tc.lang)
		if got := chatLines(pat, "#wchat-log"); got != tc.want {
			t.Errorf("the waiting-room chat after switching to %s: %q, want %q", tc.lang, got, tc.want)
		}
	}

	// The lobby, once the visit has started (its end is set).
	dr.do(chromedp.Click(chromedp.CSS("#waiting-list button[data-action=admit]")))
	pat.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	dr.waitFor("the visit's end", `document.querySelector('#current-times').textContent.includes('Ends by')`, 15*time.Second)
	moments := eval[map[string]any](dr, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json())`, visitID))
	u, err := url.Parse(guestLink)
	if err != nil {
		t.Fatal(err)
	}
	guest := eval[map[string]any](dr, fmt.Sprintf(`fetch('/.telegate/visits/guest/check', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Telegate-CSRF': '1' }, body: JSON.stringify({ link: %q }) }).then(r => r.json())`, u.Query().Get("link")))
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	lobby := `['#invite-expires', '#current-times', '#lobby-guest-invite [data-testid=guest-link-made]'].map(s => document.querySelector(s).textContent).concat([...document.querySelectorAll('#wchat-log li')].map(li => li.textContent)).join(' | ')`
	for _, lang := range []string{"es", "en", "es"} {
		at := func(k string) string { return shortDate(dr, str(moments, k), lang) }
		want := "Valid until " + at("invite_expires") + " | Scheduled " + at("scheduled") + " · Ends by " + at("ends_at") +
			" | Guest link made for: Interpreter. It lets one person in, until " + shortDate(dr, str(guest, "expires"), lang) + "." +
			" | Demo Patient: " + ask + " | You: To Demo Patient: " + reply
		if lang == "es" {
			want = "Válido hasta " + at("invite_expires") + " | Programada " + at("scheduled") + " · Termina a más tardar " + at("ends_at") +
				" | Enlace de invitado creado para: Intérprete. Deja entrar a una persona, hasta " + shortDate(dr, str(guest, "expires"), lang) + "." +
				" | Demo Patient: " + ask + " | Usted: Para Demo Patient: " + reply
		}
		dr.switchLanguage(lang)
		if got := eval[string](dr, lobby); got != want {
			t.Errorf("the lobby after switching to %s:\n got %q\nwant %q", lang, got, want)
		}
	}
	if shortDate(dr, str(moments, "scheduled"), "es") == shortDate(dr, str(moments, "scheduled"), "en") {
		t.Fatal("the browser writes dates alike in English and Spanish: this test cannot tell them apart")
	}

	// The call: a typed line one way, a file the other.
	dr.switchLanguage("en")
	dr.do(chromedp.Navigate(base + eval[string](dr, `document.querySelector('#start-call').getAttribute('href')`)))
	for _, p := range []*page{dr, pat} {
		p.waitFor("connected", `document.querySelector('#connection-state').dataset.state === 'connected'`, 45*time.Second)
	}
	const msg = "Chat-canary: You can read File: here"
	pat.do(chromedp.SetValue(chromedp.CSS("#chat-input"), msg), chromedp.Click(chromedp.CSS("#chat-send")))
	dr.waitFor("the patient's line", fmt.Sprintf(`document.querySelector('#chat-log').textContent.includes(%q)`, msg), 15*time.Second)
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("n", 700)), 0o600); err != nil {
		t.Fatal(err)
	}
	dr.do(chromedp.SetUploadFiles(chromedp.CSS("#chat-file"), []string{path}))
	pat.waitFor("the clinician's file", `document.querySelector('#chat-log a[download="notes.txt"]') !== null`, 20*time.Second)
	dr.waitFor("the file in the clinician's log", `document.querySelector('#chat-log a[download="notes.txt"]') !== null`, 20*time.Second)
	for _, step := range []struct {
		who                 *page
		lang, you, file, pt string
	}{
		{pat, "es", "Usted", "Archivo:", "Demo Patient"},
		{dr, "es", "Usted", "Archivo:", "Demo Patient"},
		{pat, "en", "You", "File:", "Demo Patient"},
		{dr, "en", "You", "File:", "Demo Patient"},
	} {
		step.who.switchLanguage(step.lang)
		want := step.you + ": " + msg + " | Dr. Demo Clinician: " + step.file + " notes.txt (1 KB)"
		if step.who == dr {
			want = step.pt + ": " + msg + " | " + step.you + ": " + step.file + " notes.txt (1 KB)"
		}
		if got := chatLines(step.who, "#chat-log"); got != want {
			t.Errorf("%s's call chat after switching to %s: %q, want %q", step.who.name, step.lang, got, want)
		}
	}
}

// TestRegression_UntitledVisitCalledInReadersLanguage: a visit made
// without a title (none, or only spaces) is stored and answered without
// one — no English words in its place — and every place that shows a
// visit's title calls it the catalogue's words for a visit in the
// reader's language: the lobby's list and the chosen visit's heading, in
// a browser that prefers English, in one that prefers Spanish, and after
// each switches to the other. A title given is shown as it is in both.
func TestRegression_UntitledVisitCalledInReadersLanguage(t *testing.T) {
	d, newCtx, artifacts, en, _ := visitPages(t)
	base := d.Base()
	es := newPage(t, newCtx, "clinician in Spanish")
	for p, accept := range map[*page]string{en: "en-US,en;q=0.9", es: "es-ES,es;q=0.9"} {
		p.do(chromedp.Navigate("about:blank"))
		p.acceptLanguage(accept)
	}
	defer func() {
		if t.Failed() {
			t.Logf("%s, %s", en.screenshot(artifacts, "untitled-en.png"), es.screenshot(artifacts, "untitled-es.png"))
		}
	}()
	en.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	titles := []string{"", "   ", "Knee follow-up"}
	var ids []string
	for _, title := range titles {
		n := len(ids)
		eval[string](en, fmt.Sprintf(`document.querySelector('#visit-title').value = %q`, title))
		en.do(chromedp.Click(chromedp.CSS("#create-visit")))
		en.waitFor("the visit in the list", fmt.Sprintf(`document.querySelectorAll('#visit-list button').length === %d`, n+1), 15*time.Second)
		ids = append(ids, eval[string](en, `document.querySelector('#visit-list li:last-child button').dataset.visit`))
	}

	// What telegate stores and answers.
	answered := eval[string](en, `fetch('/.telegate/visits').then(r => r.json()).then(j => j.visits.map(v => 'title' in v ? JSON.stringify(v.title) : '(none)').join(', '))`)
	if want := `(none), (none), "Knee follow-up"`; answered != want {
		t.Errorf("the visits' titles as answered: %s, want %s", answered, want)
	}
	for i, id := range ids {
		got := eval[string](en, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json()).then(v => 'title' in v ? JSON.stringify(v.title) : '(none)')`, id))
		if want := map[bool]string{true: `"Knee follow-up"`, false: "(none)"}[titles[i] != "" && strings.TrimSpace(titles[i]) != ""]; got != want {
			t.Errorf("visit %d (made with title %q) answers title %s, want %s", i, titles[i], got, want)
		}
	}

	// What the lobby shows, in each reader's language.
	es.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	shows := func(p *page) string {
		p.t.Helper()
		p.waitFor("the list", `document.querySelectorAll('#visit-list button').length === 3`, 15*time.Second)
		var heads []string
		for _, id := range ids {
			p.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#visit-list button[data-visit=%q]`, id))))
			p.waitFor("the visit chosen", fmt.Sprintf(`document.querySelector('#visit-list button[data-visit=%q]').getAttribute('aria-pressed') === 'true'`, id), 10*time.Second)
			heads = append(heads, eval[string](p, `document.querySelector('#current-title').textContent`))
		}
		return eval[string](p, `[...document.querySelectorAll('#visit-list button')].map(b => b.textContent).join(' | ')`) + " || " + strings.Join(heads, " | ")
	}
	inEnglish := "Video visit · 0 waiting | Video visit · 0 waiting | Knee follow-up · 0 waiting || Video visit | Video visit | Knee follow-up"
	inSpanish := "Consulta por video · 0 en espera | Consulta por video · 0 en espera | Knee follow-up · 0 en espera || Consulta por video | Consulta por video | Knee follow-up"
	for _, step := range []struct {
		p          *page
		switchTo   string
		want, what string
	}{
		{en, "", inEnglish, "served in English"},
		{es, "", inSpanish, "served in Spanish"},
		{en, "es", inSpanish, "switched to Spanish"},
		{es, "en", inEnglish, "switched to English"},
	} {
		if step.switchTo != "" {
			step.p.switchLanguage(step.switchTo)
		}
		if got := shows(step.p); got != step.want {
			t.Errorf("the lobby %s:\n got %q\nwant %q", step.what, got, step.want)
		}
	}
}

// picturesNamed is a script that says (a short text) what on a call page
// is not as it is with want (each other participant's "name label", as
// the server's roster has them) the people whose pictures are shown, or
// "" when all is: every remote picture, the main one and each small one,
// carries a tag on the picture itself, not hidden or covered, naming one
// of them and what they are in the visit; each of them has one picture.
func picturesNamed(want ...string) string {
	w, _ := json.Marshal(want)
	return fmt.Sprintf(`(() => {
  const want = %s.sort();
  const seen = [];
  for (const v of document.querySelectorAll('#stage video.remote')) {
    if (!v.srcObject) continue;
    const tag = v.closest('.tile')?.querySelector('.name-tag');
    if (!tag || tag.hidden || !tag.getClientRects().length) return 'a picture (' + (v.getAttribute('aria-label') || v.id) + ') without a visible name';
    tag.scrollIntoView({ block: 'center' });
    const r = tag.getBoundingClientRect(), vr = v.getBoundingClientRect();
    if (!(r.width > 0) || r.left < vr.left || r.top < vr.top || r.right > vr.right + 0.5 || r.bottom > vr.bottom + 0.5) return 'the name ' + JSON.stringify(tag.innerText) + ' is not on its picture';
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !tag.contains(hit)) return 'the name ' + JSON.stringify(tag.innerText) + ' is covered by ' + (hit ? hit.tagName + '#' + hit.id : 'nothing');
    seen.push(tag.innerText.replace(/\s+/g, ' ').trim());
  }
  seen.sort();
  return JSON.stringify(seen) === JSON.stringify(want) ? '' : 'the pictures are named ' + JSON.stringify(seen) + ', want ' + JSON.stringify(want);
})()`, w)
}

// TestRegression_EveryPictureNamed: in a call of three and more, every
// other participant's picture — the main one and each small one — shows
// their display name and what they are in the visit, from the server's
// roster, on every page; and stays right as people go and come and the
// main picture changes hands. Tried with the clinician, the patient and
// an interpreter; then the patient hangs up (the clinician's main
// picture goes to the interpreter); then a second interpreter joins.
func TestRegression_EveryPictureNamed(t *testing.T) {
	_, dr, pat, g, _, artifacts := threePartyCall(t, nil, nil)
	defer func() {
		if t.Failed() {
			for _, p := range []*page{dr, pat, g} {
				t.Logf("%s: %s", p.name, p.screenshot(artifacts, "named-"+p.name+".png"))
			}
		}
	}()
	const (
		doctor  = "Dr. Demo Clinician Clinician (host)"
		patient = "Demo Patient Patient"
		ana     = "Ana Interpreter Interpreter"
		bea     = "Bea Interpreter Interpreter"
	)
	for p, others := range map[*page][]string{dr: {patient, ana}, pat: {doctor, ana}, g: {doctor, patient}} {
		p.waitForNothing("every picture named", picturesNamed(others...), 30*time.Second)
	}

	drStage := eval[string](dr, `document.querySelector('#remote-name').textContent`)
	pat.do(chromedp.Click(chromedp.CSS("#hangup")))
	for p, others := range map[*page][]string{dr: {ana}, g: {doctor}} {
		p.waitForNothing("every picture named after the patient left", picturesNamed(others...), 30*time.Second)
	}
	if drStage != "Demo Patient" {
		t.Logf("the clinician's main picture was %q's before the patient left", drStage)
	}
	if got := eval[string](dr, `document.querySelector('#remote-name').textContent`); got != "Ana Interpreter" {
		t.Errorf("the clinician's main picture is named %q after the patient left", got)
	}

	g2 := newPage(t, chromium(t), "second interpreter")
	// The first link is used: the form makes a new one.
	eval[string](dr, `document.querySelector('#call-guest-invite [data-testid=guest-link]').value = ''`)
	inviteGuest(t, dr, g2, "Bea Interpreter", artifacts, nil)
	for p, others := range map[*page][]string{dr: {ana, bea}, g: {doctor, bea}, g2: {doctor, ana}} {
		p.waitForNothing("every picture named after a second interpreter joined", picturesNamed(others...), 30*time.Second)
	}
	// The names stay the roster's in the other language too.
	g.switchLanguage("es")
	g.waitForNothing("every picture named in Spanish", picturesNamed("Dr. Demo Clinician Clínico (anfitrión)", "Bea Interpreter Intérprete"), 10*time.Second)
	dr.screenshot(artifacts, "visit-call-pictures-named.png")
}

// holdableSignaling lets a test take p's call signaling away: window.
// __dropSignal() closes its signaling socket and sends every reconnect to
// deadPort (nothing listens there) until window.__holdSignal is false;
// the peer connections stay up meanwhile.
func holdableSignaling(p *page, deadPort int) {
	p.onNewDocument(fmt.Sprintf(`(() => {
  const W = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends W {
    constructor(url, protocols) {
      super(window.__holdSignal && String(url).includes('/signal') ? 'wss://127.0.0.1:%d/' : url, protocols);
      window.__sockets.push(this);
    }
  };
  window.__dropSignal = () => {
    window.__holdSignal = true;
    for (const ws of window.__sockets) if (ws.url.includes('/signal') && ws.readyState <= 1) ws.close();
    return true;
  };
})();`, deadPort))
}

// TestRegression_LeftWhileAwayIsDropped: a call page whose signaling was
// down while someone left the call drops them when it is back (the
// server's welcome says who may still come back: one who hung up or was
// removed may not): its main picture goes to the one still there, and
// neither it nor "In the call" shows the one who went. (Whether media
// with the one still there comes back at once after such a loss is
// another matter: the pictures and the list are what is tried here.) Tried for each way
// of leaving that the server knows of: the patient hangs up while the
// clinician's page is away; the host removes the patient while the
// interpreter's page is away.
func TestRegression_LeftWhileAwayIsDropped(t *testing.T) {
	for _, m := range []struct {
		name, away string
		leave      func(dr, pat *page)
		told       string
	}{
		{"the patient hangs up", "clinician", func(_, pat *page) { pat.do(chromedp.Click(chromedp.CSS(`#hangup`))) }, "left the call"},
		{"the host removes the patient", "interpreter", func(dr, pat *page) {
			id := eval[string](pat, `document.querySelector('#roster-list li[data-self]').dataset.participant`)
			dr.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#roster-list button[data-action=remove][data-participant=%q]`, id))))
		}, "removed"},
	} {
		t.Run(m.name, func(t *testing.T) {
			dead := freePort(t)
			_, dr, pat, g, _, _ := threePartyCall(t, func(p *page) { p.recordPeerConnections(); holdableSignaling(p, dead) }, nil)
			pages := map[string]*page{"clinician": dr, "interpreter": g}
			names := map[string]string{"clinician": "Dr. Demo Clinician", "interpreter": "Ana Interpreter"}
			rows := `[...document.querySelectorAll('#roster-list li[data-testid=roster-peer]')]`
			for _, p := range []*page{dr, pat, g} {
				p.waitFor("two others in the call", rows+`.length === 2`, 30*time.Second)
				p.waitFor("every security code", rows+`.every(li => /^[0-9]{6}$/.test(li.querySelector('.peer-code').dataset.code || ''))`, 30*time.Second)
			}
			away := pages[m.away]
			var other string
			for who := range pages {
				if who != m.away {
					other = who
				}
			}
			eval[bool](away, `window.__dropSignal()`)
			away.waitFor("its signaling down", `!window.__sockets.some(ws => ws.url.includes('/signal') && ws.readyState === 1)`, 10*time.Second)
			m.leave(dr, pat)
			pat.waitFor("told they are out of the call", fmt.Sprintf(`document.querySelector('#call-status').textContent.includes(%q)`, m.told), 15*time.Second)
			pages[other].waitFor("the patient gone", `!`+rows+`.some(li => li.querySelector('.name').textContent === 'Demo Patient')`, 15*time.Second)
			// Away for long enough that its connections have noticed the
			// others' ends were closed meanwhile (as a real loss of
			// signaling lasts), so that the welcome restarts them.
			away.waitFor("its connections interrupted", `window.__pcs.filter(pc => pc.connectionState !== 'closed').every(pc => !['connected', 'completed'].includes(pc.iceConnectionState))`, 30*time.Second)
			eval[bool](away, `!(window.__holdSignal = false)`)
			away.waitFor("its signaling back", `window.__sockets.some(ws => ws.url.includes('/signal') && !ws.url.startsWith('wss://127.0.0.1:') && ws.readyState === 1)`, 30*time.Second)
			away.waitForNothing("only "+names[other]+" shown", namedOnly(names[other], "Demo Patient"), 30*time.Second)
		})
	}
}

// namedOnly is a script that says (a short text) what on a call page is
// not as it is with want the one other person in the call and gone
// someone who left it, or "" when all is: "In the call" lists want alone,
// the main picture is named want, no picture is gone's and nothing on
// the stage or the list names gone.
func namedOnly(want, gone string) string {
	return fmt.Sprintf(`(() => {
  const want = %q, gone = %q;
  const names = [...document.querySelectorAll('#roster-list li[data-testid=roster-peer] .name')].map(n => n.textContent);
  if (names.length !== 1 || names[0] !== want) return 'the list names ' + JSON.stringify(names);
  const tag = document.querySelector('#remote-name').textContent;
  if (tag !== want) return 'the main picture is named ' + JSON.stringify(tag);
  const stage = document.querySelector('#stage');
  const said = stage.innerText + ' ' + [...stage.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label')).join(' ') + ' ' + document.querySelector('#roster-list').innerText;
  if (said.includes(gone)) return 'the stage or the list still names ' + gone;
  return '';
})()`, want, gone)
}
