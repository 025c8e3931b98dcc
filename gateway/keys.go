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
	"os"
	"path/filepath"
	"strings"

	"github.com/telegate/telegate/config"
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
// <dataDir>/keys/assertion.pem, generating that once (mode 0600). Both
// are read by config's rule for secret files (config.ReadSigningKeyFile).
func loadSigningKey(file, dir string) (*ecdsa.PrivateKey, error) {
	if file == "" {
		file = config.InDataDir(dataDir(dir), config.SigningKeyInDataDir)
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("assertion key: %w", err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return nil, fmt.Errorf("assertion key: %w", err)
			}
			if err := writeSecretFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
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

// writeSecretFile creates path (and its directory, 0700) with mode 0600,
// atomically; it fails if path already exists.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// logKey returns the key for the keyed hash of client addresses in
// ordinary logs: derived from audit.key / audit.key_file when set, else
// generated once in <dataDir>/keys/log.key.
func logKey(cfgKey, cfgKeyFile, dir string) ([]byte, error) {
	var k []byte
	var err error
	switch {
	case cfgKey != "":
		k, err = config.DecodeAuditKey(cfgKey)
	case cfgKeyFile != "":
		k, err = config.ReadAuditKeyFile(cfgKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if k != nil {
		return append([]byte("telegate log address hash\x00"), k...), nil
	}
	file := filepath.Join(dataDir(dir), "keys", "log.key")
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		if err := writeSecretFile(file, []byte(base64.StdEncoding.EncodeToString(k))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("log key: %w", err)
		}
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	k, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("log key %s: malformed", file)
	}
	return k, nil
}
