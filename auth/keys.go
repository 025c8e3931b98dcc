package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/telegate/telegate/config"
)

// sessionKey returns the 32-byte AES-256 key that seals sessions at rest:
// Sessions.EncryptionKey, else the file Sessions.EncryptionKeyFile, else
// <dataDir>/keys/session.key, generated once with mode 0600. Keys and key
// files follow config's rule for secrets (config.DecodeSessionKey,
// config.ReadSessionKeyFile): base64 of 32 bytes or 32 raw bytes, in a
// file that is neither readable nor writable by every user.
func sessionKey(c config.Sessions, dataDir string) ([]byte, error) {
	if c.EncryptionKey != "" {
		k, err := decodeKey([]byte(c.EncryptionKey))
		if err != nil {
			return nil, fmt.Errorf("sessions.encryption_key: %w", err)
		}
		return k, nil
	}
	if c.EncryptionKeyFile != "" {
		k, err := config.ReadSessionKeyFile(c.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("sessions.encryption_key_file: %w", err)
		}
		return k, nil
	}
	path := config.InDataDir(dataDir, config.SessionKeyInDataDir)
	k, err := config.ReadSessionKeyFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("session key directory: %w", err)
	}
	k = make([]byte, 32)
	_, _ = rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("session key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return k, nil
}

// decodeKey is config.DecodeSessionKey.
func decodeKey(b []byte) ([]byte, error) { return config.DecodeSessionKey(b) }
