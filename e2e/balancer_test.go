package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telegate/telegate/internal/freeport"
)

// freePortOn returns a TCP port that was free a moment ago on every one
// of ips (loopback addresses), and that no earlier call handed out.
func freePortOn(t testing.TB, ips []string) int {
	t.Helper()
	return freeport.TCPOn(t, ips...)
}

// balancer is a hospital's load balancer in front of a cluster, at layer
// 4: it passes each TCP connection, bytes untouched (TLS ends at the
// node), to the first node in its order whose admin /readyz answered 200
// at the last health check (every 100 ms). A draining node gets no new
// connection; the ones it holds stay until one side closes them. At most
// balancerMaxConns connections at once.
type balancer struct {
	t      *testing.T
	ln     net.Listener
	nodes  []*demo // in order of preference
	ready  []atomic.Bool
	served []atomic.Int64 // connections passed to each node
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

const balancerMaxConns = 256

// startBalancer listens on the cluster's public port at 127.0.0.(n+1)
// and balances over c's nodes in the order given (indexes); it stops at
// the end of the test.
func startBalancer(t *testing.T, c *cluster, order ...int) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", len(c.nodes)+1, c.nodes[0].port))
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{t: t, ln: ln, stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	for _, i := range order {
		b.nodes = append(b.nodes, c.nodes[i])
	}
	b.ready = make([]atomic.Bool, len(b.nodes))
	b.served = make([]atomic.Int64, len(b.nodes))
	b.check()
	b.wg.Add(2)
	go b.health()
	go b.accept()
	t.Cleanup(b.close)
	return b
}

// check asks every node's /readyz once.
func (b *balancer) check() {
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	for i, d := range b.nodes {
		ok := false
		if resp, err := hc.Get(d.AdminURL() + "/readyz"); err == nil {
			ok = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
		b.ready[i].Store(ok)
	}
}

func (b *balancer) health() {
	defer b.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.check()
		}
	}
}

func (b *balancer) accept() {
	defer b.wg.Done()
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		to := -1
		for i := range b.nodes {
			if b.ready[i].Load() {
				to = i
				break
			}
		}
		b.mu.Lock()
		full := len(b.conns) >= balancerMaxConns
		if to < 0 || full {
			b.mu.Unlock()
			in.Close()
			continue
		}
		b.conns[in] = struct{}{}
		b.mu.Unlock()
		b.served[to].Add(1)
		b.wg.Add(1)
		go b.pass(in, b.nodes[to])
	}
}

// pass copies between in and a new connection to d until either closes.
func (b *balancer) pass(in net.Conn, d *demo) {
	defer b.wg.Done()
	defer func() {
		in.Close()
		b.mu.Lock()
		delete(b.conns, in)
		b.mu.Unlock()
	}()
	out, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", d.addr(), d.port), 2*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	select {
	case <-done:
	case <-b.stop:
	}
}

