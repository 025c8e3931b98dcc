package node

import (
	"bytes"
	"testing"

	"github.com/telegate/telegate/internal/redistest"
)

// TestRegression_StoreKeysPerStore: every store on Redis gets the
// sessions' Redis and a key of its own — the certificates' and the
// visits' keys differ from each other and from the session key — and a
// store that stays in the data directory gets nothing.
func TestRegression_StoreKeysPerStore(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := nodeConfig(t, rdb)
	keys := map[string][]byte{"session": []byte("01234567890123456789012345678901")}
	for _, purpose := range []string{certsStorageKeyPurpose, visitsInviteKeyPurpose} {
		s, err := openStore(cfg, true, purpose)
		if err != nil {
			t.Fatal(err)
		}
		if s.Conn.Addr != rdb.Addr || s.Conn.Password != rdb.Password {
			t.Errorf("%s: not on the sessions' Redis: %s", purpose, s.Conn.Addr)
		}
		for other, k := range keys {
			if bytes.Equal(s.Key, k) {
				t.Errorf("%q has the key of %q", purpose, other)
			}
		}
		keys[purpose] = s.Key
	}
	if s, err := openStore(cfg, true, ""); err != nil || s.Key != nil {
		t.Errorf("no purpose: key %x, %v; want none derived", s.Key, err)
	}
	if s, err := openStore(cfg, false, visitsInviteKeyPurpose); err != nil || s != nil {
		t.Errorf("in the data directory: %+v, %v; want nothing", s, err)
	}
}
