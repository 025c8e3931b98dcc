package edgetls

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// TestRegression_ClientBytesInLibraryLogs (certmagic): requests to the
// HTTP-01 challenge path and TLS handshakes that name what the client
// chose (Host, User-Agent, URI, SNI) drive certmagic into logging; its
// lines name neither the client's address nor anything the client sent.
func TestRegression_ClientBytesInLibraryLogs(t *testing.T) {
	t.Parallel()
	const marker = "zq7marker"
	cfg := baseConfig(t, config.TLSHost{Names: []string{"clinic.telegate.test"}, Mode: ModeACME})
	cfg.TLS.ACME = config.ACME{CA: "https://127.0.0.1:1/directory", Challenges: []string{ChallengeHTTP01}}
	log, buf := testLogger(t)
	m := newManager(t, Options{Config: cfg, Logger: log})

	h := m.HTTPHandler()
	for _, path := range []string{"/.well-known/acme-challenge/" + marker, "/.well-known/acme-challenge/" + marker + "/x", "/" + marker} {
		r := httptest.NewRequest(http.MethodGet, "http://clinic.telegate.test"+path+"?q="+marker, nil)
		r.RemoteAddr = "127.0.0.77:4711"
		r.Header.Set("User-Agent", "curl/"+marker)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				_ = tls.Server(c, m.TLSConfig()).Handshake()
			}()
		}
	}()
	for _, sni := range []string{marker + ".invalid", "clinic.telegate.test", ""} {
		d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 77)}}
		c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
	}
	time.Sleep(100 * time.Millisecond)
	out := buf.String()
	if !strings.Contains(out, "certmagic") {
		t.Fatalf("certmagic logged nothing: the test drives nothing\n%s", out)
	}
	for _, leak := range []string{"127.0.0.77", marker, "cipher_suites"} {
		if strings.Contains(out, leak) {
			t.Errorf("certmagic's lines carry %q:\n%s", leak, out)
		}
	}
}
