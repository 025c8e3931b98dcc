package edgetls

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// TestReloadAddsAndRemovesLocalNames: a name added to a local host entry
// is served, verified by the same local root, from the return of Reload;
// a name removed is no longer served, while the others keep theirs.
func TestReloadAddsAndRemovesLocalNames(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	roots := rootPool(t, filepath.Join(cfg.DataDir, "ca", "root.pem"))
	hs := func(name string) error {
		_, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: name})
		return err
	}
	if err := hs("app.localhost"); err == nil {
		t.Fatal("app.localhost served before it was configured")
	}

	added := *cfg
	added.TLS.Hosts = []config.TLSHost{{Names: []string{"localhost", "app.localhost"}, Mode: ModeLocal}}
	if err := m.Reload(context.Background(), &added); err != nil {
		t.Fatalf("Reload adding app.localhost: %v", err)
	}
	for _, n := range []string{"localhost", "app.localhost"} {
		if err := hs(n); err != nil {
			t.Errorf("%s after the reload: %v", n, err)
		}
	}

	if err := m.Reload(context.Background(), cfg); err != nil {
		t.Fatalf("Reload removing app.localhost: %v", err)
	}
	if err := hs("app.localhost"); err == nil {
		t.Error("app.localhost still served after it was removed")
	}
	if err := hs("localhost"); err != nil {
		t.Errorf("localhost after the removal: %v", err)
	}
}

// TestReloadStartsLocalCAAndSwitchesModes: a reload can move a name from
// operator files to the local CA (started then) and back; a bad pair of
// files refuses the reload, naming the host entry, and the served
// certificate stays.
func TestReloadStartsLocalCAAndSwitchesModes(t *testing.T) {
	t.Parallel()
	pki := newTestCA(t, "Hospital PKI")
	dir := t.TempDir()
	day := time.Now().Add(24 * time.Hour)
	c1, k1 := pki.issue(t, 2001, false, day, "portal.hospital.test")
	c2, k2 := pki.issue(t, 2002, false, day, "portal.hospital.test")
	files := func(cert, key []byte) config.TLSHost {
		return config.TLSHost{Names: []string{"portal.hospital.test"}, Mode: ModeFiles,
			CertFile: writeFile(t, dir, "cert-"+time.Now().Format("150405.000000000"), cert),
			KeyFile:  writeFile(t, dir, "key-"+time.Now().Format("150405.000000000"), key)}
	}
	cfg := baseConfig(t, files(c1, k1))
	m := newManager(t, Options{Config: cfg})
	if m.LocalRootPath() != "" {
		t.Fatal("local CA started with no local host")
	}
	addr := serveHTTPS(t, m, nil)
	serial := func(name string) int64 {
		t.Helper()
		cs, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, ServerName: name})
		if err != nil {
			return -1
		}
		return cs.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial("portal.hospital.test"); got != 2001 {
		t.Fatalf("serial %d, want 2001", got)
	}

	// A key that does not match: refused, naming the entry; 2001 stays.
	bad := *cfg
	bad.TLS.Hosts = []config.TLSHost{files(c2, k1)}
	err := m.Reload(context.Background(), &bad)
	if err == nil || !strings.Contains(err.Error(), "tls.hosts[0] (portal.hospital.test)") || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("Reload with a mismatched pair: %v, want refused naming tls.hosts[0]", err)
	}
	if got := serial("portal.hospital.test"); got != 2001 {
		t.Fatalf("after a refused reload: serial %d, want 2001 kept", got)
	}

	// New files and a local name: the local CA starts with the reload.
	next := *cfg
	next.TLS.Hosts = []config.TLSHost{files(c2, k2), {Names: []string{"app.localhost"}, Mode: ModeLocal}}
	if err := m.Reload(context.Background(), &next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := serial("portal.hospital.test"); got != 2002 {
		t.Errorf("serial %d after the reload, want 2002", got)
	}
	if m.LocalRootPath() == "" {
		t.Fatal("LocalRootPath empty after a local host was added")
	}
	roots := rootPool(t, m.LocalRootPath())
	if _, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: "app.localhost"}); err != nil {
		t.Errorf("app.localhost after the reload: %v", err)
	}
}

// TestReloadRefusesProcessSettings: what the Manager keeps for the life
// of the process is refused with the field named, and so is the first
// acme host; the served table does not change.
func TestReloadRefusesProcessSettings(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	for _, tc := range []struct {
		field  string
		change func(c *config.Config)
	}{
		{"tls.acme", func(c *config.Config) { c.TLS.ACME.Email = "ops@hospital.test" }},
		{"tls.storage", func(c *config.Config) { c.TLS.Storage = StorageRedis }},
		{"tls.storage_key_file", func(c *config.Config) { c.TLS.StorageKeyFile = "/etc/telegate/tls-storage.key" }},
		{"data_dir", func(c *config.Config) { c.DataDir = t.TempDir() }},
		{"tls.hosts[1] (portal.hospital.test): mode acme", func(c *config.Config) {
			c.TLS.Hosts = append(c.TLS.Hosts, config.TLSHost{Names: []string{"portal.hospital.test"}, Mode: ModeACME})
		}},
	} {
		next := *cfg
		next.TLS.Hosts = append([]config.TLSHost(nil), cfg.TLS.Hosts...)
		tc.change(&next)
		err := m.Reload(context.Background(), &next)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Reload = %v, want refused naming it", tc.field, err)
		}
	}
	if m.cur.Load().plan.hosts["portal.hospital.test"] != nil {
		t.Error("a refused reload changed the served table")
	}
}

