package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

func init() {
	// A privacy officer, who reviews break-glass uses.
	testIdentities["officer"] = &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://idp.example.test", Subject: "officer",
		Roles: []string{"privacy-officer"}, AMR: []string{"mfa"}, SessionID: "sess-officer"}
	// A clinician who is also a reviewer: may break the glass, may not
	// review their own use.
	testIdentities["carol"] = &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://idp.example.test", Subject: "carol",
		Roles: []string{"clinician", "privacy-officer"}, AMR: []string{"mfa"}, SessionID: "sess-carol"}
}

// bgClock is a clock the test moves.
type bgClock struct{ off atomic.Int64 }

func (c *bgClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *bgClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// bgNode is one node's break-glass: its grant store, webhook and clock.
type bgNode struct {
	store grants.Store
	hook  *policies.Webhook
	clock *bgClock
}

// boltGrants opens the embedded session store at path (its grants), closed
// when the test ends.
func boltGrants(t *testing.T, path string) grants.Store {
	t.Helper()
	return boltGrantsLimited(t, path, grants.Limits{Max: 100, PerSubject: 3})
}

// boltGrantsLimited is boltGrants with the grant store's limits.
func boltGrantsLimited(t *testing.T, path string, lim grants.Limits) grants.Store {
	t.Helper()
	st, err := auth.OpenBoltStore(path, bytes.Repeat([]byte{3}, 32), 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Grants(lim)
}

// redisGrants opens a Redis session store on r with prefix (its grants),
// as every node sharing the Redis does.
func redisGrants(t *testing.T, r *redistest.Server, prefix string) grants.Store {
	t.Helper()
	st, err := auth.OpenRedisStore(context.Background(), auth.RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Key: bytes.Repeat([]byte{3}, 32), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Grants(grants.Limits{Max: 100, PerSubject: 3})
}

func newBreakGlass(t *testing.T, n bgNode, sink audit.Sink) *policies.BreakGlass {
	t.Helper()
	o := policies.BreakGlassOptions{Store: n.store, Audit: sink, Webhook: n.hook, ReviewerRoles: []string{"privacy-officer"}, Node: "node-test", Logger: quietLogger()}
	if n.clock != nil {
		o.Now = n.clock.now
	}
	bg, err := policies.NewBreakGlass(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bg.Close() })
	return bg
}

// newBreakGlassNode is a gateway with route "records" (admins; clinicians
// may break the glass for 30 minutes) whose break-glass is n's.
func newBreakGlassNode(t *testing.T, n bgNode) (*testGateway, *policies.BreakGlass) {
	t.Helper()
	var bg *policies.BreakGlass
	tg := newTestGateway(t, func(c *config.Config, o *Options) {
		c.Routes = append(c.Routes, config.Route{
			ID: "records", Hosts: []string{appHost}, Path: "/records/", Upstream: c.Routes[0].Upstream,
			Policy: &config.Policy{
				Allow:      []config.Rule{{Roles: []string{"admin"}}},
				BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: 30 * time.Minute},
			},
		})
		bg = newBreakGlass(t, n, o.Audit)
		o.BreakGlass = bg
	})
	return tg, bg
}

// webhookReceiver is a loopback HTTPS endpoint that keeps what it is sent.
type webhookReceiver struct {
	srv    *httptest.Server
	secret []byte
	status atomic.Int32
	mu     sync.Mutex
	got    []receivedHook
	seen   chan struct{}
}

type receivedHook struct {
	header http.Header
	body   []byte
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	rc := &webhookReceiver{secret: []byte("hook-signing-secret-0123456789"), seen: make(chan struct{}, 64)}
	rc.status.Store(http.StatusNoContent)
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		rc.mu.Lock()
		rc.got = append(rc.got, receivedHook{r.Header.Clone(), body})
		rc.mu.Unlock()
		w.WriteHeader(int(rc.status.Load()))
		rc.seen <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// webhook is telegate's webhook pointed at the receiver, with the signing
// secret in a file and the receiver's certificate trusted, trying a
// delivery twice.
func (rc *webhookReceiver) webhook(t *testing.T) *policies.Webhook {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, append(rc.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failure is retried once, soon: the test waits for its audit.
	h, err := policies.NewWebhookTuned(config.BreakGlassWebhook{URL: rc.srv.URL + "/hooks/break-glass", Timeout: 2 * time.Second, SecretFile: secretFile},
		policies.WebhookTuning{Base: rc.srv.Client().Transport.(*http.Transport), Attempts: 2, Backoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// wait returns the n-th delivery (from 1), waiting up to 5s for it.
func (rc *webhookReceiver) wait(t *testing.T, n int) receivedHook {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		rc.mu.Lock()
		if len(rc.got) >= n {
			h := rc.got[n-1]
			rc.mu.Unlock()
			return h
		}
		rc.mu.Unlock()
		select {
		case <-rc.seen:
		case <-deadline:
			t.Fatalf("webhook: %d deliveries, waited for %d", rc.count(), n)
		}
	}
}

func (rc *webhookReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// events returns the audit events of type typ.
func (a *auditLog) events(typ string) []audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Event
	for _, e := range a.ev {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitEvents waits up to 5s for n audit events of type typ.
func (a *auditLog) waitEvents(t *testing.T, typ string, n int) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ev := a.events(typ); len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// grantAs breaks the glass on "records" as user and returns the status.
func grantAs(t *testing.T, tg *testGateway, user string, form url.Values) int {
	t.Helper()
	return breakGlassPost(t, tg, user, "https://"+appHost, form).StatusCode
}

var emergency = url.Values{"route": {"records"}, "reason": {"emergency-care"}, "rd": {"/records/"}}

// chart fetches /records/chart as user; it returns the status and the
// request's audit record.
func chart(t *testing.T, tg *testGateway, user string) (int, audit.Event) {
	t.Helper()
	resp, _ := get(t, tg, "/records/chart", map[string]string{"Cookie": "tg-test=" + user})
	ev, ok := tg.audit.find(resp.Header.Get(RequestIDHeader))
	if !ok {
		t.Fatalf("no audit record of the request (status %d)", resp.StatusCode)
	}
	return resp.StatusCode, ev
}

// TestBreakGlass_ReasonRequired: a grant without a reason, or with one
// not on the list, is refused, stored nowhere and told to nobody.
func TestBreakGlass_ReasonRequired(t *testing.T) {
	t.Parallel()
	rc := newWebhookReceiver(t)
	tg, bg := newBreakGlassNode(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "s.db")), hook: rc.webhook(t)})
	for _, form := range []url.Values{
		{"route": {"records"}},
		{"route": {"records"}, "reason": {""}},
		{"route": {"records"}, "reason": {"  "}},
		{"route": {"records"}, "reason": {"Jane Doe collapsed in ward 3"}},
		{"route": {"records"}, "reason": {"EMERGENCY-CARE"}},
	} {
		if st := grantAs(t, tg, "alice", form); st != http.StatusBadRequest {
			t.Errorf("grant with reason %q: %d, want 400", form["reason"], st)
		}
	}
	if st, _ := chart(t, tg, "alice"); st != http.StatusForbidden {
		t.Errorf("after refused grants: %d, want 403", st)
	}
	if uses, err := bg.List(context.Background(), 0); err != nil || len(uses) != 0 {
		t.Errorf("refused grants stored: %d, %v", len(uses), err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := rc.count(); n != 0 {
		t.Errorf("webhook told of %d refused grants", n)
	}
	if ev := tg.audit.events("break-glass.grant"); len(ev) != 0 {
		t.Errorf("grant records for refused grants: %+v", ev)
	}
}

// TestBreakGlass_WindowAuditedAndNotified: a grant with a reason opens
// the route for its window only; the grant and every request it lets
// through are recorded with purpose BTG; the webhook is told at once,
// signed, with no more than the audit record holds; after the window the
// route is shut again.
func TestBreakGlass_WindowAuditedAndNotified(t *testing.T) {
	t.Parallel()
	rc := newWebhookReceiver(t)
	clk := &bgClock{}
	tg, bg := newBreakGlassNode(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "s.db")), hook: rc.webhook(t), clock: clk})

	if st, ev := chart(t, tg, "alice"); st != http.StatusForbidden || ev.Purpose != "" {
		t.Fatalf("before the grant: %d purpose %q, want 403 and no purpose", st, ev.Purpose)
	}
	if st := grantAs(t, tg, "alice", emergency); st != http.StatusSeeOther {
		t.Fatalf("grant: %d, want 303", st)
	}
	st, ev := chart(t, tg, "alice")
	if st != http.StatusOK || ev.Reason != string(scope.ReasonBreakGlass) || ev.Purpose != audit.PurposeBTG {
		t.Fatalf("within the window: %d %+v, want 200 allowed by break-glass with purpose BTG", st, ev)
	}
	grantsMade := tg.audit.events("break-glass.grant")
	if len(grantsMade) != 1 || grantsMade[0].Purpose != audit.PurposeBTG || grantsMade[0].Subject != "alice" || grantsMade[0].Attrs["grant_id"] == "" || grantsMade[0].RequestID == "" {
		t.Fatalf("grant records: %+v", grantsMade)
	}
	id := grantsMade[0].Attrs["grant_id"]

	h := rc.wait(t, 1)
	var body map[string]any
	if err := json.Unmarshal(h.body, &body); err != nil {
		t.Fatalf("webhook body %q: %v", h.body, err)
	}
	if body["grant_id"] != id || body["route"] != "records" || body["sub"] != "alice" || body["iss"] != "https://idp.example.test" ||
		body["reason"] != "emergency-care" || body["purpose"] != "BTG" || body["type"] != "break-glass.grant" {
		t.Errorf("webhook body: %s", h.body)
	}
	var keys []string
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"expires", "grant_id", "granted", "iss", "node", "purpose", "reason", "route", "sub", "type"}; !slices.Equal(keys, want) {
		t.Errorf("webhook body fields %v, want only %v", keys, want)
	}
	for _, s := range []string{"Alice Example", "alice@example.test", "sess-alice", "tg-test"} {
		if bytes.Contains(h.body, []byte(s)) {
			t.Errorf("webhook body holds %q", s)
		}
	}
	var ts int64
	if err := json.Unmarshal([]byte(h.header.Get(policies.WebhookTimestampHeader)), &ts); err != nil {
		t.Fatalf("timestamp header %q", h.header.Get(policies.WebhookTimestampHeader))
	}
	if got, want := h.header.Get(policies.WebhookSignatureHeader), policies.Sign(rc.secret, ts, h.body); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if notes := tg.audit.waitEvents(t, "break-glass.notify", 1); len(notes) != 1 || notes[0].Reason != "delivered" || notes[0].Attrs["grant_id"] != id {
		t.Errorf("notify records: %+v", notes)
	}

	// Only alice, only this route.
	if st, _ := chart(t, tg, "bob"); st != http.StatusForbidden {
		t.Errorf("another clinician: %d", st)
	}
	clk.advance(29 * time.Minute)
	if st, _ := chart(t, tg, "alice"); st != http.StatusOK {
		t.Errorf("at 29 minutes of 30: %d, want 200", st)
	}
	clk.advance(time.Minute)
	st, ev = chart(t, tg, "alice")
	if st != http.StatusForbidden || ev.Purpose != "" {
		t.Errorf("after expiry: %d purpose %q, want 403 and no purpose", st, ev.Purpose)
	}
	uses, err := bg.List(context.Background(), 0)
	if err != nil || len(uses) != 1 || uses[0].ID != id || uses[0].Review != nil {
		t.Errorf("the past use must stay listed, unreviewed: %+v, %v", uses, err)
	}
}

// TestBreakGlass_OtherNodeSharingRedis: two nodes sharing a real
// redis-server see the same grant at once, and the same review.
func TestBreakGlass_OtherNodeSharingRedis(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	prefix := "bg{" + t.Name() + "}:"
	a, bgA := newBreakGlassNode(t, bgNode{store: redisGrants(t, r, prefix)})
	b, bgB := newBreakGlassNode(t, bgNode{store: redisGrants(t, r, prefix)})
	if st, _ := chart(t, b, "alice"); st != http.StatusForbidden {
		t.Fatalf("node B before the grant: %d", st)
	}
	if st := grantAs(t, a, "alice", emergency); st != http.StatusSeeOther {
		t.Fatalf("grant on node A: %d", st)
	}
	if st, ev := chart(t, b, "alice"); st != http.StatusOK || ev.Purpose != audit.PurposeBTG {
		t.Fatalf("node B after node A's grant: %d purpose %q, want 200 BTG", st, ev.Purpose)
	}
	usesB, err := bgB.List(context.Background(), 0)
	if err != nil || len(usesB) != 1 || usesB[0].Subject != "alice" {
		t.Fatalf("node B lists %+v, %v", usesB, err)
	}
	if st := reviewOnPage(t, b, "officer", usesB[0].ID, url.Values{"outcome": {"justified"}, "note": {"ward emergency"}}); st != http.StatusSeeOther {
		t.Fatalf("review on node B: %d", st)
	}
	if usesA, _ := bgA.List(context.Background(), 0); len(usesA) != 1 || usesA[0].Review == nil || usesA[0].Review.Outcome != "justified" {
		t.Errorf("node A does not see node B's review: %+v", usesA)
	}
	if st := reviewOnPage(t, a, "officer", usesB[0].ID, url.Values{"outcome": {"unjustified"}}); st != http.StatusConflict {
		t.Errorf("a second review on node A: %d, want 409", st)
	}
}

// TestBreakGlass_RestartKeepsUses: with the embedded store, a grant and
// its use outlive a restart: still active, still listed, on the page and
// on the admin listener.
func TestBreakGlass_RestartKeepsUses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sessions.db")
	st, err := auth.OpenBoltStore(path, bytes.Repeat([]byte{3}, 32), 100)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := newBreakGlassNode(t, bgNode{store: st.Grants(grants.Limits{Max: 100, PerSubject: 3})})
	if code := grantAs(t, first, "alice", emergency); code != http.StatusSeeOther {
		t.Fatalf("grant: %d", code)
	}
	first.ts.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	again, _ := newBreakGlassNode(t, bgNode{store: boltGrants(t, path)})
	if code, ev := chart(t, again, "alice"); code != http.StatusOK || ev.Purpose != audit.PurposeBTG {
		t.Errorf("after the restart: %d, want 200 within the window", code)
	}
	uses := adminList(t, again)
	if len(uses) != 1 || uses[0].Subject != "alice" || uses[0].State != "active" || uses[0].Reviewed() != "unreviewed" {
		t.Fatalf("admin list after the restart: %+v", uses)
	}
	_, body := get(t, again, BreakGlassUsesPath, map[string]string{"Cookie": "tg-test=officer", "Accept": "text/html"})
	if !strings.Contains(body, uses[0].GrantID) || !strings.Contains(body, "unreviewed") {
		t.Errorf("review page after the restart does not list the use:\n%s", body)
	}
}

// reviewOnPage posts a review of use id on the review page as user.
func reviewOnPage(t *testing.T, tg *testGateway, user, id string, form url.Values) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://"+appHost+BreakGlassUsesPath+"/"+id, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://"+appHost)
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "tg-test", Value: user})
	}
	resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// admin calls the admin listener's handler as the CLI does (by address).
