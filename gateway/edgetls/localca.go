package edgetls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

const (
	// rootLifetime is the validity of a generated local root.
	rootLifetime = 10 * 365 * 24 * time.Hour
	// leafLifetime is the validity of a leaf the local CA issues; certmagic
	// renews it when RenewalWindowRatio of it is left.
	leafLifetime = 7 * 24 * time.Hour
	// clockSkew back-dates NotBefore so slightly slow clients accept new
	// certificates.
	clockSkew = 5 * time.Minute
)

// localCA is the local certificate authority kept in <data_dir>/ca: a
// self-signed ECDSA P-256 root (root.pem) and its PKCS #8 key (root.key,
// mode 0600, sealed like certificate storage: rootKeyName), generated
// once. Its root carries name constraints
// (RFC 5280 §4.2.1.10) so that, even if trusted and leaked, it can only
// vouch for local names.
type localCA struct {
	root    *x509.Certificate
	key     crypto.Signer
	keyID   string                          // certmagic issuer key; changes with the root
	allowed atomic.Pointer[map[string]bool] // normalized names it may certify (allow)
}

// allow sets the names the CA may certify from now on (the configured
// local names; during a reload, those served and those being added).
func (ca *localCA) allow(names []string) {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	ca.allowed.Store(&m)
}

// allows reports whether a normalized name may be certified.
func (ca *localCA) allows(n string) bool {
	m := ca.allowed.Load()
	return m != nil && (*m)[n]
}

// loadOrCreateLocalCA loads the root from dir, or creates it when neither
// file exists, constrained to names (the configured local names) and
// loopback. A half-present pair (one file missing) is an error rather than
// being overwritten, and so is a root whose constraints do not cover every
// name.
func loadOrCreateLocalCA(dir string, names []string, sl *sealedStorage) (*localCA, error) {
	certPath, keyPath := filepath.Join(dir, "root.pem"), filepath.Join(dir, "root.key")
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		if err := createLocalCA(dir, certPath, keyPath, names, sl); err != nil {
			return nil, fmt.Errorf("creating local CA in %s: %w", dir, err)
		}
	case certErr != nil || keyErr != nil:
		return nil, fmt.Errorf("local CA in %s is incomplete (root.pem: %v, root.key: %v); restore both files or remove both to create a new root", dir, certErr, keyErr)
	}
	ca, err := readLocalCA(certPath, keyPath, sl)
	if err != nil {
		return nil, fmt.Errorf("local CA in %s: %w", dir, err)
	}
	for _, n := range names {
		if !rootPermits(ca.root, n) {
			return nil, fmt.Errorf("local CA in %s may not vouch for %q (its name constraints cover only the names configured when it was made); remove root.pem and root.key there to make a new root, and trust the new one", dir, n)
		}
	}
	return ca, nil
}

