package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/secretfile"
)

// KeyBytes is the size of a generated audit key.
const KeyBytes = 32

// Path returns the audit file for cfg: cfg.File, or
// <dataDir>/audit/audit.log by default.
func Path(cfg config.Audit, dataDir string) string {
	if cfg.File != "" {
		return cfg.File
	}
	return filepath.Join(dataDir, "audit", "audit.log")
}

// Key returns the audit HMAC key: cfg.Key (base64, standard or URL
// alphabet, padded or not), else the base64 content of cfg.KeyFile, else
// the key in <dataDir>/keys/audit.key, generated once (32 random bytes,
// base64, mode 0600, directory 0700) when it does not exist yet.
//
// Errors: both Key and KeyFile set; a key that is not base64 or decodes to
// fewer than 32 bytes; an unreadable key file; a generated key file that
// cannot be written. The key is never logged.
func Key(cfg config.Audit, dataDir string) ([]byte, error) {
	switch {
	case cfg.Key != "" && cfg.KeyFile != "":
		return nil, errors.New("audit: set key or key_file, not both")
	case cfg.Key != "":
		k, err := decodeKey(cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("audit.key: %w", err)
		}
		return k, nil
	case cfg.KeyFile != "":
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.key_file: %w", err)
		}
		k, err := decodeKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("audit.key_file %s: %w", cfg.KeyFile, err)
		}
		return k, nil
	}
	if dataDir == "" {
		return nil, errors.New("audit: no key configured and no data directory to keep one in")
	}
	path := filepath.Join(dataDir, "keys", "audit.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := decodeKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("audit: %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	k := make([]byte, KeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("audit: generate key: %w", err)
	}
	err := secretfile.Write(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"))
	if errors.Is(err, fs.ErrExist) {
		// Another process generated it first: use that one.
		return Key(cfg, dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: write %s: %w", path, err)
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) < 32 {
				return nil, fmt.Errorf("key is %d bytes, need at least 32 (generate one with `openssl rand -base64 32`)", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("key is not base64")
}
