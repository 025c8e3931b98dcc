package media

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// guestLink issues a guest link for vid as dr and returns its token.
func (h *harness) guestLink(vid, label, name string) string {
	h.t.Helper()
	st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/guests", map[string]any{"label": label, "name": name})
	if st != http.StatusCreated {
		h.t.Fatalf("guest link: %d %v", st, m)
	}
	if m["label"] != label {
		h.t.Fatalf("guest link label %v, want %s", m["label"], label)
	}
	u, err := url.Parse(m["url"].(string))
	if err != nil || u.Path != "/.telegate/visits/guest" {
		h.t.Fatalf("guest link URL %v", m["url"])
	}
	return u.Query().Get("link")
}

// guestDo sends a same-origin request without a gateway identity,
// carrying cookie (a guest session, or nil).
func (h *harness) guestDo(cookie *http.Cookie, method, path string, body any) (int, map[string]any, *http.Response) {
	h.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", h.srv.URL)
	req.Header.Set("X-Telegate-CSRF", "1")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return h.sendResp(req)
}

// guestJoin joins without an account with link and returns the guest
// session cookie and the participant id.
func (h *harness) guestJoin(link, name string) (*http.Cookie, string) {
	h.t.Helper()
	st, m, resp := h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link, "name": name})
	if st != http.StatusOK {
		h.t.Fatalf("guest join: %d %v", st, m)
	}
	for _, c := range resp.Cookies() {
		if c.Name == guestCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/.telegate/visits/" {
				h.t.Fatalf("guest cookie %+v: want HttpOnly, SameSite=Strict, Path=/.telegate/visits/", c)
			}
			return c, m["self"].(map[string]any)["id"].(string)
		}
	}
	h.t.Fatalf("guest join set no %s cookie", guestCookie)
	return nil, ""
}

// guestDial opens a signaling socket for visit vid with a guest cookie.
func (h *harness) guestDial(cookie *http.Cookie, vid string) (*websocket.Conn, int) {
	h.t.Helper()
	return h.guestDialAt(cookie, vid, "signal")
}

// guestDialAt opens the visit's WebSocket endpoint ("signal", "chat")
// with a guest cookie; it returns the socket (nil when refused) and the
// answer's status.
func (h *harness) guestDialAt(cookie *http.Cookie, vid, endpoint string) (*websocket.Conn, int) {
	h.t.Helper()
	hdr := http.Header{"Origin": {h.srv.URL}}
	if cookie != nil {
		hdr.Set("Cookie", cookie.Name+"="+cookie.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.srv.URL, "http")+"/.telegate/visits/"+vid+"/"+endpoint, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		return nil, st
	}
	h.t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

func withoutAccount(c config.Visits) config.Visits {
	c.GuestsWithoutAccount = true
	return c
}

// TestGuestJoinsWithoutAccount: the host invites an interpreter; the
// interpreter joins without an account, waits, is admitted, takes part
// (relay credentials, signaling) and everyone sees their label; the host
// removes them and everything their session opened closes.
func TestGuestJoinsWithoutAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{}))
	vid, _, patPID := h.admitted()
	link := h.guestLink(vid, labelInterpreter, "")

	st, m, _ := h.guestDo(nil, "POST", "/.telegate/visits/guest/check", map[string]any{"link": link})
	if st != http.StatusOK || m["label"] != labelInterpreter || m["without_account"] != true || m["signed_in"] != false ||
		!strings.HasPrefix(m["sign_in_url"].(string), "/.telegate/login?") {
		t.Fatalf("check: %d %v", st, m)
	}
	cookie, gid := h.guestJoin(link, "Ana Intérprete")
	st, m, _ = h.guestDo(cookie, "GET", "/.telegate/visits/"+vid, nil)
	self, _ := m["self"].(map[string]any)
	if st != http.StatusOK || self["state"] != stateWaiting || self["label"] != labelInterpreter || self["name"] != "Ana Intérprete" {
		t.Fatalf("guest's own view: %d %v", st, m)
	}
	if st, _, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Fatalf("ice before admission: %d", st)
	}
	_, m = h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	labels := map[string]string{}
	for _, p := range m["participants"].([]any) {
		p := p.(map[string]any)
		labels[p["id"].(string)] = p["label"].(string)
	}
	if labels[gid] != labelInterpreter || labels[patPID] != labelPatient {
		t.Fatalf("host sees labels %v", labels)
	}
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gid}); st != http.StatusNoContent {
		t.Fatalf("admit guest: %d %v", st, m)
	}
	if st, m, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusOK || m["iceTransportPolicy"] != "relay" {
		t.Fatalf("guest ice: %d %v", st, m)
	}
	pat := h.mustDial("pat", vid)
	readType(t, pat, "welcome")
	g, st := h.guestDial(cookie, vid)
	if g == nil {
		t.Fatalf("guest signal: %d", st)
	}
	w := readType(t, g, "welcome")
	seen := map[string]string{}
	for _, p := range w.Peers {
		seen[p.ID] = p.Label
	}
	if seen[patPID] != labelPatient {
		t.Fatalf("guest's welcome peers %+v", w.Peers)
	}
	if j := readType(t, pat, "peer-joined"); j.Peer.ID != gid || j.Peer.Label != labelInterpreter || j.Peer.Name != "Ana Intérprete" {
		t.Fatalf("patient told of %+v", j.Peer)
	}

	start := time.Now()
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": gid}); st != http.StatusNoContent {
		t.Fatalf("remove guest: %d %v", st, m)
	}
	if code := closeStatus(t, g); code != statusRemoved {
		t.Fatalf("guest socket closed with %d, want %d", code, statusRemoved)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("guest socket closed %v after remove, want within 1s", d)
	}
	if h.relay.isAdmitted(vid, gid) {
		t.Fatal("removed guest still admitted on the relay")
	}
	if st, _, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Fatalf("removed guest's ice: %d", st)
	}
}

