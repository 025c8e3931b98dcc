package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// relayNodeConfig is tlsRelayReloadConfig with few TURN-over-TLS slots
// (8), a 2 s allocate deadline, and turns: URLs naming the HTTPS port.
var relayNodeConfig = strings.Replace(tlsRelayReloadConfig, "  max_allocations_per_participant: %[9]d\n",
	"  max_allocations_per_participant: %[9]d\n  max_tls_conns: 8\n  tls_allocate_timeout: 2s\n  tls_port: %[2]d\n", 1)

// startRelayNode runs the node with relayNodeConfig and signs the
// clinician, the patient and the admin in, each in a browser of their own.
func startRelayNode(t *testing.T) *attackDemo {
	t.Helper()
	if relayNodeConfig == tlsRelayReloadConfig {
		t.Fatal("the relay block of tlsRelayReloadConfig changed")
	}
	d, _ := startWithDevOP(t, relayNodeConfig, "[localhost]", 4)
	a := &attackDemo{demo: d}
	for _, u := range []struct {
		b    **browser
		user string
	}{{&a.clinician, "clinician@demo.test"}, {&a.patient, "patient@demo.test"}, {&a.admin, "admin@demo.test"}} {
		b := newBrowser(t, d)
		b.accept = "text/html"
		// The lobby is the clinician's; the others, signed in, are told so.
		if resp, body := b.signIn(d.Base(), "/.telegate/visits/lobby", u.user, "demo"); b.cookie(d.Base(), sessionCookie) == nil {
			t.Fatalf("sign-in as %s: %d %.300s", u.user, resp.StatusCode, body)
		}
		b.accept = "application/json"
		*u.b = b
	}
	return a
}

// TestRegression_TLSSlotHoldingThroughTheNode: through the real node,
// unauthenticated TURN-over-TLS connections on the HTTPS port from one
// source (127.0.0.50) — one that sends a Binding and idles, one that is
// challenged and idles, one with a wrong password — more of them than the
// relay has slots (relay.max_tls_conns 8), while an admitted patient
// connects with its turns: URL: the patient's Allocate succeeds at once,
// every holder is closed by relay.tls_allocate_timeout, and the patient's
// connection still serves afterwards.
func TestRegression_TLSSlotHoldingThroughTheNode(t *testing.T) {
	const allocDeadline = 2 * time.Second // relayNodeConfig
	a := startRelayNode(t)
	d := a.demo
	id, _ := admittedVisit(t, a)

	allocate := func(user, pass string) func(c *tls.Conn) error {
		return func(c *tls.Conn) error {
			if _, err := turnwire.NewStream(c, user, pass).Allocate(turnwire.UDP); turnwire.Code(err) != 401 {
				return fmt.Errorf("Allocate as %s: %v, want 401", user, err)
			}
			return nil
		}
	}
	holders := []struct {
		name string
		hold func(c *tls.Conn) error
	}{
		{"sends one Binding and idles", func(c *tls.Conn) error {
			_, err := c.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
			return err
		}},
		{"is challenged and idles", func(c *tls.Conn) error {
			_, err := c.Write(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP).Raw)
			return err
		}},
		{"has a wrong password", allocate("1999999999:"+id+":nobody", "not the password")},
	}
	type held struct {
		name string
		c    *tls.Conn
	}
	var conns []held
	start := time.Now()
	for i := range 12 {
		h := holders[i%len(holders)]
		c, err := tls.DialWithDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: attackerSource}, Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", d.port),
			&tls.Config{ServerName: "localhost", RootCAs: rootPool(t, d)})
		if err != nil {
			t.Fatalf("holder %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if err := h.hold(c); err != nil {
			t.Fatalf("holder that %s: %v", h.name, err)
		}
		conns = append(conns, held{h.name, c})
	}
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	pc := turnsAllocation(t, a, a.patient, id)
	if took := time.Since(t0); took > time.Second || time.Since(start) > allocDeadline {
		t.Fatalf("the patient's Allocate took %v with every slot held, %v after the holders came (allocate deadline %v)", took, time.Since(start), allocDeadline)
	}
	var wg sync.WaitGroup
	for _, h := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.c.SetReadDeadline(start.Add(allocDeadline + 2*time.Second))
			_, err := io.Copy(io.Discard, h.c)
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("a holder that %s is still open %v after it came (allocate deadline %v)", h.name, time.Since(start), allocDeadline)
			}
		}()
	}
	wg.Wait()
	// The patient's connection serves on: a Binding is answered.
	_ = pc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := pc.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw); err != nil {
		t.Fatalf("the patient's connection after the holders: %v", err)
	}
	buf := make([]byte, 512)
	if n, err := pc.Read(buf); err != nil || n < 20 || buf[0] != 1 || buf[1] != 1 {
		t.Fatalf("the patient's connection after the holders: no Binding success (%v)", err)
	}
}

