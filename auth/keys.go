package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/telegate/telegate/config"
)

// sessionKey returns the 32-byte AES-256 key that seals sessions at rest:
// Sessions.EncryptionKey (base64, standard or URL alphabet), else the file
// Sessions.EncryptionKeyFile (base64 text or 32 raw bytes), else
// <dataDir>/keys/session.key, generated once with mode 0600.
func sessionKey(c config.Sessions, dataDir string) ([]byte, error) {
	if c.EncryptionKey != "" {
		k, err := decodeKey([]byte(c.EncryptionKey))
		if err != nil {
			return nil, fmt.Errorf("sessions.encryption_key: %w", err)
		}
		return k, nil
	}
	if c.EncryptionKeyFile != "" {
		b, err := os.ReadFile(c.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("sessions.encryption_key_file: %w", err)
		}
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("sessions.encryption_key_file %s: %w", c.EncryptionKeyFile, err)
		}
		return k, nil
	}
	if dataDir == "" {
		dataDir = "./telegate-data"
	}
	path := filepath.Join(dataDir, "keys", "session.key")
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("session key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("session key directory: %w", err)
	}
	k := make([]byte, 32)
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

func decodeKey(b []byte) ([]byte, error) {
	if len(b) == 32 && !isBase64Text(b) {
		return bytes.Clone(b), nil
	}
	s := strings.TrimSpace(string(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("key must decode to 32 bytes, got %d", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("key must be base64 of 32 bytes")
}

func isBase64Text(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}
