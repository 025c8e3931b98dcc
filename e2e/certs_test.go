package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/internal/keyscan"
	"github.com/telegate/telegate/internal/pebbletest"
)

// acmeName is the public name two nodes obtain one certificate for.
const acmeName = "clinic.telegate.test"

// acmeCluster is two nodes sharing one Redis (sessions, visits and the
// certificate storage, tls.storage "redis" with its default key derived
// from the shared session key) and one pebble, each with an acme host for
// acmeName beside its own local names. Pebble's DNS answers acmeName with
// the nodes' addresses in turn (127.0.0.1, then 127.0.0.2, …), as a
// round-robin DNS name of a load balancer would, so a validation may reach
// the node that did not order; both nodes' http-01 listeners are on one
// port, each on its own address. Both start at the same moment. drop
// takes node i (from 0) out of the DNS name, as a load balancer takes out
// a node that stopped answering.
func acmeCluster(t *testing.T, hold func(*http.Request) bool) (c *cluster, pebble *pebbletest.CA, drop func(i int)) {
	t.Helper()
	const n = 2
	httpPort := freePort(t)
	var turn atomic.Int64
	var dropped [n]atomic.Bool
	pebble = pebbletest.Start(t, pebbletest.Options{
		HTTPPort: httpPort,
		TLSPort:  freePort(t), // tls-alpn-01 is not enabled: never used
		Resolve: func(string) net.IP {
			for range n {
				if i := turn.Add(1) % n; !dropped[i].Load() {
					return net.IPv4(127, 0, 0, byte(1+i))
				}
			}
			return net.IPv4(127, 0, 0, 1)
		},
		Hold: hold,
	})
	c = startClusterWith(t, n, clusterOptions{
		httpPort: httpPort,
		together: true,
		tls: func(i int, shared string) string {
			root := filepath.Join(shared, "pebble-root.pem")
			if err := os.WriteFile(root, pebble.ServerRootPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf(`tls:
  storage: redis
  hosts:
    - names: [node%[1]d.test, relay%[1]d.test]
      mode: local
    - names: [%[2]s]
      mode: acme
  acme:
    ca: %[3]s
    ca_root_file: %[4]s
    challenges: [http-01]`, i, acmeName, pebble.Directory, root)
		},
	})
	return c, pebble, func(i int) { dropped[i].Store(true) }
}

// servedLeaf waits up to within for d to serve acmeName over TLS on its
// public listener with a certificate from pebble, verified against
// pebble's roots, and returns the leaf.
func servedLeaf(t *testing.T, d *demo, pebble *pebbletest.CA, within time.Duration) *x509.Certificate {
	t.Helper()
	addr := net.JoinHostPort(d.ip, strconv.Itoa(d.port))
	deadline := time.Now().Add(within)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: acmeName, RootCAs: pebble.Roots})
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve %s with a certificate from pebble within %v: %v\n%s", d.name, acmeName, within, err, d.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serialOf is a certificate's serial as pebble writes it (hex).
func serialOf(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// TestTwoNodesOneCertificateOrder: two telegate processes started at the
// same moment, sharing one redis-server and one pebble, obtain one
// certificate for the name they both serve: pebble receives one new order
// and one finalisation (and its records show the issuing account placed
// one order), both nodes serve that certificate (same serial) over TLS on
// their own listeners, and no Redis key or value and no file under either
// node's data directory holds a private key in clear (PEM, DER or the
// base64 of DER).
func TestTwoNodesOneCertificateOrder(t *testing.T) {
	c, pebble, _ := acmeCluster(t, nil)
	leaves := make([]*x509.Certificate, len(c.nodes))
	for i, d := range c.nodes {
		leaves[i] = servedLeaf(t, d, pebble, 60*time.Second)
	}
	time.Sleep(2 * time.Second) // an order placed late would show now
	for i, l := range leaves {
		if err := l.VerifyHostname(acmeName); err != nil {
			t.Errorf("node %d: %v", i+1, err)
		}
		if !bytes.Equal(l.Raw, leaves[0].Raw) {
			t.Errorf("node %d serves serial %s, node 1 serial %s: not one certificate", i+1, serialOf(l), serialOf(leaves[0]))
		}
	}
	if n := pebble.Orders.Load(); n != 1 {
		t.Errorf("pebble received %d new orders, want 1", n)
	}
	if n := pebble.Finalized.Load(); n != 1 {
		t.Errorf("pebble received %d finalisations, want 1", n)
	}
	acct, orders, ok := pebble.OrderOf(serialOf(leaves[0]))
	if !ok {
		t.Fatalf("pebble has no order for the served serial %s", serialOf(leaves[0]))
	}
	if orders != 1 {
		t.Errorf("pebble's records: account %s placed %d orders, want 1", acct, orders)
	}
	t.Logf("one order, serial %s served by both nodes", serialOf(leaves[0]))

	checkScannerFindsKeys(t)
	keys, files := 0, 0
	for k, vals := range c.rdb.Values(t) {
		keys++
		for _, v := range vals {
			if found := keyscan.Find([]byte(v)); len(found) > 0 {
				t.Errorf("redis key %s holds a private key in clear (%s)", k, strings.Join(found, ", "))
			}
		}
	}
	for _, d := range c.nodes {
		files += scanDataDir(t, d.dataDir)
	}
	t.Logf("scanned %d Redis keys and %d files", keys, files)
	if certs := certificateKeys(t, c); certs < 3 {
		t.Errorf("only %d certificate storage keys in Redis: the scan saw no stored certificate", certs)
	}
}

// TestRegression_CertificateLockOfKilledNode: the node holding the
// certificate lock is killed (SIGKILL) half way through its order — its
// new order request is held at pebble's door, unanswered, and never
// placed. Its lock is left behind in Redis (certmagic had asked for a
// lease of minutes on it, which once kept it that long); the
// other node waits for it, takes the order over once the lock expired
// (30 s after its holder's last refresh, RedisStorageOptions.LockTTL) and
// serves the certificate; the killed node, started again, serves the same
// certificate without a new order.
func TestRegression_CertificateLockOfKilledNode(t *testing.T) {
	const lockTTL = 30 * time.Second
	var (
		once    sync.Once
		held    = make(chan string, 1) // the held order's client address
		release = make(chan struct{})
	)
	hold := func(r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/order-plz" {
			return true
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return true
		}
		// Read the body, so that the server notices the client is gone.
		_, _ = io.Copy(io.Discard, r.Body)
		held <- r.RemoteAddr
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return false
	}
	c, pebble, drop := acmeCluster(t, hold)
	t.Cleanup(func() { close(release) }) // before pebble closes
	var from string
	select {
	case from = <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("no node placed an order within 60 s")
	}
	holder := -1
	for deadline := time.Now().Add(5 * time.Second); holder < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, d := range c.nodes {
			if ownsConnection(t, d.cmd.Process.Pid, from) {
				holder = i
			}
		}
	}
	if holder < 0 {
		t.Fatalf("no node owns the connection of the order from %s", from)
	}
	other := 1 - holder
	drop(holder)
	if err := c.nodes[holder].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-c.nodes[holder].done
	locks := 0
	for k := range c.rdb.Values(t) {
		if strings.Contains(k, "lock:") {
			locks++
		}
	}
	if locks == 0 {
		t.Fatal("the killed node left no lock in Redis: the test shows nothing")
	}
	leaf := servedLeaf(t, c.nodes[other], pebble, lockTTL+30*time.Second)
	took := time.Since(killed)
	t.Logf("node %d killed half way through its order; node %d serves serial %s %v later (lock TTL %v)",
		holder+1, other+1, serialOf(leaf), took.Round(100*time.Millisecond), lockTTL)
	if took > lockTTL+15*time.Second {
		t.Errorf("the other node took %v to take the order over, past the lock's expiry (%v)", took, lockTTL)
	}
	// The killed node's order was held at pebble's door and never
	// placed: the one taken over is the only one.
	if n := pebble.Orders.Load(); n != 1 {
		t.Errorf("pebble received %d new orders, want 1 (the one taken over)", n)
	}
	if n := pebble.Finalized.Load(); n != 1 {
		t.Errorf("pebble received %d finalisations, want 1", n)
	}

	d := c.nodes[holder]
	d.start("run", "-c", filepath.Join(filepath.Dir(d.dataDir), "telegate.yaml"))
	if again := servedLeaf(t, d, pebble, 30*time.Second); !bytes.Equal(again.Raw, leaf.Raw) {
		t.Errorf("the restarted node serves serial %s, not the stored %s", serialOf(again), serialOf(leaf))
	}
	time.Sleep(time.Second)
	if n := pebble.Orders.Load(); n != 1 {
		t.Errorf("after the restart pebble received %d new orders, want still 1", n)
	}
}

