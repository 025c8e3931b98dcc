package relay

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// coturn is a turnserver the test started on 127.0.0.1: UDP only, TURN
// REST secret, relay ports in a private free range, killed at cleanup.
type coturn struct {
	addr             *net.UDPAddr
	minPort, maxPort int

	mu   sync.Mutex
	logs bytes.Buffer
}

func (c *coturn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.Write(p)
}

func (c *coturn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// freeUDPRange returns n consecutive UDP ports on 127.0.0.1 that are free
// now, in 40000–59999.
func freeUDPRange(t *testing.T, n int) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		r, _ := rand.Int(rand.Reader, big.NewInt(20000-int64(n)))
		lo := 40000 + int(r.Int64())
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			pc, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				continue
			}
			_ = pc.Close()
		}
		if ok {
			return lo
		}
	}
	t.Fatal("no free UDP port range on 127.0.0.1")
	return 0
}

// startCoturn starts /usr/bin/turnserver with secret. It skips only when
// the binary is absent and CI is unset; in CI a missing binary fails.
func startCoturn(t *testing.T, secret string) *coturn {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/turnserver"); serr == nil {
			bin = "/usr/bin/turnserver"
		} else if os.Getenv("CI") == "" {
			t.Skip("coturn (turnserver) is not installed (apt-get install coturn, or run scripts/test); set CI to make this a failure")
		} else {
			t.Fatal("coturn (turnserver) is not installed; scripts/test installs it")
		}
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 3; attempt++ {
		c := &coturn{}
		port := freeUDPRange(t, 1)
		c.minPort = freeUDPRange(t, 16)
		c.maxPort = c.minPort + 15
		c.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		cmd := exec.Command(bin,
			"--use-auth-secret", "--static-auth-secret="+secret, "--realm=telegate",
			"--listening-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port),
			"--relay-ip=127.0.0.1", "--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "-n",
			"--min-port="+strconv.Itoa(c.minPort), "--max-port="+strconv.Itoa(c.maxPort),
			"--userdb="+filepath.Join(dir, "turndb"), "--pidfile="+filepath.Join(dir, "turnserver.pid"),
			"--log-file=stdout", "--simple-log", "--no-software-attribute")
		cmd.Stdout, cmd.Stderr = c, c
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if coturnReady(t, c.addr, exited) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return c
		}
		_ = cmd.Process.Kill()
		<-exited
		t.Logf("turnserver did not answer on %v:\n%s", c.addr, c.String())
	}
	t.Fatal("turnserver did not start")
	return nil
}

// coturnReady waits until a STUN Binding request (RFC 8489 §3) is
// answered.
func coturnReady(t *testing.T, addr *net.UDPAddr, exited <-chan struct{}) bool {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cl := turnwire.NewUDP(pc, addr, "", "")
	cl.Timeout = 300 * time.Millisecond
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			return false
		default:
		}
		if _, err := cl.Raw(stun.TransactionID, stun.BindingRequest); err == nil {
			return true
		}
	}
	return false
}

// TestCoturnAcceptsRelayCredentials: docs/architecture.md "Relay credentials follow
// the TURN REST convention … so an external coturn fleet can serve the
// same credentials". A credential minted by Server.Credential allocates on
// coturn 4.6 configured with the same secret; anything else is refused
// with 401 (RFC 8489 §9.2.4).
func TestCoturnAcceptsRelayCredentials(t *testing.T) {
	t.Parallel()
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	secret := hex.EncodeToString(b)
	ct := startCoturn(t, secret)
	tests := []struct {
		name   string
		secret string                        // the relay's secret
		edit   func(c Credential) Credential // what the browser sends
		shift  time.Duration                 // relay clock offset when minting
		want   int                           // 0: allocation succeeds
	}{
		{name: "same secret", secret: secret, want: 0},
		{name: "wrong secret", secret: secret + "x", want: 401},
		{name: "expired", secret: secret, shift: -2 * time.Hour, want: 401},
		{name: "username of another participant", secret: secret, edit: func(c Credential) Credential {
			u, _ := ParseUsername(c.Username)
			c.Username = FormatUsername(u.Expires, u.Visit, "patient-9")
			return c
		}, want: 401},
		{name: "password of another username", secret: secret, edit: func(c Credential) Credential {
			c.Password = Password([]byte(secret), c.Username+"0")
			return c
		}, want: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(c *config.Relay) {
				c.Secrets = []string{tc.secret}
				c.CredentialTTL = time.Hour
			})
			f.clock.shift(tc.shift)
			cred := f.s.Credential("visit-1", "clinician-7")
			if cred.Username == "" {
				t.Fatal("no credential minted")
			}
			if tc.edit != nil {
				cred = tc.edit(cred)
			}
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			cl := turnwire.NewUDP(pc, ct.addr, cred.Username, cred.Password)
			relayed, err := cl.Allocate(turnwire.UDP)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("Allocate on coturn: %v\ncoturn log:\n%s", err, ct.String())
				}
				if relayed.Addr() != netip.MustParseAddr("127.0.0.1") || int(relayed.Port()) < ct.minPort || int(relayed.Port()) > ct.maxPort {
					t.Errorf("relayed address %v outside 127.0.0.1:%d-%d", relayed, ct.minPort, ct.maxPort)
				}
				if cl.Realm != "telegate" {
					t.Errorf("realm %q", cl.Realm)
				}
				if err := cl.Refresh(0); err != nil {
					t.Errorf("deleting the allocation: %v", err)
				}
				return
			}
			var e *turnwire.ErrorResponse
			if !errors.As(err, &e) || e.Code != tc.want {
				t.Fatalf("Allocate = %v, %v; want error %d", relayed, err, tc.want)
			}
		})
	}
}
