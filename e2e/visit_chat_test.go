package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestVisitChatFileAndScreenShare holds a call in two Chromium contexts
// and uses what rides the data channel and a second video track: a chat
// message from the patient arrives at the clinician; a 100 KiB file from
// the clinician arrives at the patient byte for byte; a file over the
// 8 MiB limit is refused in plain words before anything is sent; the
// patient's screen share arrives at the clinician as a second video (the
// camera still flowing) with a banner on both sides, and stopping it
// takes both banners away; then the clinician shares, the other way.
func TestVisitChatFileAndScreenShare(t *testing.T) {
	d, _, artifacts, dr, pat := visitPages(t)
	// The page's CSP allows no fetch of blob: URLs, so the test keeps the
	// blobs the pages make links for, to read what arrived.
	pat.onNewDocument(`(() => { window.__blobs = {}; const orig = URL.createObjectURL; URL.createObjectURL = b => { const u = orig(b); window.__blobs[u] = b; return u; }; })();`)
	startCall(t, d.Base(), dr, pat, artifacts)

	// Chat: patient → clinician.
	const msg = "Chat-canary: my rash looks worse since Tuesday"
	pat.do(chromedp.SetValue(chromedp.CSS("#chat-input"), msg), chromedp.Click(chromedp.CSS("#chat-send")))
	dr.waitFor("the patient's chat message", fmt.Sprintf(`document.querySelector('#chat-log').textContent.includes(%q)`, msg), 15*time.Second)
	if got := eval[string](dr, `document.querySelector('#chat-log li:last-child').textContent`); !strings.HasPrefix(got, "Demo Patient: ") {
		t.Errorf("the clinician reads %q, not naming the patient", got)
	}
	if !eval[bool](pat, fmt.Sprintf(`document.querySelector('#chat-log').textContent.includes(%q)`, "You: "+msg)) {
		t.Error("the patient's own message is not in their chat log")
	}

	// A file: clinician → patient, 100 KiB, byte for byte.
	dir := t.TempDir()
	data := make([]byte, 100*1024)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "discharge-notes.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dr.do(chromedp.SetUploadFiles(chromedp.CSS("#chat-file"), []string{path}))
	pat.waitFor("the clinician's file", `document.querySelector('#chat-log a[download="discharge-notes.bin"]') !== null`, 20*time.Second)
	got := eval[string](pat, `(async () => {
  const a = document.querySelector('#chat-log a[download="discharge-notes.bin"]');
  const buf = await window.__blobs[a.href].arrayBuffer();
  const h = await crypto.subtle.digest('SHA-256', buf);
  return buf.byteLength + ' ' + Array.from(new Uint8Array(h), b => b.toString(16).padStart(2, '0')).join('');
})()`)
	if want := fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:])); got != want {
		t.Fatalf("the patient received %q, want %q", got, want)
	}
	dr.waitFor("the sent notice", `document.querySelector('#chat-status').textContent.includes('Sent discharge-notes.bin')`, 10*time.Second)

	// Over the limit: refused before sending, in plain words.
	big := filepath.Join(dir, "scan.bin")
	if err := os.WriteFile(big, make([]byte, 8*1024*1024+1), 0o600); err != nil {
		t.Fatal(err)
	}
	dr.do(chromedp.SetUploadFiles(chromedp.CSS("#chat-file"), []string{big}))
	dr.waitFor("the refusal of a big file", `document.querySelector('#chat-status').textContent.includes('too big')`, 10*time.Second)
	if n := eval[float64](pat, `document.querySelectorAll('#chat-log a[download]').length`); n != 1 {
		t.Errorf("the patient got %v files, want only the small one", n)
	}

	// Screen share by the patient: a second video at the clinician, the
	// banner on both sides.
	before := eval[float64](dr, `Number(document.querySelector('#stats').dataset.inboundVideoBytes || 0)`)
	pat.do(chromedp.Click(chromedp.CSS("#share-screen")))
	pat.waitFor("the sharer's banner", `!document.querySelector('#screen-self').hidden && document.querySelector('#share-screen').getAttribute('aria-pressed') === 'true'`, 15*time.Second)
	dr.waitFor("the shared screen", `!document.querySelector('#screen-stage').hidden && document.querySelector('#remote-screen').srcObject !== null`, 20*time.Second)
	if b := eval[string](dr, `document.querySelector('#screen-remote').textContent`); b != "Demo Patient is sharing their screen." {
		t.Errorf("the clinician's banner reads %q", b)
	}
	dr.waitFor("frames of the shared screen", `(() => { const v = document.querySelector('#remote-screen'); return v.videoWidth > 0 && v.srcObject.getVideoTracks()[0].readyState === 'live'; })()`, 20*time.Second)
	if same := eval[bool](dr, `document.querySelector('#remote-screen').srcObject === document.querySelector('#remote-video').srcObject`); same {
		t.Fatal("the shared screen replaced the camera's video")
	}
	dr.waitFor("the camera still flowing", fmt.Sprintf(`Number(document.querySelector('#stats').dataset.inboundVideoBytes) > %v + 20000`, before), 20*time.Second)
	t.Logf("clinician during the share: %s", dr.screenshot(artifacts, "visit-call-screen-share.png"))
	t.Logf("patient during the share: %s", pat.screenshot(artifacts, "visit-call-sharing.png"))

	// Stop: both banners go.
	pat.do(chromedp.Click(chromedp.CSS("#share-screen")))
	pat.waitFor("the sharer's banner gone", `document.querySelector('#screen-self').hidden`, 10*time.Second)
	dr.waitFor("the shared screen gone", `document.querySelector('#screen-stage').hidden`, 10*time.Second)
	if st := eval[string](dr, `document.querySelector('#connection-state').dataset.state`); st != "connected" {
		t.Errorf("after the share the clinician's call is %q", st)
	}

	// The other side shares too: the clinician's screen at the patient.
	dr.do(chromedp.Click(chromedp.CSS("#share-screen")))
	dr.waitFor("the clinician's banner", `!document.querySelector('#screen-self').hidden`, 15*time.Second)
	pat.waitFor("the clinician's screen", `!document.querySelector('#screen-stage').hidden && document.querySelector('#remote-screen').videoWidth > 0`, 20*time.Second)
	if b := eval[string](pat, `document.querySelector('#screen-remote').textContent`); b != "Dr. Demo Clinician is sharing their screen." {
		t.Errorf("the patient's banner reads %q", b)
	}
	dr.do(chromedp.Click(chromedp.CSS("#share-screen")))
	pat.waitFor("the clinician's screen gone", `document.querySelector('#screen-stage').hidden`, 10*time.Second)
}
