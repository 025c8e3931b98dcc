package edgetls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/keyscan"
	"github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// acmeNode is one telegate node serving an acme host: its Manager, its
// HTTPS address and its data directory.
type acmeNode struct {
	m     *Manager
	addr  string
	dir   string
	httpL net.Listener
}

// startACMENode starts a node for name on its own loopback listeners,
// with the storage o selects; pebble validates against whichever node's
// ports it was started with.
func startACMENode(t *testing.T, pebble *pebbleCA, httpsLn, httpLn net.Listener, name string, tune func(*config.Config, *Options)) *acmeNode {
	t.Helper()
	cfg := baseConfig(t, config.TLSHost{Names: []string{name}, Mode: ModeACME})
	cfg.Server.Listen = httpsLn.Addr().String()
	cfg.Server.HTTPListen = httpLn.Addr().String()
	cfg.TLS.ACME = config.ACME{CA: pebble.directory, Challenges: []string{ChallengeHTTP01}}
	o := Options{Config: cfg, HTTPClient: pebble.client}
	if tune != nil {
		tune(cfg, &o)
	}
	m := newManager(t, o)
	httpSrv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	return &acmeNode{m: m, addr: serveHTTPS(t, m, httpsLn), dir: cfg.DataDir, httpL: httpLn}
}