// TestRegression_GuestLinkReuse: a guest link lets exactly one person in,
// whoever tries, however many at once, and a removed guest does not come
// back with it — signed in or not.
func TestRegression_GuestLinkReuse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{DefaultParticipants: 6}))
	vid, _, _ := h.admitted()

	// Many at once, with and without an account.
	link := h.guestLink(vid, labelFamily, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st int
			var m map[string]any
			switch i % 3 {
			case 0:
				st, m, _ = h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link})
			case 1:
				st, m = h.do("pat2", "POST", "/.telegate/visits/guest", map[string]any{"link": link})
			default:
				st, m = h.do("pat3", "POST", "/.telegate/visits/guest", map[string]any{"link": link})
			}
			r, _ := m["reason"].(string)
			mu.Lock()
			outcomes[r+":"+http.StatusText(st)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	_, m := h.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	family := 0
	for _, p := range m["participants"].([]any) {
		if p.(map[string]any)["label"] == labelFamily {
			family++
		}
	}
	// One redemption wins; the account that won may ask again and keeps
	// its place; every other attempt is refused as used.
	if family != 1 || outcomes["guest-link-used:Gone"] < 8 || outcomes["guest-link-used:Gone"]+outcomes[":OK"] != 12 {
		t.Fatalf("12 concurrent redemptions: %d family members stored, outcomes %v", family, outcomes)
	}

	// Removed, then the same link again: as the same account, as another
	// account, and without an account.
	link = h.guestLink(vid, labelClinician, "Dr. Second")
	st, m := h.do("dr2", "POST", "/.telegate/visits/guest", map[string]any{"link": link})
	if st != http.StatusOK {
		t.Fatalf("second clinician joins: %d %v", st, m)
	}
	pid := m["self"].(map[string]any)["id"].(string)
	if m["self"].(map[string]any)["name"] != "Dr. Second" || m["manage"] == true {
		t.Fatalf("second clinician's view: %v", m)
	}
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid})
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != http.StatusNoContent {
		t.Fatalf("remove: %d", st)
	}
	for _, who := range []string{"dr2", "bench-someone", ""} {
		var st int
		var m map[string]any
		if who == "" {
			st, m, _ = h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link})
		} else {
			st, m = h.do(who, "POST", "/.telegate/visits/guest", map[string]any{"link": link})
		}
		if st == http.StatusOK || (m["reason"] != "guest-link-used" && m["reason"] != stateRemoved) {
			t.Errorf("%q with the removed guest's link: %d %v", who, st, m)
		}
	}
	if st, _ := h.do("dr2", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Errorf("removed guest's ice: %d", st)
	}

	// A removed account-less guest: the link is used, and the session
	// opens nothing.
	link = h.guestLink(vid, labelOther, "")
	cookie, gid := h.guestJoin(link, "")
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gid})
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": gid})
	if st, m, _ := h.guestDo(cookie, "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st == http.StatusOK {
		t.Errorf("removed account-less guest rejoined: %v", m)
	}
	if c, st := h.guestDial(cookie, vid); c != nil || st != http.StatusForbidden {
		t.Errorf("removed account-less guest's signal: %d", st)
	}
}

