package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redistest"
	tgpage "github.com/telegate/telegate/page"
)

// redisNodeConfig is a node of a several-node deployment (see
// runWithDevOP for %[1]s…%[7]s): sessions, sign-in round trips, grants,
// rate limits and visits in the Redis at %[9]s, reached over TLS with a
// client certificate as the ACL user "telegate"; %[8]s is the session key
// file, %[10]s the Redis password file, %[11]s–%[13]s the CA, client
// certificate and key, %[14]s the upstream.
var redisNodeConfig = runConfig{
	Sections: `sessions:
  store: redis
  encryption_key_file: %[8]s
  idle_timeout: 10m
redis:
  addr: %[9]s
  username: telegate
  password_file: %[10]s
  tls:
    enabled: true
    ca_file: %[11]s
    cert_file: %[12]s
    key_file: %[13]s
`,
	Providers: devOP + devRoles + "        admins: [admin]\n",
	Routes: `  - id: clinic
    path: /clinic/
    upstream: %[14]s
    identity_headers: true
    rate_limit:
      rate: 1
      burst: 5
    policy:
      allow:
        - roles: [clinician]
  - id: records
    path: /records/
    upstream: %[14]s
    policy:
      allow:
        - roles: [admin]
      break_glass:
        allow:
          - roles: [clinician]
`,
	Relay:  true,
	Visits: true,
}.String()

