package media

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/telegate/telegate/config"
)

// iceCred fetches the ICE configuration as user and returns its username and
// credential.
func (h *harness) iceCred(user, vid string) (string, string) {
	h.t.Helper()
	st, m := h.do(user, "GET", "/.telegate/visits/"+vid+"/ice", nil)
	if st != http.StatusOK {
		h.t.Fatalf("ICE as %s: %d %v", user, st, m)
	}
	s := m["iceServers"].([]any)[0].(map[string]any)
	return s["username"].(string), s["credential"].(string)
}

// allocate tries a TURN allocation (RFC 8656 §7.2) on the real relay with
// the credential and reports the error, if any.
func (h *harness) allocate(username, password string) error {
	h.t.Helper()
	end, err := h.allocation(username, password)
	if err != nil {
		return err
	}
	end()
	return nil
}

// allocation makes a TURN allocation on the real relay with the
// credential; end releases it.
func (h *harness) allocation(username, password string) (end func(), err error) {
	h.t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: h.relay.addr.String(),
		TURNServerAddr: h.relay.addr.String(),
		Username:       username,
		Password:       password,
		Conn:           pc,
		RTO:            200 * time.Millisecond,
	})
	if err != nil {
		pc.Close()
		h.t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		c.Close()
		pc.Close()
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	relayed, err := c.AllocateWithContext(ctx)
	if err != nil {
		c.Close()
		pc.Close()
		return nil, err
	}
	return func() { relayed.Close(); c.Close(); pc.Close() }, nil
}

// The relay credentials handed out by the ICE endpoint follow the visit's
// decisions on the real relay: they allocate while the participant is
// admitted and stop the moment it is removed or the visit ends.
func TestRelayCredentialsFollowVisitDecisions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{DefaultParticipants: 3})
	vid, _, pid := h.admitted()
	u, p := h.iceCred("pat", vid)
	if !strings.HasSuffix(u, ":"+vid+":"+pid) {
		t.Fatalf("username %q not bound to the participant", u)
	}
	if err := h.allocate(u, p); err != nil {
		t.Fatalf("admitted participant cannot allocate: %v", err)
	}
	if err := h.allocate(u, p+"x"); err == nil {
		t.Fatal("wrong password allocated")
	}
	hu, hp := h.iceCred("dr", vid)

	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/remove", map[string]any{"participant": pid}); st != 204 {
		t.Fatal("remove")
	}
	if err := h.allocate(u, p); err == nil {
		t.Fatal("removed participant's credential still allocates")
	}
	if err := h.allocate(hu, hp); err != nil {
		t.Fatalf("host cannot allocate after removing a guest: %v", err)
	}
	if st, _ := h.do("dr", "POST", "/.telegate/visits/"+vid+"/end", nil); st != 204 {
		t.Fatal("end")
	}
	if err := h.allocate(hu, hp); err == nil {
		t.Fatal("credential survived the end of the visit")
	}
}

func TestRelayRevokedOnSignOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config.Visits{})
	vid, _, _ := h.admitted()
	u, p := h.iceCred("pat", vid)
	h.svc.SessionEnded("sess-pat", users["pat"])
	if err := h.allocate(u, p); err == nil {
		t.Fatal("credential allocates after sign-out")
	}
	// Signed in again: a fresh fetch re-admits.
	u, p = h.iceCred("pat", vid)
	if err := h.allocate(u, p); err != nil {
		t.Fatalf("after signing in again: %v", err)
	}
}