// TestRegression_GuestLinkExpiry: a guest link works only until
// visits.guest_link_ttl after it was issued, on every endpoint that reads
// it, and ends with its visit.
func TestRegression_GuestLinkExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{GuestLinkTTL: 10 * time.Minute}))
	vid, _, _ := h.admitted()
	links := []string{h.guestLink(vid, labelInterpreter, ""), h.guestLink(vid, labelFamily, "")}
	h.clock.Add(10*time.Minute + time.Second)
	for _, link := range links {
		for _, try := range []func() (int, map[string]any){
			func() (int, map[string]any) {
				st, m, _ := h.guestDo(nil, "POST", "/.telegate/visits/guest/check", map[string]any{"link": link})
				return st, m
			},
			func() (int, map[string]any) {
				st, m, _ := h.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link})
				return st, m
			},
			func() (int, map[string]any) {
				return h.do("pat2", "POST", "/.telegate/visits/guest", map[string]any{"link": link})
			},
		} {
			if st, m := try(); st != http.StatusGone || m["reason"] != "guest-link-expired" || !strings.Contains(m["error"].(string), "expired") {
				t.Errorf("expired link: %d %v", st, m)
			}
		}
	}
	// A fresh link of an ended visit.
	link := h.guestLink(vid, labelOther, "")
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil)
	if st, m := h.do("pat2", "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st != http.StatusGone || m["reason"] != "ended" {
		t.Errorf("link of an ended visit: %d %v", st, m)
	}
	// Expired links no longer count toward the visit's bound.
	vid2, _ := h.createVisit("dr", nil)
	for range 4 {
		h.guestLink(vid2, labelOther, "")
	}
	h.clock.Add(11 * time.Minute)
	h.guestLink(vid2, labelOther, "")
}

// TestRegression_GuestLinkCap: guest links are bounded per visit
// (visits.max_guest_links outstanding), and guests count toward the
// participant cap like everyone admitted.
func TestRegression_GuestLinkCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{MaxGuestLinks: 2}))
	vid, _ := h.createVisit("dr", map[string]any{"participants": 3})
	inv := ""
	_, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/invite", nil)
	inv = m["url"].(string)[strings.Index(m["url"].(string), "invite=")+7:]
	pat := h.join("pat", inv)
	h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pat})

	a := h.guestLink(vid, labelInterpreter, "")
	b := h.guestLink(vid, labelFamily, "")
	st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/guests", map[string]any{"label": labelOther})
	if st != http.StatusConflict || m["reason"] != "guest-links-full" {
		t.Fatalf("third outstanding link: %d %v", st, m)
	}
	// Using one frees its place.
	_, ga := h.guestJoin(a, "")
	c := h.guestLink(vid, labelOther, "")
	_, gb := h.guestJoin(b, "")
	_, gc := h.guestJoin(c, "")
	// Cap 3: host, patient, one guest.
	if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": ga}); st != http.StatusNoContent {
		t.Fatalf("admit first guest: %d %v", st, m)
	}
	for _, g := range []string{gb, gc} {
		st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": g})
		if msg, _ := m["error"].(string); st != http.StatusConflict || m["reason"] != "full" || !strings.Contains(msg, "guests included") {
			t.Fatalf("admit past the cap: %d %v", st, m)
		}
	}
	// Bad labels, and people who may not invite.
	for _, body := range []map[string]any{{"label": "host"}, {"label": ""}, {"label": "patient"}, {"label": "Interpreter"}} {
		if st, m := h.do("dr", "POST", "/.telegate/visits/"+vid+"/guests", body); st != http.StatusBadRequest || m["reason"] != "guest-label" {
			t.Errorf("label %v: %d %v", body["label"], st, m)
		}
	}
	for _, who := range []string{"pat", "dr2", ""} {
		if st, _ := h.do(who, "POST", "/.telegate/visits/"+vid+"/guests", map[string]any{"label": labelOther}); st != http.StatusForbidden && st != http.StatusUnauthorized {
			t.Errorf("%q issued a guest link: %d", who, st)
		}
	}
}

