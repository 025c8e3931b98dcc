package webhook

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// receiver is a loopback webhook receiver that records the delivery id
// of every request and answers with what answer says (200 by default).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	ids    []string
	answer atomic.Value // func(n int) int: the status of the n-th request (1-based)
	seen   chan string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{seen: make(chan string, 64)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.ids = append(rc.ids, r.Header.Get(DeliveryHeader))
		n := len(rc.ids)
		rc.mu.Unlock()
		rc.seen <- r.Header.Get(DeliveryHeader)
		code := http.StatusOK
		if f, ok := rc.answer.Load().(func(int) int); ok {
			code = f(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

func (rc *receiver) wait(t *testing.T, what string) string {
	t.Helper()
	select {
	case id := <-rc.seen:
		return id
	case <-time.After(15 * time.Second):
		t.Fatalf("the receiver never got %s", what)
	}
	return ""
}

// startSender starts a sender of queue "test" on st with fast retries,
// its ends on the returned channel.
func startSender(t *testing.T, st Store, url string, tune func(*Options)) (*Sender, chan end) {
	t.Helper()
	o := Options{URL: url, Timeout: 500 * time.Millisecond, Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Lease: 1500 * time.Millisecond, Poll: 50 * time.Millisecond, Outbox: st.Queue("test")}
	if tune != nil {
		tune(&o)
	}
	s, ch := newSender(t, o)
	s.Start()
	return s, ch
}

func waitEnd(t *testing.T, ch chan end) end {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(15 * time.Second):
		t.Fatal("the delivery never ended")
	}
	return end{}
}

// TestRegression_WebhookDeliveryLostAtStop: a delivery still pending when
// the sender stops is not lost, whatever it was doing — waiting out a
// backoff, or with an attempt under way when its process was killed —
// nor when the receiver is down for longer than the old in-memory retry
// window (4 attempts): the sender started again on the same store (the
// node's file, or Redis) delivers it, with the same delivery id, and its
// end is reported once, as delivered.
func TestRegression_WebhookDeliveryLostAtStop(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name+"/stop during backoff", func(t *testing.T) {
			open := k.open(t)
			rc := newReceiver(t)
			var up atomic.Bool
			rc.answer.Store(func(int) int {
				if up.Load() {
					return http.StatusOK
				}
				return http.StatusServiceUnavailable
			})
			st := open()
			s1, ends1 := startSender(t, st, rc.srv.URL, func(o *Options) { o.Backoff, o.MaxBackoff = 2*time.Second, 2*time.Second })
			s1.Send("visit.waiting", "v1.1", []byte(`{}`))
			first := rc.wait(t, "the first attempt")
			time.Sleep(100 * time.Millisecond)
			s1.Close() // waiting 2 s for its retry
			st.Close()
			if len(ends1) != 0 {
				t.Fatalf("the stopped sender ended the delivery: %+v", <-ends1)
			}
			up.Store(true)
			st2 := open()
			defer st2.Close()
			_, ends2 := startSender(t, st2, rc.srv.URL, func(o *Options) { o.Lease = time.Second })
			if id := rc.wait(t, "the delivery after the restart"); id != first || id != "v1.1" {
				t.Errorf("delivery id %q after the restart, %q before", id, first)
			}
			if e := waitEnd(t, ends2); e.outcome != Delivered || e.attempts != 2 {
				t.Errorf("ended %+v, want delivered on the second attempt", e)
			}
		})
		t.Run(k.name+"/process killed during an attempt", func(t *testing.T) {
			open := k.open(t)
			rc := newReceiver(t)
			release := make(chan struct{})
			rc.answer.Store(func(n int) int {
				if n == 1 {
					<-release // the attempt is under way when the sender's process dies
					return http.StatusOK
				}
				return http.StatusOK
			})
			defer close(release)
			st := open()
			storeEnv := ""
			switch s := st.(type) {
			case *boltStore:
				storeEnv = "bbolt=" + s.db.Path()
			case *redisStore:
				storeEnv = "redis=" + s.conn.Addr + "=" + s.conn.Username + "=" + s.conn.Password
			}
			st.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSenderProcess$")
			cmd.Env = append(os.Environ(), "WEBHOOK_HELPER_STORE="+storeEnv, "WEBHOOK_HELPER_URL="+rc.srv.URL)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			first := rc.wait(t, "the attempt of the sender's process")
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			st2 := open()
			defer st2.Close()
			_, ends := startSender(t, st2, rc.srv.URL, nil)
			if id := rc.wait(t, "the delivery after the kill"); id != first || id != "helper.1" {
				t.Errorf("delivery id %q after the kill, %q before", id, first)
			}
			if e := waitEnd(t, ends); e.outcome != Delivered {
				t.Errorf("ended %+v, want delivered", e)
			}
		})
		t.Run(k.name+"/receiver down longer than the old retry window", func(t *testing.T) {
			open := k.open(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // nobody listens
			url := "http://" + addr + "/"
			st := open()
			s1, _ := startSender(t, st, url, nil)
			s1.Send("visit.waiting", "v3.1", []byte(`{}`))
			time.Sleep(time.Second) // about 8 attempts refused
			s1.Close()
			st.Close()
			st2 := open()
			defer st2.Close()
			_, ends := startSender(t, st2, url, nil)
			time.Sleep(700 * time.Millisecond) // refused on, after the restart
			rc := newReceiver(t)
			rc.srv.Close()
			l2, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("the port was taken meanwhile: %v", err)
			}
			up := httptest.NewUnstartedServer(rc.srv.Config.Handler)
			up.Listener.Close()
			up.Listener = l2
			up.Start()
			defer up.Close()
			if id := rc.wait(t, "the delivery once up"); id != "v3.1" {
				t.Errorf("delivery id %q", id)
			}
			if e := waitEnd(t, ends); e.outcome != Delivered || e.attempts <= 4 {
				t.Errorf("ended %+v, want delivered after more than 4 attempts", e)
			}
		})
	}
}

