package media

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// BenchmarkSignalingAcrossNodes compares the signaling delay (client
// write to client read) of a message between two sockets on one node and
// between sockets on two nodes sharing one redis-server (visits on Redis
// for both, so the only difference is the bus). Each iteration sends one
// message on each pair in turn, so both see the same machine load; it
// reports p50 and p99 of each and the ratio of the p50s.
//
//	flock /tmp/telegate-bench.lock go test -run '^$' -bench SignalingAcrossNodes -benchtime 2000x ./media/
func BenchmarkSignalingAcrossNodes(b *testing.B) {
	_, n1, n2 := benchNodes(b, config.Visits{MessageRate: 1e6})
	dr := users["dr"]
	pair := func(pat string, patNode *harness) (host, guest *websocket.Conn) {
		v, tok, err := n1.svc.create(createParams{Title: "bench", Participants: 2, OwnerIss: dr.Issuer, OwnerSub: dr.Subject, OwnerName: "Dr"})
		if err != nil {
			b.Fatal(err)
		}
		_, p, _, err := patNode.svc.join(benchUser(pat), tok)
		if err != nil {
			b.Fatal(err)
		}
		if err := n1.svc.decide(dr, v.ID, p.ID, "admit"); err != nil {
			b.Fatal(err)
		}
		host = n1.benchDial(b, "dr", v.ID)
		benchRead(b, host) // welcome
		guest = patNode.benchDial(b, pat, v.ID)
		benchRead(b, guest) // welcome
		benchRead(b, host)  // peer-joined
		return host, guest
	}
	localHost, localPat := pair("bench-local", n1)
	crossHost, crossPat := pair("bench-cross", n2)
	ctx := context.Background()
	hop := func(from, to *websocket.Conn) time.Duration {
		uf := strconv.FormatInt(time.Now().UnixNano(), 10)
		msg := fmt.Sprintf(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2113937151 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0","usernameFragment":%q}}`, uf)
		if err := from.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, data, err := to.Read(rctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			var m serverMsg
			if json.Unmarshal(data, &m) == nil && m.Candidate != nil && m.Candidate.UsernameFragment != nil && *m.Candidate.UsernameFragment == uf {
				sent, _ := strconv.ParseInt(uf, 10, 64)
				return time.Since(time.Unix(0, sent))
			}
		}
	}
	var local, cross []time.Duration
	b.ResetTimer()
	for range b.N {
		local = append(local, hop(localPat, localHost))
		cross = append(cross, hop(crossPat, crossHost))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(local)
	slices.Sort(cross)
	n := len(local)
	b.ReportMetric(ms(local[n/2]), "one-node-p50-ms")
	b.ReportMetric(ms(local[n*99/100]), "one-node-p99-ms")
	b.ReportMetric(ms(cross[n/2]), "two-nodes-p50-ms")
	b.ReportMetric(ms(cross[n*99/100]), "two-nodes-p99-ms")
	b.ReportMetric(float64(cross[n/2])/float64(local[n/2]), "p50-ratio")
	for _, c := range []*websocket.Conn{localHost, localPat, crossHost, crossPat} {
		c.CloseNow()
	}
}

// benchNodes starts a redis-server and two visits services on it.
func benchNodes(b *testing.B, cfg config.Visits) (*redistest.Server, *harness, *harness) {
	r := redistest.Start(b)
	ro := &RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Prefix: "b{" + newID() + "}:"}
	key := bytes.Repeat([]byte{7}, 32)
	node := func() *harness {
		h := &harness{t: &testing.T{}, relay: newSpyRelay(b), sink: &recordSink{}, clock: &clock{t: time.Now()}, dir: b.TempDir()}
		svc, err := New(Options{Config: cfg, DataDir: h.dir, Relay: h.relay, Audit: h.sink, Now: h.clock.Now, InviteKey: key, Redis: ro})
		if err != nil {
			b.Fatal(err)
		}
		h.svc = svc
		h.start2(b)
		b.Cleanup(func() { h.srv.Close(); _ = h.svc.Close() })
		return h
	}
	return r, node(), node()
}

// BenchmarkVisitRedisCommands counts, for each visit operation on visits
// on Redis without contention, the round trips to Redis (commands the
// stores' clients send, counted by a client hook) and the commands Redis
// runs (INFO stats total_commands_processed, less the INFO itself; those
// inside scripts included): create on node 1, join on node 2, admit on
// node 1, a status read (Service.lookup, as GET /visits/{id}) on node
// 2, and the relay choice of /ice on node 2 (both nodes register a
// relay): the first, which gives the visit its relay, and a later one.
//
//	go test -run '^$' -bench VisitRedisCommands -benchtime 200x ./media/
func BenchmarkVisitRedisCommands(b *testing.B) {
	r, n1, n2 := benchNodes(b, config.Visits{MaxVisits: 1 << 20, MaxVisitsPerOwner: 1 << 20, ICEHost: "127.0.0.1"})
	raw := r.Client(b)
	ctx := context.Background()
	count := func() int64 {
		info, err := raw.Info(ctx, "stats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no total_commands_processed")
		return 0
	}
	var trips atomic.Int64
	for _, h := range []*harness{n1, n2} {
		h.svc.store.(*redisStore).rdb.AddHook(tripCounter{&trips})
	}
	dr := users["dr"]
	var create, join, admit, read, choose, ice [2]int64 // round trips, commands
	measure := func(into *[2]int64, f func()) {
		before, t0 := count(), trips.Load()
		f()
		into[0] += trips.Load() - t0
		into[1] += count() - before - 1
	}
	for i := range b.N {
		var v *visit
		var tok string
		measure(&create, func() {
			var err error
			if v, tok, err = n1.svc.create(createParams{Title: "bench", Participants: 2, OwnerIss: dr.Issuer, OwnerSub: dr.Subject, OwnerName: "Dr"}); err != nil {
				b.Fatal(err)
			}
		})
		var p *participant
		measure(&join, func() {
			var err error
			if _, p, _, err = n2.svc.join(benchUser("bench-"+strconv.Itoa(i)), tok); err != nil {
				b.Fatal(err)
			}
		})
		measure(&admit, func() {
			if err := n1.svc.decide(dr, v.ID, p.ID, "admit"); err != nil {
				b.Fatal(err)
			}
		})
		measure(&read, func() {
			n2.svc.mu.Lock()
			n2.svc.lookup(v.ID)
			n2.svc.mu.Unlock()
		})
		// The relay part of /ice (Service.iceRelay): the first gives the
		// visit its relay, a later one reads it.
		for _, m := range []*[2]int64{&choose, &ice} {
			measure(m, func() {
				if _, _, err := n2.svc.bus.relayOf(ctx, v.ID, p.ID); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
	n := float64(b.N)
	for _, m := range []struct {
		name string
		v    [2]int64
	}{{"create", create}, {"join", join}, {"admit", admit}, {"read", read}, {"ice-choose", choose}, {"ice", ice}} {
		b.ReportMetric(float64(m.v[0])/n, "trips/"+m.name)
		b.ReportMetric(float64(m.v[1])/n, "cmds/"+m.name)
	}
}

// tripCounter is a go-redis hook counting the commands a client sends.
type tripCounter struct{ n *atomic.Int64 }

func (c tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}
