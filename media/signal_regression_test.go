package media

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
)

// burstConfig allows a burst of 200 messages (the default, three times the
// send queue signaling once had) refilled in half a second.
var burstConfig = config.Visits{MessageRate: 400, MessageBurst: 200}

// refill is how long burstConfig takes to refill a whole burst, with a
// margin.
const refill = 600 * time.Millisecond

// readSeqs reads n forwarded candidates from c and fails unless they carry
// first, first+1, … in that order.
func readSeqs(t *testing.T, c *websocket.Conn, first, n int) {
	t.Helper()
	if err := seqsIn(c, first, n); err != nil {
		t.Fatal(err)
	}
}

// seqsIn reads n forwarded candidates from c (3 s each) and reports an
// error unless they carry first, first+1, … in that order.
func seqsIn(c *websocket.Conn, first, n int) error {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("message %d of %d: the socket closed: %w", i, n, err)
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("message %d of %d: %q", i, n, b)
		}
		if got := seqOf(m); got != first+i {
			return fmt.Errorf("message %d of %d: got %q seq %d, want seq %d", i, n, m.Type, got, first+i)
		}
	}
	return nil
}

// TestRegression_SignalingBurstStarvesOther: one participant's signaling
// messages, within its allowance, never close or starve the other's socket
// — the other receives every message in order; a sender past its
// allowance is the one closed (1008, "too many messages"); a recipient
// that does not read is closed (1013, "too slow") only once its queue,
// sized for the burst, overflows, and never the sender.
func TestRegression_SignalingBurstStarvesOther(t *testing.T) {
	t.Parallel()
	burst := burstConfig.MessageBurst

	t.Run("patient bursts at the allowance across refills", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, burstConfig)
		vid, host, _ := h.admitted()
		dr := h.mustDial("dr", vid)
		readType(t, dr, "welcome")
		pat := h.mustDial("pat", vid)
		readType(t, pat, "welcome")
		readType(t, dr, "peer-joined")
		for round := range 4 {
			for i := range burst {
				if err := writeMsg(pat, candidate(host, round*burst+i, 900)); err != nil {
					t.Fatalf("round %d, message %d: %v", round, i, err)
				}
			}
			readSeqs(t, dr, round*burst, burst)
			time.Sleep(refill)
		}
		stillOpen(t, "the clinician", dr)
		stillOpen(t, "the patient", pat)
	})

	t.Run("both burst at each other at once", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, burstConfig)
		vid, host, pid := h.admitted()
		dr := h.mustDial("dr", vid)
		readType(t, dr, "welcome")
		pat := h.mustDial("pat", vid)
		readType(t, pat, "welcome")
		readType(t, dr, "peer-joined")
		for round := range 2 {
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for _, s := range []struct {
				c  *websocket.Conn
				to string
			}{{pat, host}, {dr, pid}} {
				wg.Go(func() {
					for i := range burst {
						if err := writeMsg(s.c, candidate(s.to, round*burst+i, 900)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			var rg sync.WaitGroup
			for _, c := range []*websocket.Conn{dr, pat} {
				rg.Go(func() {
					if err := seqsIn(c, round*burst, burst); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			rg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			time.Sleep(refill)
		}
		stillOpen(t, "the clinician", dr)
		stillOpen(t, "the patient", pat)
	})

	t.Run("a recipient that pauses reading keeps its socket", func(t *testing.T) {
		t.Parallel()
		// Small TCP buffers: most of the burst waits in the clinician's
		// send queue.
		h := newHarnessSndbuf(t, burstConfig, 8192)
		vid, host, _ := h.admitted()
		dr := h.dialRaw("dr", vid, 8192)
		dr.readUntil("welcome", 3*time.Second)
		pat := h.mustDial("pat", vid)
		readType(t, pat, "welcome")
		dr.readUntil("peer-joined", 3*time.Second)
		for i := range burst {
			if err := writeMsg(pat, candidate(host, i, 1000)); err != nil {
				t.Fatal(err)
			}
		}
		// Longer than a message waits for room (sendWait): the queue
		// holds the whole burst, so nobody waits and nobody is closed.
		time.Sleep(sendWait + 500*time.Millisecond)
		for i := range burst {
			m, err := dr.msg(3 * time.Second)
			if err != nil {
				t.Fatalf("message %d of %d: %v", i, burst, err)
			}
			if seqOf(m) != i {
				t.Fatalf("message %d: got %q seq %d", i, m.Type, seqOf(m))
			}
		}
		stillOpen(t, "the patient", pat)
		if err := dr.send(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		dr.readUntil("pong", 3*time.Second)
	})

	t.Run("a sender past its allowance is the one closed", func(t *testing.T) {
		t.Parallel()
		// A slow refill: three bursts are past the allowance however
		// slowly a loaded node reads them (within 40 s), so the sender is
		// closed on every run, not only when the node reads faster than
		// burstConfig's rate.
		h := newHarness(t, config.Visits{MessageRate: 10, MessageBurst: burst})
		vid, host, _ := h.admitted()
		dr := h.mustDial("dr", vid)
		readType(t, dr, "welcome")
		pat := h.dialRaw("pat", vid, 0)
		pat.readUntil("welcome", 3*time.Second)
		readType(t, dr, "peer-joined")
		go func() {
			for i := range 3 * burst {
				if pat.send(candidate(host, i, 200)) != nil {
					return
				}
			}
		}()
		// The patient hears why, then the close frame, and (ignoring
		// it) loses its connection.
		if m := pat.readUntil("error", 5*time.Second); m.Error != "too many messages" {
			t.Fatalf("error %q", m.Error)
		}
		_, err := pat.msg(3 * time.Second)
		ce, ok := err.(errClosed)
		if !ok || ce.code != int(statusPolicy) || ce.reason != "too many messages" {
			t.Fatalf("after the error: %v, want close 1008 %q", err, "too many messages")
		}
		_, d := pat.gone(time.Second)
		t.Logf("the sender's TCP connection ended %v after its close frame", d.Round(time.Millisecond))
		// The clinician got the messages within the allowance, in order,
		// then the patient left; its own socket stays open.
		n := 0
		for {
			m, err := readMsg(t, dr)
			if err != nil {
				t.Fatalf("the clinician's socket closed: %v", err)
			}
			if m.Type == "peer-left" {
				break
			}
			if seqOf(m) != n {
				t.Fatalf("message %d: got %q seq %d", n, m.Type, seqOf(m))
			}
			n++
		}
		if n < burst || n >= 3*burst {
			t.Fatalf("the clinician got %d messages, want at least the burst (%d) and not all", n, burst)
		}
		stillOpen(t, "the clinician", dr)
	})

	t.Run("a recipient that stops reading is closed, not the sender", func(t *testing.T) {
		t.Parallel()
		// Small TCP buffers: the recipient's queue fills in the second
		// burst.
		h := newHarnessSndbuf(t, burstConfig, 8192)
		vid, host, _ := h.admitted()
		dr := h.dialRaw("dr", vid, 8192)
		dr.readUntil("welcome", 3*time.Second)
		pat := h.mustDial("pat", vid)
		readType(t, pat, "welcome")
		dr.readUntil("peer-joined", 3*time.Second)
		left := make(chan struct{})
		readErr := make(chan error, 1)
		go func() {
			for {
				_, b, err := pat.Read(context.Background())
				if err != nil {
					readErr <- err
					return
				}
				if strings.Contains(string(b), `"peer-left"`) {
					close(left)
				}
				if strings.Contains(string(b), `"pong"`) {
					readErr <- nil
					return
				}
			}
		}()
		start := time.Now()
	rounds:
		for round := range 10 {
			for i := range burst {
				if err := writeMsg(pat, candidate(host, round*burst+i, 1000)); err != nil {
					t.Fatalf("round %d: the sender's socket failed: %v", round, err)
				}
			}
			// Two refills between bursts: the sender stays at half its
			// allowance. The allowance is counted when the node reads,
			// and a loaded node that stalls reading for a refill time
			// reads two bursts sent a refill apart as one clump.
			select {
			case <-left:
				t.Logf("the recipient was closed in round %d, %v after the first", round, time.Since(start).Round(time.Millisecond))
				break rounds
			case <-time.After(2 * refill):
			}
		}
		select {
		case <-left:
		default:
			t.Fatal("a recipient that never reads was never closed")
		}
		if ce, d := dr.gone(5 * time.Second); ce.code != 0 && ce.code != int(websocket.StatusTryAgainLater) {
			t.Fatalf("the recipient's close frame: %v", ce)
		} else {
			t.Logf("the recipient's TCP connection ended (close frame %v) %v after it started reading again", ce, d.Round(time.Millisecond))
		}
		if err := writeMsg(pat, map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-readErr:
			if err != nil {
				t.Fatalf("the sender's socket was closed: %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the sender got no pong")
		}
	})
}
