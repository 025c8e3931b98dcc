package edgetls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/config"
)

// maxPEMFileBytes bounds what is read from an operator certificate or key
// file (a long chain is a few tens of KiB).
const maxPEMFileBytes = 1 << 20

// fileCert is the certificate of one "files" host entry: the operator's PEM
// certificate chain and key, read again when their content changes.
type fileCert struct {
	entry    string // "tls.hosts[i] (names)" for messages
	names    []string
	certFile string
	keyFile  string
	cur      atomic.Pointer[tls.Certificate]
	lastSum  [sha256.Size]byte // content hash of the last pair seen (good or bad)
}

// load reads and checks the pair; it does not install it.
func (f *fileCert) load(now time.Time) (*tls.Certificate, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	certPEM, err := readBounded(f.certFile)
	if err != nil {
		return nil, sum, fmt.Errorf("cert_file: %w", err)
	}
	// The key file follows config's rule for secret files, as at check.
	if err := config.CheckSecretFile(f.keyFile); err != nil {
		return nil, sum, fmt.Errorf("key_file: %w", err)
	}
	keyPEM, err := readBounded(f.keyFile)
	if err != nil {
		return nil, sum, fmt.Errorf("key_file: %w", err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	copy(sum[:], h.Sum(nil))
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	// The key's bytes never reach an error message: X509KeyPair's errors
	// describe the mismatch, not the key.
	if err != nil {
		return nil, sum, fmt.Errorf("cert_file %s / key_file %s: %w", f.certFile, f.keyFile, err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, sum, fmt.Errorf("cert_file %s: %w", f.certFile, err)
		}
		c.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, sum, fmt.Errorf("cert_file %s: certificate expired %s", f.certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, sum, fmt.Errorf("cert_file %s: certificate not valid before %s", f.certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, n := range f.names {
		if err := leafCovers(leaf, n); err != nil {
			return nil, sum, fmt.Errorf("cert_file %s: %w", f.certFile, err)
		}
	}
	return &c, sum, nil
}

// leafCovers checks that the certificate's SANs cover name (RFC 6125 §6.4;
// a configured wildcard name needs the same wildcard in the certificate).
func leafCovers(leaf *x509.Certificate, name string) error {
	if len(name) > 2 && name[:2] == "*." {
		for _, d := range leaf.DNSNames {
			if normalized, ok := normalizeName(d, true); ok && normalized == name {
				return nil
			}
		}
		return fmt.Errorf("certificate does not name %s", name)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("certificate does not cover %s", name)
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFileBytes)
	}
	return b, nil
}

// reload is one poll: when the files' content changed since the last poll,
// the new pair replaces the served one if it is good; a bad pair keeps the
// old certificate and is logged once (by content) with the reason.
func (f *fileCert) reload(log *slog.Logger, now time.Time) {
	c, sum, err := f.load(now)
	if sum == f.lastSum && sum != ([sha256.Size]byte{}) {
		return
	}
	if err != nil && sum == ([sha256.Size]byte{}) {
		// Unreadable (e.g. mid-rename): try again next poll, log once.
		if f.lastSum != sum {
			log.Warn("tls certificate files unreadable; keeping the current certificate", "host", f.entry, "error", err.Error())
			f.lastSum = sum
		}
		return
	}
	f.lastSum = sum
	if err != nil {
		log.Warn("new tls certificate files rejected; keeping the current certificate", "host", f.entry, "error", err.Error())
		return
	}
	f.cur.Store(c)
	log.Info("tls certificate files reloaded", "host", f.entry, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "serial", c.Leaf.SerialNumber.Text(16))
}

// watch polls the files every interval until ctx ends.
func (f *fileCert) watch(ctx context.Context, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.reload(log, now)
		}
	}
}
