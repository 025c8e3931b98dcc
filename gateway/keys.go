package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/sealbox"
	"github.com/telegate/telegate/internal/secretfile"
)

// loadSigningKey reads the assertion signing key: a PEM EC P-256 private
// key (SEC 1 "EC PRIVATE KEY" or PKCS #8 "PRIVATE KEY") from
// assertion.signing_key_file (config.ReadSigningKeyFile), or, when that
// is "", the key telegate generated in <data_dir>/keys/assertion.pem
// (mode 0600), generating it once. That file is sealed under the data
// directory's seal key (config.ReadGeneratedSigningKey), so the private
// key is never in clear on disk; one an earlier version wrote in clear is
// sealed now.
func loadSigningKey(c *config.Config) (*ecdsa.PrivateKey, error) {
	if f := c.Assertion.SigningKeyFile; f != "" {
		k, err := config.ReadSigningKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("assertion key: %w (set assertion.signing_key_file to a PEM EC P-256 key, or leave it empty to generate one)", err)
		}
		return k, nil
	}
	path := config.InDataDir(c.DataDir, config.SigningKeyInDataDir)
	k, sealed, err := config.ReadGeneratedSigningKey(c)
	put := secretfile.Replace // in clear from an earlier version: sealed now
	switch {
	case errors.Is(err, fs.ErrNotExist):
		put = secretfile.Write
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("assertion key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("assertion key: %w", err)
	case sealed:
		return k, nil
	}
	if err := ensureSealKey(c); err != nil {
		return nil, fmt.Errorf("assertion key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("assertion key: %w", err)
	}
	v, err := config.SealSigningKey(c, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, fmt.Errorf("assertion key: %w", err)
	}
	if err := put(path, v); err != nil {
		if errors.Is(err, fs.ErrExist) { // another start made one meanwhile
			if k, _, err = config.ReadGeneratedSigningKey(c); err == nil {
				return k, nil
			}
		}
		return nil, fmt.Errorf("assertion key: %w", err)
	}
	return k, nil
}

// ensureSealKey generates <data_dir>/keys/tls-storage.key (the data
// directory's seal key, config.DataDirSealKey) when neither it nor
// tls.storage_key_file is there: certificate storage generates it at a
// node's start, before the gateway; this is for a gateway on its own.
func ensureSealKey(c *config.Config) error {
	_, err := config.DataDirSealKey(c)
	if !errors.Is(err, fs.ErrNotExist) || c.TLS.StorageKeyFile != "" {
		return err
	}
	k := make([]byte, sealbox.KeySize)
	_, _ = rand.Read(k)
	err = secretfile.Write(config.InDataDir(c.DataDir, config.TLSStorageKeyInDataDir), []byte(base64.StdEncoding.EncodeToString(k)+"\n"))
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}