func admin(t *testing.T, tg *testGateway, method, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:9090"+path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	tg.g.AdminHandler().ServeHTTP(w, r)
	return w
}

func adminList(t *testing.T, tg *testGateway) []policies.UseView {
	t.Helper()
	w := admin(t, tg, http.MethodGet, "/break-glass", nil, nil)
	var out struct{ Uses []policies.UseView }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("GET /break-glass: %d %s", w.Code, w.Body)
	}
	return out.Uses
}

// TestBreakGlass_ReviewRecordedAndAudited: a reviewer with the role lists
// the uses and records an outcome; the review is audited (reviewer,
// outcome, the note's length, never the note); the operator reviews on
// the admin listener; a reviewer without the role is refused.
func TestBreakGlass_ReviewRecordedAndAudited(t *testing.T) {
	t.Parallel()
	tg, bg := newBreakGlassNode(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "s.db"))})
	for _, u := range []string{"alice", "carol"} {
		if st := grantAs(t, tg, u, emergency); st != http.StatusSeeOther {
			t.Fatalf("grant as %s: %d", u, st)
		}
	}
	uses, _ := bg.List(context.Background(), 0)
	if len(uses) != 2 {
		t.Fatalf("uses: %d", len(uses))
	}
	byUser := map[string]string{}
	for _, u := range uses {
		byUser[u.Subject] = u.ID
	}

	// The page: reviewers only.
	html := func(user string) (int, string) {
		resp, body := get(t, tg, BreakGlassUsesPath, map[string]string{"Cookie": "tg-test=" + user, "Accept": "text/html"})
		return resp.StatusCode, body
	}
	if st, body := html("officer"); st != http.StatusOK || strings.Count(body, "— unreviewed</h2>") != 2 || !strings.Contains(body, byUser["alice"]) {
		t.Fatalf("officer's page: %d\n%s", st, body)
	}
	if st, _ := html("alice"); st != http.StatusForbidden {
		t.Errorf("a clinician without the reviewer role sees the uses: %d", st)
	}
	note := "Patient Jane Doe, ward 3: justified by the on-call log"
	if st := reviewOnPage(t, tg, "officer", byUser["alice"], url.Values{"outcome": {"justified"}, "note": {note}}); st != http.StatusSeeOther {
		t.Fatalf("officer's review: %d", st)
	}
	got, _ := bg.List(context.Background(), 0)
	for _, g := range got {
		if g.ID == byUser["alice"] && (g.Review == nil || g.Review.Outcome != "justified" || g.Review.Subject != "officer" || g.Review.Via != "page" || g.Review.Note != note) {
			t.Errorf("alice's use after review: %+v", g.Review)
		}
	}
	if _, body := html("officer"); strings.Count(body, "— unreviewed</h2>") != 1 || !strings.Contains(body, "Reviewed justified by") {
		t.Errorf("page after the review:\n%s", body)
	}
	reviews := tg.audit.events("break-glass.review")
	if len(reviews) != 1 || reviews[0].Decision != "allow" || reviews[0].Subject != "officer" || reviews[0].Reason != "justified" ||
		reviews[0].Attrs["grant_id"] != byUser["alice"] || reviews[0].Attrs["grant_sub"] != "alice" || reviews[0].Attrs["note_bytes"] == "" {
		t.Errorf("review audit records: %+v", reviews)
	}
	tg.audit.mu.Lock()
	for _, e := range tg.audit.ev {
		if b, _ := json.Marshal(e); bytes.Contains(b, []byte("Jane Doe")) {
			t.Errorf("the review note reached the audit trail: %s", b)
		}
	}
	tg.audit.mu.Unlock()

	// The admin listener (telegate breakglass review): the operator.
	w := admin(t, tg, http.MethodPost, "/break-glass/"+byUser["carol"]+"/review", url.Values{"outcome": {"needs-follow-up"}, "note": {"ask carol"}, "reviewer": {"ops.jane"}}, nil)
	var v policies.UseView
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &v) != nil || v.Review == nil || v.Review.Via != "admin" || v.Review.Subject != "ops.jane" {
		t.Fatalf("admin review: %d %s", w.Code, w.Body)
	}
	if ev := tg.audit.events("break-glass.review"); len(ev) != 2 || ev[1].Issuer != policies.AdminReviewerIssuer || ev[1].Subject != "ops.jane" {
		t.Errorf("admin review audit: %+v", ev)
	}
	for _, u := range adminList(t, tg) {
		if u.Reviewed() == "unreviewed" {
			t.Errorf("use %s still unreviewed", u.GrantID)
		}
	}
}

