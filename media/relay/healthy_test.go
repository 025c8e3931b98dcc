package relay

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// TestHealthy: the relay is healthy from Start until Close, and not once
// a listening socket fails under it.
func TestHealthy(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Config: config.Relay{
		Enabled: true, Listen: "127.0.0.1:0", UDPSockets: 1,
		RelayAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Secrets:        []string{"0123456789abcdef-test-secret"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err == nil || err.Error() != "relay: not started" {
		t.Errorf("before Start: %v", err)
	}

	f := newFixture(t, nil)
	if err := f.s.Healthy(); err != nil {
		t.Fatalf("serving: %v", err)
	}
	// The UDP socket fails (closed under the relay, not by Close).
	_ = f.s.guards[0].PacketConn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for f.s.Healthy() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.s.Healthy(); err == nil || !strings.Contains(err.Error(), "udp socket 0 stopped receiving") {
		t.Errorf("after the socket failed: %v", err)
	}
	_ = f.s.Close()
	if err := f.s.Healthy(); err == nil || err.Error() != "relay: closed" {
		t.Errorf("after Close: %v", err)
	}
}
