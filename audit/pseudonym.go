package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/telegate/telegate/internal/secretfile"
)

// PseudonymKey returns the key of client-address pseudonyms: its own key,
// never the audit chain key, so that one leaked key gives neither the
// other's power. It is the base64 content of <dataDir>/keys/pseudonym.key,
// generated once (32 random bytes, mode 0600, directory 0700) when it does
// not exist yet. Every plane of a node (gateway, relay) uses the one key,
// so an address has one pseudonym in all of its logs; the key is never
// logged.
func PseudonymKey(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, errors.New("pseudonym key: no data directory to keep it in")
	}
	path := filepath.Join(dataDir, "keys", "pseudonym.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, KeyBytes)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("pseudonym key: generate: %w", err)
		}
		// Another process may have written it first: then read that one.
		if err := secretfile.Write(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("pseudonym key: write %s: %w", path, err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("pseudonym key: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < KeyBytes {
		return nil, fmt.Errorf("pseudonym key %s: want the base64 of %d random bytes", path, KeyBytes)
	}
	return k, nil
}

// Pseudonym returns the keyed, one-way pseudonym that stands for a client
// address in ordinary logs (never in the audit trail, which records the
// address itself): the first 12 bytes of HMAC-SHA256(key, the address's 4
// or 16 bytes) in lower-case hex, 24 characters such as
// "3f9a0c1d2e4b5a6978c0d1e2". An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// gives the pseudonym of its IPv4 form, zones are ignored, and an invalid
// address gives "-". The same address gives the same pseudonym for the
// same key, in every plane.
func Pseudonym(key []byte, addr netip.Addr) string {
	if !addr.IsValid() {
		return "-"
	}
	m := hmac.New(sha256.New, key)
	m.Write(addr.Unmap().WithZone("").AsSlice())
	return hex.EncodeToString(m.Sum(nil)[:12])
}