// TestRegression_BreakGlassReviewBypass: every way around the reviewer's
// role and the single, final review is refused, and nothing is recorded.
func TestRegression_BreakGlassReviewBypass(t *testing.T) {
	t.Parallel()
	tg, bg := newBreakGlassNode(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "s.db"))})
	if st := grantAs(t, tg, "carol", emergency); st != http.StatusSeeOther {
		t.Fatalf("grant: %d", st)
	}
	uses, _ := bg.List(context.Background(), 0)
	id := uses[0].ID
	ok := url.Values{"outcome": {"justified"}}
	for _, tc := range []struct {
		name, user, id string
		form           url.Values
		want           int
	}{
		{"without the reviewer role", "alice", id, ok, http.StatusForbidden},
		{"admin role is not a reviewer role", "root", id, ok, http.StatusForbidden},
		{"anonymous", "", id, ok, http.StatusUnauthorized},
		{"own use", "carol", id, ok, http.StatusForbidden},
		{"unlisted outcome", "officer", id, url.Values{"outcome": {"fine"}}, http.StatusBadRequest},
		{"no outcome", "officer", id, url.Values{}, http.StatusBadRequest},
		{"note too long", "officer", id, url.Values{"outcome": {"justified"}, "note": {strings.Repeat("x", policies.MaxReviewNoteBytes+1)}}, http.StatusBadRequest},
		{"note with control characters", "officer", id, url.Values{"outcome": {"justified"}, "note": {"a\x1b[2Jb"}}, http.StatusBadRequest},
		{"unknown use", "officer", "AAAAAAAAAAAAAAAAAAAAAA", ok, http.StatusNotFound},
		{"not a use id", "officer", "not-a-grant-id", ok, http.StatusNotFound},
	} {
		if st := reviewOnPage(t, tg, tc.user, tc.id, tc.form); st != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.want)
		}
	}
	// Cross-site, on the page and on the admin listener; the admin
	// listener by a name (DNS rebinding).
	req, _ := http.NewRequest(http.MethodPost, "https://"+appHost+BreakGlassUsesPath+"/"+id, strings.NewReader(ok.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(&http.Cookie{Name: "tg-test", Value: "officer"})
	if resp, err := tg.client(tg.ts.Listener.Addr().String()).Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site review on the page: %v %v", resp.StatusCode, err)
	}
	form := url.Values{"outcome": {"justified"}, "reviewer": {"ops"}}
	if w := admin(t, tg, http.MethodPost, "/break-glass/"+id+"/review", form, map[string]string{"Sec-Fetch-Site": "cross-site"}); w.Code != http.StatusForbidden {
		t.Errorf("cross-site review on the admin listener: %d", w.Code)
	}
	if w := admin(t, tg, http.MethodPost, "/break-glass/"+id+"/review", form, map[string]string{"Host": "rebound.example"}); w.Code != http.StatusMisdirectedRequest {
		t.Errorf("admin listener by a name: %d, want 421", w.Code)
	}
	if w := admin(t, tg, http.MethodGet, "/break-glass", nil, map[string]string{"Host": "rebound.example"}); w.Code != http.StatusMisdirectedRequest {
		t.Errorf("admin list by a name: %d, want 421", w.Code)
	}
	for _, name := range []string{"", "a b", strings.Repeat("x", 65), "<script>"} {
		if w := admin(t, tg, http.MethodPost, "/break-glass/"+id+"/review", url.Values{"outcome": {"justified"}, "reviewer": {name}}, nil); w.Code != http.StatusBadRequest {
			t.Errorf("admin review by reviewer %q: %d, want 400", name, w.Code)
		}
	}
	if u := adminList(t, tg); len(u) != 1 || u[0].Review != nil {
		t.Fatalf("a refused review was recorded: %+v", u[0].Review)
	}
	denied := 0
	for _, e := range tg.audit.events("break-glass.review") {
		if e.Decision == "allow" {
			t.Errorf("allowed review record: %+v", e)
		}
		denied++
	}
	if denied < 3 {
		t.Errorf("refused reviews by role or own use audited %d times, want at least 3", denied)
	}
	// The review that stands, then a second one is refused.
	if st := reviewOnPage(t, tg, "officer", id, ok); st != http.StatusSeeOther {
		t.Fatalf("review: %d", st)
	}
	if st := reviewOnPage(t, tg, "officer", id, url.Values{"outcome": {"unjustified"}}); st != http.StatusConflict {
		t.Errorf("second review: %d, want 409", st)
	}
	if w := admin(t, tg, http.MethodPost, "/break-glass/"+id+"/review", url.Values{"outcome": {"unjustified"}, "reviewer": {"ops"}}, nil); w.Code != http.StatusConflict {
		t.Errorf("second review on the admin listener: %d, want 409", w.Code)
	}
}

