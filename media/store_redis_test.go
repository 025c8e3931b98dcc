package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/policies"
)

var discardLog = slog.New(slog.DiscardHandler)

// redisNode opens a visit store on r under prefix, as one node would.
func redisNode(t *testing.T, r *redistest.Server, prefix string, key []byte) *redisStore {
	t.Helper()
	st, err := openRedisStore(RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Prefix: prefix}, key, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	return st
}

func TestRedisVisitStoreConformance(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	runVisitStoreConformance(t, func(t *testing.T) (visitStore, visitStore) {
		prefix := "t{" + newID() + "}:"
		return redisNode(t, r, prefix, testStoreKey), redisNode(t, r, prefix, testStoreKey)
	})
}

// TestRedisVisitStoreSealed: Redis holds no title, name or identity in the
// clear; a record copied under another id, or read with another key, does
// not open.
func TestRedisVisitStoreSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.Start(t)
	prefix := "sealed{x}:"
	st := redisNode(t, r, prefix, testStoreKey)
	v := newVisit(ownerA, 2)
	v.Participants = append(v.Participants, &participant{ID: newID(), Iss: "https://patient-idp", Sub: "patient-4711", Name: "Jane Roe", Role: roleGuest, State: stateWaiting})
	if err := st.create(ctx, v, quota{open: 10, perOwner: 10}); err != nil {
		t.Fatal(err)
	}
	raw := r.Client(t)
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, k := range keys {
		all.WriteString(k + " ")
		switch raw.Type(ctx, k).Val() {
		case "string":
			all.WriteString(raw.Get(ctx, k).Val())
		case "set":
			all.WriteString(strings.Join(raw.SMembers(ctx, k).Val(), " "))
		}
	}
	for _, phi := range []string{"Follow-up for Jane Roe", "Jane Roe", "patient-4711", "dr-a", "staff-idp", "patient-idp"} {
		if bytes.Contains(all.Bytes(), []byte(phi)) {
			t.Errorf("redis holds %q in the clear", phi)
		}
	}
	other := newID()
	raw.Set(ctx, prefix+"v:"+other, raw.Get(ctx, prefix+"v:"+v.ID).Val(), 0)
	if _, err := st.get(ctx, other); !errors.Is(err, errRecord) {
		t.Errorf("a record copied under another id: %v, want errRecord", err)
	}
	if _, err := redisNode(t, r, prefix, bytes.Repeat([]byte{9}, 32)).get(ctx, v.ID); !errors.Is(err, errRecord) {
		t.Errorf("a record read with another key: %v, want errRecord", err)
	}
}

// twoNodes starts two visit services sharing one Redis and one invite key.
func twoNodes(t *testing.T, cfg config.Visits) (*harness, *harness) {
	t.Helper()
	r := redistest.Start(t)
	ro := &RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}, Prefix: "n{" + newID() + "}:"}
	key := bytes.Repeat([]byte{5}, 32)
	rl := policies.RedisLimiterOptions{Conn: ro.Conn, Prefix: "rl{" + newID() + "}:"}
	node := func() *harness {
		// Each node has its rate limiter on the same Redis, as node.Run
		// builds it.
		l, err := policies.NewRedisLimiter(rl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return newHarnessWith(t, cfg, func(h *harness) { h.redis, h.key, h.limiter = ro, key, l })
	}
	return node(), node()
}