// TestPrepareDiscardKeepsServedTable: a prepared table that is discarded
// (another part of the reload failed) is never served, and the leaf
// issued for it leaves the cache.
func TestPrepareDiscardKeepsServedTable(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	m := newManager(t, Options{Config: cfg})
	addr := serveHTTPS(t, m, nil)
	next := *cfg
	next.TLS.Hosts = []config.TLSHost{{Names: []string{"localhost", "app.localhost"}, Mode: ModeLocal}}
	p, err := m.Prepare(context.Background(), &next, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, ServerName: "app.localhost"}); err == nil {
		t.Error("app.localhost served between Prepare and Apply")
	}
	p.Discard()
	p.Apply() // after Discard: no effect
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, ServerName: "app.localhost"}); err == nil {
		t.Error("app.localhost served after Discard")
	}
	if got := len(m.local.Load().cache.AllMatchingCertificates("app.localhost")); got != 0 {
		t.Errorf("%d leaves for app.localhost left in the cache after Discard", got)
	}
	if m.local.Load().ca.allows("app.localhost") {
		t.Error("the local CA still signs for app.localhost after Discard")
	}
}

// TestReloadClientCAsAndMinVersionReachEveryListener: a reload that
// changes the device CAs and the lowest TLS version reaches handshakes on
// listeners whose configs were made at start, each keeping the ALPN
// protocols it was made for; the pools auth reads (ClientTrust) are the
// ones the handshake verifies with; a CA file that is not a CA is refused
// naming its field, and the served pools stay.
func TestReloadClientCAsAndMinVersionReachEveryListener(t *testing.T) {
	t.Parallel()
	caA, caB := newTestCA(t, "Carts 2025"), newTestCA(t, "Carts 2027")
	dir := t.TempDir()
	cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
	cfg.ClientCAs = []config.ClientCA{{ID: "carts", CAFile: writeFile(t, dir, "a.pem", caA.certPEM())}}
	m := newManager(t, Options{Config: cfg})
	roots := rootPool(t, m.LocalRootPath())
	// Two listeners made at start: one offering the relay's protocol too.
	listen := func(protos ...string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		tl := tls.NewListener(ln, m.TLSConfig(protos...))
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					_ = c.(*tls.Conn).Handshake()
					_, _ = c.Write([]byte{1})
				}()
			}
		}()
		return ln.Addr().String()
	}
	web, turn := listen("h2", "http/1.1"), listen("h2", "http/1.1", "stun.turn")
	pair := func(ca *testCA, cn string) tls.Certificate {
		c, k := ca.issue(t, time.Now().UnixNano(), true, time.Now().Add(time.Hour), cn)
		kp, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	devA, devB := pair(caA, "cart-a"), pair(caB, "cart-b")
	try := func(addr string, cert *tls.Certificate, proto string, maxV uint16) error {
		cs, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: maxV, NextProtos: []string{proto},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
		if err == nil && cs.NegotiatedProtocol != proto {
			err = fmt.Errorf("negotiated %q, want %q", cs.NegotiatedProtocol, proto)
		}
		return err
	}
	expect := func(why string, okA, okB bool, maxV uint16) {
		t.Helper()
		for _, l := range []struct{ addr, proto string }{{web, "h2"}, {turn, "stun.turn"}, {turn, "h2"}} {
			if err := try(l.addr, &devA, l.proto, maxV); (err == nil) != okA {
				t.Errorf("%s: device of CA A over %s: %v, want ok %v", why, l.proto, err, okA)
			}
			if err := try(l.addr, &devB, l.proto, maxV); (err == nil) != okB {
				t.Errorf("%s: device of CA B over %s: %v, want ok %v", why, l.proto, err, okB)
			}
		}
	}
	expect("CA A", true, false, 0)

	next := *cfg
	next.ClientCAs = append(slices.Clone(cfg.ClientCAs), config.ClientCA{ID: "carts-2027", CAFile: writeFile(t, dir, "b.pem", caB.certPEM())})
	if err := m.Reload(context.Background(), &next); err != nil {
		t.Fatal(err)
	}
	expect("CA B added", true, true, 0)
	if p := m.ClientTrust().Pools(); len(p) != 2 || p["carts-2027"] == nil {
		t.Errorf("ClientTrust after the reload: %v", p)
	}

	bad := next
	bad.ClientCAs = []config.ClientCA{{ID: "carts", CAFile: writeFile(t, dir, "leaf.pem", mustLeafPEM(t, caA))}}
	if err := m.Reload(context.Background(), &bad); err == nil || !strings.Contains(err.Error(), "client_cas[0].ca_file") {
		t.Errorf("a CA file that is not a CA: %v, want refused at client_cas[0].ca_file", err)
	}
	expect("bad CA file refused", true, true, 0)

	only := next
	only.ClientCAs = next.ClientCAs[1:]
	only.TLS.MinVersion = "1.3"
	if err := m.Reload(context.Background(), &only); err != nil {
		t.Fatal(err)
	}
	expect("CA A removed, TLS 1.3", false, true, 0)
	expect("CA A removed, TLS 1.2 client", false, false, tls.VersionTLS12)
}

// mustLeafPEM is a client certificate of ca, as PEM: not a CA.
func mustLeafPEM(t *testing.T, ca *testCA) []byte {
	c, _ := ca.issue(t, 7, true, time.Now().Add(time.Hour), "cart-x")
	return c
}
