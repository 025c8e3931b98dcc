package media

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/telegate/telegate/page"
)

// The built-in client computes the security code in JavaScript
// (web/visit.js, securityCode); it must agree with SecurityCode, or two
// participants would read out different digits for the same connection.
func TestSecurityCodeMatchesWebClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	abs, err := filepath.Abs("web/visit.js")
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{"sha-256 " + fpOf(1), "sha-256 " + fpOf(100)},
		{"SHA-256 " + strings.ToLower(fpOf(7)), "sha-256 " + fpOf(9)},
		{"sha-1 " + fpOf(3)[:59], "sha-256 " + fpOf(200)},
	}
	for _, p := range pairs {
		want, err := SecurityCode(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		script := "import { securityCode } from " + jsString("file://"+abs) + ";\n" +
			"console.log(await securityCode(" + jsString(p[1]) + ", " + jsString(p[0]) + "));"
		out, err := exec.Command(node, "--input-type=module", "-e", script).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Fatalf("visit.js securityCode(%q, %q) = %s, media.SecurityCode = %s", p[1], p[0], got, want)
		}
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// TestRegression_PagesShowCatalogueWords: people never see an API's
// error text. Every reason the visits API can answer (each fail(…) in
// this package, and the participant states a refusal names) has plain
// words in the web client's catalogue (page.ClientJS); errorText gives
// those words — or generic ones for an unknown reason, a server error or
// a failed request — never the error's own message; and every key the
// pages ask for (t('…') in web/app.js, data-t*="…" in web/*.html) is in
// the catalogue.
func TestRegression_PagesShowCatalogueWords(t *testing.T) {
	t.Parallel()
	node, from := nodeAndStrings(t)
	reasons := map[string]bool{stateDeclined: true, stateRemoved: true, stateLeft: true}
	files, _ := filepath.Glob("*.go")
	failRE := regexp.MustCompile(`fail\(http\.\w+, "([a-z-]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range failRE.FindAllStringSubmatch(string(b), -1) {
			reasons[m[1]] = true
		}
	}
	if len(reasons) < 20 {
		t.Fatalf("found only %d reasons: %v", len(reasons), reasons)
	}
	app, err := os.ReadFile("web/app.js")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bt\('([a-zA-Z.-]+)'`).FindAllStringSubmatch(string(app), -1) {
		if !strings.HasSuffix(m[1], ".") { // t('state.' + st): a family
			keys[m[1]] = true
		}
	}
	pages, _ := filepath.Glob("web/*.html")
	for _, f := range pages {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`data-t(?:-label|-placeholder)?="([^"]+)"`).FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
		}
	}
	if len(keys) < 60 {
		t.Fatalf("found only %d keys the pages use", len(keys))
	}
	var rs, ks []string
	for r := range reasons {
		rs = append(rs, r)
	}
	for k := range keys {
		ks = append(ks, k)
	}
	rj, _ := json.Marshal(rs)
	kj, _ := json.Marshal(ks)
	script := "import { catalogue, errorText, t } from " + from + ";\n" +
		"const raw = 'RAW-SERVER-TEXT';\n" +
		"const out = [];\n" +
		"for (const r of " + string(rj) + ") {\n" +
		"  if (!catalogue.en['error.' + r]) out.push('no words for reason ' + r);\n" +
		"  const s = String(errorText({ reason: r, status: 403, message: raw }));\n" +
		"  if (s.includes(raw) || s !== catalogue.en['error.' + r]) out.push('errorText(' + r + ') = ' + s);\n" +
		"}\n" +
		"for (const k of " + string(kj) + ") if (catalogue.en[k] === undefined) out.push('app.js asks for missing key ' + k);\n" +
		"const generic = catalogue.en['error.generic'];\n" +
		"const cases = [[{ reason: 'no-such-reason', status: 400, message: raw }, generic],\n" +
		"  [{ status: 502, message: raw }, catalogue.en['error.internal']],\n" +
		"  [{ status: 401, message: raw }, catalogue.en['error.unauthenticated']],\n" +
		"  [new TypeError('Failed to fetch'), catalogue.en['error.network']],\n" +
		"  [new Error(raw), generic]];\n" +
		"for (const [e, want] of cases) if (String(errorText(e)) !== want) out.push('errorText(' + JSON.stringify(e) + ') = ' + errorText(e));\n" +
		"if (String(t('lobby.admitName', { name: 'Ann' })) !== 'Admit Ann') out.push('placeholders: ' + t('lobby.admitName', { name: 'Ann' }));\n" +
		"console.log(out.join('\\n'));"
	expectNoOutput(t, node, script, "catalogue")
}

