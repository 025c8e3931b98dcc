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
	"github.com/telegate/telegate/policies"
)

// BenchmarkSignalingAcrossNodes compares the signaling delay (client
// write to client read) of a message between two sockets on one node and
// between sockets on two nodes sharing one redis-server (visits on Redis
// for both, so the only difference is the bus). Each iteration sends one
// message on each pair in turn (compareHops).
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
	hop := func(from, to *websocket.Conn) time.Duration {
		return timeHop(b, from, to, func(uf string) string {
			return fmt.Sprintf(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2113937151 198.51.100.7 50000 typ relay raddr 0.0.0.0 rport 0","usernameFragment":%q}}`, uf)
		}, func(data []byte, uf string) bool {
			var m serverMsg
			return json.Unmarshal(data, &m) == nil && m.Candidate != nil && m.Candidate.UsernameFragment != nil && *m.Candidate.UsernameFragment == uf
		})
	}
	compareHops(b, func() time.Duration { return hop(localPat, localHost) }, func() time.Duration { return hop(crossPat, crossHost) })
	for _, c := range []*websocket.Conn{localHost, localPat, crossHost, crossPat} {
		c.CloseNow()
	}
}

// timeHop writes msg(sent) on from, sent being the time (Unix ns) as
// text, and returns the time until to reads a message that carries it
// (match).
func timeHop(b *testing.B, from, to *websocket.Conn, msg func(sent string) string, match func(data []byte, sent string) bool) time.Duration {
	ctx := context.Background()
	sent := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := from.Write(ctx, websocket.MessageText, []byte(msg(sent))); err != nil {
		b.Fatal(err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, data, err := to.Read(rctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if match(data, sent) {
			at, _ := strconv.ParseInt(sent, 10, 64)
			return time.Since(time.Unix(0, at))
		}
	}
}

// compareHops runs b.N iterations of one local and one cross hop (each
// returning its delay) in turn, so both see the same machine load, and
// reports p50 and p99 of each and the ratio of the p50s.
func compareHops(b *testing.B, local, cross func() time.Duration) {
	var ls, cs []time.Duration
	b.ResetTimer()
	for range b.N {
		ls = append(ls, local())
		cs = append(cs, cross())
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(ls)
	slices.Sort(cs)
	n := len(ls)
	b.ReportMetric(ms(ls[n/2]), "one-node-p50-ms")
	b.ReportMetric(ms(ls[n*99/100]), "one-node-p99-ms")
	b.ReportMetric(ms(cs[n/2]), "two-nodes-p50-ms")
	b.ReportMetric(ms(cs[n*99/100]), "two-nodes-p99-ms")
	b.ReportMetric(float64(cs[n/2])/float64(ls[n/2]), "p50-ratio")
}

// BenchmarkWaitingRoomChatAcrossNodes compares the waiting-room chat
// delay (the patient's write to the clinician's read) with the patient's
// chat socket on the clinician's node and on the other node sharing one
// redis-server (visits on Redis for both: each message reads the visit
// and takes from the allowance in Redis, and is published on the bus;
// the other node is only the receiving end). The allowance (1 a second)
// is lifted for the run, the same one for both paths.
//
//	flock /tmp/telegate-bench.lock go test -run '^$' -bench WaitingRoomChatAcrossNodes -benchtime 2000x ./media/
func BenchmarkWaitingRoomChatAcrossNodes(b *testing.B) {
	lim := chatLimit
	chatLimit = config.RateLimit{Rate: 1e6, Burst: 1e6}
	b.Cleanup(func() { chatLimit = lim })
	_, n1, n2 := benchNodes(b, config.Visits{})
	dr := users["dr"]
	dial := func(h *harness, user, vid string) *websocket.Conn {
		c, _, err := h.dialAt(user, vid, "chat", h.srv.URL)
		if err != nil {
			b.Fatalf("chat as %s: %v", user, err)
		}
		benchRead(b, c) // welcome
		return c
	}
	pair := func(pat string, patNode *harness) (clinician, patient *websocket.Conn) {
		v, tok, err := n1.svc.create(createParams{Title: "bench", Participants: 2, OwnerIss: dr.Issuer, OwnerSub: dr.Subject, OwnerName: "Dr"})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := patNode.svc.join(benchUser(pat), tok); err != nil {
			b.Fatal(err)
		}
		return dial(n1, "dr", v.ID), dial(patNode, pat, v.ID)
	}
	localDr, localPat := pair("bench-local", n1)
	crossDr, crossPat := pair("bench-cross", n2)
	hop := func(from, to *websocket.Conn) time.Duration {
		return timeHop(b, from, to, func(text string) string {
			return `{"type":"chat","text":"` + text + `"}`
		}, func(data []byte, text string) bool {
			var m chatServerMsg
			return json.Unmarshal(data, &m) == nil && m.Type == "chat" && m.Text == text
		})
	}
	compareHops(b, func() time.Duration { return hop(localPat, localDr) }, func() time.Duration { return hop(crossPat, crossDr) })
	for _, c := range []*websocket.Conn{localDr, localPat, crossDr, crossPat} {
		c.CloseNow()
	}
}

// benchNodes starts a redis-server and two visits services on it.
func benchNodes(b *testing.B, cfg config.Visits) (*redistest.Server, *harness, *harness) {
	r := redistest.Start(b)
	ro := &RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Prefix: "b{" + newID() + "}:"}
	key := bytes.Repeat([]byte{7}, 32)
	rl := policies.RedisLimiterOptions{Conn: ro.Conn, Prefix: "rl{" + newID() + "}:"}
	node := func() *harness {
		l, err := policies.NewRedisLimiter(rl)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })
		h := &harness{t: &testing.T{}, relay: newSpyRelay(b), sink: &recordSink{}, clock: &clock{t: time.Now()}, dir: b.TempDir()}
		svc, err := New(Options{Config: cfg, DataDir: h.dir, Relay: h.relay, Audit: h.sink, Now: h.clock.Now, InviteKey: key, Redis: ro, Limiter: l})
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
