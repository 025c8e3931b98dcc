package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// tlsRelayReloadConfig is a configuration with the relay and visits on
// (see runWithDevOP for %[1]…%[7]): %[8]s are the local TLS names, %[9]d
// the relay's per-participant allocation quota.
var tlsRelayReloadConfig = tlsRelayNode.String()

// tlsRelayNode is tlsRelayReloadConfig before it is written out.
var tlsRelayNode = runConfig{
	Names:     "%[8]s",
	Relay:     true,
	Visits:    true,
	RelayMore: "  max_allocations_per_participant: %[9]d\n",
}

// TestRegression_ReloadAppliesTLSAndRelayLimits: a reload serves a TLS
// host name it adds, from the next handshake, and stops serving one it
// removes; a relay quota it changes holds for the next allocation. A
// reload whose TLS part cannot be served changes nothing, not even the
// relay limits in the same file; listener addresses are still refused by
// name.
func TestRegression_ReloadAppliesTLSAndRelayLimits(t *testing.T) {
	t.Parallel()
	d, rewrite := startWithDevOP(t, tlsRelayReloadConfig, "[localhost]", 1)
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(filepath.Join(d.dataDir, "ca", "root.pem"))
	if err != nil || !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("local CA root: %v", err)
	}
	handshake := func(name string) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
			fmt.Sprintf("127.0.0.1:%d", d.port), &tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return err
		}
		return conn.Close()
	}

	// A clinician's visit and its relay credential.
	clin := newBrowser(t, d)
	clin.accept = "text/html" // the lobby sends a page to the sign-in
	if resp, body := clin.signIn(d.Base(), "/.telegate/visits/lobby", "clinician@demo.test", "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %.300s", resp.StatusCode, body)
	}
	visit := createVisit(t, clin, d.Base())
	resp, body := clin.do(clin.noRedirect(), mustRequest(t, "GET", d.Base()+"/.telegate/visits/"+visit+"/ice", "application/json"))
	var ice struct {
		ICEServers []struct {
			Username   string `json:"username"`
			Credential string `json:"credential"`
		} `json:"iceServers"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ice) != nil || len(ice.ICEServers) == 0 {
		t.Fatalf("ice: %d %.300s", resp.StatusCode, body)
	}
	cred := ice.ICEServers[0]
	relayAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.relay}
	allocate := func() error {
		t.Helper()
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		c := turnwire.NewUDP(pc, relayAddr, cred.Username, cred.Credential)
		c.Timeout = 2 * time.Second
		_, err = c.Allocate(turnwire.UDP)
		return err
	}
	reload := func(wantGen int) {
		t.Helper()
		if st, body := reloadNow(t, d); st != http.StatusOK || !strings.Contains(body, fmt.Sprintf("generation %d\n", wantGen)) {
			t.Fatalf("reload: %d %q, want generation %d", st, body, wantGen)
		}
	}

	// Generation 1: one allocation per participant; no app.localhost.
	if err := allocate(); err != nil {
		t.Fatalf("first allocation: %v", err)
	}
	if err := allocate(); turnwire.Code(err) != 486 {
		t.Fatalf("second allocation under a quota of 1: %v, want 486", err)
	}
	if err := handshake("app.localhost"); err == nil {
		t.Fatal("app.localhost served before it was configured")
	}

	// A TLS host the local CA may not vouch for, with a raised quota in
	// the same file: refused whole, the quota stays 1.
	rewrite(tlsRelayReloadConfig, "[localhost, portal.hospital.example]", 3)
	st, refusal := reloadNow(t, d)
	t.Logf("refused: %s", refusal)
	if st != http.StatusConflict || !strings.Contains(refusal, "portal.hospital.example") {
		t.Fatalf("reload with a name the local CA may not certify: %d %q, want 409 naming it", st, refusal)
	}
	if err := allocate(); turnwire.Code(err) != 486 {
		t.Fatalf("allocation after a refused reload: %v, want 486 (quota 1 kept)", err)
	}

	// Generation 2: app.localhost added, quota 3.
	rewrite(tlsRelayReloadConfig, "[localhost, app.localhost]", 3)
	reload(2)
	if err := handshake("app.localhost"); err != nil {
		t.Fatalf("app.localhost after it was added: %v", err)
	}
	if err := allocate(); err != nil {
		t.Fatalf("second allocation after the quota was raised to 3: %v", err)
	}

	// Generation 3: app.localhost removed again.
	rewrite(tlsRelayReloadConfig, "[localhost]", 3)
	reload(3)
	if err := handshake("app.localhost"); err == nil {
		t.Fatal("app.localhost still served after it was removed")
	}
	if err := handshake("localhost"); err != nil {
		t.Fatalf("localhost after app.localhost was removed: %v", err)
	}

	// What cannot change is refused naming the field; generation 3 stays.
	good, err := os.ReadFile(configPath(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, field string }{
		{fmt.Sprintf("listen: 127.0.0.1:%d", d.relay), fmt.Sprintf("listen: 127.0.0.1:%d", d.relay+1), "relay.listen"},
		{fmt.Sprintf("listen: 127.0.0.1:%d", d.port), fmt.Sprintf("listen: 127.0.0.1:%d", d.port+1), "server.listen"},
		{"relay_addresses: [127.0.0.1]", "relay_addresses: [127.0.0.2]", "relay.relay_addresses"},
	} {
		bad := strings.Replace(string(good), tc.from, tc.to, 1)
		if bad == string(good) {
			t.Fatalf("%s: %q not in the configuration", tc.field, tc.from)
		}
		writeConfig(t, d, bad)
		st, body := reloadNow(t, d)
		if st != http.StatusConflict || !strings.Contains(body, tc.field+":") && !strings.Contains(body, tc.field+" ") {
			t.Errorf("%s: reload %d %q, want 409 naming %s", tc.field, st, body, tc.field)
		}
		if r := readyz(t, d); !strings.Contains(r, `"generation":3,`) {
			t.Errorf("%s: readyz %q, want generation 3 still running", tc.field, r)
		}
	}
}