func (b *balancer) close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestDrainBehindTheBalancer: two nodes on one Redis behind a load
// balancer that sends each connection to the first ready node. Every
// page — the clinician and the patient in a call, a third person still
// in the waiting room writing to the clinician — connects through the
// balancer, so every socket is on the first node, which also relays the
// call. SIGTERM to it: the balancer sends no new connection there; the
// call moves to the other node's relay, the node's signaling and chat
// sockets close with 1001 and the pages reconnect through the balancer
// to the other node, without anyone doing anything. Video keeps flowing
// with the same security code, nobody is dropped (both still admitted,
// the third still waiting and able to write to the clinician), and the
// drained node exits 0.
func TestDrainBehindTheBalancer(t *testing.T) {
	c := startClusterAs(t, 2, "visit.test")
	first := c.nextRelay()
	second := 1 - first
	lb := startBalancer(t, c, first, second)
	newCtx := c.browser()
	dr, pat, other := newPage(t, newCtx, "clinician"), newPage(t, newCtx, "patient"), newPage(t, newCtx, "waiting")
	dr.watchMedia(false)
	pat.watchMedia(false)
	vid, code := callAcrossNodes(t, c, dr, pat, first, first)
	if got := c.visitRelay(vid); got != first {
		t.Fatalf("the visit's relay is node %d, want node %d", got+1, first+1)
	}

	// A third person waits, and writes to the clinician.
	invite := eval[string](dr, fmt.Sprintf(`import('/.telegate/visit.js').then(m => m.reissueInvite(%q)).then(i => i.url)`, vid))
	other.signIn(invite, "admin@demo.test", "/.telegate/visits/join")
	other.waitFor("the waiting room", `document.querySelector('#waiting-status').textContent.includes('waiting room')`, 15*time.Second)
	chatsTo(t, other, dr, "", "Before the restart")
	chatsTo(t, dr, other, "Demo Admin", "Seen before the restart")
	if n := lb.served[1].Load(); n != 0 {
		t.Fatalf("the balancer sent %d connections to node %d while node %d was ready", n, second+1, first+1)
	}

	for _, p := range []*page{dr, pat} {
		_ = eval[bool](p, `(window.__statuses = [], true)`)
	}
	d := c.nodes[first]
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := d.exitsZero(t, sent, 15*time.Second)
	t.Logf("SIGTERM to exit 0: %v; connections the balancer passed: node %d %d, node %d %d", exited.Round(10*time.Millisecond),
		first+1, lb.served[0].Load(), second+1, lb.served[1].Load())
	if lb.served[1].Load() == 0 {
		t.Fatalf("no page reconnected through the balancer to node %d", second+1)
	}
	if moved := c.visitRelay(vid); moved != second {
		t.Fatalf("after the drain the visit's relay is node %d, want node %d", moved+1, second+1)
	}
	// With the first node gone every page is served by the second.
	for _, p := range []*page{dr, pat} {
		videoFlows(p, "video after the drained node exited", 20*time.Second)
		if cc := eval[string](p, `document.querySelector('#security-code').dataset.code`); cc != code {
			t.Errorf("%s: the security code changed over the drain: %s, was %s", p.name, cc, code)
		}
		// Told the node restarts (its signaling socket closed with 1001),
		// then connected again (a welcome on the new socket).
		statuses := fmt.Sprint(eval[[]any](p, `window.__statuses`))
		at := strings.Index(statuses, "restarting")
		if at < 0 || !strings.Contains(statuses[at:], "Connected.") {
			t.Errorf("%s: statuses during the drain %v, want the node restarting, then connected", p.name, statuses)
		}
		if strings.Contains(statuses, "ended") || strings.Contains(statuses, "removed") || strings.Contains(statuses, "signed out") {
			t.Errorf("%s was told %v during the drain", p.name, statuses)
		}
	}
	// Signaling runs through the second node: the patient turns the
	// camera off, and the clinician's page hears it (a "media" message).
	pat.do(chromedp.Click(chromedp.CSS("#camera")))
	dr.waitFor("the patient's camera off, told over signaling", `document.querySelector('#stats').dataset.quality === 'no-video'`, 10*time.Second)
	states := eval[[]any](dr, fmt.Sprintf(`fetch('/.telegate/visits/%s').then(r => r.json()).then(v => v.participants.map(p => p.state))`, vid))
	if fmt.Sprint(states) != "[admitted admitted waiting]" {
		t.Errorf("participants after the drain: %v, want the two admitted and the third waiting", states)
	}
	chatsTo(t, other, dr, "", "After the restart")
	chatsTo(t, dr, other, "Demo Admin", "Seen after the restart")
}

// chatsTo has from write text in the waiting-room chat (to the person
// named to, from a clinician's page) until it shows on to's page: the
// socket may be reconnecting meanwhile.
func chatsTo(t *testing.T, from, to *page, toName, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if toName != "" {
			_ = eval[bool](from, fmt.Sprintf(`(() => { const s = document.querySelector('#wchat-to'); const o = [...s.options].find(o => o.text === %q); if (o) s.value = o.value; return !!o; })()`, toName))
		}
		from.do(chromedp.SetValue(chromedp.CSS("#wchat-input"), text), chromedp.Click(chromedp.CSS("#wchat-send")))
		for range 5 {
			if eval[bool](to, fmt.Sprintf(`document.querySelector('#wchat-log').textContent.includes(%q)`, text)) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q from %s never showed on %s's page:\n%s", text, from.name, to.name, to.dump())
		}
	}
}
