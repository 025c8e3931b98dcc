package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/devop"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media"
	"github.com/telegate/telegate/media/relay/turnwire"
	"github.com/telegate/telegate/node"
)

// nodeConfig is one node of a cluster: sessions and visits on the shared
// Redis, its own data directory, every listener on its own loopback
// address 127.0.0.N, public name nodeN.test and relay name relayN.test
// (both in its certificate from its local CA). Verbs as shortTimeouts'
// (%[1]s data directory, %[2]d public port, %[3]d admin port, %[4]d relay
// UDP port, %[5]s issuer, %[6]s client secret file, %[7]s relay secrets
// file), then %[8]s the address, %[9]d N, %[10]s the directory of the
// shared session key and Redis password, %[11]s the Redis address, %[12]s
// the public host name (nodeN.test, or the balancer's name shared by all),
// %[13]s the tls section (nodeTLS unless clusterOptions say otherwise)
// and %[14]s server.http_listen.
var nodeConfig = runConfig{
	Host:       "%[8]s",
	HTTPListen: "%[14]s",
	Server:     "  public_url: https://%[12]s:%[2]d\n  shutdown_timeout: 12s\n",
	TLSSection: "%[13]s\n",
	Sections: `sessions:
  store: redis
  encryption_key_file: %[10]s/session.key
redis:
  addr: %[11]s
  password_file: %[10]s/redis.password
`,
	Relay:      true,
	Visits:     true,
	RelayMore:  "  udp_sockets: 1\n  server_names: [relay%[9]d.test]\n",
	VisitsMore: "  drain_timeout: 3s\n",
}.String()

// nodeTLS is a node's tls section in nodeConfig: its public name
// (%[1]s) and relay name (%[2]d is N) from its local CA.
const nodeTLS = `tls:
  hosts:
    - names: [%[1]s, relay%[2]d.test]
      mode: local`

// clusterOptions change what startClusterWith starts.
type clusterOptions struct {
	// tls, when set, is node i's (from 1) tls section instead of nodeTLS;
	// shared is the directory of the shared files (session key, Redis
	// password), where it may put its own.
	tls func(i int, shared string) string
	// httpPort, when not 0, is every node's server.http_listen port (on
	// its own address).
	httpPort int
	// together starts every node at once and only then waits for them,
	// instead of one after the other.
	together bool
	// publicName, when not "", is every node's public name, as behind a
	// load balancer (startClusterAs).
	publicName string
}

// cluster is n telegate processes sharing one redis-server and one
// development OpenID Provider, node i (from 1) on 127.0.0.i.
type cluster struct {
	t     *testing.T
	rdb   *redistest.Server
	nodes []*demo
	key   []byte // the visits' key (relay registrations)
	// publicName is the name every node serves behind a balancer, "" when
	// each serves its own (nodeN.test).
	publicName string
}

// startCluster starts redis-server, the OpenID Provider and n nodes.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{})
}

// startClusterAs is startCluster with every node's public name publicName
// (when not ""), as behind a load balancer: each node serves that name
// (public_url, certificate) on one port shared by every node, each on its
// own address, and the balancer (startBalancer) listens on that port of
// the next address, 127.0.0.(n+1).
func startClusterAs(t *testing.T, n int, publicName string) *cluster {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{publicName: publicName})
}

