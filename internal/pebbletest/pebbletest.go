// Package pebbletest runs pebble, Let's Encrypt's test ACME CA (RFC
// 8555), in the test's process on loopback, with a DNS server of its own
// so that no validation leaves the machine. For tests only.
package pebbletest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Options say where pebble validates.
type Options struct {
	// HTTPPort and TLSPort are the ports pebble's validation authority
	// connects to for http-01 and tls-alpn-01 (RFC 8555 §8.3, RFC 8737).
	HTTPPort, TLSPort int
	// Resolve answers the A query for a name (without the final dot)
	// pebble asks before a validation; nil: 127.0.0.1 for every name.
	Resolve func(name string) net.IP
	// Hold, when set, is called with every request before pebble sees it
	// and may block it (e.g. to stop an order half way); pebble answers
	// it once Hold returns true, and drops it when Hold returns false.
	Hold func(r *http.Request) bool
}

// CA is a running pebble.
type CA struct {
	// Directory is the ACME directory URL (RFC 8555 §7.1.1).
	Directory string
	// Client trusts the CA's own HTTPS.
	Client *http.Client
	// ServerRootPEM is the PEM of the certificate of the CA's own HTTPS
	// (what tls.acme.ca_root_file names).
	ServerRootPEM []byte
	// Roots are the roots of the certificates it issues.
	Roots *x509.CertPool
	// Orders counts the new orders it received (RFC 8555 §7.4) and
	// Finalized the finalisations (§7.4, the CSR).
	Orders, Finalized *atomic.Int64
	// Store is pebble's database: what it ordered and issued.
	Store *db.MemoryStore
}

// Start starts pebble until t ends. Pebble waits no random time before a
// validation and rejects no nonce on purpose.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	// Pebble reads these when its parts are created.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(tWriter{t}, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	validator := va.New(logger, o.HTTPPort, o.TLSPort, false, startDNS(t, o.Resolve), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	c := &CA{Orders: new(atomic.Int64), Finalized: new(atomic.Int64), Store: store}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Hold != nil && !o.Hold(r) {
			return
		}
		if r.Method == http.MethodPost {
			switch {
			case r.URL.Path == "/order-plz": // pebble's newOrder
				c.Orders.Add(1)
			case strings.HasPrefix(r.URL.Path, "/finalize-order/"):
				c.Finalized.Add(1)
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.Roots = x509.NewCertPool()
	c.Roots.AddCert(authority.GetRootCert(0).Cert)
	c.Directory = srv.URL + wfe.DirectoryPath
	c.Client = srv.Client()
	c.ServerRootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return c
}

// OrderOf tells, from pebble's own records, the account whose order
// issued the certificate of serial (hex, as pebble writes it) and how
// many orders that account placed; ok is false when pebble issued no
// certificate of that serial.
func (c *CA) OrderOf(serial string) (acct string, orders int, ok bool) {
	o, err := c.Store.GetOrderByIssuedSerial(serial)
	if err != nil || o == nil {
		return "", 0, false
	}
	o.RLock()
	acct = o.AccountID
	o.RUnlock()
	return acct, len(c.Store.GetOrdersByAccountID(acct)), true
}

// startDNS answers A queries as resolve says (127.0.0.1 when nil) and
// everything else with an empty answer, over TCP on loopback (pebble's VA
// asks over TCP).
func startDNS(t testing.TB, resolve func(string) net.IP) string {
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
			if q.Qtype != dns.TypeA {
				continue
			}
			ip := net.IPv4(127, 0, 0, 1)
			if resolve != nil {
				ip = resolve(strings.TrimSuffix(q.Name, "."))
			}
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   ip,
			})
		}
		w.WriteMsg(resp)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// tWriter logs pebble's lines to t.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
