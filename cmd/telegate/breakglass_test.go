package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/policies"
	"github.com/telegate/telegate/scope"
)

// recordingSink keeps audit events.
type recordingSink struct{ ev chan audit.Event }

func (s recordingSink) Record(_ context.Context, e audit.Event) { s.ev <- e }

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli{stdout: &out, stderr: &errb}.main(context.Background(), args)
	return code, out.String(), errb.String()
}

// TestBreakGlass_CLIListAndReview: `telegate breakglass list` and
// `review` against the admin listener's break-glass handler on loopback,
// its grants in a real store: the use is listed unreviewed, the review is
// recorded and audited under the operator's name, a second one refused.
func TestBreakGlass_CLIListAndReview(t *testing.T) {
	t.Parallel()
	st, err := auth.OpenBoltStore(filepath.Join(t.TempDir(), "sessions.db"), bytes.Repeat([]byte{9}, 32), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sink := recordingSink{make(chan audit.Event, 16)}
	bg, err := policies.NewBreakGlass(policies.BreakGlassOptions{Store: st.Grants(grants.Limits{}), Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	rt := &config.Route{ID: "records", Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}},
		BreakGlass: &config.BreakGlass{Allow: []config.Rule{{Roles: []string{"clinician"}}}, Duration: time.Hour}}}
	g, err := bg.Grant(context.Background(), rt, &scope.Identity{Kind: "session", Provider: "staff", Issuer: "https://idp.test", Subject: "alice",
		Roles: []string{"clinician"}, AMR: []string{"mfa"}}, "emergency-care")
	if err != nil {
		t.Fatal(err)
	}
	<-sink.ev // the grant's record
	srv := httptest.NewServer(bg.AdminHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	code, out, errs := runCLI("breakglass", "list", "--admin", addr)
	if code != 0 || !strings.Contains(out, g.ID) || !strings.Contains(out, "alice") || !strings.Contains(out, "active") || !strings.Contains(out, "unreviewed") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	// The admin address from the configuration file.
	cfgPath := filepath.Join(t.TempDir(), "telegate.yaml")
	if err := os.WriteFile(cfgPath, []byte("server:\n  admin: "+addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI("breakglass", "list", "-c", cfgPath, "--json"); code != 0 || !strings.Contains(out, `"grant_id": "`+g.ID+`"`) {
		t.Errorf("list -c --json: %d\n%s%s", code, out, errs)
	}

	code, out, errs = runCLI("breakglass", "review", g.ID, "--admin", addr, "--outcome", "justified", "--note", "on-call log", "--reviewer", "ops.jane")
	if code != 0 || !strings.Contains(out, "reviewed: justified by ops.jane") {
		t.Fatalf("review: %d\n%s%s", code, out, errs)
	}
	ev := <-sink.ev
	if ev.Type != "break-glass.review" || ev.Decision != "allow" || ev.Issuer != policies.AdminReviewerIssuer || ev.Subject != "ops.jane" || ev.Attrs["grant_id"] != g.ID {
		t.Errorf("review audit record: %+v", ev)
	}
	if b, _ := json.Marshal(ev); strings.Contains(string(b), "on-call log") {
		t.Errorf("the note reached the audit trail: %s", b)
	}
	_, out, _ = runCLI("breakglass", "list", "--admin", addr)
	if !strings.Contains(out, "justified by ops.jane (admin)") || strings.Contains(out, "unreviewed") {
		t.Errorf("list after the review:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"second review", []string{"review", g.ID, "--admin", addr, "--outcome", "unjustified", "--reviewer", "ops"}, exitFail, "reviewed already"},
		{"unlisted outcome", []string{"review", g.ID, "--admin", addr, "--outcome", "fine", "--reviewer", "ops"}, exitFail, "listed outcomes"},
		{"unknown use", []string{"review", "nope", "--admin", addr, "--outcome", "justified", "--reviewer", "ops"}, exitFail, "no such use"},
		{"no outcome", []string{"review", g.ID, "--admin", addr}, exitUsage, "--outcome is required"},
		{"no id", []string{"review", "--admin", addr, "--outcome", "justified"}, exitUsage, "ID is required"},
		{"no listener", []string{"list", "--admin", "127.0.0.1:1"}, exitFail, "did not answer"},
		{"no subcommand", nil, exitUsage, "expected the subcommand"},
	} {
		code, _, errs := runCLI(append([]string{"breakglass"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.name, code, tc.code, tc.msg, errs)
		}
	}
}

// TestRegression_BreakGlassIDLikeAFlag: a use's ID is 22 base64url
// characters and may start with "-" or "_"; `telegate breakglass review`
// takes it as the ID, first or after "--", never as an unknown flag. The
// admin listener here is a closed port, so what is checked is that the
// command gets as far as calling it (exit 1), not a usage error (exit 2).
func TestRegression_BreakGlassIDLikeAFlag(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ids := []string{"-dxNSumDD8kZukVWymMBSA", "--xNSumDD8kZukVWymMBSA", "_dxNSumDD8kZukVWymMBSA", "-c-NSumDD8kZukVWymMBSA", "AdxNSumDD8kZukVWymMB-A"}
	for _, id := range ids {
		for _, args := range [][]string{
			{id, "--admin", addr, "--outcome", "justified"},
			{"--admin", addr, "--outcome", "justified", "--", id},
		} {
			code, _, errs := runCLI(append([]string{"breakglass", "review"}, args...)...)
			if code != exitFail || strings.Contains(errs, "flag provided but not defined") || !strings.Contains(errs, addr) {
				t.Errorf("review %q: exit %d, want %d (the admin listener unreachable)\n%s", args, code, exitFail, errs)
			}
		}
	}
	// Two IDs, or none, are still usage errors.
	for _, args := range [][]string{
		{ids[0], "--admin", addr, "--outcome", "justified", "--", ids[2]},
		{"--admin", addr, "--outcome", "justified"},
	} {
		if code, _, errs := runCLI(append([]string{"breakglass", "review"}, args...)...); code != exitUsage {
			t.Errorf("review %q: exit %d, want %d\n%s", args, code, exitUsage, errs)
		}
	}
}
