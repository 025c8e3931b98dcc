package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium starts one headless Chromium for the test with fake camera and
// microphone, and returns a function that opens an isolated browser context
// (its own cookies: one signed-in user each).
func chromium(t *testing.T, flags ...chromedp.ExecAllocatorOption) func() context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/test installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// getDisplayMedia picks the (fake) screen without a picker.
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// The demo's local CA is not in Chromium's trust store.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.WindowSize(1024, 900),
	)
	opts = append(opts, flags...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	root, cancelRoot := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil { // start the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return func() context.Context {
		ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		// The first run opens the tab; it lives as long as the context it
		// ran with, so it must be this one, not a derived one with a timeout.
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("opening a browser context: %v", err)
		}
		return ctx
	}
}

// page wraps one browser context with test failure handling.
type page struct {
	t       *testing.T
	ctx     context.Context
	name    string
	console *lockedBuffer
	// admitted is when the host clicked Admit for this page's person
	// (inviteGuest); zero before.
	admitted time.Time
}

// newPage opens an isolated browser context named name and records its
// console messages and uncaught exceptions (printed if the test fails).
func newPage(t *testing.T, open func() context.Context, name string) *page {
	p := &page{t: t, ctx: open(), name: name, console: &lockedBuffer{}}
	_ = chromedp.Listen(p.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			fmt.Fprintf(p.console, "console.%s: %s\n", ev.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			fmt.Fprintf(p.console, "exception at %s:%d: %s\n", d.URL, d.LineNumber+1, desc)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s console:\n%s", name, p.console.String())
		}
	})
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v\n%s", p.name, err, p.dump())
	}
}

// eval runs a JavaScript expression and returns its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

