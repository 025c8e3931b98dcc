package auth

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRegression_IdleClockCountsActivity: the idle timeout ends a session
// that nobody uses, and never one in use, whatever the timeout — at, below
// or above the interval at which use is recorded. Use is a request, or
// Active (a participant in a video call, whose page sends no request). A
// poll the page sends by itself (X-Telegate-Background: 1) is not use.
func TestRegression_IdleClockCountsActivity(t *testing.T) {
	t.Parallel()
	idles := []time.Duration{2 * time.Second, 30 * time.Second, maxTouchInterval, maxTouchInterval + time.Second, 15 * time.Minute}
	uses := []struct {
		name string
		use  func(h *harness, session string)
	}{
		{"request", func(h *harness, _ string) {
			if st := h.do(h.noRedirectClient(), http.MethodGet, "/app/", nil).StatusCode; st != http.StatusOK {
				h.t.Fatalf("request while in use: %d", st)
			}
		}},
		{"call", func(h *harness, session string) { h.svc.Active(context.Background(), session) }},
	}
	background := http.Header{BackgroundHeader: {"1"}}
	for _, idle := range idles {
		for _, u := range uses {
			t.Run(idle.String()+"/"+u.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, func(h *harness) { h.cfg.Sessions.IdleTimeout = idle })
				if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
					t.Fatalf("sign-in: %d", resp.StatusCode)
				}
				nr := h.noRedirectClient()
				session := h.do(nr, http.MethodGet, "/app/", nil).Header.Get("X-Session")
				// In use for five idle periods: every step is a whole touch
				// interval, the longest gap the recorder allows.
				step := h.svc.TouchInterval()
				for elapsed := time.Duration(0); elapsed < 5*idle; elapsed += step {
					h.clock.Advance(step)
					u.use(h, session)
					if resp := h.do(nr, http.MethodGet, "/app/", background); resp.StatusCode != http.StatusOK {
						t.Fatalf("signed out after %v in use (idle_timeout %v): %d", elapsed+step, idle, resp.StatusCode)
					}
				}
				// Unused (background polls only): signed out once idle.
				for elapsed := time.Duration(0); elapsed < idle; elapsed += step {
					h.clock.Advance(step)
					h.do(nr, http.MethodGet, "/app/", background)
				}
				h.clock.Advance(time.Second)
				if resp := h.do(nr, http.MethodGet, "/app/", background); resp.StatusCode != http.StatusFound {
					t.Fatalf("unused for %v (idle_timeout %v): %d, want 302 to sign-in", idle+time.Second, idle, resp.StatusCode)
				}
				if !h.audit.find("session.end", "deny", "idle") {
					t.Error("no session.end audit record with reason idle")
				}
				// Active never brings the ended session back.
				h.svc.Active(context.Background(), session)
				if _, err := h.svc.store.Get(context.Background(), session); !errors.Is(err, ErrNotFound) {
					t.Fatalf("ended session back in the store after Active: %v", err)
				}
			})
		}
	}
}

// TestRegression_SessionEndedUnseenReauthenticates: a session that ends
// without the browser signing out — idle timeout, absolute lifetime,
// back-channel logout — leaves the provider's session alive, so the next
// sign-in from that browser asks the provider to authenticate again
// (prompt=login); a first sign-in, and one after signing out, do not.
func TestRegression_SessionEndedUnseenReauthenticates(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name   string
		prompt bool
		end    func(h *harness)
	}{
		{"first sign-in", false, func(*harness) {}},
		{"idle timeout", true, func(h *harness) { h.clock.Advance(h.cfg.Sessions.IdleTimeout + time.Second) }},
		{"absolute lifetime", true, func(h *harness) {
			for elapsed := time.Duration(0); elapsed <= h.cfg.Sessions.AbsoluteTimeout; elapsed += h.cfg.Sessions.IdleTimeout / 2 {
				h.clock.Advance(h.cfg.Sessions.IdleTimeout / 2)
				h.do(h.noRedirectClient(), http.MethodGet, "/app/", nil)
			}
		}},
		{"back-channel logout", true, func(h *harness) {
			sess, err := h.svc.store.Get(context.Background(), sessionIDFor(h.sessionCookie()))
			if err != nil {
				h.t.Fatal(err)
			}
			if _, err := h.svc.store.DeleteBySubject(context.Background(), sess.Issuer, sess.Subject, ""); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"sign-out", false, func(h *harness) {
			req, _ := http.NewRequest("POST", h.url+"/.telegate/logout", strings.NewReader("rd=%2Fapp%2F"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", h.url)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := h.client.Do(req)
			if err != nil {
				h.t.Fatal(err)
			}
			continueSignOut(h.t, h.client, resp).Body.Close()
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if e.name != "first sign-in" {
				if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
					t.Fatalf("sign-in: %d", resp.StatusCode)
				}
			}
			e.end(h)
			nr := h.noRedirectClient()
			resp := h.do(nr, http.MethodGet, "/app/", nil)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("after %s: %d, want 302 to sign in", e.name, resp.StatusCode)
			}
			login := h.do(nr, http.MethodGet, resp.Header.Get("Location"), nil)
			authz, err := url.Parse(login.Header.Get("Location"))
			if err != nil || login.StatusCode != http.StatusFound || !strings.HasPrefix(authz.String(), h.op.issuer) {
				t.Fatalf("sign-in: %d to %q", login.StatusCode, login.Header.Get("Location"))
			}
			if got := authz.Query().Get("prompt") == "login"; got != e.prompt {
				t.Errorf("after %s: prompt=login %v, want %v (%s)", e.name, got, e.prompt, authz.RawQuery)
			}
		})
	}
}

// TestRegression_SwitchAccountAsksWhichAccount: "Switch account" signs
// out (POST /.telegate/logout with switch=1), and the signed-out page then
// offers signing in with another account first, a sign-in that asks the
// provider which account (prompt=select_account, OIDC Core §3.1.2.1); a
// plain sign-out offers it second.
func TestRegression_SwitchAccountAsksWhichAccount(t *testing.T) {
	t.Parallel()
	for _, switching := range []bool{true, false} {
		h := newHarness(t)
		if resp := h.signIn("/app/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("sign-in: %d", resp.StatusCode)
		}
		form := "rd=%2Fapp%2F"
		if switching {
			form += "&switch=1"
		}
		req, _ := http.NewRequest("POST", h.url+"/.telegate/logout", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", h.url)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp = continueSignOut(t, h.client, resp)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		other := strings.Index(body, `data-testid="sign-in-other"`)
		cont := strings.Index(body, ">Continue<")
		if other < 0 || cont < 0 || (other < cont) != switching {
			t.Fatalf("switch=%v: signed-out page %s", switching, body)
		}
		if strings.Contains(body, `data-testid="signed-in-as"`) {
			t.Errorf("the signed-out page names an account: %s", body)
		}
		m := regexp.MustCompile(`data-testid="sign-in-other" href="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no sign-in link: %s", body)
		}
		login := h.do(h.noRedirectClient(), http.MethodGet, html.UnescapeString(m[1]), nil)
		authz, err := url.Parse(login.Header.Get("Location"))
		if err != nil || login.StatusCode != http.StatusFound || !strings.HasPrefix(authz.String(), h.op.issuer) {
			t.Fatalf("sign-in: %d to %q", login.StatusCode, login.Header.Get("Location"))
		}
		if p := authz.Query().Get("prompt"); p != "select_account" {
			t.Errorf("switch=%v: prompt %q, want select_account", switching, p)
		}
	}
}
