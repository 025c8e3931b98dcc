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

	"github.com/telegate/telegate/config"

	"github.com/telegate/telegate/internal/secretfile"
)

// loadSigningKey reads a PEM EC P-256 private key (SEC 1 "EC PRIVATE KEY"
// or PKCS #8 "PRIVATE KEY") from file, or, when file is "", from
// <dataDir>/keys/assertion.pem, generating that once (mode 0600). Both
// are read by config's rule for secret files (config.ReadSigningKeyFile).
func loadSigningKey(file, dir string) (*ecdsa.PrivateKey, error) {
	if file == "" {
		file = config.InDataDir(dir, config.SigningKeyInDataDir)
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
	k, err := config.ReadSigningKeyFile(file)
	if err != nil {
		return nil, fmt.Errorf("assertion key: %w (set assertion.signing_key_file to a PEM EC P-256 key, or leave it empty to generate one)", err)
	}
	return k, nil
}