// startRedisNode starts redis-server (TLS only, client certificates, the
// ACL user with exactly telegate's rules, AOF fsync on every write so a
// restart keeps the data) and one telegate node on it.
func startRedisNode(t *testing.T) (*demo, *redistest.Server) {
	t.Helper()
	rdb := redistest.StartWith(t, redistest.Options{TLS: true, ClientCerts: true, User: "telegate",
		Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := write("session.key", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
	pw := write("redis.password", rdb.Password)
	d := runWithDevOP(t, redisNodeConfig, key, rdb.Addr, pw, rdb.CAFile, rdb.ClientCertFile, rdb.ClientKeyFile, identityEcho(t))
	return d, rdb
}

// answer is what a person sees of one request.
type answer struct {
	status    int
	requestID string // X-Request-Id
	bodyID    string // the request id the body shows
	body      string
}

func see(resp *http.Response, body []byte) answer {
	a := answer{status: resp.StatusCode, requestID: resp.Header.Get(tgpage.RequestIDHeader), body: string(body)}
	var pb tgpage.Body
	if json.Unmarshal(body, &pb) == nil && pb.RequestID != "" {
		a.bodyID = pb.RequestID
	} else if a.requestID != "" && strings.Contains(a.body, a.requestID) {
		a.bodyID = a.requestID
	}
	return a
}

// TestRegression_RedisDownFailsClosedAndRecovers: a node whose Redis
// stops answering (SIGSTOP: hung; then killed: refused) refuses what
// needs Redis with 503 and the request id on the page and in the audit
// trail — a new sign-in, a new visit, an admission, a break-glass grant —
// keeps the rate limit (per node) and a signed-in clinician's session
// within its idle window, and recovers by itself once Redis is back on
// the same port, without a restart of telegate.
func TestRegression_RedisDownFailsClosedAndRecovers(t *testing.T) {
	d, rdb := startRedisNode(t)

	// Redis up: a clinician signs in, reaches the clinic, starts a visit.
	dr := newBrowser(t, d)
	if resp, body := dr.signIn(d.Base(), "/clinic/", "clinician@demo.test", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in with Redis up: %d %.300s", resp.StatusCode, body)
	}
	var created map[string]any
	if err := dr.c.PostJSON(d.Base(), "/.telegate/visits", map[string]any{"title": "before", "participants": 2}, &created); err != nil {
		t.Fatalf("visit with Redis up: %v", err)
	}
	visitID, _ := created["id"].(string)

	type member struct {
		name string
		try  func() answer
	}
	members := []member{
		{"new sign-in", func() answer {
			b := newBrowser(t, d)
			b.accept = "text/html"
			resp, body := b.do(b.noRedirect(), mustRequest(t, http.MethodGet, d.Base()+"/.telegate/login?rd=/clinic/", "text/html"))
			return see(resp, body)
		}},
		{"new visit", func() answer {
			resp, body, err := dr.c.PostJSONResponse(d.Base(), "/.telegate/visits", map[string]any{"title": "during", "participants": 2})
			if err != nil {
				t.Fatal(err)
			}
			return see(resp, body)
		}},
		{"admit", func() answer {
			resp, body, err := dr.c.PostJSONResponse(d.Base(), "/.telegate/visits/"+visitID+"/admit", map[string]any{"participant": "p0000000000000000"})
			if err != nil {
				t.Fatal(err)
			}
			return see(resp, body)
		}},
		{"break-glass grant", func() answer {
			form := url.Values{"route": {"records"}, "reason": {"emergency-care"}, "rd": {"/records/"}}
			hdr := http.Header{"Origin": {d.Base()}, "Accept": {"text/html"}}
			dr.accept = "text/html"
			resp, body := dr.post(d.Base()+"/.telegate/break-glass", form, hdr)
			dr.accept = "application/json"
			return see(resp, body)
		}},
	}
	// live is the signed-in clinician reaching the clinic route.
	live := func() answer {
		resp, body := dr.get(d.Base() + "/clinic/")
		return see(resp, body)
	}
	// burst sends the clinic route's burst and one more: the limit holds.
	burst := func() (codes []int) {
		time.Sleep(5 * time.Second) // the bucket refills (1/s, burst 5)
		for i := 0; i < 10; i++ {
			resp, _ := dr.get(d.Base() + "/clinic/")
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}

	down := func(how string) {
		t.Helper()
		var refused []string
		for _, m := range members {
			start := time.Now()
			a := m.try()
			took := time.Since(start)
			if a.status != http.StatusServiceUnavailable || a.requestID == "" || a.bodyID != a.requestID {
				t.Errorf("%s, %s: %d (request id %q, shown %q), want 503 with the request id shown\n%.400s", how, m.name, a.status, a.requestID, a.bodyID, a.body)
				continue
			}
			if took > 15*time.Second {
				t.Errorf("%s, %s: the 503 took %v", how, m.name, took)
			}
			refused = append(refused, a.requestID)
			t.Logf("%s, %s: 503 in %v (request %s)", how, m.name, took.Round(time.Millisecond), a.requestID)
		}
		if a := live(); a.status != http.StatusOK {
			t.Errorf("%s: the live session's clinic page: %d, want 200\n%.300s", how, a.status, a.body)
		}
		codes := burst()
		if codes[0] != http.StatusOK || codes[len(codes)-1] != http.StatusTooManyRequests {
			t.Errorf("%s: the clinic's rate limit answered %v, want 200s then 429 (per-node limit)", how, codes)
		}
		waitAudited(t, d, refused)
	}
	up := func(how string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			a := members[0].try()
			if a.status == http.StatusFound || a.status == http.StatusSeeOther {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sign-in still answers %d 20 s after Redis came back", how, a.status)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Commands a hung Redis received run when it resumes, rate-limit
		// buckets' too: let the clinic's bucket (1/s, burst 5) refill.
		time.Sleep(5 * time.Second)
		if a := live(); a.status != http.StatusOK {
			t.Fatalf("%s: the clinician's session after Redis came back: %d", how, a.status)
		}
		if err := dr.c.PostJSON(d.Base(), "/.telegate/visits", map[string]any{"title": "after", "participants": 2}, nil); err != nil {
			t.Fatalf("%s: a new visit after Redis came back: %v", how, err)
		}
		b := newBrowser(t, d)
		if resp, body := b.signIn(d.Base(), "/clinic/", "clinician@demo.test", "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: a whole new sign-in after Redis came back: %d %.300s", how, resp.StatusCode, body)
		}
	}

	rdb.Pause(t)
	down("Redis hung")
	rdb.Resume(t)
	up("Redis resumed")

	rdb.Stop()
	down("Redis killed")
	rdb.Restart(t)
	up("Redis restarted")
}

// waitAudited waits until d's audit trail holds a record of each request
// id with status 503.
func waitAudited(t *testing.T, d *demo, ids []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(d.dataDir, "audit", "audit.log"))
		var missing []string
		for _, id := range ids {
			found := false
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, id) && strings.Contains(l, `"status":503`) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("no audit record with status 503 for requests %v", missing)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