// ownsConnection reports whether process pid has the TCP socket whose
// local address is addr (IPv4 host:port, as a server sees its client).
func ownsConnection(t *testing.T, pid int, addr string) bool {
	t.Helper()
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.IP.To4()
	// /proc/net/tcp writes an IPv4 address as its 32 bits in host (little
	// endian) order, then the port, both in hex.
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port)
	// The table is the network namespace's, not the process's, and an
	// earlier connection from the same port may still be listed in
	// TIME_WAIT with no socket (inode 0): every live socket bound to the
	// address is a candidate.
	sockets := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 9 && f[1] == local && f[9] != "0" {
			sockets["socket:["+f[9]+"]"] = true
		}
	}
	if len(sockets) == 0 {
		return false
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && sockets[l] {
			return true
		}
	}
	return false
}

// certificateKeys counts the Redis keys of certificate storage.
func certificateKeys(t *testing.T, c *cluster) int {
	n := 0
	for k := range c.rdb.Values(t) {
		if strings.Contains(k, "certificates/") {
			n++
		}
	}
	return n
}

// scanDataDir fails t for every file below dir holding a private key in
// clear; it returns how many files it read.
func scanDataDir(t *testing.T, dir string) int {
	t.Helper()
	n, err := keyscan.Files(dir, func(p string, b []byte) {
		if found := keyscan.Find(b); len(found) > 0 {
			t.Errorf("%s holds a private key in clear (%s)", p, strings.Join(found, ", "))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkScannerFindsKeys proves keyscan.Find can fail: keys of each kind
// in each form it looks for, alone and inside other bytes, are found.
func checkScannerFindsKeys(t *testing.T) {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sec1, _ := x509.MarshalECPrivateKey(ec)
	p8, _ := x509.MarshalPKCS8PrivateKey(ec)
	p1 := x509.MarshalPKCS1PrivateKey(rk)
	asJSON, _ := json.Marshal(map[string][]byte{"key": p8})
	for name, b := range map[string][]byte{
		"PKCS #8 PEM":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		"SEC 1 PEM":         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"PKCS #1 DER":       append(append([]byte("prefix"), p1...), "suffix"...),
		"SEC 1 DER":         append([]byte{0x30, 0x00, 0x01}, sec1...),
		"PKCS #8 in JSON":   asJSON,
		"PEM body alone":    []byte(strings.Join(strings.Split(string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: p8})), "\n")[1:4], "")),
		"raw base64 of DER": []byte(`{"k":"` + base64.RawURLEncoding.EncodeToString(sec1) + `"}`),
	} {
		if len(keyscan.Find(b)) == 0 {
			t.Fatalf("the scan misses a private key as %s: it cannot fail", name)
		}
	}
}
