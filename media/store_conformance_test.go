package media

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// storeNodes returns two handles on one empty visit store, as two nodes
// see it: the same store twice for the embedded store (one node), two
// stores on one Redis for Redis.
type storeNodes func(t *testing.T) (a, b visitStore)

// logic is a Service with only what the transitions (addWaiting, apply,
// mayManage) read: the configuration and the clock. Its after-functions
// are never run.
func logic(maxWaiting int) *Service {
	return &Service{cfg: config.Visits{MaxWaiting: maxWaiting}.Defaults(), now: time.Now, rooms: map[string]map[string]*peer{}}
}

var ownerA = &scope.Identity{Issuer: "https://staff-idp", Subject: "dr-a", Roles: []string{"clinician"}}

// newVisit is an open visit of owner with the owner admitted as host.
func newVisit(owner *scope.Identity, cap int) *visit {
	now := time.Now().UTC().Truncate(time.Second)
	return &visit{
		ID: newID(), Title: "Follow-up for Jane Roe", OwnerIss: owner.Issuer, OwnerSub: owner.Subject, Cap: cap,
		Created: now, InviteExpires: now.Add(time.Hour),
		Participants: []*participant{{ID: newID(), Iss: owner.Issuer, Sub: owner.Subject, Name: "Dr. A",
			Role: roleHost, State: stateAdmitted, Joined: now, Decided: now}},
	}
}

func patient(i int) *scope.Identity {
	return &scope.Identity{Issuer: "https://patient-idp", Subject: fmt.Sprintf("p-%d", i), Claims: map[string]any{"name": fmt.Sprintf("Patient %d", i)}}
}

// race runs f(i, store) on n goroutines, alternating between the nodes,
// released together.
func race(n int, a, b visitStore, f func(i int, st visitStore)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i, st)
		}()
	}
	close(start)
	wg.Wait()
}

