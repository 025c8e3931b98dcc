package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// allowNotifications grants p's origin the notifications permission, as a
// clinician's click on "Allow" does.
func (p *page) allowNotifications(origin string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		info, err := cdp.Call(ctx, t, target.GetTargetInfo, target.GetTargetInfoParams{})
		if err != nil {
			return err
		}
		_, err = cdp.Call(ctx, t, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted,
			Origin: origin, BrowserContextID: info.TargetInfo.BrowserContextID,
		})
		return err
	}))
}

// TestRegression_ClinicianAlertedOnArrival: a patient entering the
// waiting room alerts the clinician's lobby every way it can — a chime
// (an oscillator starts), a desktop notification that names nobody, the
// tab's title and favicon with the number waiting, a caption of the sound
// in an aria-live region — and the list shows how long they have waited;
// someone already waiting when the lobby opens does not chime again, and
// an away patient leaves the count.
func TestRegression_ClinicianAlertedOnArrival(t *testing.T) {
	d := runWithDevOP(t, visitsConfig)
	d.logVisitOnFailure()
	newCtx := chromium(t)
	dr := newPage(t, newCtx, "clinician")
	pat := newPage(t, newCtx, "patient")
	dr.allowNotifications(d.Base())
	// Count what the page asks of the browser (the real APIs still run).
	dr.onNewDocument(`(() => {
  window.__notes = []; window.__chimes = 0;
  const N = window.Notification;
  window.Notification = class extends N { constructor(t, o) { super(t, o); window.__notes.push({ title: t, body: (o || {}).body || '' }); } };
  const osc = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () { window.__chimes++; return osc.call(this); };
})();`)
	dr.signIn(d.Base()+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Alert visit"), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)
	if eval[string](dr, `Notification.permission`) != "granted" {
		t.Fatal("notifications not granted")
	}

	pat.signIn(invite, "patient@demo.test", "/.telegate/visits/join")
	dr.waitFor("the waiting patient", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	dr.waitFor("the notification", `window.__notes.length === 1`, 10*time.Second)
	note := eval[map[string]any](dr, `window.__notes[0]`)
	if body := fmt.Sprint(note["title"], " ", note["body"]); strings.Contains(body, "Demo Patient") || strings.Contains(body, "Alert visit") {
		t.Errorf("the notification names the patient or the visit: %q", body)
	}
	if n := eval[float64](dr, `window.__chimes`); n < 1 {
		t.Error("no chime")
	}
	if title := eval[string](dr, `document.title`); !strings.HasPrefix(title, "(1) waiting") {
		t.Errorf("tab title %q", title)
	}
	if icon := eval[string](dr, `document.querySelector('link[rel=icon]').getAttribute('href') || ''`); !strings.HasPrefix(icon, "data:image/svg+xml") {
		t.Errorf("favicon %q", icon)
	}
	if c := eval[string](dr, `document.querySelector('#alert-caption').textContent`); !strings.Contains(c, "Demo Patient arrived") {
		t.Errorf("caption %q", c)
	}
	if w := eval[string](dr, `document.querySelector('#waiting-list .presence').textContent`); !strings.HasPrefix(w, "waiting 0 min") {
		t.Errorf("waiting time %q", w)
	}

	// A lobby opened with the patient already waiting: the count, no chime.
	dr.do(chromedp.Reload())
	dr.waitFor("the waiting patient after a reload", `document.querySelector('#waiting-list button[data-action=admit]') !== null && document.title.startsWith('(1) waiting')`, 15*time.Second)
	time.Sleep(3 * time.Second)
	if n := eval[float64](dr, `window.__chimes + window.__notes.length`); n != 0 {
		t.Errorf("%v alerts for a patient who was already waiting", n)
	}

	// The patient closes the waiting room: away, and out of the count.
	pat.do(chromedp.Navigate("about:blank"))
	dr.waitFor("the away patient", `document.querySelector('#waiting-list li[data-away=true]') !== null && !document.title.startsWith('(')`, 20*time.Second)
	if eval[bool](dr, `document.querySelector('#waiting-list li[data-away=true] button[data-action=admit]') !== null`) {
		t.Error("an away patient can still be admitted")
	}
	// After the grace (10 s), off the list.
	dr.waitFor("the patient off the list", `document.querySelector('#waiting-list li[data-participant]') === null`, 20*time.Second)
}