// TestRegression_BreakGlassGrantLost: a grant holds wherever the request
// lands and whatever happened since — another node sharing the store, a
// restart, a configuration reload — and is told and listed for review
// each time it is made; a webhook that fails is audited, never silent.
func TestRegression_BreakGlassGrantLost(t *testing.T) {
	t.Parallel()
	rc := newWebhookReceiver(t)
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := auth.OpenBoltStore(path, bytes.Repeat([]byte{3}, 32), 100)
	if err != nil {
		t.Fatal(err)
	}
	store := st.Grants(grants.Limits{Max: 100, PerSubject: 3})
	tg, _ := newBreakGlassNode(t, bgNode{store: store, hook: rc.webhook(t)})
	if code := grantAs(t, tg, "alice", emergency); code != http.StatusSeeOther {
		t.Fatalf("grant: %d", code)
	}
	// Its webhook delivered (from the outbox, in the background) before the
	// receiver starts failing below.
	rc.wait(t, 1)
	tg.audit.waitEvents(t, "break-glass.notify", 1)
	// A reload: a new generation, same grant.
	if err := tg.g.Reload(tg.g.current().cfg); err != nil {
		t.Fatal(err)
	}
	if code, _ := chart(t, tg, "alice"); code != http.StatusOK {
		t.Errorf("after a reload: %d", code)
	}
	// A second node on the same store (another gateway in this process).
	other, _ := newBreakGlassNode(t, bgNode{store: store})
	if code, _ := chart(t, other, "alice"); code != http.StatusOK {
		t.Errorf("on a second gateway sharing the store: %d", code)
	}
	// The webhook fails: the grant still opens the route, the failure is
	// in the trail.
	rc.status.Store(http.StatusInternalServerError)
	if code := grantAs(t, tg, "carol", emergency); code != http.StatusSeeOther {
		t.Fatalf("grant with the webhook failing: %d", code)
	}
	rc.wait(t, 2)
	notes := tg.audit.waitEvents(t, "break-glass.notify", 2)
	reasons := []string{}
	for _, e := range notes {
		reasons = append(reasons, e.Decision+":"+e.Reason)
	}
	if !slices.Equal(reasons, []string{"allow:delivered", "deny:status:500"}) {
		t.Errorf("notify records %v, want a delivery and an audited failure", reasons)
	}
	// A restart.
	tg.ts.Close()
	other.ts.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again, _ := newBreakGlassNode(t, bgNode{store: boltGrants(t, path)})
	for _, u := range []string{"alice", "carol"} {
		if code, _ := chart(t, again, u); code != http.StatusOK {
			t.Errorf("%s after a restart: %d", u, code)
		}
	}
	if uses := adminList(t, again); len(uses) != 2 || uses[0].Reviewed() != "unreviewed" || uses[1].Reviewed() != "unreviewed" {
		t.Errorf("uses after a restart: %+v", uses)
	}
}

