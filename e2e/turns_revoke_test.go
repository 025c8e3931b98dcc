package e2e

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/e2e/webclient"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// visitPost POSTs body (JSON, nil for none) to the visits API path at base as b,
// with the headers a browser's script sends, and returns the decoded
// answer; any answer other than 2xx fails the test.
func visitPost(t *testing.T, b *browser, base, path string, body any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := b.c.PostJSON(base, path, body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// admittedVisit creates a visit as the clinician, lets the patient in and
// returns its id and the patient's participant id.
func admittedVisit(t *testing.T, a *attackDemo) (id, pid string) {
	t.Helper()
	id, pids := visitWith(t, a, a.patient)
	return id, pids[0]
}

// visitWith creates a visit as the clinician for the clinician and
// guests, lets each guest in through the invite and returns the visit's
// id and the guests' participant ids.
func visitWith(t *testing.T, a *attackDemo, guests ...*browser) (id string, pids []string) {
	t.Helper()
	m := visitPost(t, a.clinician, a.Base(), "/.telegate/visits", map[string]any{"title": "visit", "participants": 1 + len(guests)})
	id, _ = m["id"].(string)
	u, err := url.Parse(m["invite"].(map[string]any)["url"].(string))
	if err != nil || id == "" {
		t.Fatalf("create visit: %v %v", m, err)
	}
	for _, g := range guests {
		j := visitPost(t, g, a.Base(), "/.telegate/visits/join", map[string]any{"invite": u.Query().Get("invite")})
		pid, _ := j["self"].(map[string]any)["id"].(string)
		visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/admit", map[string]any{"participant": pid})
		pids = append(pids, pid)
	}
	return id, pids
}

// turnsAllocation fetches b's ICE configuration for visit id and makes a
// TURN allocation over its turns: URL (RFC 7065) as a browser would
// (dialTurns, then an authenticated Allocate, RFC 8656 §7.2). It returns
// the connection.
func turnsAllocation(t *testing.T, a *attackDemo, b *browser, id string) *tls.Conn {
	t.Helper()
	_, _, c := relayAllocation(t, a, b, id, "turns:", &net.Dialer{Timeout: 5 * time.Second})
	return c
}

// relayAllocation is turnsAllocation over the first URL with scheme
// ("turn:" over UDP from 127.0.0.1, "turns:" over TLS dialled with nd),
// returning the client and its relayed address too (the connection is nil
// over UDP).
func relayAllocation(t *testing.T, a *attackDemo, b *browser, id, scheme string, nd *net.Dialer) (*turnwire.Client, netip.AddrPort, *tls.Conn) {
	t.Helper()
	servers, err := b.c.ICE(a.Base(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		for _, raw := range s.URLs {
			if !strings.HasPrefix(raw, scheme) {
				continue
			}
			var (
				c    *turnwire.Client
				conn *tls.Conn
			)
			if scheme == "turns:" {
				if conn, err = dialTurnsWith(t, a.demo, raw, nd); err != nil {
					t.Fatalf("%s: %v", raw, err)
				}
				t.Cleanup(func() { conn.Close() })
				c = turnwire.NewStream(conn, s.Username, s.Credential)
			} else {
				_, addr, err := webclient.TURNAddr(raw)
				if err != nil {
					t.Fatal(err)
				}
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pc.Close() })
				ua, _ := net.ResolveUDPAddr("udp4", addr)
				c = turnwire.NewUDP(pc, ua, s.Username, s.Credential)
			}
			relayed, err := c.Allocate(turnwire.UDP)
			if err != nil {
				t.Fatalf("Allocate over %s: %v", raw, err)
			}
			return c, relayed, conn
		}
	}
	t.Fatalf("no %s URL among %v", scheme, servers)
	return nil, netip.AddrPort{}, nil
}

// TestRegression_RemovedParticipantTLSConn: through the real node, a
// participant's TURN-over-TLS connection on the HTTPS port, holding an
// allocation and never closing by itself, is closed at the TCP level
// within 1 s of the decision that revokes it: the clinician removes the
// participant, the clinician ends the visit, the participant signs out.
func TestRegression_RemovedParticipantTLSConn(t *testing.T) {
	a := startAttackDemo(t)
	base := a.Base()
	for _, tc := range []struct {
		name   string
		decide func(id, pid string)
	}{
		{"participant removed", func(id, pid string) {
			visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/remove", map[string]any{"participant": pid})
		}},
		{"visit ended", func(id, _ string) {
			visitPost(t, a.clinician, a.Base(), "/.telegate/visits/"+id+"/end", nil)
		}},
		{"signed out", func(string, string) {
			if resp, body := a.patient.post(base+"/.telegate/logout", url.Values{}, http.Header{"Origin": {base}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-out: %d %.300s", resp.StatusCode, body)
			}
		}},
	} {
		id, pid := admittedVisit(t, a)
		c := turnsAllocation(t, a, a.patient, id)
		start := time.Now()
		tc.decide(id, pid)
		_ = c.SetReadDeadline(start.Add(time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: the TURN-over-TLS connection is still open 1 s after the decision", tc.name)
		} else {
			t.Logf("%s: TURN-over-TLS connection ended %v after the decision", tc.name, time.Since(start).Round(time.Millisecond))
		}
	}
}
