package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// makeCerts writes a CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate into s.Dir, sets s.CAFile,
// s.ClientCertFile, s.ClientKeyFile and s.tls, and returns the
// redis-server TLS arguments.
func (s *Server) makeCerts(t testing.TB, clientCerts bool) []string {
	t.Helper()
	caKey, caCert := newKeyCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "redistest CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, nil)
	srvKey, srvCert := newKeyCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	cliKey, cliCert := newKeyCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "telegate"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(s.Dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.CAFile = write("ca.pem", certBlock(caCert))
	srvCertFile := write("server.pem", certBlock(srvCert))
	srvKeyFile := write("server.key", keyBlock(t, srvKey))
	s.ClientCertFile = write("client.pem", certBlock(cliCert))
	s.ClientKeyFile = write("client.key", keyBlock(t, cliKey))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	pair, err := tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
	auth := "no"
	if clientCerts {
		auth = "yes"
	}
	return []string{"--tls-cert-file", srvCertFile, "--tls-key-file", srvKeyFile,
		"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", auth, "--tls-protocols", "TLSv1.2 TLSv1.3"}
}

// NewCA writes another CA certificate (one that signed nothing of the
// server's) into dir and returns its path: the wrong CA of a test.
func NewCA(t testing.TB, dir string) string {
	t.Helper()
	_, c := newKeyCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "another CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	p := filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(certBlock(c)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKeyCert(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, c
}

func certBlock(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

func keyBlock(t testing.TB, k *ecdsa.PrivateKey) *pem.Block {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}