// TestRegression_CatalogueLanguagesHaveEveryKey: a page in Spanish (or any
// other language of the visit pages' catalogue, page.ClientJS) never falls back to English words or
// loses a name or number. Every language has exactly English's keys, each
// with the same {placeholders} and a non-empty text; every language is
// named for the switch as telegate's own pages name it, and the languages
// are those of the server-side catalogue (page.Languages), which decides
// the language of every page. Words made once (t, concat, when: what the
// pages remember an element shows) are said in the language of the
// moment: every key, filled in, in one language and then in the other
// after a switch; words within words (quality.noVideo's {why}) and a
// moment (a date in the language's locale) too.
func TestRegression_CatalogueLanguagesHaveEveryKey(t *testing.T) {
	t.Parallel()
	node, from := nodeAndStrings(t)
	names, _ := json.Marshal(page.LanguageNames)
	langs, _ := json.Marshal(page.Languages)
	script := "import { catalogue, languageNames, t, concat, when, setLanguage } from " + from + ";\n" +
		"const out = [];\n" +
		"const ph = s => [...s.matchAll(/\\{(\\w+)\\}/g)].map(m => m[1]).sort().join(',');\n" +
		"const langs = Object.keys(catalogue);\n" +
		"if (langs.length < 2) out.push('only ' + langs.join(','));\n" +
		"for (const l of langs) {\n" +
		"  if (!languageNames[l]) out.push(l + ': not named in languageNames');\n" +
		"  for (const k of Object.keys(catalogue.en)) {\n" +
		"    const s = catalogue[l][k];\n" +
		"    if (typeof s !== 'string' || s === '') { out.push(l + ': missing ' + k); continue; }\n" +
		"    if (ph(s) !== ph(catalogue.en[k])) out.push(l + ': ' + k + ' has {' + ph(s) + '}, English {' + ph(catalogue.en[k]) + '}');\n" +
		"  }\n" +
		"  for (const k of Object.keys(catalogue[l])) if (catalogue.en[k] === undefined) out.push('en: missing ' + k + ' (in ' + l + ')');\n" +
		"}\n" +
		"for (const l of Object.keys(languageNames)) if (!catalogue[l]) out.push('languageNames names ' + l + ' without a catalogue');\n" +
		"const server = " + string(langs) + ";\n" +
		"if (JSON.stringify(langs) !== JSON.stringify(server)) out.push('languages ' + langs + ', the server has ' + server);\n" +
		"for (const [l, n] of Object.entries(" + string(names) + ")) if (languageNames[l] !== n) out.push(l + ' is named ' + languageNames[l] + ' here, ' + n + ' on own pages');\n" +
		"const fill = s => s.replace(/\\{(\\w+)\\}/g, (_, n) => 'Q' + n);\n" +
		"for (const [a, b] of [['en', 'es'], ['es', 'en']]) {\n" +
		"  setLanguage(a);\n" +
		"  const made = Object.keys(catalogue.en).map(k => [k, t(k, Object.fromEntries(ph(catalogue.en[k]).split(',').filter(Boolean).map(n => [n, 'Q' + n])))]);\n" +
		"  for (const [k, w] of made) if (String(w) !== fill(catalogue[a][k])) out.push(k + ' in ' + a + ': ' + w);\n" +
		"  setLanguage(b);\n" +
		"  for (const [k, w] of made) if (String(w) !== fill(catalogue[b][k])) out.push(k + ', made in ' + a + ', said after the switch to ' + b + ': ' + w);\n" +
		"}\n" +
		"setLanguage('en');\n" +
		"const at = Date.UTC(2026, 11, 24, 18, 5);\n" +
		"const nv = t('quality.noVideo', { name: 'Ann', why: t('why.off') });\n" +
		"const until = t('lobby.validUntil', { time: when(new Date(at).toISOString()) });\n" +
		"const both = concat(t('lobby.scheduled', { time: when(at) }), t('lobby.notStarted'));\n" +
		"const date = l => new Date(at).toLocaleString(l, { dateStyle: 'short', timeStyle: 'short' });\n" +
		"if (String(until) !== 'Valid until ' + date('en')) out.push('date in English: ' + until);\n" +
		"setLanguage('es');\n" +
		"if (String(nv) !== 'No hay imagen de Ann: su cámara está apagada. Aun así pueden oírse si su micrófono funciona.') out.push('words within words: ' + nv);\n" +
		"if (date('es') === date('en')) out.push('no Spanish locale here: ' + date('es'));\n" +
		"if (String(until) !== 'Válido hasta ' + date('es')) out.push('date after the switch: ' + until);\n" +
		"if (String(both) !== 'Programada ' + date('es') + ' · Sin empezar') out.push('joined words after the switch: ' + both);\n" +
		"if (String(when('')) !== '') out.push('no moment: ' + when(''));\n" +
		"console.log(out.join('\\n'));"
	expectNoOutput(t, node, script, "catalogue languages")
}