// rootConstraints are the name constraints (RFC 5280 §4.2.1.10) of a new
// local root: exactly the configured names (a wildcard's parent domain) and
// "localhost", and loopback plus any configured IP literal. Trusted and
// leaked, such a root can vouch for nothing else — least of all the
// hospital's internal hosts.
func rootConstraints(names []string) (dns []string, ips []*net.IPNet) {
	seen := map[string]bool{}
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			dns = append(dns, d)
		}
	}
	add("localhost")
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, n := range names {
		if ip, err := netip.ParseAddr(n); err == nil {
			loop = append(loop, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		add(strings.TrimPrefix(n, "*."))
	}
	for _, p := range loop {
		ips = append(ips, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return dns, ips
}

// rootPermits reports whether root's name constraints allow name.
func rootPermits(root *x509.Certificate, name string) bool {
	if ip, err := netip.ParseAddr(name); err == nil {
		if len(root.PermittedIPRanges) == 0 {
			return true
		}
		for _, r := range root.PermittedIPRanges {
			if r.Contains(ip.AsSlice()) {
				return true
			}
		}
		return false
	}
	if len(root.PermittedDNSDomains) == 0 {
		return true
	}
	name = strings.TrimPrefix(name, "*.")
	for _, d := range root.PermittedDNSDomains {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

func createLocalCA(dir, certPath, keyPath string, names []string, sl *sealedStorage) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	dnsDomains, ipRanges := rootConstraints(names)
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: "telegate local CA " + serial.Text(16)[:8], Organization: []string{"telegate (local development)"}},
		NotBefore:                   now.Add(-clockSkew),
		NotAfter:                    now.Add(rootLifetime),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         dnsDomains,
		PermittedIPRanges:           ipRanges,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key first, exclusively: a concurrent creator fails here instead
	// of pairing its certificate with our key.
	if err := writeFileExcl(keyPath, sl.seal(rootKeyName, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), 0o600); err != nil {
		return err
	}
	return writeFileExcl(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileExcl(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rootKeyName names root.key in its seal (the additional data).
const rootKeyName = "ca/root.key"

// replaceFile replaces path's content atomically (mode 0600).
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := writeFileExcl(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readLocalCA reads the pair; a root.key in plaintext (from before
// sealing) is sealed in place once the pair checks out.

func readLocalCA(certPath, keyPath string, sl *sealedStorage) (*localCA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyFile, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	keyPEM, plaintext := keyFile, !bytes.HasPrefix(keyFile, []byte(sealMagic))
	if !plaintext {
		if keyPEM, err = sl.open(rootKeyName, keyFile); err != nil {
			return nil, err
		}
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("root.pem holds no PEM CERTIFICATE")
	}
	root, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("root.pem: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, errors.New("root.key holds no PEM PRIVATE KEY (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("root.key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("root.key is not a signing key")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(root.PublicKey) {
		return nil, errors.New("root.key does not match root.pem")
	}
	if !root.IsCA || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("root.pem is not a CA certificate")
	}
	if time.Now().After(root.NotAfter.Add(-leafLifetime)) {
		return nil, fmt.Errorf("root.pem expires %s; remove root.pem and root.key to create a new root", root.NotAfter.UTC().Format(time.RFC3339))
	}
	if plaintext {
		if err := replaceFile(keyPath, sl.seal(rootKeyName, keyPEM)); err != nil {
			return nil, fmt.Errorf("sealing root.key: %w", err)
		}
	}
	sum := sha256.Sum256(root.Raw)
	return &localCA{root: root, key: signer, keyID: "telegate-local-" + hex.EncodeToString(sum[:8])}, nil
}

func randomSerial() (*big.Int, error) {
	// 128 random bits, positive (RFC 5280 §4.1.2.2 allows up to 20 octets).
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// IssuerKey implements certmagic.Issuer. It names the root, so leaves of
// an earlier root kept in storage are never served after a new root.
func (ca *localCA) IssuerKey() string { return ca.keyID }

// Issue implements certmagic.Issuer: it signs a leaf for the CSR's names,
// valid for leafLifetime (capped by the root), after checking the CSR's
// signature (RFC 2986 §3) and that every name is a configured local name.
func (ca *localCA) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("local CA: CSR signature: %w", err)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses) == 0 {
		return nil, errors.New("local CA: CSR names no host")
	}
	if len(csr.URIs) > 0 || len(csr.EmailAddresses) > 0 {
		return nil, errors.New("local CA: CSR carries URI or e-mail names")
	}
	for _, n := range csr.DNSNames {
		if nn, ok := normalizeName(n, true); !ok || !ca.allows(nn) {
			return nil, fmt.Errorf("local CA: %q is not a configured local host name", n)
		}
	}
	for _, ip := range csr.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok || !ca.allows(a.Unmap().String()) {
			return nil, fmt.Errorf("local CA: %s is not a configured local address", ip)
		}
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(leafLifetime)
	if notAfter.After(ca.root.NotAfter) {
		notAfter = ca.root.NotAfter
	}
	cn := ""
	if len(csr.DNSNames) > 0 {
		cn = csr.DNSNames[0]
	}
	ku := x509.KeyUsageDigitalSignature
	if _, isEC := csr.PublicKey.(*ecdsa.PublicKey); !isEC {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("local CA: signing: %w", err)
	}
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &certmagic.IssuedCertificate{Certificate: buf.Bytes()}, nil
}