// TestRegression_BreakGlassWebSocketOutlivesGrant: a proxied WebSocket
// admitted by a break-glass grant is closed when the grant expires, like
// one admitted on an expiring credential; one whose grant still runs
// stays open.
func TestRegression_BreakGlassWebSocketOutlivesGrant(t *testing.T) {
	t.Parallel()
	echo := echoWebSocketServer(t)
	for _, tc := range []struct {
		name   string
		window time.Duration
		closes bool
	}{
		{"short grant", 2500 * time.Millisecond, true},
		{"grant still running", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := serveTestGateway(t, func(c *config.Config, o *Options) {
				for i := range c.Routes {
					if c.Routes[i].ID == "clinic" {
						c.Routes[i].WebSocket = true
						c.Routes[i].Upstream = echo.URL
						c.Routes[i].Policy = &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}},
							BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: tc.window}}
					}
				}
				o.BreakGlass = newBreakGlass(t, bgNode{store: boltGrants(t, filepath.Join(t.TempDir(), "s.db"))}, o.Audit)
			})
			// The grant expires at least tc.window after this.
			expires := time.Now().Add(tc.window)
			if st := grantAs(t, s.testGateway, "alice", url.Values{"route": {"clinic"}, "reason": {"emergency-care"}}); st != http.StatusSeeOther {
				t.Fatalf("grant: %d", st)
			}
			echoOnce := s.dialClinicWS(t, "alice")
			if err := echoOnce(); err != nil {
				t.Fatalf("within the grant: %v", err)
			}
			var closedAt time.Time
			for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline) && closedAt.IsZero(); {
				if echoOnce() != nil {
					closedAt = time.Now()
				}
				time.Sleep(50 * time.Millisecond)
			}
			if closed := !closedAt.IsZero(); closed != tc.closes {
				t.Fatalf("closed %v, want %v", closed, tc.closes)
			}
			if tc.closes && closedAt.Before(expires) {
				t.Fatalf("closed %v before the grant expired", expires.Sub(closedAt))
			}
		})
	}
}
