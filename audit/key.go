package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/secretfile"
	"golang.org/x/mod/sumdb/note"
)

// KeyBytes is the size of a generated audit key.
const KeyBytes = 32

// Key returns the audit HMAC key: cfg.Key (base64, standard or URL
// alphabet, padded or not), else the base64 content of cfg.KeyFile (read
// by config's rule for secret files, config.ReadAuditKeyFile), else
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
		k, err := config.ReadAuditKeyFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.key_file: %w", err)
		}
		return k, nil
	}
	if dataDir == "" {
		return nil, errors.New("audit: no key configured and no data directory to keep one in")
	}
	path := config.InDataDir(dataDir, config.AuditKeyInDataDir)
	if k, err := config.ReadAuditKeyFile(path); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit: %w", err)
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

// decodeKey is config.DecodeAuditKey: base64 of at least 32 bytes.
func decodeKey(s string) ([]byte, error) { return config.DecodeAuditKey(s) }

// CheckpointSigningKey returns the note signer key that signs the trail's
// checkpoints (Ed25519; "PRIVATE+KEY+<name>+<hash>+<key>", see
// golang.org/x/mod/sumdb/note), kept in <dataDir>/keys/audit-checkpoint.key
// and generated there once (mode 0600) with the name
// "telegate-audit/<host name>", which names the node in its checkpoints.
// Its public half is VerifierKey.
//
// Errors: no data directory; a key file that cannot be read, breaks the
// rule for secret files or holds no signer key; one that cannot be
// written.
func CheckpointSigningKey(dataDir string) (string, error) {
	if dataDir == "" {
		return "", errors.New("audit: no data directory to keep the checkpoint signing key in")
	}
	path := config.InDataDir(dataDir, config.AuditCheckpointKeyInDataDir)
	if s, err := config.ReadSecretFile(path); err == nil {
		if _, err := VerifierKey(strings.TrimSpace(s)); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return strings.TrimSpace(s), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("audit: %w", err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, nodeName())
	if err != nil {
		return "", fmt.Errorf("audit: generate checkpoint signing key: %w", err)
	}
	err = secretfile.Write(path, []byte(skey+"\n"))
	if errors.Is(err, fs.ErrExist) {
		return CheckpointSigningKey(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("audit: write %s: %w", path, err)
	}
	return skey, nil
}