// TestHelperSenderProcess is the sender's process of the kill test: it
// opens the store of WEBHOOK_HELPER_STORE, sends one delivery to
// WEBHOOK_HELPER_URL and waits to be killed.
func TestHelperSenderProcess(t *testing.T) {
	spec := os.Getenv("WEBHOOK_HELPER_STORE")
	if spec == "" {
		t.Skip("run by TestRegression_WebhookDeliveryLostAtStop")
	}
	var st Store
	var err error
	if p, ok := strings.CutPrefix(spec, "bbolt="); ok {
		st, err = OpenBolt(p, testKey)
	} else if r, ok := strings.CutPrefix(spec, "redis="); ok {
		f := strings.SplitN(r, "=", 3)
		st, err = OpenRedis(redisconn.Conn{Addr: f[0], Username: f[1], Password: f[2]}, testKey)
	}
	if err != nil || st == nil {
		fmt.Fprintln(os.Stderr, "helper store:", err)
		os.Exit(2)
	}
	s, _ := startSender(t, st, os.Getenv("WEBHOOK_HELPER_URL"), func(o *Options) { o.Timeout, o.Lease = 3*time.Second, 4*time.Second })
	s.Send("visit.waiting", "helper.1", []byte(`{}`))
	time.Sleep(time.Minute)
}

// TestRegression_WebhookOneSenderAtATime: two nodes' senders on one
// Redis share a queue; while one holds a delivery (its attempt slow) the
// other does not attempt it, so each delivery reaches the receiver once.
func TestRegression_WebhookOneSenderAtATime(t *testing.T) {
	r := redistest.Start(t)
	openNode := func() Store {
		st, err := OpenRedis(redisconn.Conn{Addr: r.Addr, Password: r.Password}, testKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	rc := newReceiver(t)
	rc.answer.Store(func(int) int { time.Sleep(300 * time.Millisecond); return http.StatusOK })
	by := map[string]int{}
	tune := func(name string) func(*Options) {
		return func(o *Options) {
			// An attempt never times out here (a timed-out attempt that
			// reached the receiver is rightly sent again).
			o.Holder, o.Poll, o.Timeout, o.Lease, o.InFlight = name, 10*time.Millisecond, 5*time.Second, 10*time.Second, 4
		}
	}
	a, endsA := startSender(t, openNode(), rc.srv.URL, tune("node-a"))
	_, endsB := startSender(t, openNode(), rc.srv.URL, tune("node-b"))
	const n = 16
	for i := range n {
		a.Send("visit.waiting", fmt.Sprintf("d%02d", i), []byte(`{}`))
	}
	for range n {
		select {
		case e := <-endsA:
			by["node-a"]++
			if e.outcome != Delivered {
				t.Errorf("ended %+v", e)
			}
		case e := <-endsB:
			by["node-b"]++
			if e.outcome != Delivered {
				t.Errorf("ended %+v", e)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("only %v of %d ended", by, n)
		}
	}
	time.Sleep(500 * time.Millisecond) // a second copy would arrive now
	seen := map[string]int{}
	for _, id := range rc.got() {
		seen[id]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d deliveries reached the receiver, want %d", len(seen), n)
	}
	if by["node-a"] == 0 || by["node-b"] == 0 {
		t.Logf("one node delivered everything: %v", by)
	}
}

// TestRegression_WebhookOutboxBounded: a durable outbox stays bounded —
// a delivery still failing past MaxAge ends as expired (its cause naming
// the last failure), and one more than MaxPending drops the oldest, each
// end reported with its delivery id.
func TestRegression_WebhookOutboxBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	never := "http://" + ln.Addr().String() + "/"
	ln.Close()
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			st := k.open(t)()
			defer st.Close()
			type ended struct{ id, outcome, cause string }
			ch := make(chan ended, 8)
			o := Options{URL: never, Timeout: 200 * time.Millisecond, Backoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
				MaxAge: 600 * time.Millisecond, MaxPending: 2, Poll: 20 * time.Millisecond, Outbox: st.Queue("bounded"),
				OnEnd: func(d Delivery, outcome, cause string, _ int) { ch <- ended{d.ID, outcome, cause} }}
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, id := range []string{"old", "mid", "new"} {
				s.Send("visit.waiting", id, []byte(`{}`))
				time.Sleep(30 * time.Millisecond)
			}
			want := map[string]string{"old": Dropped, "mid": Expired, "new": Expired}
			for range 3 {
				select {
				case e := <-ch:
					if want[e.id] != e.outcome {
						t.Errorf("%s ended %s (%s), want %s", e.id, e.outcome, e.cause, want[e.id])
					}
					if e.outcome == Expired && !strings.Contains(e.cause, "error") {
						t.Errorf("expired cause %q does not name the last failure", e.cause)
					}
					delete(want, e.id)
				case <-time.After(10 * time.Second):
					t.Fatalf("still pending: %v", want)
				}
			}
		})
	}
}
