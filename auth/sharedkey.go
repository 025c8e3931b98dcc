package auth

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/telegate/telegate/config"
)

// SharedKey derives a 32-byte key for purpose (a label naming its one
// use, e.g. "telegate visits invite key v1") from the session encryption
// key given in the configuration (sessions.encryption_key or
// sessions.encryption_key_file), with HKDF-SHA256 (RFC 5869; no salt, the
// purpose as info). Every node given the same session key derives the
// same key, and no derived key reveals the session key or another
// purpose's key. It fails when neither field is set: a key generated in
// one node's data directory is not shared.
func SharedKey(cfg *config.Config, purpose string) ([]byte, error) {
	sc := cfg.Sessions
	if sc.EncryptionKey == "" && sc.EncryptionKeyFile == "" {
		return nil, errors.New("auth: a key shared by every node needs sessions.encryption_key or sessions.encryption_key_file")
	}
	return LocalKey(cfg, purpose)
}

// LocalKey derives a 32-byte key for purpose from the session encryption
// key as SharedKey does, and also, when the configuration names none,
// from the session key generated in the data directory
// (keys/session.key, made at first use): for records that only this
// node opens, in its data directory.
func LocalKey(cfg *config.Config, purpose string) ([]byte, error) {
	k, err := sessionKey(cfg.Sessions, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return hkdf.Key(sha256.New, k, nil, purpose, 32)
}
