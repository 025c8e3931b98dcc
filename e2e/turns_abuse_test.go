package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// TestRegression_TLSSlotHoldingThroughTheNode: through the real node,
// unauthenticated TURN-over-TLS connections on the HTTPS port from one
// source (127.0.0.50) — one that sends a Binding and idles, one that is
// challenged and idles, one with a wrong password — more of them than the
// relay has slots (relay.max_tls_conns 8), while an admitted patient
// connects with its turns: URL: the patient's Allocate succeeds at once,
// every holder is closed by relay.tls_allocate_timeout, and the patient's
// connection still serves afterwards.
func TestRegression_TLSSlotHoldingThroughTheNode(t *testing.T) {
	const allocDeadline = 2 * time.Second
	cfg := strings.Replace(tlsRelayReloadConfig, "  max_allocations_per_participant: %[9]d\n",
		"  max_allocations_per_participant: %[9]d\n  max_tls_conns: 8\n  tls_allocate_timeout: 2s\n  tls_port: %[2]d\n", 1)
	if cfg == tlsRelayReloadConfig {
		t.Fatal("the relay block of tlsRelayReloadConfig changed")
	}
	d, _ := startWithDevOP(t, cfg, "[localhost]", 4)
	a := &attackDemo{demo: d}
	for _, u := range []struct {
		b    **browser
		user string
	}{{&a.clinician, "clinician@demo.test"}, {&a.patient, "patient@demo.test"}} {
		b := newBrowser(t, d)
		b.accept = "text/html"
		// The lobby is the clinician's; the patient, signed in, is told so.
		if resp, body := b.signIn(d.Base(), "/.telegate/visits/lobby", u.user, "demo"); b.cookie(d.Base(), sessionCookie) == nil {
			t.Fatalf("sign-in as %s: %d %.300s", u.user, resp.StatusCode, body)
		}
		b.accept = "application/json"
		*u.b = b
	}
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
