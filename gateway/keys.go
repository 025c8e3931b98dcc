package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/telegate/telegate/internal/secretfile"
)

// dataDir returns cfg.DataDir or its documented default.
func dataDir(d string) string {
	if d == "" {
		return "./telegate-data"
	}
	return d
}

// loadSigningKey reads a PEM EC P-256 private key (SEC 1 "EC PRIVATE KEY"
// or PKCS #8 "PRIVATE KEY") from file, or, when file is "", from
// <dataDir>/keys/assertion.pem, generating that once (mode 0600).
func loadSigningKey(file, dir string) (*ecdsa.PrivateKey, error) {
	if file == "" {
		file = filepath.Join(dataDir(dir), "keys", "assertion.pem")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("assertion key: %w", err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return nil, fmt.Errorf("assertion key: %w", err)
			}
			if err := secretfile.Write(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
				return nil, fmt.Errorf("assertion key: %w", err)
			}
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("assertion key: %w (set assertion.signing_key_file to a PEM EC P-256 key, or leave it empty to generate one)", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("assertion key %s: no PEM block", file)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM type %q, want EC PRIVATE KEY or PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("assertion key %s: %w", file, err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("assertion key %s: not an EC P-256 key (ES256, RFC 7518 §3.4)", file)
	}
	return ek, nil
}
