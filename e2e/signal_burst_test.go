package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// demoMessageBurst is the signaling allowance of the embedded default
// (visits.message_burst 200, refilled at visits.message_rate 20/s).
const (
	demoMessageBurst = 200
	demoMessageRate  = 20
)

// signalSocket opens b's signaling WebSocket of visit id through the node
// and returns it with its own participant id and the ids of the peers
// already there (from the welcome message).
func signalSocket(t *testing.T, a *attackDemo, b *browser, id string) (ws *websocket.Conn, self string, peers []string) {
	t.Helper()
	base := a.Base()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "https:", "wss:", 1)+"/.telegate/visits/"+id+"/signal", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rootPool(t, a.demo), NextProtos: []string{"http/1.1"}}}},
		HTTPHeader: http.Header{
			"Origin": {base},
			"Cookie": {sessionCookie + "=" + b.cookie(base, sessionCookie).Value},
		},
	})
	if err != nil {
		t.Fatalf("signaling socket: %v", err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	var w struct {
		Type  string `json:"type"`
		Self  string `json:"self"`
		Peers []struct {
			ID string `json:"id"`
		} `json:"peers"`
	}
	if _, m, err := ws.Read(ctx); err != nil || json.Unmarshal(m, &w) != nil || w.Type != "welcome" {
		t.Fatalf("first message: %q %v", m, err)
	}
	for _, p := range w.Peers {
		peers = append(peers, p.ID)
	}
	return ws, w.Self, peers
}

// burstCandidate is a signaling candidate for participant to carrying
// seq, padded to about 600 bytes (a real candidate with a long ufrag and
// extensions).
func burstCandidate(to string, seq int) []byte {
	c := fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.1 9 typ host generation 0 x %s", seq, strings.Repeat("a", 500))
	b, _ := json.Marshal(map[string]any{"type": "candidate", "to": to, "candidate": map[string]any{"candidate": c, "sdpMid": "0"}})
	return b
}

// sendBurst writes the candidates first … first+n-1 to participant to on
// ws as fast as the socket takes them.
func sendBurst(ws *websocket.Conn, to string, first, n int) error {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := ws.Write(ctx, websocket.MessageText, burstCandidate(to, first+i))
		cancel()
		if err != nil {
			return fmt.Errorf("message %d: %w", first+i, err)
		}
	}
	return nil
}

// receiveBurst reads from ws until it has the candidates first …
// first+n-1 in that order (other messages — presence, pongs — are
// skipped), or reports what stopped it.
func receiveBurst(ws *websocket.Conn, first, n int) error {
	want := first
	for want < first+n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, b, err := ws.Read(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("after %d of %d messages the socket ended: %w", want-first, n, err)
		}
		var m struct {
			Type      string `json:"type"`
			Candidate struct {
				Candidate string `json:"candidate"`
			} `json:"candidate"`
		}
		if json.Unmarshal(b, &m) != nil || m.Type != "candidate" {
			continue
		}
		var seq int
		if _, err := fmt.Sscanf(m.Candidate.Candidate, "candidate:%d ", &seq); err != nil || seq != want {
			return fmt.Errorf("got candidate %q, want seq %d", m.Candidate.Candidate[:min(40, len(m.Candidate.Candidate))], want)
		}
		want++
	}
	return nil
}

// answersPing fails unless ws, on the node, answers a ping with a pong:
// the socket is open at the application level.
func answersPing(t *testing.T, who string, ws *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("%s's socket was closed: %v", who, err)
		}
		if strings.Contains(string(b), `"pong"`) {
			return
		}
	}
}

// TestRegression_SignalingBurstThroughTheNode: through the real node (TLS,
// the gateway's connection handling and WebSocket gate, sign-in sessions)
// one participant's signaling burst at its allowance never closes or
// starves the other participant's socket, in several shapes: the patient
// bursts the whole allowance and then keeps sending at the refill rate;
// both burst at each other at once; and a patient past its allowance is
// the one closed (1008) while the clinician's socket stays open.
func TestRegression_SignalingBurstThroughTheNode(t *testing.T) {
	a := startAttackDemo(t)

	t.Run("patient bursts the allowance then sends at the refill rate", func(t *testing.T) {
		id, _ := admittedVisit(t, a)
		dr, host, _ := signalSocket(t, a, a.clinician, id)
		pat, _, _ := signalSocket(t, a, a.patient, id)
		errc := make(chan error, 1)
		go func() { errc <- sendBurst(pat, host, 0, demoMessageBurst) }()
		if err := receiveBurst(dr, 0, demoMessageBurst); err != nil {
			t.Fatalf("the clinician: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("the patient: %v", err)
		}
		// Then a second's refill, sent as it refills.
		next := demoMessageBurst
		for range 4 {
			time.Sleep(time.Second / 4)
			if err := sendBurst(pat, host, next, demoMessageRate/5); err != nil {
				t.Fatalf("the patient: %v", err)
			}
			if err := receiveBurst(dr, next, demoMessageRate/5); err != nil {
				t.Fatalf("the clinician: %v", err)
			}
			next += demoMessageRate / 5
		}
		answersPing(t, "the clinician", dr)
		answersPing(t, "the patient", pat)
	})

	t.Run("both burst at each other at once", func(t *testing.T) {
		id, pid := admittedVisit(t, a)
		dr, host, _ := signalSocket(t, a, a.clinician, id)
		pat, _, _ := signalSocket(t, a, a.patient, id)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for _, s := range []struct {
			who string
			ws  *websocket.Conn
			to  string
		}{{"the patient", pat, host}, {"the clinician", dr, pid}} {
			wg.Go(func() {
				if err := sendBurst(s.ws, s.to, 0, demoMessageBurst-10); err != nil {
					errs <- fmt.Errorf("%s sending: %w", s.who, err)
				}
			})
			wg.Go(func() {
				if err := receiveBurst(s.ws, 0, demoMessageBurst-10); err != nil {
					errs <- fmt.Errorf("%s receiving: %w", s.who, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		answersPing(t, "the clinician", dr)
		answersPing(t, "the patient", pat)
	})

	t.Run("a patient past the allowance is the one closed", func(t *testing.T) {
		id, _ := admittedVisit(t, a)
		dr, host, _ := signalSocket(t, a, a.clinician, id)
		pat, _, _ := signalSocket(t, a, a.patient, id)
		// Far past the allowance, faster than it refills: the node closes
		// the sender, whose writes then fail.
		_ = sendBurst(pat, host, 0, 3*demoMessageBurst)
		var ce websocket.CloseError
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _, err := pat.Read(ctx)
			cancel()
			if err == nil {
				continue
			}
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
				t.Fatalf("the patient's socket ended with %v, want close 1008", err)
			}
			break
		}
		// The clinician received what was within the allowance, in order,
		// and its socket stays open.
		if err := receiveBurst(dr, 0, demoMessageBurst/2); err != nil {
			t.Fatalf("the clinician: %v", err)
		}
		answersPing(t, "the clinician", dr)
	})
}
