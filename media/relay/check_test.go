package relay

import (
	"errors"
	"testing"
	"time"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// TestRegression_ConnectionCheckReachesOnlyItself: a connection check's
// two allocations relay to each other, and to nothing else — not to a
// call's participant, nor a call's participant to them; nobody else can
// enter the check; when it ends its allocations close and its credentials
// are refused; checks are capped.
func TestRegression_ConnectionCheckReachesOnlyItself(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	caller, callee, end, err := f.s.StartCheck(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a := f.clientWith(t, caller.Username, caller.Password)
	ra, err := a.Allocate(turnwire.UDP)
	if err != nil {
		t.Fatalf("the check's caller: %v", err)
	}
	b := f.clientWith(t, callee.Username, callee.Password)
	rb, err := b.Allocate(turnwire.UDP)
	if err != nil {
		t.Fatalf("the check's callee: %v", err)
	}
	if err := a.CreatePermission(rb); err != nil {
		t.Fatalf("caller → callee: %v", err)
	}
	if err := b.CreatePermission(ra); err != nil {
		t.Fatalf("callee → caller: %v", err)
	}
	if err := a.Send(rb, []byte("probe")); err != nil {
		t.Fatal(err)
	}
	if got := readData(b, 300*time.Millisecond); len(got) != 1 || string(got[0]) != "probe" {
		t.Fatalf("the callee got %q", got)
	}

	// A call's participant and the check do not reach each other.
	alice, rAlice := f.allocate(t, "visit1", "alice")
	if err := a.CreatePermission(rAlice); turnwire.Code(err) != 403 {
		t.Errorf("check → a call's participant: %v, want 403", err)
	}
	if err := alice.CreatePermission(ra); turnwire.Code(err) != 403 {
		t.Errorf("a call's participant → the check: %v, want 403", err)
	}
	if err := alice.ChannelBind(0x4001, rb); turnwire.Code(err) != 403 {
		t.Errorf("a call's participant binds a channel to the check: %v, want 403", err)
	}

	// Nobody else is in the check: a third id of its visit is not admitted.
	u, _ := ParseUsername(caller.Username)
	if _, err := f.client(t, u.Visit, "c").Allocate(turnwire.UDP); turnwire.Code(err) != 403 {
		t.Errorf("a third participant of the check: %v, want 403", err)
	}
	// Its id can never be a call's (media ids have no "-").
	if len(u.Visit) != 32 || u.Visit[:6] != "check-" {
		t.Errorf("check visit id %q", u.Visit)
	}

	// The end closes its allocations and refuses its credentials.
	end()
	end() // twice is harmless
	deadline := time.Now().Add(time.Second)
	for turnwire.Code(a.Refresh(time.Minute)) != 437 {
		if time.Now().After(deadline) {
			t.Fatal("the check's allocation outlived its end by 1 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := f.clientWith(t, callee.Username, callee.Password).Allocate(turnwire.UDP); turnwire.Code(err) != 403 {
		t.Errorf("a credential of an ended check: %v, want 403", err)
	}
	// The call's own allocation is untouched.
	if err := alice.Refresh(time.Minute); err != nil {
		t.Errorf("a call's allocation after a check ended: %v", err)
	}

	// Capped.
	var ends []func()
	for range MaxChecks {
		_, _, e, err := f.s.StartCheck(time.Minute)
		if err != nil {
			t.Fatalf("check %d: %v", len(ends), err)
		}
		ends = append(ends, e)
	}
	if _, _, _, err := f.s.StartCheck(time.Minute); !errors.Is(err, ErrTooManyChecks) {
		t.Errorf("check past the cap: %v", err)
	}
	for _, e := range ends {
		e()
	}
	if _, _, e, err := f.s.StartCheck(time.Second); err != nil {
		t.Errorf("a check after the others ended: %v", err)
	} else {
		// It ends by itself.
		time.Sleep(1500 * time.Millisecond)
		f.s.mu.Lock()
		n := f.s.checks
		f.s.mu.Unlock()
		if n != 0 {
			t.Errorf("%d checks still running after their time", n)
		}
		e()
	}
}