// TestRegression_GuestLinkWrongVisit: a guest link and a guest session are
// good for their own visit only: a link moved to another visit, a link
// used as an invite (and the other way round), a session presented to
// another visit or to any other endpoint open nothing; without
// visits.guests_without_account nobody joins without signing in.
func TestRegression_GuestLinkWrongVisit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withoutAccount(config.Visits{}))
	vidA, _, _ := h.admitted()
	vidB, invB := h.createVisit("dr", nil)
	link := h.guestLink(vidA, labelInterpreter, "")

	parts := strings.Split(link, ".")
	moved := vidB + "." + strings.Join(parts[1:], ".")
	for name, tok := range map[string]string{
		"moved to another visit": moved,
		"longer expiry":          parts[0] + "." + parts[1] + ".9999999999." + parts[3],
		"truncated":              strings.Join(parts[:3], "."),
		"the patient invite":     unescape(invB),
	} {
		if st, m := h.do("pat2", "POST", "/.telegate/visits/guest", map[string]any{"link": tok}); st != http.StatusForbidden ||
			!strings.HasPrefix(m["reason"].(string), "guest-link-") {
			t.Errorf("%s: %d %v", name, st, m)
		}
	}
	if st, m := h.do("pat2", "POST", "/.telegate/visits/join", map[string]any{"invite": link}); st != http.StatusForbidden || m["reason"] != "invite-malformed" {
		t.Errorf("guest link as an invite: %d %v", st, m)
	}

	cookie, gid := h.guestJoin(link, "")
	h.do("dr", "POST", "/.telegate/visits/"+vidA+"/admit", map[string]any{"participant": gid})
	if st, _, _ := h.guestDo(cookie, "GET", "/.telegate/visits/"+vidA+"/ice", nil); st != http.StatusOK {
		t.Fatalf("own visit: %d", st)
	}
	// The same session on another visit, and on every other endpoint.
	forged := *cookie
	forged.Value = vidB + cookie.Value[len(vidA):]
	for _, try := range []struct {
		c            *http.Cookie
		method, path string
	}{
		{cookie, "GET", "/.telegate/visits/" + vidB},
		{cookie, "GET", "/.telegate/visits/" + vidB + "/ice"},
		{&forged, "GET", "/.telegate/visits/" + vidB + "/ice"},
		{cookie, "GET", "/.telegate/visits"},
		{cookie, "POST", "/.telegate/visits/" + vidA + "/invite"},
		{cookie, "POST", "/.telegate/visits/" + vidA + "/guests"},
		{cookie, "POST", "/.telegate/visits/" + vidA + "/end"},
		{cookie, "POST", "/.telegate/visits"},
	} {
		var body any
		if try.method == "POST" {
			body = map[string]any{"label": labelOther}
		}
		if st, m, _ := h.guestDo(try.c, try.method, try.path, body); st != http.StatusUnauthorized && st != http.StatusForbidden {
			t.Errorf("guest session on %s %s: %d %v", try.method, try.path, st, m)
		}
	}
	if c, st := h.guestDial(&forged, vidB); c != nil || st != http.StatusUnauthorized {
		t.Errorf("forged guest session on another visit's signal: %d", st)
	}

	// Off by default: the guest must sign in.
	off := newHarness(t, config.Visits{GuestProvider: "outside"})
	vid, _, _ := off.admitted()
	link = off.guestLink(vid, labelFamily, "")
	if st, m, resp := off.guestDo(nil, "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("without an account when not allowed: %d %v", st, m)
	}
	st, m, _ := off.guestDo(nil, "POST", "/.telegate/visits/guest/check", map[string]any{"link": link})
	if st != http.StatusOK || m["without_account"] != false {
		t.Errorf("check when not allowed: %d %v", st, m)
	}
	// Sign-in goes to the guest provider and back to this guest page.
	if u, err := url.Parse(m["sign_in_url"].(string)); err != nil || u.Path != "/.telegate/login" || u.Query().Get("provider") != "outside" ||
		u.Query().Get("rd") != "/.telegate/visits/guest?link="+url.QueryEscape(link) {
		t.Errorf("sign-in URL %v", m["sign_in_url"])
	}
	if st, m := off.do("pat2", "POST", "/.telegate/visits/guest", map[string]any{"link": link}); st != http.StatusOK || m["self"].(map[string]any)["label"] != labelFamily {
		t.Errorf("signed-in guest: %d %v", st, m)
	}
}

// TestRegression_GuestLinkReuseAcrossNodes: with visits on Redis, a guest
// link redeemed through two nodes at once still lets one person in, and
// the account-less guest's session made on one node is good on the other.
func TestRegression_GuestLinkReuseAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, withoutAccount(config.Visits{DefaultParticipants: 6, MaxWaiting: 30}))
	vid, _, _ := n1.admitted()
	link := n2.guestLink(vid, labelInterpreter, "")
	nodes := []*Service{n1.svc, n2.svc}
	var in, used atomic.Int32
	race(20, nil, nil, func(i int, _ visitStore) {
		id := guestIdentity(newID())
		if i%2 == 1 {
			id = benchUser(fmt.Sprintf("guest-%d", i))
		}
		_, _, _, err := nodes[i%2].redeemGuestLink(id, link, "")
		tally(t, err, "guest-link-used", &in, &used)
	})
	if in.Load() != 1 || used.Load() != 19 {
		t.Fatalf("20 redemptions through two nodes: %d in, %d refused as used; want 1, 19", in.Load(), used.Load())
	}

	link = n1.guestLink(vid, labelFamily, "")
	cookie, gid := n1.guestJoin(link, "")
	n2.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": gid})
	if st, _, _ := n2.guestDo(cookie, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusOK {
		t.Fatalf("guest session of node 1 on node 2: %d", st)
	}
	if st, m := n2.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": gid}); st != http.StatusNoContent {
		t.Fatalf("remove on node 2: %d %v", st, m)
	}
	if st, _, _ := n1.guestDo(cookie, "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusForbidden {
		t.Fatalf("removed guest's session on node 1: %d", st)
	}
}