func reason(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.reason
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// tally counts err as a success (nil) or as the expected refusal, and
// fails the test on anything else.
func tally(t *testing.T, err error, refusal string, ok, refused *atomic.Int32) {
	switch reason(err) {
	case "":
		ok.Add(1)
	case refusal:
		refused.Add(1)
	default:
		t.Errorf("unexpected outcome: %v", err)
	}
}

// runVisitStoreConformance is the contract of visitStore; every
// implementation runs it.
func runVisitStoreConformance(t *testing.T, nodes storeNodes) {
	ctx := context.Background()
	big := quota{open: 1000, perOwner: 1000}

	t.Run("unknown", func(t *testing.T) {
		a, _ := nodes(t)
		if _, err := a.get(ctx, newID()); !errors.Is(err, errVisitNotFound) {
			t.Errorf("get = %v, want errVisitNotFound", err)
		}
		if _, err := a.update(ctx, newID(), func(*visit) error { return nil }); !errors.Is(err, errVisitNotFound) {
			t.Errorf("update = %v, want errVisitNotFound", err)
		}
		if err := a.delete(ctx, newID()); err != nil {
			t.Errorf("delete of an unknown visit = %v", err)
		}
	})

	t.Run("round trip on the other node", func(t *testing.T) {
		a, b := nodes(t)
		v := newVisit(ownerA, 2)
		v.Scheduled = v.Created.Add(time.Hour)
		v.Participants[0].FP = []string{"sha-256 AA:BB"}
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		got, err := b.get(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, v)
		}
		got.Title = "changed"
		if again, _ := a.get(ctx, v.ID); again.Title != v.Title {
			t.Error("get returned shared state")
		}
		if err := b.create(ctx, v, big); !errors.Is(err, errVisitExists) {
			t.Errorf("second create of one id = %v, want errVisitExists", err)
		}
	})

	t.Run("update writes, refuses and skips", func(t *testing.T) {
		a, b := nodes(t)
		v := newVisit(ownerA, 2)
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		if _, err := b.update(ctx, v.ID, func(v *visit) error { v.Title = "written"; return nil }); err != nil {
			t.Fatal(err)
		}
		refusal := fail(http.StatusConflict, "no", "no")
		seen, err := a.update(ctx, v.ID, func(v *visit) error { v.Title = "refused"; return refusal })
		if err != refusal || seen == nil {
			t.Errorf("a refusing update = %v, %v; want the refusal and the visit", seen, err)
		}
		got, err := a.update(ctx, v.ID, func(v *visit) error { v.Title = "skipped"; return errNoChange })
		if err != nil || got == nil {
			t.Errorf("errNoChange update = %v, %v; want the visit and nil", got, err)
		}
		if got, _ := a.get(ctx, v.ID); got.Title != "written" {
			t.Errorf("title = %q, want the written one only", got.Title)
		}
		if _, err := a.update(ctx, v.ID, func(v *visit) error { v.ID = newID(); return nil }); err == nil {
			t.Error("an update changed the visit id")
		}
	})

	t.Run("quotas are taken at create and released by ending", func(t *testing.T) {
		a, b := nodes(t)
		q := quota{open: 3, perOwner: 2}
		ownerB := &scope.Identity{Issuer: ownerA.Issuer, Subject: "dr-b"}
		va, vb := newVisit(ownerA, 2), newVisit(ownerA, 2)
		for _, v := range []*visit{va, vb} {
			if err := a.create(ctx, v, q); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.create(ctx, newVisit(ownerA, 2), q); !errors.Is(err, errMaxVisitsPerOwner) {
			t.Errorf("third of one owner = %v, want errMaxVisitsPerOwner", err)
		}
		if err := b.create(ctx, newVisit(ownerB, 2), q); err != nil {
			t.Fatal(err)
		}
		if err := a.create(ctx, newVisit(&scope.Identity{Issuer: ownerA.Issuer, Subject: "dr-c"}, 2), q); !errors.Is(err, errMaxVisits) {
			t.Errorf("past max open = %v, want errMaxVisits", err)
		}
		owned, err := b.owned(ctx, ownerA.Issuer, ownerA.Subject)
		if err != nil || len(owned) != 2 {
			t.Fatalf("owned = %d visits, %v; want 2", len(owned), err)
		}
		if _, err := b.update(ctx, va.ID, func(v *visit) error { v.Ended, v.EndReason = time.Now(), "ended"; return nil }); err != nil {
			t.Fatal(err)
		}
		owned, _ = a.owned(ctx, ownerA.Issuer, ownerA.Subject)
		if len(owned) != 1 || owned[0].ID != vb.ID {
			t.Errorf("owned after ending one = %d visits, want only the open one", len(owned))
		}
		if err := a.create(ctx, newVisit(ownerA, 2), q); err != nil {
			t.Errorf("create after ending one = %v, want the released quota", err)
		}
		// A later update of an ended visit does not release it again.
		if _, err := a.update(ctx, va.ID, func(v *visit) error { v.Title = "x"; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := b.create(ctx, newVisit(ownerB, 2), q); !errors.Is(err, errMaxVisits) {
			t.Errorf("create past max open after updating an ended visit = %v, want errMaxVisits", err)
		}
		all, err := a.all(ctx)
		if err != nil || len(all) != 4 {
			t.Errorf("all = %d visits, %v; want 4 (ended included)", len(all), err)
		}
	})

	t.Run("delete releases the record and the indexes", func(t *testing.T) {
		a, b := nodes(t)
		q := quota{open: 1, perOwner: 1}
		v := newVisit(ownerA, 2)
		if err := a.create(ctx, v, q); err != nil {
			t.Fatal(err)
		}
		if err := b.delete(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.get(ctx, v.ID); !errors.Is(err, errVisitNotFound) {
			t.Errorf("get after delete = %v", err)
		}
		if err := a.create(ctx, newVisit(ownerA, 2), q); err != nil {
			t.Errorf("create after delete = %v, want the quota back", err)
		}
	})

	t.Run("race: one place per identity", func(t *testing.T) {
		a, b := nodes(t)
		s := logic(10)
		v := newVisit(ownerA, 2)
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		pat := patient(1)
		var added atomic.Int32
		var failures atomic.Int32
		race(50, a, b, func(_ int, st visitStore) {
			var fresh bool
			_, err := st.update(ctx, v.ID, func(v *visit) error {
				fresh = false
				if v.byIdentity(pat) != nil {
					return errNoChange
				}
				var p *participant
				fresh = true
				return s.addWaiting(v, pat, time.Now(), &p)
			})
			if err != nil {
				failures.Add(1)
				t.Errorf("join: %v", err)
			}
			if fresh {
				added.Add(1)
			}
		})
		got, _ := a.get(ctx, v.ID)
		if n := len(got.Participants); n != 2 || added.Load() != 1 {
			t.Errorf("50 joins of one identity: %d participants, %d joins added a place; want 2 and 1", n, added.Load())
		}
	})

	t.Run("race: ending happens once", func(t *testing.T) {
		a, b := nodes(t)
		q := quota{open: 1, perOwner: 1}
		v := newVisit(ownerA, 2)
		if err := a.create(ctx, v, q); err != nil {
			t.Fatal(err)
		}
		var won atomic.Int32
		race(50, a, b, func(i int, st visitStore) {
			var mine bool
			_, err := st.update(ctx, v.ID, func(v *visit) error {
				mine = false
				if !v.active() {
					return errNoChange
				}
				mine = true
				v.Ended, v.EndReason = time.Now(), fmt.Sprintf("by-%d", i)
				return nil
			})
			if err != nil {
				t.Errorf("end: %v", err)
			}
			if mine {
				won.Add(1)
			}
		})
		if won.Load() != 1 {
			t.Errorf("%d of 50 ends won, want exactly 1", won.Load())
		}
		// The quota was released once: one create fits, the next does not.
		if err := a.create(ctx, newVisit(ownerA, 2), q); err != nil {
			t.Errorf("create after the end = %v", err)
		}
		if err := b.create(ctx, newVisit(ownerA, 2), q); !errors.Is(err, errMaxVisits) {
			t.Errorf("second create = %v, want errMaxVisits", err)
		}
	})

	t.Run("race: admissions stop at the cap", func(t *testing.T) {
		a, b := nodes(t)
		const n, capacity = 30, 4
		s := logic(n)
		v := newVisit(ownerA, capacity)
		for i := range n {
			var p *participant
			if err := s.addWaiting(v, patient(i), time.Now(), &p); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		var ok, full atomic.Int32
		race(n, a, b, func(i int, st visitStore) {
			pid := v.Participants[1+i].ID
			_, err := st.update(ctx, v.ID, func(v *visit) error {
				if err := s.mayManage(v, ownerA); err != nil {
					return err
				}
				var after func()
				return s.apply(v, pid, "admit", &after)
			})
			tally(t, err, "full", &ok, &full)
		})
		got, _ := b.get(ctx, v.ID)
		if ok.Load() != capacity-1 || full.Load() != n-capacity+1 || got.count(stateAdmitted) != capacity {
			t.Errorf("%d admits: %d admitted, %d full, %d stored admitted; want %d, %d, %d",
				n, ok.Load(), full.Load(), got.count(stateAdmitted), capacity-1, n-capacity+1, capacity)
		}
	})

	t.Run("race: the waiting room stops at its bound", func(t *testing.T) {
		a, b := nodes(t)
		const n, bound = 40, 10
		s := logic(bound)
		v := newVisit(ownerA, 6)
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		var ok, refused atomic.Int32
		race(n, a, b, func(i int, st visitStore) {
			_, err := st.update(ctx, v.ID, func(v *visit) error {
				var p *participant
				return s.addWaiting(v, patient(i), time.Now(), &p)
			})
			tally(t, err, "waiting-room-full", &ok, &refused)
		})
		got, _ := a.get(ctx, v.ID)
		if ok.Load() != bound || refused.Load() != n-bound || got.count(stateWaiting) != bound {
			t.Errorf("%d joins: %d waiting, %d refused, %d stored waiting; want %d, %d, %d",
				n, ok.Load(), refused.Load(), got.count(stateWaiting), bound, n-bound, bound)
		}
	})

	t.Run("race: a guest link lets one person in", func(t *testing.T) {
		a, b := nodes(t)
		const n = 24
		s := logic(n)
		v := newVisit(ownerA, 6)
		now := time.Now()
		link := &guestLink{ID: newID(), Label: labelInterpreter, Created: now, Expires: now.Add(time.Hour)}
		v.GuestLinks = []*guestLink{link}
		if err := a.create(ctx, v, big); err != nil {
			t.Fatal(err)
		}
		var ok, used atomic.Int32
		race(n, a, b, func(i int, st visitStore) {
			_, err := st.update(ctx, v.ID, func(v *visit) error {
				var p *participant
				return s.redeemIn(v, patient(i), link.ID, "", now, &p)
			})
			tally(t, err, "guest-link-used", &ok, &used)
		})
		got, _ := b.get(ctx, v.ID)
		var guests []*participant
		for _, p := range got.Participants {
			if p.Label == labelInterpreter {
				guests = append(guests, p)
			}
		}
		if ok.Load() != 1 || used.Load() != n-1 || len(guests) != 1 || got.GuestLinks[0].Participant != guests[0].ID || got.GuestLinks[0].Used.IsZero() {
			t.Errorf("%d redemptions of one link: %d in, %d refused as used, %d interpreters stored (link %+v); want 1, %d, 1 named by the link",
				n, ok.Load(), used.Load(), len(guests), got.GuestLinks[0], n-1)
		}
	})

	t.Run("race: quotas", func(t *testing.T) {
		a, b := nodes(t)
		q := quota{open: 7, perOwner: 3}
		var mine, others atomic.Int32
		race(60, a, b, func(i int, st visitStore) {
			owner := ownerA
			if i%3 != 0 {
				owner = &scope.Identity{Issuer: ownerA.Issuer, Subject: fmt.Sprintf("dr-%d", i)}
			}
			err := st.create(ctx, newVisit(owner, 2), q)
			switch {
			case err == nil && owner == ownerA:
				mine.Add(1)
			case err == nil:
				others.Add(1)
			case errors.Is(err, errMaxVisits), errors.Is(err, errMaxVisitsPerOwner):
			default:
				t.Errorf("create: %v", err)
			}
		})
		all, _ := b.all(ctx)
		if mine.Load() > 3 || mine.Load()+others.Load() != 7 || len(all) != 7 {
			t.Errorf("60 creates: %d of one owner (cap 3), %d in all, %d stored; want ≤3, 7, 7",
				mine.Load(), mine.Load()+others.Load(), len(all))
		}
		owned, _ := a.owned(ctx, ownerA.Issuer, ownerA.Subject)
		if len(owned) != int(mine.Load()) {
			t.Errorf("owned = %d, want %d", len(owned), mine.Load())
		}
	})
}

func TestBoltVisitStoreConformance(t *testing.T) {
	t.Parallel()
	runVisitStoreConformance(t, func(t *testing.T) (visitStore, visitStore) {
		st, err := openBoltStore(t.TempDir(), testStoreKey, discardLog)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.close() })
		return st, st
	})
}

var testStoreKey = []byte("0123456789abcdef0123456789abcdef")

// TestBoltVisitStoreReopen: the open and owner indexes are rebuilt when
// visits.db is opened (also one written before they existed), so quotas
// and listings hold across a restart.
func TestBoltVisitStoreReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := openBoltStore(dir, testStoreKey, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	q := quota{open: 10, perOwner: 2}
	a, b := newVisit(ownerA, 2), newVisit(ownerA, 2)
	for _, v := range []*visit{a, b} {
		if err := st.create(ctx, v, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.update(ctx, a.ID, func(v *visit) error { v.Ended = time.Now(); return nil }); err != nil {
		t.Fatal(err)
	}
	// As a visits.db from before the indexes: drop them.
	if err := st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketOpen); err != nil {
			return err
		}
		return tx.DeleteBucket(bucketOwners)
	}); err != nil {
		t.Fatal(err)
	}
	_ = st.close()
	st, err = openBoltStore(dir, testStoreKey, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	owned, _ := st.owned(ctx, ownerA.Issuer, ownerA.Subject)
	if got := ids(owned); len(got) != 1 || got[0] != b.ID {
		t.Errorf("owned after reopening = %v, want only the open visit %s", got, b.ID)
	}
	if err := st.create(ctx, newVisit(ownerA, 2), q); err != nil {
		t.Errorf("second open visit after reopening: %v", err)
	}
	if err := st.create(ctx, newVisit(ownerA, 2), q); !errors.Is(err, errMaxVisitsPerOwner) {
		t.Errorf("third open visit after reopening: %v, want errMaxVisitsPerOwner", err)
	}
}

// ids lists the visits' ids, sorted.
func ids(vs []*visit) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	sort.Strings(out)
	return out
}