// startClusterWith starts redis-server, the OpenID Provider and n nodes
// as o says.
func startClusterWith(t *testing.T, n int, o clusterOptions) *cluster {
	t.Helper()
	publicName := o.publicName
	c := &cluster{t: t, rdb: redistest.Start(t), publicName: publicName}
	shared := t.TempDir()
	write := func(name, v string) {
		if err := os.WriteFile(filepath.Join(shared, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	random := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	clientSecret := random()
	write("client-secret", clientSecret)
	write("relay-secrets", random())
	write("session.key", base64.StdEncoding.EncodeToString([]byte(random())[:32]))
	write("redis.password", c.rdb.Password)
	sharedPort := 0
	if publicName != "" {
		var ips []string
		for i := 1; i <= n+1; i++ {
			ips = append(ips, fmt.Sprintf("127.0.0.%d", i))
		}
		sharedPort = freePortOn(t, ips)
	}
	for i := 1; i <= n; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		d := &demo{t: t, ip: ip, name: fmt.Sprintf("node%d.test", i), dataDir: filepath.Join(t.TempDir(), "data"),
			port: sharedPort, admin: freePort(t), relay: freeUDPPort(t)}
		if publicName != "" {
			d.name = publicName
		} else {
			d.port = freePort(t)
		}
		c.nodes = append(c.nodes, d)
	}
	var redirects, logouts []string
	for _, d := range c.nodes {
		redirects = append(redirects, d.Base()+"/.telegate/callback/dev")
		logouts = append(logouts, d.Base()+"/", d.Base()+"/.telegate/signed-out")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	op, err := devop.Start(ctx, devop.Options{
		Logger:  slog.New(slog.DiscardHandler),
		Clients: []devop.Client{{ID: "telegate", Secret: clientSecret, RedirectURIs: redirects, PostLogoutRedirectURIs: logouts}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	for i, d := range c.nodes {
		path := filepath.Join(filepath.Dir(d.dataDir), "telegate.yaml")
		tlsYAML := fmt.Sprintf(nodeTLS, d.name, i+1)
		if o.tls != nil {
			tlsYAML = o.tls(i+1, shared)
		}
		httpListen := ""
		if o.httpPort != 0 {
			httpListen = fmt.Sprintf("%s:%d", d.ip, o.httpPort)
		}
		yaml := fmt.Sprintf(nodeConfig, d.dataDir, d.port, d.admin, d.relay, op.Issuer(),
			filepath.Join(shared, "client-secret"), filepath.Join(shared, "relay-secrets"), d.ip, i+1, shared, c.rdb.Addr, d.name,
			tlsYAML, httpListen)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if c.key == nil {
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.key, err = node.VisitsKey(cfg); err != nil {
				t.Fatal(err)
			}
		}
		d.logVisitOnFailure()
		if o.together {
			d.launch("run", "-c", path)
		} else {
			d.start("run", "-c", path)
		}
	}
	if o.together {
		for _, d := range c.nodes {
			d.waitReady("run")
		}
	}
	return c
}

// browser starts Chromium resolving every node's names (nodeN.test,
// relayN.test) to its address, and a balancer's public name to the
// balancer's, as DNS would in a deployment.
func (c *cluster) browser() func() context.Context {
	var rules []string
	for i := range c.nodes {
		rules = append(rules, fmt.Sprintf("MAP node%d.test 127.0.0.%d", i+1, i+1), fmt.Sprintf("MAP relay%d.test 127.0.0.%d", i+1, i+1))
	}
	if c.publicName != "" {
		// The public name is the balancer's address.
		rules = append(rules, fmt.Sprintf("MAP %s 127.0.0.%d", c.publicName, len(c.nodes)+1))
	}
	return chromium(c.t, chromedp.Flag("host-resolver-rules", strings.Join(rules, ",")))
}

// relays reads the relay registrations in Redis: node id → the index of
// the node (by the address in its URLs), its load and draining flag.
func (c *cluster) relays() map[string]relayReg {
	c.t.Helper()
	rc := c.rdb.Client(c.t)
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*relay:*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]relayReg{}
	for _, k := range keys {
		if strings.Contains(k, "vrelay:") {
			continue
		}
		v, err := rc.Get(ctx, k).Result()
		if err != nil {
			continue // lapsed meanwhile
		}
		urls, load, draining, err := media.RelayRegistration(c.key, v)
		if err != nil {
			c.t.Fatalf("registration %s does not open: %v", k, err)
		}
		r := relayReg{node: -1, urls: urls, load: load, draining: draining}
		for i, d := range c.nodes {
			if strings.Contains(strings.Join(urls, " "), fmt.Sprintf("turn:%s:%d?", d.ip, d.relay)) {
				r.node = i
			}
		}
		out[k[strings.LastIndex(k, ":")+1:]] = r
	}
	return out
}

// relayReg is one node's relay registration as relays reads it.
type relayReg struct {
	node     int
	urls     []string
	load     int
	draining bool
}

// waitRelaysSeen returns once every relay registration has been written
// again (its TTL in Redis went up: a heartbeat, which reads all of them
// next) since all of them were there.
func (c *cluster) waitRelaysSeen() {
	c.t.Helper()
	rc := c.rdb.Client(c.t)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	before := map[string]time.Duration{}
	for {
		keys, err := rc.Keys(ctx, "*relay:*").Result()
		if err != nil {
			c.t.Fatal(err)
		}
		fresh := 0
		for _, k := range keys {
			if strings.Contains(k, "vrelay:") {
				continue
			}
			ttl, err := rc.PTTL(ctx, k).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			last, seen := before[k]
			if seen && (last < 0 || ttl > last) {
				before[k] = -1 // written again: stays fresh
				fresh++
				continue
			}
			if !seen || last >= 0 {
				before[k] = ttl
			}
		}
		if len(before) == len(c.nodes) && fresh == len(c.nodes) {
			time.Sleep(200 * time.Millisecond) // the heartbeat's read follows its write
			return
		}
		if len(before) != len(c.nodes) {
			clear(before) // not all registered yet: count from when they are
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("relay registrations %v not all written again within 30s", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// visitRelay is the index of the node whose relay serves visit vid.
func (c *cluster) visitRelay(vid string) int {
	c.t.Helper()
	keys, err := c.rdb.Client(c.t).Keys(context.Background(), "*vrelay:"+vid).Result()
	if err != nil || len(keys) != 1 {
		c.t.Fatalf("the visit's relay in Redis: %v %v", keys, err)
	}
	id, err := c.rdb.Client(c.t).Get(context.Background(), keys[0]).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	r, ok := c.relays()[id]
	if !ok {
		return -1
	}
	return r.node
}

// nextRelay is the index of the node whose relay a new visit is given:
// every registered relay is idle, so the one with the smallest node id
// (relay choice's tie-break). A node picks from the registrations it read
// last, at its heartbeat: nextRelay first waits until every node has beaten
// since all registrations were there, so that each sees them all.
func (c *cluster) nextRelay() int {
	c.t.Helper()
	c.waitRelaysSeen()
	best, node := "", -1
	for id, r := range c.relays() {
		if r.load != 0 || r.draining {
			c.t.Fatalf("relay of node %d: load %d draining %v before any call", r.node+1, r.load, r.draining)
		}
		if best == "" || id < best {
			best, node = id, r.node
		}
	}
	if len(c.relays()) != len(c.nodes) || node < 0 {
		c.t.Fatalf("relay registrations %v for %d nodes", c.relays(), len(c.nodes))
	}
	return node
}

var allocationsRE = regexp.MustCompile(`(?m)^telegate_media_relay_allocations_active ([0-9.e+]+)$`)

// allocationsNow is the number of live allocations on d's relay, -1 when
// its admin listener does not answer (a node gone or going).
func (d *demo) allocationsNow() int {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(d.AdminURL() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	m := allocationsRE.FindStringSubmatch(b.String())
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return int(v)
}

// callAcrossNodes signs the clinician in on node drNode and the patient
// on node patNode, creates a visit, lets the patient in through the
// invite (opened on the patient's node) and waits until both call pages
// are connected with video flowing both ways and the same security code.
// It returns the visit id and the code.
func callAcrossNodes(t *testing.T, c *cluster, dr, pat *page, drNode, patNode int) (visitID, code string) {
	t.Helper()
	drBase, patBase := c.nodes[drNode].Base(), c.nodes[patNode].Base()
	dr.signIn(drBase+"/.telegate/visits/lobby", "clinician@demo.test", "/.telegate/visits/lobby")
	dr.do(chromedp.SetValue(chromedp.CSS("#visit-title"), "Visit across nodes"), chromedp.Click(chromedp.CSS("#create-visit")))
	dr.waitFor("the invite link", `document.querySelector('#invite-link').value.includes('invite=')`, 15*time.Second)
	invite := eval[string](dr, `document.querySelector('#invite-link').value`)
	if !strings.HasPrefix(invite, drBase+"/") {
		t.Fatalf("invite link %q is not on the clinician's node %s", invite, drBase)
	}
	pat.signIn(patBase+strings.TrimPrefix(invite, drBase), "patient@demo.test", "/.telegate/visits/join")
	pat.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	visitID = eval[string](pat, `new URLSearchParams(location.search).get('visit')`)
	dr.waitFor("the waiting patient", `document.querySelector('#waiting-list button[data-action=admit]') !== null`, 15*time.Second)
	admitAndConnect(drBase, dr, pat)
	for _, p := range []*page{dr, pat} {
		p.waitFor("video from the other side", `Number(document.querySelector('#stats').dataset.inboundVideoBytes) > 20000`, 30*time.Second)
		p.waitFor("relay candidates", `document.querySelector('#stats').dataset.localCandidateType === 'relay'`, 15*time.Second)
		p.waitFor("the security code", `/^[0-9]{6}$/.test(document.querySelector('#security-code').dataset.code || '')`, 15*time.Second)
	}
	code = eval[string](dr, `document.querySelector('#security-code').dataset.code`)
	if pc := eval[string](pat, `document.querySelector('#security-code').dataset.code`); pc != code {
		t.Fatalf("security codes differ: clinician %s, patient %s", code, pc)
	}
	return visitID, code
}

// videoFlows waits until p is connected and has received 20 kB more
// video than when called.
func videoFlows(p *page, what string, within time.Duration) {
	p.t.Helper()
	b := eval[float64](p, `Number(document.querySelector('#stats').dataset.inboundVideoBytes || 0)`)
	p.waitFor(what, fmt.Sprintf(`document.querySelector('#connection-state').dataset.state === 'connected' && Number(document.querySelector('#stats').dataset.inboundVideoBytes) > %v + 20000`, b), within)
}

// iceOf fetches p's ICE configuration for vid, as its page does.
func iceOf(p *page, vid string) (urls []string, username, credential string) {
	p.t.Helper()
	v := eval[map[string]any](p, fmt.Sprintf(`fetch('/.telegate/visits/%s/ice').then(r => r.json()).then(c => c.iceServers[0])`, vid))
	for _, u := range v["urls"].([]any) {
		urls = append(urls, u.(string))
	}
	username, _ = v["username"].(string)
	credential, _ = v["credential"].(string)
	return urls, username, credential
}

// turnsAcross makes an allocation over the turns: URL that p's node hands
// out for vid, as a browser does: the URL's host name resolved to the
// node whose relay it names (relayN.test → 127.0.0.N), a TLS handshake to
// that name verified against that node's CA, then an authenticated
// Allocate (RFC 8656 §7.2). It returns the name.
func turnsAcross(t *testing.T, c *cluster, p *page, vid string) string {
	t.Helper()
	urls, user, cred := iceOf(p, vid)
	for _, u := range urls {
		if !strings.HasPrefix(u, "turns:") {
			continue
		}
		hp, _, _ := strings.Cut(strings.TrimPrefix(u, "turns:"), "?")
		name, port, err := net.SplitHostPort(hp)
		if err != nil {
			t.Fatal(err)
		}
		var d *demo
		for i, n := range c.nodes {
			if name == fmt.Sprintf("relay%d.test", i+1) {
				d = n
			}
		}
		if d == nil {
			t.Fatalf("turns: URL %q names no node's relay name (a certificate cannot be verified for it)", u)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(d.ip, port),
			&tls.Config{ServerName: name, RootCAs: rootPool(t, d)})
		if err != nil {
			t.Fatalf("%s: TLS handshake verified for %s: %v", u, name, err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := turnwire.NewStream(conn, user, cred).Allocate(turnwire.UDP); err != nil {
			t.Fatalf("Allocate over %s: %v", u, err)
		}
		return name
	}
	t.Fatalf("no turns: URL in %v", urls)
	return ""
}

// others are the indexes 0…n-1 but skip.
func others(n, skip int) []int {
	var out []int
	for i := range n {
		if i != skip {
			out = append(out, i)
		}
	}
	return out
}

// TestThreeNodesOneVisit: three nodes on one Redis; the clinician's
// browser talks to one, the patient's to another, and the visit's relay
// is the third (relay only, headless Chromium with fake media): video
// flows both ways and both pages show the same security code; the
// turns: URL either node hands out for the third's relay names a name
// that node's certificate covers, and an allocation over it works with
// the certificate verified. Then the relay node is killed (SIGKILL)
// mid-call: the visit moves to another relay, both pages restart ICE
// with fresh credentials and video flows again with the same security
// code; the time from the kill to media flowing again is logged. Last,
// the clinician ends the visit on their node: the patient's socket on
// the second node and the allocations on the visit's relay are gone
// within 1 s.
func TestThreeNodesOneVisit(t *testing.T) {
	c := startCluster(t, 3)
	r := c.nextRelay()
	o := others(3, r)
	drN, patN := o[0], o[1]
	t.Logf("clinician on node %d, patient on node %d, relay on node %d", drN+1, patN+1, r+1)
	newCtx := c.browser()
	dr, pat := newPage(t, newCtx, "clinician"), newPage(t, newCtx, "patient")
	dr.watchMedia(false)
	pat.watchMedia(false)
	vid, code := callAcrossNodes(t, c, dr, pat, drN, patN)
	if got := c.visitRelay(vid); got != r {
		t.Fatalf("the visit's relay is node %d, want node %d", got+1, r+1)
	}
	if n := c.nodes[r].allocationsNow(); n < 2 {
		t.Fatalf("the relay node carries %d allocations during the call", n)
	}
	for _, i := range o {
		if n := c.nodes[i].allocationsNow(); n != 0 {
			t.Errorf("node %d, not the visit's relay, carries %d allocations", i+1, n)
		}
	}
	for _, p := range []*page{dr, pat} {
		if name := turnsAcross(t, c, p, vid); name != fmt.Sprintf("relay%d.test", r+1) {
			t.Errorf("%s: turns: names %s, not the relay node's name", p.name, name)
		}
	}

	// The relay node dies.
	for _, p := range []*page{dr, pat} {
		_ = eval[bool](p, `(delete document.querySelector('#stats').dataset.recoveredAt, window.__statuses = [], true)`)
	}
	killed := time.Now()
	if err := c.nodes[r].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	for _, p := range []*page{dr, pat} {
		p.waitFor("the recovery", `document.querySelector('#stats').dataset.recoveredAt !== undefined && document.querySelector('#connection-state').dataset.state === 'connected'`, 30*time.Second)
		at := time.UnixMilli(int64(eval[float64](p, `Number(document.querySelector('#stats').dataset.recoveredAt)`)))
		recovered = max(recovered, at.Sub(killed))
	}
	for _, p := range []*page{dr, pat} {
		videoFlows(p, "video again after the relay node died", 20*time.Second)
	}
	t.Logf("kill -9 of the relay node to media flowing again on both sides: %v (target 5 s)", recovered.Round(10*time.Millisecond))
	moved := c.visitRelay(vid)
	if moved == r || moved < 0 {
		t.Fatalf("after the kill the visit's relay is node %d", moved+1)
	}
	for _, p := range []*page{dr, pat} {
		urls, _, _ := iceOf(p, vid)
		if !strings.Contains(strings.Join(urls, " "), "turn:"+c.nodes[moved].ip+":") {
			t.Errorf("%s: ICE servers after the move %v, want node %d's relay", p.name, urls, moved+1)
		}
		if cc := eval[string](p, `document.querySelector('#security-code').dataset.code`); cc != code {
			t.Errorf("%s: the security code changed over the move: %s, was %s", p.name, cc, code)
		}
	}
	if n := c.nodes[moved].allocationsNow(); n < 2 {
		t.Errorf("the new relay (node %d) carries %d allocations", moved+1, n)
	}

	// The clinician ends the visit on their node.
	dr.do(chromedp.Click(chromedp.CSS("#end-visit")))
	ended := time.Now()
	for time.Since(ended) < 5*time.Second {
		if c.nodes[moved].allocationsNow() == 0 && eval[string](pat, `document.querySelector('#connection-state').dataset.state`) == "closed" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(ended)
	t.Logf("visit ended on node %d: the patient's socket on node %d and the allocations on node %d gone after %v", drN+1, patN+1, moved+1, took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("ending the visit took %v to close the patient's socket (state %q) and node %d's allocations (%d left); want within 1 s",
			took, eval[string](pat, `document.querySelector('#connection-state').dataset.state`), moved+1, c.nodes[moved].allocationsNow())
	}
	pat.waitFor("the ended notice", `document.querySelector('#call-status').textContent.includes('visit has ended')`, 5*time.Second)
}

// TestDrainLetsTheCallRunOnThenMovesIt: SIGTERM to the node whose relay
// carries a call between browsers on the two other nodes. The node is
// marked draining at once (/readyz, its registration in Redis) and a new
// visit is not given its relay; the call runs on through it for
// visits.drain_timeout (3 s), then moves to another relay without
// anyone doing anything — video keeps flowing, nobody is dropped (both
// still admitted, neither page closed), the security code unchanged —
// and the node exits 0 within server.shutdown_timeout (12 s).
func TestDrainLetsTheCallRunOnThenMovesIt(t *testing.T) {
	c := startCluster(t, 3)
	r := c.nextRelay()
	o := others(3, r)
	newCtx := c.browser()
	dr, pat := newPage(t, newCtx, "clinician"), newPage(t, newCtx, "patient")
	dr.watchMedia(false)
	pat.watchMedia(false)
	vid, code := callAcrossNodes(t, c, dr, pat, o[0], o[1])
	if got := c.visitRelay(vid); got != r {
		t.Fatalf("the visit's relay is node %d, want node %d", got+1, r+1)
	}
	d := c.nodes[r]
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining at once, in /readyz and in Redis.
	for {
		st, _ := readyzOf(d)
		drained := false
		for _, reg := range c.relays() {
			if reg.node == r && reg.draining {
				drained = true
			}
		}
		if st == http.StatusServiceUnavailable && drained {
			break
		}
		if time.Since(sent) > 2*time.Second {
			t.Fatalf("2 s after SIGTERM: /readyz %d, registered as draining %v", st, drained)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// No new visit is given the draining relay.
	newVisit := eval[string](dr, `import('/.telegate/visit.js').then(m => m.createVisit({title: 'During the drain'})).then(v => v.id)`)
	urls, _, _ := iceOf(dr, newVisit)
	if strings.Contains(strings.Join(urls, " "), "turn:"+d.ip+":") {
		t.Errorf("a visit created during the drain was given the draining relay: %v", urls)
	}
	// The call runs on through the draining relay meanwhile.
	time.Sleep(time.Second)
	if n := d.allocationsNow(); n < 2 {
		t.Errorf("1 s into the drain the draining relay carries %d allocations: the call did not run on", n)
	}
	for _, p := range []*page{dr, pat} {
		videoFlows(p, "video during the drain", 5*time.Second)
	}
	// The node exits 0 within its deadline, the call moved.
	exited := d.exitsZero(t, sent, 15*time.Second)
	t.Logf("SIGTERM to exit 0: %v", exited.Round(10*time.Millisecond))
	for _, l := range strings.Split(d.Output(), "\n") {
		if strings.Contains(l, "calls") || strings.Contains(l, "drain") || strings.Contains(l, "moved") {
			t.Logf("drained node: %s", l)
		}
	}
	if exited > 12*time.Second+2*time.Second {
		t.Errorf("the node took %v to exit, past server.shutdown_timeout", exited)
	}
	moved := c.visitRelay(vid)
	if moved == r || moved < 0 {
		t.Fatalf("after the drain the visit's relay is node %d", moved+1)
	}
	for _, p := range []*page{dr, pat} {
		videoFlows(p, "video after the drained node exited", 15*time.Second)
		if st := eval[string](p, `document.querySelector('#connection-state').dataset.state`); st != "connected" {
			t.Errorf("%s: %s after the drain", p.name, st)
		}
		if cc := eval[string](p, `document.querySelector('#security-code').dataset.code`); cc != code {
			t.Errorf("%s: the security code changed over the move: %s, was %s", p.name, cc, code)
		}
		if s := eval[[]any](p, `window.__statuses`); strings.Contains(fmt.Sprint(s), "ended") || strings.Contains(fmt.Sprint(s), "removed") || strings.Contains(fmt.Sprint(s), "Reconnecting") {
			t.Errorf("%s was told %v during the drain", p.name, s)
		}
		// The move was made before the old relay went: no loss at all.
		if lost := eval[bool](p, `document.querySelector('#stats').dataset.lostAt !== undefined`); lost {
			t.Errorf("%s lost the call's media during the move", p.name)
		}
	}
	states := eval[[]any](dr, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json()).then(v => v.participants.map(p => p.state))`, vid))
	for _, s := range states {
		if s != "admitted" {
			t.Errorf("a participant is %v after the drain (all: %v)", s, states)
		}
	}
	if !strings.Contains(d.Output(), `msg="calls drained"`) || !strings.Contains(d.Output(), "still_relaying=0") {
		t.Errorf("the node did not leave because its calls had moved (it logs how many its relay still carried):\n%s", d.Output())
	}
}

// readyzOf is d's /readyz status code and body.
func readyzOf(d *demo) (int, string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(d.AdminURL() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// exitsZero waits up to within after sent (when d was sent SIGTERM) for
// d to exit, fails the test unless it exits 0, and returns how long
// after sent it exited.
func (d *demo) exitsZero(t *testing.T, sent time.Time, within time.Duration) time.Duration {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(time.Until(sent.Add(within))):
		t.Fatalf("the drained node has not exited %v after SIGTERM:\n%s", within, d.Output())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the drained node exited with %d:\n%s", code, d.Output())
	}
	return time.Since(sent)
}
