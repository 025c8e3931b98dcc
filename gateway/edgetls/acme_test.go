package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/telegate/telegate/config"
)

func TestMain(m *testing.M) {
	// Pebble reads these when its parts are created: no random validation
	// delay, no deliberately rejected nonces.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	os.Exit(m.Run())
}

// startDNS answers A queries for every name with 127.0.0.1 and everything
// else with an empty answer, over TCP on loopback (pebble's VA asks over
// TCP), so no validation traffic leaves the machine.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(r)
		resp.Authoritative = true
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				resp.Answer = append(resp.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(resp)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// pebbleCA is an in-process ACME CA whose validation authority connects to
// the given loopback ports.
type pebbleCA struct {
	directory string
	client    *http.Client
	roots     *x509.CertPool // roots of the certificates it issues
	orders    *atomic.Int64  // new orders received (RFC 8555 §7.4)
}

func startPebble(t *testing.T, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(tWriter{t}, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	orders := new(atomic.Int64)
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" { // pebble's newOrder
			orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &pebbleCA{directory: srv.URL + wfe.DirectoryPath, client: srv.Client(), roots: roots, orders: orders}
}

func listenLoopback(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func TestACMEObtainsCertificateFromPebble(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		challenge string
		name      string
		// late binds the gateway's listeners only after New, as
		// cmd/telegate does: certmagic must not grab the ports meanwhile.
		late bool
	}{
		{ChallengeHTTP01, "clinic.telegate.test", false},
		{ChallengeTLSALPN01, "video.telegate.test", true},
		{ChallengeHTTP01, "portal.telegate.test", true},
	} {
		t.Run(tc.challenge+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			httpsLn, httpsPort := listenLoopback(t)
			httpLn, httpPort := listenLoopback(t)
			pebble := startPebble(t, httpPort, httpsPort)

			cfg := baseConfig(t, config.TLSHost{Names: []string{tc.name}, Mode: ModeACME})
			cfg.Server.Listen = "127.0.0.1:" + strconv.Itoa(httpsPort)
			cfg.Server.HTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
			cfg.TLS.ACME = config.ACME{CA: pebble.directory, Email: "pki@hospital.test",
				Challenges: []string{tc.challenge}, RenewalWindowRatio: 0.5}

			if tc.late {
				httpsLn.Close()
				httpLn.Close()
			}
			m := newManager(t, Options{Config: cfg, HTTPClient: pebble.client})
			if tc.late {
				time.Sleep(300 * time.Millisecond)
				var err error
				if httpsLn, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
					t.Fatalf("gateway cannot bind its HTTPS port after New: %v", err)
				}
				if httpLn, err = net.Listen("tcp", cfg.Server.HTTPListen); err != nil {
					t.Fatalf("gateway cannot bind its HTTP port after New: %v", err)
				}
			}
			if m.acmeCfg.RenewalWindowRatio != 0.5 {
				t.Errorf("renewal window ratio %v, want 0.5 from the configuration", m.acmeCfg.RenewalWindowRatio)
			}
			httpSrv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
			go httpSrv.Serve(httpLn)
			t.Cleanup(func() { httpSrv.Close() })
			addr := serveHTTPS(t, m, httpsLn)

			client := &tls.Config{RootCAs: pebble.roots, ServerName: tc.name}
			deadline := time.Now().Add(60 * time.Second)
			var lastErr error
			for {
				cs, err := handshake(addr, client)
				if err == nil {
					leaf := cs.PeerCertificates[0]
					if err := leaf.VerifyHostname(tc.name); err != nil {
						t.Fatal(err)
					}
					t.Logf("served %s issued by %q, valid until %s", tc.name, leaf.Issuer.CommonName, leaf.NotAfter)
					break
				}
				lastErr = err
				if time.Now().After(deadline) {
					t.Fatalf("no certificate from pebble for %s within 60s: %v", tc.name, lastErr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if body, err := get(addr, tc.name, client); err != nil || body != "-" {
				t.Fatalf("GET https://%s/ = %q, %v", tc.name, body, err)
			}
			// Outside a pending challenge, "acme-tls/1" alone gets no session.
			alpn := &tls.Config{ServerName: tc.name, InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}}
			if _, err := handshake(addr, alpn); err == nil {
				t.Error("handshake offering only acme-tls/1 succeeded with no challenge pending")
			}
		})
	}
}

// TestReloadAddsAndRemovesACMENames: a name added to an acme host entry
// on reload is obtained from the CA and served; a name removed is no
// longer served.
func TestReloadAddsAndRemovesACMENames(t *testing.T) {
	t.Parallel()
	httpsLn, httpsPort := listenLoopback(t)
	httpLn, httpPort := listenLoopback(t)
	pebble := startPebble(t, httpPort, httpsPort)
	cfg := baseConfig(t, config.TLSHost{Names: []string{"clinic.telegate.test"}, Mode: ModeACME})
	cfg.Server.Listen = "127.0.0.1:" + strconv.Itoa(httpsPort)
	cfg.Server.HTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
	cfg.TLS.ACME = config.ACME{CA: pebble.directory, Challenges: []string{ChallengeHTTP01}}
	m := newManager(t, Options{Config: cfg, HTTPClient: pebble.client})
	httpSrv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	addr := serveHTTPS(t, m, httpsLn)
	waitServed := func(name string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := handshake(addr, &tls.Config{RootCAs: pebble.roots, ServerName: name})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served within 60s: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitServed("clinic.telegate.test")

	next := *cfg
	next.TLS.Hosts = []config.TLSHost{{Names: []string{"clinic.telegate.test", "video.telegate.test"}, Mode: ModeACME}}
	if err := m.Reload(t.Context(), &next); err != nil {
		t.Fatalf("Reload adding video.telegate.test: %v", err)
	}
	waitServed("video.telegate.test")

	next.TLS.Hosts = []config.TLSHost{{Names: []string{"video.telegate.test"}, Mode: ModeACME}}
	if err := m.Reload(t.Context(), &next); err != nil {
		t.Fatalf("Reload removing clinic.telegate.test: %v", err)
	}
	if _, err := handshake(addr, &tls.Config{RootCAs: pebble.roots, ServerName: "clinic.telegate.test"}); err == nil {
		t.Error("clinic.telegate.test still served after it was removed")
	}
	if got := len(m.acmeCache.AllMatchingCertificates("clinic.telegate.test")); got != 0 {
		t.Errorf("%d certificates for clinic.telegate.test still managed", got)
	}
	waitServed("video.telegate.test")
}