// expectNoOutput runs script as an ES module under node and fails t with
// what it printed, under the heading what, unless it printed nothing.
func expectNoOutput(t *testing.T, node, script, what string) {
	t.Helper()
	out, err := exec.Command(node, "--input-type=module", "-e", script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("%s:\n%s", what, s)
	}
}

// TestRegression_CatalogueKeepsNamesAsTheyAre: the language switch says
// again only catalogue words — people's names and free text filled into
// them (two words, a title and a name, accented names, words that are
// also catalogue words or labels) are said as they were given, in every
// language, after every switch.
func TestRegression_CatalogueKeepsNamesAsTheyAre(t *testing.T) {
	t.Parallel()
	node, from := nodeAndStrings(t)
	script := "import { catalogue, t, concat, setLanguage } from " + from + ";\n" +
		"const out = [];\n" +
		"const names = ['Demo Patient', 'Ann Lee', 'Dr. Demo Clinician', 'María José García', 'Interpreter', 'Patient', 'Video visit', 'You', 'Demo Patient Chat-canary: hello there'];\n" +
		"const made = names.map(n => [n, t('wchat.to', { name: n, text: n }), concat(n, ': ')]);\n" +
		"for (const l of ['en', 'es', 'en']) {\n" +
		"  setLanguage(l);\n" +
		"  for (const [n, to, who] of made) {\n" +
		"    const want = catalogue[l]['wchat.to'].replace('{name}', n).replace('{text}', n);\n" +
		"    if (String(to) !== want) out.push(l + ': ' + JSON.stringify(String(to)) + ', want ' + JSON.stringify(want));\n" +
		"    if (String(who) !== n + ': ') out.push(l + ': ' + JSON.stringify(String(who)));\n" +
		"  }\n" +
		"}\n" +
		"console.log(out.join('\\n'));"
	expectNoOutput(t, node, script, "catalogue")
}

// nodeAndStrings returns node's path and web/strings.js as a module
// specifier for a script's import, laid out as the server serves it:
// beside it the catalogue.js the server makes (page.ClientJS). Without
// node it skips t.
func nodeAndStrings(t *testing.T) (node, from string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	src, err := os.ReadFile("web/strings.js")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"strings.js": src, path.Base(page.ClientCataloguePath): page.ClientJS()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return node, jsString("file://" + filepath.Join(dir, "strings.js"))
}
