package auth

import (
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/telegate/telegate/grants"
	"github.com/telegate/telegate/internal/sealbox"
)

// Break-glass grants (package grants) live in the session store: in the
// bbolt file of a single node (BoltStore.Grants), or in the Redis every
// node shares (RedisStore.Grants), so a grant made on one node opens the
// route on every node and outlives a restart.

// grantStorer is a session store that also keeps grants.
type grantStorer interface {
	Grants(grants.Limits) grants.Store
}

// Grants returns the grant store kept in the service's session store
// (BoltStore.Grants or RedisStore.Grants), capped by l. It fails for a
// session store that keeps no grants (one passed in Options.Store).
func (s *Service) Grants(l grants.Limits) (grants.Store, error) {
	gs, ok := s.store.(grantStorer)
	if !ok {
		return nil, fmt.Errorf("auth: the session store %T keeps no break-glass grants", s.store)
	}
	return gs.Grants(l), nil
}

// sealJSON seals v's JSON under aead as hdr | nonce | AES-GCM(JSON), with
// id and hdr as associated data (aad), so a record moved to another key,
// or a header edited, fails to open.
func sealJSON(aead cipher.AEAD, id string, hdr []byte, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(hdr), len(hdr)+sealbox.Overhead+len(plain))
	copy(out, hdr)
	return sealbox.FromAEAD(aead).Seal(out, plain, aad(id, hdr)), nil
}

// openJSON opens a record of sealJSON with a header of hdrLen bytes into
// v; what names the record in errors.
func openJSON(aead cipher.AEAD, id string, rec []byte, hdrLen int, what string, v any) error {
	if len(rec) < hdrLen+sealbox.Overhead {
		return fmt.Errorf("auth: %s record truncated", what)
	}
	plain, err := sealbox.FromAEAD(aead).Open(rec[hdrLen:], aad(id, rec[:hdrLen]))
	if err != nil {
		return fmt.Errorf("auth: %s record fails authentication", what)
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("auth: %s record: %w", what, err)
	}
	return nil
}

// grantAAD prefixes grant ids in the associated data, so a sealed grant
// never opens as a session (or the reverse) under the shared key.
const grantAAD = "grant:"

func sealGrant(aead cipher.AEAD, g *grants.Grant) ([]byte, error) {
	return sealJSON(aead, grantAAD+g.ID, nil, g)
}

func openGrant(aead cipher.AEAD, id string, rec []byte) (*grants.Grant, error) {
	g := new(grants.Grant)
	if err := openJSON(aead, grantAAD+id, rec, 0, "grant", g); err != nil {
		return nil, err
	}
	if g.ID != id {
		return nil, errors.New("auth: grant record id mismatch")
	}
	return g, nil
}

// grantKeyHash is the index hash of one (route, issuer, subject).
func grantKeyHash(route, issuer, subject string) []byte {
	return indexHash(issuer, subject+"\x00"+route)
}