// servedLeaf waits up to 60 s for addr to serve name with a certificate
// from pebble and returns the leaf.
func servedLeaf(t *testing.T, pebble *pebbleCA, addr, name string) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cs, err := handshake(addr, &tls.Config{RootCAs: pebble.roots, ServerName: name})
		if err == nil {
			return cs.PeerCertificates[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served by %s within 60s: %v", name, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// twoNodes starts two nodes on one Redis certificate storage (same key,
// own data directories) and pebble. A load balancer in front of both
// takes pebble's validation connections and sends each to the node that
// does not hold the certificate's lock — not the one that placed the
// order — so the challenge is answered from the shared storage; crossed
// counts those connections.
func twoNodes(t *testing.T, name string) (a, b *acmeNode, pebble *pebbleCA, srv *redistest.Server, crossed *atomic.Int64) {
	t.Helper()
	srv = redistest.Start(t)
	lb, lbPort := listenLoopback(t)
	t.Cleanup(func() { lb.Close() })
	pebble = startPebble(t, lbPort, lbPort)
	var nodes [2]atomic.Pointer[acmeNode]
	crossed = new(atomic.Int64)
	go func() {
		for {
			c, err := lb.Accept()
			if err != nil {
				return
			}
			go func() {
				// Until both nodes are up, the validation waits.
				for i := 0; i < 100 && (nodes[0].Load() == nil || nodes[1].Load() == nil); i++ {
					time.Sleep(100 * time.Millisecond)
				}
				target := nodes[0].Load()
				for i := range nodes {
					if n := nodes[i].Load(); n != nil && !holdsLock(n, "issue_cert_"+name) {
						target = n
						if holdsLock(nodes[1-i].Load(), "issue_cert_"+name) {
							crossed.Add(1)
						}
						break
					}
				}
				if target == nil {
					c.Close()
					return
				}
				forward(c, target.httpL.Addr().String())
			}()
		}
	}()
	key := testKey(t)
	tune := func(c *config.Config, o *Options) {
		c.TLS.Storage = StorageRedis
		o.StorageKey = key
		o.Redis = &RedisStorageOptions{Conn: redisconn.Conn{Addr: srv.Addr, Password: srv.Password}}
	}
	start := func(i int) *acmeNode {
		httpsLn, _ := listenLoopback(t)
		httpLn, _ := listenLoopback(t)
		n := startACMENode(t, pebble, httpsLn, httpLn, name, tune)
		nodes[i].Store(n)
		return n
	}
	// Both start at once and race for the certificate.
	done := make(chan *acmeNode, 1)
	go func() { done <- start(1) }()
	a = start(0)
	b = <-done
	return a, b, pebble, srv, crossed
}

// holdsLock reports whether n's Redis storage holds the lock name.
func holdsLock(n *acmeNode, name string) bool {
	if n == nil {
		return false
	}
	rs := n.m.storage.(*sealedLeaseStorage).lease.(*RedisStorage)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.held[name]
	return ok
}

// forward copies c to and from a connection to addr until either ends.
func forward(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(c, up)
}

// TestTwoNodesObtainOneCertificateFromPebble: two nodes sharing Redis
// certificate storage place one order at the CA, not two, and both serve
// the certificate it issued.
func TestTwoNodesObtainOneCertificateFromPebble(t *testing.T) {
	t.Parallel()
	const name = "clinic.telegate.test"
	a, b, pebble, _, crossed := twoNodes(t, name)
	la := servedLeaf(t, pebble, a.addr, name)
	lb := servedLeaf(t, pebble, b.addr, name)
	if !bytes.Equal(la.Raw, lb.Raw) {
		t.Errorf("the nodes serve different certificates: serial %s and %s", la.SerialNumber, lb.SerialNumber)
	}
	time.Sleep(time.Second) // an order placed late would show now
	if n := pebble.orders.Load(); n != 1 {
		t.Errorf("pebble received %d orders for %s, want 1", n, name)
	}
	if err := la.VerifyHostname(name); err != nil {
		t.Error(err)
	}
	if crossed.Load() == 0 {
		t.Error("no validation reached the node that did not order: the challenge was not answered from the shared storage")
	}
}

// keyForms are the forms in which a private key could sit in storage in
// clear: its PEM label, DER encodings (PKCS #8, SEC 1 / PKCS #1), their
// base64 (a PEM body), and for ECDSA the private scalar.
func keyForms(t *testing.T, key any) map[string][]byte {
	t.Helper()
	forms := map[string][]byte{"PEM label": []byte("PRIVATE KEY")}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	forms["PKCS #8 DER"] = der
	if ek, ok := key.(*ecdsa.PrivateKey); ok {
		sec1, err := x509.MarshalECPrivateKey(ek)
		if err != nil {
			t.Fatal(err)
		}
		forms["SEC 1 DER"] = sec1
		d, err := ek.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		forms["private scalar"] = d
	}
	for _, f := range []string{"PKCS #8 DER", "SEC 1 DER"} {
		if b, ok := forms[f]; ok {
			// The first 48 bytes make the first PEM body line.
			forms[f+" in base64"] = []byte(base64.StdEncoding.EncodeToString(b)[:64])
		}
	}
	return forms
}

// inClear names the forms found in b.
func inClear(b []byte, forms map[string][]byte) []string {
	var found []string
	for name, f := range forms {
		if bytes.Contains(b, f) {
			found = append(found, name)
		}
	}
	return found
}

// scanDirs fails t for every file below dirs holding a form; it returns
// how many files it read.
func scanDirs(t *testing.T, forms map[string][]byte, dirs ...string) int {
	t.Helper()
	n := 0
	for _, dir := range dirs {
		m, err := keyscan.Files(dir, func(p string, b []byte) {
			if found := inClear(b, forms); len(found) > 0 {
				t.Errorf("%s holds a private key in clear (%s)", p, strings.Join(found, ", "))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}
	return n
}

// scanRedis fails t for every value in srv (strings, hash fields and
// values, set and sorted set members) holding a form; it returns how many
// keys it read.
func scanRedis(t *testing.T, srv *redistest.Server, forms map[string][]byte) int {
	t.Helper()
	all := srv.Values(t)
	for k, vals := range all {
		for _, v := range vals {
			if found := inClear([]byte(v), forms); len(found) > 0 {
				t.Errorf("redis key %s holds a private key in clear (%s)", k, strings.Join(found, ", "))
			}
		}
	}
	return len(all)
}

// servedKey is the private key m serves for name.
func servedKey(t *testing.T, m *Manager, name string) any {
	t.Helper()
	c, err := m.getCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	return c.PrivateKey
}

// checkScannerSees proves the scan can fail: the key's own PEM, as
// certmagic stores it before sealing, is found by it.
func checkScannerSees(t *testing.T, m *Manager, st interface {
	Load(context.Context, string) ([]byte, error)
}, name string, forms map[string][]byte) {
	t.Helper()
	issuer := "" // the key of the certificate's issuer: find the .key file
	ctx := t.Context()
	keys, err := sealedOf(m.storage).List(ctx, "certificates", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/"+name+".key") {
			issuer = k
		}
	}
	if issuer == "" {
		t.Fatalf("no key of %s in storage: %q", name, keys)
	}
	plain, err := st.Load(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if found := inClear(plain, forms); len(found) < 2 {
		t.Fatalf("the scan misses the key's own PEM (%s found)", strings.Join(found, ", "))
	}
}

// TestRegression_PrivateKeyAtRest: no private key is in clear in any file
// of the data directory or any Redis value, whichever storage holds it —
// certificate and account keys of file storage, of Redis storage, keys
// written in clear by an earlier version (sealed on the next start), and
// the local CA's root key.
func TestRegression_PrivateKeyAtRest(t *testing.T) {
	t.Parallel()
	t.Run("file storage", func(t *testing.T) {
		t.Parallel()
		const name = "portal.telegate.test"
		httpsLn, httpsPort := listenLoopback(t)
		httpLn, httpPort := listenLoopback(t)
		pebble := startPebble(t, httpPort, httpsPort)
		n := startACMENode(t, pebble, httpsLn, httpLn, name, nil)
		servedLeaf(t, pebble, n.addr, name)
		forms := keyForms(t, servedKey(t, n.m, name))
		checkScannerSees(t, n.m, n.m.storage, name, forms)
		if files := scanDirs(t, forms, n.dir); files < 3 {
			t.Fatalf("only %d files in the data directory", files)
		}
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		const name = "video.telegate.test"
		a, b, pebble, srv, _ := twoNodes(t, name)
		servedLeaf(t, pebble, a.addr, name)
		servedLeaf(t, pebble, b.addr, name)
		forms := keyForms(t, servedKey(t, a.m, name))
		checkScannerSees(t, a.m, a.m.storage, name, forms)
		scanDirs(t, forms, a.dir, b.dir)
		if keys := scanRedis(t, srv, forms); keys < 3 {
			t.Fatalf("only %d keys in Redis", keys)
		}
	})
	t.Run("migrated file storage and local CA", func(t *testing.T) {
		t.Parallel()
		cfg := baseConfig(t, config.TLSHost{Names: []string{"localhost"}, Mode: ModeLocal})
		log1, _ := testLogger(t)
		m1, err := New(context.Background(), Options{Config: cfg, Logger: log1})
		if err != nil {
			t.Fatal(err)
		}
		before := localLeaf(t, m1)
		forms := keyForms(t, servedKey(t, m1, "localhost"))
		rootKey := m1.local.Load().ca.key
		for f, b := range keyForms(t, rootKey) {
			forms["root "+f] = b
		}
		m1.Close()
		// What an earlier version left: every value in clear.
		unsealed := unsealAll(t, cfg.DataDir)
		if unsealed < 3 {
			t.Fatalf("only %d sealed files to put back in clear", unsealed)
		}
		if scanDirsQuiet(forms, cfg.DataDir) == 0 {
			t.Fatal("the files put back in clear hold no key: the scan cannot fail")
		}
		log, logs := testLogger(t)
		m2 := newManager(t, Options{Config: cfg, Logger: log})
		if after := localLeaf(t, m2); !bytes.Equal(after.Raw, before.Raw) {
			t.Errorf("after migration a new leaf (serial %s) is served instead of the stored one (%s)", after.SerialNumber, before.SerialNumber)
		}
		if !strings.Contains(logs.String(), "sealed plaintext certificate storage files") {
			t.Error("migration not logged")
		}
		scanDirs(t, forms, cfg.DataDir)
	})
}

// localLeaf is the leaf m serves for localhost.
func localLeaf(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.getCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// unsealAll rewrites every sealed file below dir (certificate storage and
// the local CA) in clear, as telegate stored them before sealing, and
// returns how many it rewrote.
func unsealAll(t *testing.T, dataDir string) int {
	t.Helper()
	key, err := config.ReadTLSStorageKeyFile(config.InDataDir(dataDir, config.TLSStorageKeyInDataDir))
	if err != nil {
		t.Fatal(err)
	}
	st := mustSeal(t, newFileStorage(dataDir), key)
	sl := sealedOf(st)
	n := 0
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte(sealMagic)) {
			return err
		}
		name := rootKeyName
		if rel, err := filepath.Rel(filepath.Join(dataDir, "certmagic"), p); err == nil && !strings.HasPrefix(rel, "..") {
			name = filepath.ToSlash(rel)
		}
		if name == storageCheckKey { // earlier versions had none
			return os.Remove(p)
		}
		plain, err := sl.open(name, b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n++
		return os.WriteFile(p, plain, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// scanDirsQuiet counts the files below dirs holding a form.
func scanDirsQuiet(forms map[string][]byte, dirs ...string) int {
	n := 0
	for _, dir := range dirs {
		_, _ = keyscan.Files(dir, func(_ string, b []byte) {
			if len(inClear(b, forms)) > 0 {
				n++
			}
		})
	}
	return n
}
