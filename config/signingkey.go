package config

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	"github.com/telegate/telegate/internal/sealbox"
)

// SigningKeySealMagic starts the generated assertion signing key file
// (SigningKeyInDataDir) as telegate writes it: the magic, then the
// key's PEM sealed with AES-256-GCM (internal/sealbox, purpose
// SigningKeySealPurpose, additional data SigningKeyInDataDir) under the
// data directory's seal key (DataDirSealKey). A file without the magic is
// a PEM key of an earlier version, sealed at the next start.
const (
	SigningKeySealMagic   = sealbox.Magic
	SigningKeySealPurpose = "telegate assertion key v1"
)

// DataDirSealKey is the 32-byte key that seals what a node keeps of its
// own in the data directory (its certificate file storage, the local
// CA's root key, the generated assertion key): tls.storage_key_file when
// set, else <data_dir>/keys/tls-storage.key. The error wraps
// fs.ErrNotExist when that file is not there yet (it is generated at the
// first start).
func DataDirSealKey(c *Config) ([]byte, error) {
	if f := c.TLS.StorageKeyFile; f != "" {
		k, err := ReadTLSStorageKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls.storage_key_file: %w", err)
		}
		return k, nil
	}
	return ReadTLSStorageKeyFile(InDataDir(c.DataDir, TLSStorageKeyInDataDir))
}

// ReadGeneratedSigningKey reads the generated assertion signing key
// (SigningKeyInDataDir) by the rule for secret files, opening it with
// DataDirSealKey when sealed (SigningKeySealMagic). sealed reports
// whether it was; a key in clear (an earlier version's) is returned with
// sealed false. Errors name the file: absent (fs.ErrNotExist), sealed
// under another key, or no PEM EC P-256 key.
func ReadGeneratedSigningKey(c *Config) (k *ecdsa.PrivateKey, sealed bool, err error) {
	path := InDataDir(c.DataDir, SigningKeyInDataDir)
	b, err := readSecretBytes(path)
	if err != nil {
		return nil, false, err
	}
	if rest, ok := bytes.CutPrefix(b, []byte(SigningKeySealMagic)); ok {
		if b, err = OpenSigningKey(c, rest); err != nil {
			return nil, true, fmt.Errorf("%s: %w", path, err)
		}
		sealed = true
	}
	if k, err = ParseSigningKey(b); err != nil {
		return nil, sealed, fmt.Errorf("%s: %w", path, err)
	}
	return k, sealed, nil
}

// signingKeyBox is the Box of the generated assertion key.
func signingKeyBox(c *Config) (*sealbox.Box, error) {
	key, err := DataDirSealKey(c)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the key that seals it is missing: %w", err)
		}
		return nil, err
	}
	return sealbox.New(key, SigningKeySealPurpose)
}

// OpenSigningKey opens a sealed generated assertion key (what follows
// SigningKeySealMagic) and returns its PEM.
func OpenSigningKey(c *Config, sealed []byte) ([]byte, error) {
	box, err := signingKeyBox(c)
	if err != nil {
		return nil, err
	}
	plain, err := box.Open(sealed, []byte(SigningKeyInDataDir))
	if err != nil {
		return nil, fmt.Errorf("does not open with the data directory's seal key (tls.storage_key_file or keys/tls-storage.key changed?): %w", err)
	}
	return plain, nil
}

// SealSigningKey seals a PEM assertion key as the generated key file
// holds it (magic included).
func SealSigningKey(c *Config, keyPEM []byte) ([]byte, error) {
	if blk, _ := pem.Decode(keyPEM); blk == nil {
		return nil, errors.New("no PEM block to seal")
	}
	box, err := signingKeyBox(c)
	if err != nil {
		return nil, err
	}
	return box.Seal([]byte(SigningKeySealMagic), keyPEM, []byte(SigningKeyInDataDir)), nil
}
