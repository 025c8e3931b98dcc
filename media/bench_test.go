package media

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// BenchmarkSignaling500Visits runs 500 two-person visits over real
// WebSockets on loopback. Each iteration is one round in which every
// visit's patient sends one ICE candidate message to its clinician, and the
// round ends when all 500 arrived; so 500 messages are in flight at once.
// It reports forwarded messages per second, the p50/p99 forwarding delay
// (client write to client read, through the server's parse, checks and
// fan-out), the heap of a visit's state alone (state-KiB/visit), and the
// heap per visit with its two open sockets, both ends counted since the
// clients run in the same process (heap-KiB/visit).
//
//	go test -run '^$' -bench Signaling500Visits -benchtime 200x ./media/
func BenchmarkSignaling500Visits(b *testing.B) {
	const visits = 500
	h := &harness{t: &testing.T{}, relay: newSpyRelay(b), sink: &recordSink{}, clock: &clock{t: time.Now()}, dir: b.TempDir(),
		cfg: config.Visits{MaxPeers: 2 * visits, MaxVisits: visits, MaxVisitsPerOwner: visits, MessageRate: 1e6}}
	svc, err := New(Options{Config: h.cfg, DataDir: h.dir, Relay: h.relay, Audit: h.sink, Now: h.clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	svc.store.(*boltStore).db.NoSync = true // setup speed only; the message path never writes
	h.svc = svc
	h.start2(b)
	defer func() { h.srv.Close(); _ = h.svc.Close() }()

	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	dr := users["dr"]
	type pair struct{ host, pat *websocket.Conn }
	pairs := make([]pair, visits)
	ids := make([]string, visits)
	for i := range visits {
		v, tok, err := svc.create(createParams{Title: "bench", Participants: 2, OwnerIss: dr.Issuer, OwnerSub: dr.Subject, OwnerName: "Dr"})
		if err != nil {
			b.Fatal(err)
		}
		_, p, _, err := svc.join(benchUser("bench-"+strconv.Itoa(i)), tok)
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.decide(dr, v.ID, p.ID, "admit"); err != nil {
			b.Fatal(err)
		}
		ids[i] = v.ID
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for i, vid := range ids {
		pairs[i].host = h.benchDial(b, "dr", vid)
		benchRead(b, pairs[i].host) // welcome; the patient joins after
		pairs[i].pat = h.benchDial(b, "bench-"+strconv.Itoa(i), vid)
	}
	// Drain peer-joined and the patients' welcome.
	for _, p := range pairs {
		benchRead(b, p.host)
		benchRead(b, p.pat)
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)

	statePerVisit := float64(ms.HeapAlloc-m0.HeapAlloc) / visits / 1024
	heapPerVisit := float64(m1.HeapAlloc-m0.HeapAlloc) / visits / 1024
	goroutinesPerVisit := float64(runtime.NumGoroutine()) / visits

	var mu sync.Mutex
	var delays []time.Duration
	var round sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range pairs {
		go func(c *websocket.Conn) {
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				var m serverMsg
				if json.Unmarshal(data, &m) != nil || m.Candidate == nil || m.Candidate.UsernameFragment == nil {
					continue
				}
				sent, _ := strconv.ParseInt(*m.Candidate.UsernameFragment, 10, 64)
				mu.Lock()
				delays = append(delays, now.Sub(time.Unix(0, sent)))
				mu.Unlock()
				round.Done()
			}
		}(p.host)
		// Keep reading the patient's side too, so that it answers the
		// server's pings.
		go func(c *websocket.Conn) {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}(p.pat)
	}
	wait := func(b *testing.B) {
		done := make(chan struct{})
		go func() { round.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("messages lost: a round did not complete in 30 s")
		}
	}
	send := func(b *testing.B, c *websocket.Conn) {
		uf := strconv.FormatInt(time.Now().UnixNano(), 10)
		msg := fmt.Sprintf(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2113937151 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":%q}}`, uf)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
	}
	report := func(b *testing.B, elapsed time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(delays)
		n := len(delays)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(delays[n/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(delays[n*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(statePerVisit, "state-KiB/visit")
		b.ReportMetric(heapPerVisit, "heap-KiB/visit")
		b.ReportMetric(goroutinesPerVisit, "goroutines/visit")
		delays = nil
	}
	// Every visit sends at once: 500 messages in flight.
	b.Run("burst=500", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			round.Add(visits)
			for _, p := range pairs {
				send(b, p.pat)
			}
			wait(b)
		}
		report(b, time.Since(start))
	})
	// One message at a time, visits in turn, 500 visits open: the
	// forwarding delay without queueing.
	b.Run("serial", func(b *testing.B) {
		start := time.Now()
		for i := range b.N {
			round.Add(1)
			send(b, pairs[i%visits].pat)
			wait(b)
		}
		report(b, time.Since(start))
	})
	for _, p := range pairs {
		p.host.CloseNow()
		p.pat.CloseNow()
	}
}

// start2 serves h.svc (already created) on loopback.
func (h *harness) start2(*testing.B) {
	h.srv = httptest.NewServer(withTestIdentity(h.svc.Handler()))
}

func (h *harness) benchDial(b *testing.B, user, vid string) *websocket.Conn {
	c, resp, err := h.dial(user, vid, h.srv.URL)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		b.Fatalf("dial %s: %v (%d)", user, err, st)
	}
	return c
}

func benchRead(b *testing.B, c *websocket.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); err != nil {
		b.Fatal(err)
	}
}