// TestRegression_VisitRacesAcrossNodes: a visit created on one node is
// joined, admitted, listed and ended through the other, and the
// read-modify-write races of visit state, tried from both nodes at once,
// never pass their bounds: one identity's second place, the waiting room,
// the participant cap, max_visits_per_owner.
func TestRegression_VisitRacesAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := twoNodes(t, config.Visits{DefaultParticipants: 3, MaxWaiting: 10, MaxVisitsPerOwner: 4})

	vid, inv := n1.createVisit("dr", nil)
	pid := n2.join("pat", inv)
	if again := n1.join("pat", inv); again != pid {
		t.Errorf("joining again on the other node gave a second place %s (first %s)", again, pid)
	}
	st, m := n1.do("dr", "GET", "/.telegate/visits/"+vid, nil)
	if st != http.StatusOK || m["waiting"] != float64(1) {
		t.Fatalf("node 1 sees: %d %v", st, m)
	}
	if st, _ := n2.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != http.StatusNoContent {
		t.Fatalf("admit on node 2: %d", st)
	}
	if st, _ := n1.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusOK {
		t.Fatalf("ICE on node 1 for a patient admitted on node 2: %d", st)
	}
	if st, m := n2.do("dr", "GET", "/.telegate/visits", nil); st != http.StatusOK || len(m["visits"].([]any)) != 1 {
		t.Errorf("list on node 2: %d %v", st, m)
	}

	// 12 more patients join through both nodes at once: the waiting room
	// (10) holds; then every one waiting is admitted at once through both
	// nodes: the cap (3: the host, pat, one more) holds.
	nodes := []*Service{n1.svc, n2.svc}
	var joined atomic.Int32
	pids := make([]string, 12)
	race(12, nil, nil, func(i int, _ visitStore) {
		_, p, _, err := nodes[i%2].join(benchUser(fmt.Sprintf("race-%d", i)), unescape(inv))
		if err == nil {
			joined.Add(1)
			pids[i] = p.ID
		}
	})
	if joined.Load() != 10 {
		t.Errorf("%d of 12 joined, want 10 (the waiting room's bound)", joined.Load())
	}
	var admitted, full atomic.Int32
	dr := users["dr"]
	race(12, nil, nil, func(i int, _ visitStore) {
		if pids[i] == "" {
			return
		}
		switch reason(nodes[i%2].decide(dr, vid, pids[i], "admit")) {
		case "":
			admitted.Add(1)
		case "full":
			full.Add(1)
		}
	})
	if admitted.Load() != 1 || full.Load() != 9 {
		t.Errorf("admits raced on two nodes: %d admitted, %d full; want 1 and 9", admitted.Load(), full.Load())
	}

	// Ending on node 1 is seen on node 2 at once.
	if st, _ := n1.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusNoContent {
		t.Fatalf("end on node 1: %d", st)
	}
	if st, _ := n2.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusGone {
		t.Errorf("ICE on node 2 after the end on node 1: %d, want 410", st)
	}
	if st, _ := n2.do("pat3", "POST", "/.telegate/visits/join", map[string]any{"invite": unescape(inv)}); st != http.StatusGone {
		t.Errorf("join on node 2 after the end on node 1: %d, want 410", st)
	}

	// Creates raced on both nodes stop at max_visits_per_owner (4).
	var created atomic.Int32
	race(20, nil, nil, func(i int, _ visitStore) {
		if _, _, err := nodes[i%2].create(createParams{Title: fmt.Sprint(i), Participants: 2, OwnerIss: dr.Issuer, OwnerSub: dr.Subject, OwnerName: "Dr"}); err == nil {
			created.Add(1)
		}
	})
	if created.Load() != 4 {
		t.Errorf("%d visits created by one owner racing on two nodes, want 4", created.Load())
	}
}

// TestRedisVisitsNeedSharedKey: visits on Redis refuse to start with a
// per-node invite key.
func TestRedisVisitsNeedSharedKey(t *testing.T) {
	t.Parallel()
	_, err := New(Options{DataDir: t.TempDir(), Relay: newSpyRelay(t), Redis: &RedisOptions{Conn: redisconn.Conn{Addr: "127.0.0.1:1"}}})
	if err == nil || !strings.Contains(err.Error(), "invite key") {
		t.Fatalf("New = %v, want a refusal naming the invite key", err)
	}
}

// TestRedisVisitsDownFailClosed: with Redis gone, creating, admitting,
// reading a visit, ICE and ending answer 503 and nothing is admitted; once Redis is back (empty,
// as after a loss) the node serves again by itself.
func TestRedisVisitsDownFailClosed(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	ro := &RedisOptions{Conn: redisconn.Conn{Addr: r.Addr, Password: r.Password}}
	h := newHarnessWith(t, config.Visits{}, func(h *harness) { h.redis, h.key = ro, bytes.Repeat([]byte{6}, 32) })
	vid, inv := h.createVisit("dr", nil)
	pid := h.join("pat", inv)
	r.Stop()
	if st, _ := h.do("dr", "POST", "/.telegate/visits", map[string]any{"title": "x"}); st != http.StatusServiceUnavailable {
		t.Errorf("create with Redis down: %d, want 503", st)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/admit", map[string]any{"participant": pid}); st != http.StatusServiceUnavailable {
		t.Errorf("admit with Redis down: %d, want 503", st)
	}
	if st, _ := h.do("pat", "GET", "/.telegate/visits/"+vid+"/ice", nil); st != http.StatusServiceUnavailable {
		t.Errorf("ICE with Redis down: %d, want 503", st)
	}
	if st, _ := h.do("dr", "GET", "/.telegate/visits/"+vid, nil); st != http.StatusServiceUnavailable {
		t.Errorf("visit status with Redis down: %d, want 503", st)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != http.StatusServiceUnavailable {
		t.Errorf("end with Redis down: %d, want 503", st)
	}
	if h.relay.isAdmitted(vid, pid) {
		t.Error("the relay admitted a participant while Redis was down")
	}
	r.Restart(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := h.do("dr", "POST", "/.telegate/visits", map[string]any{"title": "after"})
		if st == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create after Redis came back: %d", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