// waitFor evaluates a JavaScript predicate every 200 ms until it is true.
// Each evaluation is short, so a navigation in between does no harm.
func (p *page) waitFor(what, expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")", chromedp.EvalAsValue))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: waiting for %s: %v\n%s", p.name, what, err, p.dump())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dump describes the page for a failure message.
func (p *page) dump() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 800) : ''`, chromedp.EvalAsValue))
	return fmt.Sprintf("at %s:\n%s", loc, txt)
}

// signIn opens target and, at the development OpenID Provider's form, signs
// in as user; it returns once the browser is back on the gateway at a page
// whose path starts with landing.
func (p *page) signIn(target, user, landing string) {
	p.t.Helper()
	p.do(chromedp.Navigate(target))
	p.waitFor("the sign-in form", `document.querySelector('#username') !== null`, 20*time.Second)
	p.do(
		chromedp.SetValue(chromedp.CSS("#username"), user),
		chromedp.SetValue(chromedp.CSS("#password"), "demo"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	p.waitFor("landing on "+landing, fmt.Sprintf(`location.pathname.startsWith(%q) && document.readyState === 'complete'`, landing), 20*time.Second)
}

// screenshot saves a full-page PNG of p as dir/name and returns its path.
func (p *page) screenshot(dir, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func artifactsDir(t *testing.T) string {
	if d := os.Getenv("TELEGATE_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// TestVisitInBrowsers runs a whole video visit in two isolated Chromium
// contexts against `telegate demo`: the clinician creates a visit and an
// invite, the patient signs in through the invite and waits, the clinician
// admits, and both connect through the TURN relay only, see each other's
// video, and show the same security code. A declined patient never gets
// ICE credentials and a third user cannot join a two-person visit.
func TestVisitInBrowsers(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDemo(t, dataDir, freePort(t), freePort(t))
	d.logVisitOnFailure()
	newCtx := chromium(t)
	artifacts := artifactsDir(t)
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	visitID, invite := startCall(t, d.Base(), dr, pat, artifacts, 2)

	// The same security code on both sides.
	for _, p := range []*page{dr, pat} {
		p.waitFor("the security code", `/^[0-9]{6}$/.test(document.querySelector('#security-code').dataset.code || '')`, 15*time.Second)
	}
	c1 := eval[string](dr, `document.querySelector('#security-code').dataset.code`)
	c2 := eval[string](pat, `document.querySelector('#security-code').dataset.code`)
	if c1 != c2 {
		t.Fatalf("security codes differ: clinician %s, patient %s", c1, c2)
	}
	t.Logf("call page screenshot: %s; security code %s", pat.screenshot(artifacts, "visit-call.png"), c1)

	// A third user cannot join the two-person visit.
	third := newPage(t, newCtx, "third")
	third.signIn(invite, "admin@demo.test", "/.telegate/visits/join")
	third.waitFor("the refusal", `document.querySelector('#waiting-status').textContent.includes('full')`, 15*time.Second)
	if st := eval[float64](third, fmt.Sprintf(`fetch('/.telegate/visits/%s/ice').then(r => r.status)`, visitID)); st != 403 {
		t.Fatalf("third user ICE: %v", st)
	}

	// A declined patient never receives ICE credentials.
	dr.do(chromedp.Navigate(d.Base() + "/.telegate/visits/lobby"))
	dr.do(
		chromedp.SetValue(chromedp.CSS("#visit-title"), "Second visit"),
		chromedp.Click(chromedp.CSS("#create-visit")),
	)
	dr.waitFor("the second invite", fmt.Sprintf(`document.querySelector('#invite-link').value.includes('invite=') && document.querySelector('#invite-link').value !== %q`, invite), 15*time.Second)
	invite2 := eval[string](dr, `document.querySelector('#invite-link').value`)
	third.do(chromedp.Navigate(invite2))
	third.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	visit2 := eval[string](third, `new URLSearchParams(location.search).get('visit')`)
	dr.waitFor("the waiting user", `document.querySelector('#waiting-list button[data-action=decline]') !== null`, 15*time.Second)
	dr.do(chromedp.Click(chromedp.CSS("#waiting-list button[data-action=decline]")))
	third.waitFor("the decline", `document.querySelector('#waiting-status').textContent.includes('declined')`, 15*time.Second)
	if st := eval[float64](third, fmt.Sprintf(`fetch('/.telegate/visits/%s/ice').then(r => r.status)`, visit2)); st != 403 {
		t.Fatalf("declined user ICE: %v", st)
	}
}

// startCall holds a visit as README's walk-through does, up to video
// flowing both ways through the relay: dr signs in at the lobby, creates a
// visit and reads the invite link; pat signs in through the invite and
// waits (no ICE credentials yet); dr admits and joins the call. It returns
// the visit id and the invite link. Screenshots go to artifacts. With
// people, the visit is for that many (the lobby's "People in the call");
// else for the lobby's default.
func startCall(t *testing.T, base string, dr, pat *page, artifacts string, people ...int) (visitID, invite string) {
	t.Helper()
	// Clinician: sign in, create a visit, read the invite link.
	dr.signIn(base+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Browser test visit"))
	for _, n := range people {
		dr.do(chromedp.SetValue(chromedp.CSS("#visit-participants"), strconv.Itoa(n)))
	}
	dr.do(chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite = eval[string](dr, `document.querySelector('#invite-link').value`)
	if !strings.HasPrefix(invite, base+"/.telegate/visits/join?invite=") {
		t.Fatalf("invite link %q", invite)
	}

	// Patient: the invite leads through sign-in into the waiting room.
	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	if strings.Contains(eval[string](pat, `location.href`), "invite=") {
		t.Fatal("the invite token stays in the patient's address bar")
	}
	// No ICE credentials before admission.
	visitID = eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	if st := eval[float64](pat, fmt.Sprintf(`fetch('/.telegate/visits/%s/ice').then(r => r.status)`, visitID)); st != 403 {
		t.Fatalf("ICE before admission: %v", st)
	}

	// Clinician admits from the waiting list, then joins the call.
	dr.waitFor("the waiting patient", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	dr.screenshot(artifacts, "visit-lobby.png")
	pat.screenshot(artifacts, "visit-waiting-room.png")
	if name := eval[string](dr, `document.querySelector('#waiting-list li .name').textContent`); name != "Demo Patient" {
		t.Fatalf("waiting list shows %q", name)
	}
	admitted := time.Now()
	admitAndConnect(base, dr, pat)
	for _, p := range []*page{dr, pat} {
		p.waitFor("stats of the selected pair", `document.querySelector('#stats').dataset.localCandidateType !== undefined && document.querySelector('#stats').dataset.localCandidateType !== ''`, 15*time.Second)
		local := eval[string](p, `document.querySelector('#stats').dataset.localCandidateType`)
		remote := eval[string](p, `document.querySelector('#stats').dataset.remoteCandidateType`)
		if local != "relay" || remote != "relay" {
			t.Fatalf("%s: selected pair %s ↔ %s, want relay ↔ relay", p.name, local, remote)
		}
	}
	// The figure docs/benchmarks.md reports: admission to video flowing
	// in both directions (a measurement, not a timed assertion).
	for _, p := range []*page{dr, pat} {
		p.waitFor("first inbound video", `Number(document.querySelector('#stats').dataset.inboundVideoBytes) > 0`, 20*time.Second)
	}
	t.Logf("admission to media flowing both ways: %v", time.Since(admitted).Round(time.Millisecond))
	// Inbound video keeps flowing on both sides.
	for _, p := range []*page{dr, pat} {
		b0 := eval[string](p, `document.querySelector('#stats').dataset.inboundVideoBytes`)
		p.waitFor("inbound video to grow", fmt.Sprintf(`Number(document.querySelector('#stats').dataset.inboundVideoBytes) > %s + 20000`, b0), 20*time.Second)
	}
	return visitID, invite
}

// admitAndConnect has dr, on the lobby with pat waiting, admit pat and
// join the call; it returns once both call pages are connected.
func admitAndConnect(base string, dr, pat *page) {
	dr.t.Helper()
	dr.do(chromedp.Click(chromedp.CSS("#waiting-list button[data-action=admit]")))
	pat.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	// Join the call opens a tab of its own (the lobby stays); here the
	// clinician's one tab goes there.
	dr.do(chromedp.Navigate(base + eval[string](dr, `document.querySelector('#start-call').getAttribute('href')`)))
	dr.waitFor("the call page", `location.pathname.endsWith('/call')`, 15*time.Second)
	for _, p := range []*page{dr, pat} {
		p.waitFor("connected", `document.querySelector('#connection-state').dataset.state === 'connected'`, 45*time.Second)
	}
}

// logVisitOnFailure logs, if the test fails, the relay and visit records
// of d's audit trail and what the process printed (request lines left out).
func (d *demo) logVisitOnFailure() {
	t := d.t
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log")); err == nil {
				var lines []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.Contains(l, `"relay.`) || strings.Contains(l, `"visit.`) {
						lines = append(lines, l)
					}
				}
				t.Logf("audit (relay and visit events):\n%s", strings.Join(lines, "\n"))
			}
			var keep []string
			for _, l := range strings.Split(d.Output(), "\n") {
				if !strings.Contains(l, "msg=request ") {
					keep = append(keep, l)
				}
			}
			out := strings.Join(keep, "\n")
			t.Logf("telegate output, requests left out (last 6000 bytes):\n%s", out[max(0, len(out)-6000):])
		}
	})
}
