package webhook

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// stores are the durable outboxes under test: each opens (again) the same
// store, as a node does at each start.
type storeKind struct {
	name string
	// open returns a func that opens the store anew (a restarted node,
	// or with Redis another node).
	open func(t *testing.T) func() Store
}

var storeKinds = []storeKind{
	{"bbolt", func(t *testing.T) func() Store {
		path := filepath.Join(t.TempDir(), BoltFile)
		return func() Store {
			st, err := OpenBolt(path, testKey)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	}},
	{"redis", func(t *testing.T) func() Store {
		// As telegate's ACL user: the scripts use only the commands
		// deployments grant it (redisconn.ACLRules).
		r := redistest.StartWith(t, redistest.Options{User: "telegate"})
		return func() Store {
			st, err := OpenRedis(redisconn.Conn{Addr: r.Addr, Username: r.User, Password: r.Password}, testKey)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	}},
}

func item(t time.Time, id string) Item {
	return Item{Key: newKey(t), ID: id, Event: "visit.waiting", Body: []byte(`{"visit_id":"` + id + `"}`), Created: t}
}

func ids(its []Item) string {
	var s []string
	for _, it := range its {
		s = append(s, it.ID)
	}
	return strings.Join(s, ",")
}

// TestOutboxConformance: every outbox — memory, bbolt, Redis — keeps the
// same contract: due items are claimed oldest first and held by one
// holder until its lease ends; only the holder retries or removes; a
// retry is due again when asked and keeps its attempts; a full outbox
// drops its oldest.
func TestOutboxConformance(t *testing.T) {
	kinds := append([]storeKind{{"memory", nil}}, storeKinds...)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			var q Outbox = newMemOutbox()
			if k.open != nil {
				st := k.open(t)()
				defer st.Close()
				q = st.Queue("test")
			}
			ctx := context.Background()
			t0 := time.Now().Truncate(time.Millisecond)
			for i, id := range []string{"a", "b", "c"} {
				if d, err := q.Add(ctx, item(t0.Add(time.Duration(i)*time.Millisecond), id), 10); err != nil || len(d) != 0 {
					t.Fatalf("add %s: %v, dropped %v", id, err, d)
				}
			}
			lease := 10 * time.Second
			now := t0.Add(time.Second)
			held, err := q.Claim(ctx, "A", now, lease, 2)
			if err != nil || ids(held) != "a,b" {
				t.Fatalf("A claimed %q, %v; want a,b", ids(held), err)
			}
			if held[0].Event != "visit.waiting" || string(held[0].Body) != `{"visit_id":"a"}` || !held[0].Created.Equal(t0) {
				t.Errorf("claimed item %+v", held[0])
			}
			c, _ := q.Claim(ctx, "B", now, lease, 10)
			if ids(c) != "c" {
				t.Fatalf("B claimed %q while A holds a,b; want c", ids(c))
			}
			// Only the holder retries or removes.
			if err := q.Remove(ctx, "B", held[0].Key); !errors.Is(err, ErrLost) {
				t.Errorf("B removed A's item: %v", err)
			}
			if err := q.Retry(ctx, "B", held[0], now); !errors.Is(err, ErrLost) {
				t.Errorf("B retried A's item: %v", err)
			}
			// A retries a in a minute, with its attempt counted.
			a := held[0]
			a.Attempts, a.Last = 1, "status:503"
			if err := q.Retry(ctx, "A", a, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if got, _ := q.Claim(ctx, "B", now.Add(time.Second), lease, 10); len(got) != 0 {
				t.Errorf("claimed %q before it is due", ids(got))
			}
			// Past A's lease on b and c and a's retry time, everything is due again.
			later := now.Add(2 * time.Minute)
			got, _ := q.Claim(ctx, "B", later, lease, 10)
			if len(got) != 3 {
				t.Fatalf("after the leases ended B claimed %q, want all three", ids(got))
			}
			for _, it := range got {
				if it.ID == "a" && (it.Attempts != 1 || it.Last != "status:503") {
					t.Errorf("retried item came back as %+v", it)
				}
			}
			if err := q.Remove(ctx, "A", held[1].Key); !errors.Is(err, ErrLost) {
				t.Errorf("A removed b after its lease ended and B took it: %v", err)
			}
			for _, it := range got {
				if err := q.Remove(ctx, "B", it.Key); err != nil {
					t.Errorf("remove %s: %v", it.ID, err)
				}
			}
			if got, _ := q.Claim(ctx, "B", later.Add(time.Hour), lease, 10); len(got) != 0 {
				t.Errorf("removed items came back: %q", ids(got))
			}
			// Full: the oldest goes.
			for i, id := range []string{"d", "e", "f"} {
				d, err := q.Add(ctx, item(later.Add(time.Duration(i)*time.Millisecond), id), 2)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[int]string{0: "", 1: "", 2: "d"}[i]; ids(d) != want {
					t.Errorf("adding %s dropped %q, want %q", id, ids(d), want)
				}
			}
		})
	}
}

// TestOutboxSealedAtRest: what an outbox keeps on disk or in Redis shows
// neither the body nor the delivery id (either may name a visit), and a
// store opened under another key claims nothing it cannot open.
func TestOutboxSealedAtRest(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			open := k.open(t)
			st := open()
			q := st.Queue("visit-alert:cardiology")
			it := item(time.Now(), "visit-4f1c9e-arrival")
			it.Body = []byte(`{"visit_id":"visit-4f1c9e","subject":"patient-7731"}`)
			if _, err := q.Add(context.Background(), it, 10); err != nil {
				t.Fatal(err)
			}
			var raw []byte
			switch s := st.(type) {
			case *boltStore:
				raw, _ = os.ReadFile(s.db.Path())
			case *redisStore:
				vals, err := s.rdb.HGetAll(context.Background(), RedisPrefix+"visit-alert:cardiology:items").Result()
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range vals {
					raw = append(raw, k+v...)
				}
			}
			if len(raw) == 0 {
				t.Fatal("nothing stored")
			}
			for _, secret := range []string{"visit-4f1c9e", "patient-7731"} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("%q is readable at rest", secret)
				}
			}
			if s, ok := st.(*redisStore); ok {
				other := &redisStore{rdb: s.rdb, conn: s.conn, s: mustSealer(t, bytes.Repeat([]byte{8}, 32))}
				if got, _ := other.Queue("visit-alert:cardiology").Claim(context.Background(), "X", time.Now().Add(time.Minute), time.Minute, 10); len(got) != 0 {
					t.Error("an item opened under another key")
				}
			}
			st.Close()
		})
	}
}

func mustSealer(t *testing.T, key []byte) *sealer {
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