// TestRegression_TLSStalledReaderThroughTheNode: through the real node, a
// participant (the admin, from 127.0.0.50) that stops reading its
// TURN-over-TLS connection on the HTTPS port while provoking answers — a
// burst of Binding requests, or of authenticated CreatePermission
// requests, every millisecond — never pauses the media between the other
// two (the clinician over UDP, the patient over TURN over TLS on the same
// port): no inter-arrival gap over 200 ms, while the stalled one loses its
// own answers (tls_send_queue).
func TestRegression_TLSStalledReaderThroughTheNode(t *testing.T) {
	a := startRelayNode(t)
	for _, tc := range turnwire.Provocations {
		t.Run(tc.Name, func(t *testing.T) {
			id, _ := visitWith(t, a, a.patient, a.admin)
			c, rc, _ := relayAllocation(t, a, a.clinician, id, "turn:", nil)
			p, rp, _ := relayAllocation(t, a, a.patient, id, "turns:", &net.Dialer{Timeout: 5 * time.Second})
			stuckDialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: attackerSource}, Timeout: 5 * time.Second,
				Control: func(_, _ string, rc syscall.RawConn) error {
					var serr error
					if err := rc.Control(func(fd uintptr) {
						serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
					}); err != nil {
						return err
					}
					return serr
				}}
			s, _, sconn := relayAllocation(t, a, a.admin, id, "turns:", stuckDialer)
			if err := c.ChannelBind(0x4000, rp); err != nil {
				t.Fatal(err)
			}
			if err := p.ChannelBind(0x4000, rc); err != nil {
				t.Fatal(err)
			}
			if err := s.CreatePermission(rc); err != nil {
				t.Fatal(err)
			}
			// From here on the stuck participant reads nothing.
			before := relayDrops(t, a.demo, "tls_send_queue")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Built once: the test's own CPU goes to measuring.
				var burst []byte
				for range 20 {
					burst = append(burst, tc.Build(s, rc)...)
				}
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					if _, err := sconn.Write(burst); err != nil {
						return
					}
				}
			}()
			// Measure while it is stalled: its answers are being dropped
			// (the counter is the node's, so counted from here).
			stalled := func() bool { return relayDrops(t, a.demo, "tls_send_queue") > before }
			for deadline := time.Now().Add(20 * time.Second); !stalled(); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					close(stop)
					wg.Wait()
					t.Fatal("the participant that did not read lost none of its own answers (tls_send_queue) in 20 s: it never stalled")
				}
			}
			st := turnwire.MeasurePair(c, p, turnwire.Pair{Channel: 0x4000, Packets: 2500})
			if worst := st.Pause(1); worst > 200*time.Millisecond {
				// A loaded machine stalls a process now and then; a relay
				// that waits for the stuck reader pauses every time.
				t.Logf("the media paused %v: measuring again, the stuck reader still stuck", worst)
				st = turnwire.MeasurePair(c, p, turnwire.Pair{Channel: 0x4000, Packets: 2500})
			}
			close(stop)
			wg.Wait()
			if st.Received < st.Sent/2 {
				t.Fatalf("%d of %d packets arrived", st.Received, st.Sent)
			}
			// The inter-arrival gap less the sender's own lateness (a
			// machine this loaded may not run it on time): a pause of
			// the relay shows whole, a late sender does not.
			if worst := st.Pause(1); worst > 200*time.Millisecond {
				t.Errorf("the media paused %v while another participant did not read (inter-arrival gap %v, p99 %v)", worst, st.Gap(1), st.Gap(0.99))
			}
			t.Logf("%d/%d packets, worst pause %v, inter-arrival max %v, p99 %v", st.Received, st.Sent, st.Pause(1), st.Gap(1), st.Gap(0.99))
		})
	}
}

// relayDrops is telegate_media_relay_dropped_datagrams_total{reason}
// on the node's /metrics.
func relayDrops(t *testing.T, d *demo, reason string) float64 {
	t.Helper()
	resp, err := http.Get(d.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^telegate_media_relay_dropped_datagrams_total\{reason="` + reason + `"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
