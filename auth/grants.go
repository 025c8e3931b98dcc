package auth

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Break-glass grants (emergency access, 45 CFR 164.312(a)(2)(ii)) live in
// the session store: in the bbolt file of a single node, or in the Redis
// every node shares, so a grant made on one node opens the route on every
// node and outlives a restart. Each grant is one use to review: it stays
// "unreviewed" until a reviewer records an outcome (GrantStore.Review).

// Errors of a GrantStore.
var (
	// ErrGrantSubjectLimit: the subject already holds GrantLimits.PerSubject
	// unexpired grants.
	ErrGrantSubjectLimit = errors.New("auth: too many active break-glass grants for this subject")
	// ErrGrantStoreFull: the store holds GrantLimits.Max grants and none of
	// them is reviewed (only reviewed grants are evicted to make room).
	ErrGrantStoreFull = errors.New("auth: break-glass grant store full of unreviewed grants")
	// ErrGrantReviewed: the grant already has a review; a review is final.
	ErrGrantReviewed = errors.New("auth: break-glass grant already reviewed")
)

// Grant is one break-glass use: who opened which route, why, and for how
// long, and its review once recorded. It is sealed at rest like a Session
// (AES-256-GCM, the grant id as associated data); index keys hold only
// truncated SHA-256 hashes of issuer, subject and route.
type Grant struct {
	// ID is 22 base64url characters (128 random bits).
	ID string `json:"id"`
	// Route is the config.Route id the grant opens.
	Route string `json:"route"`
	// Provider, Issuer and Subject identify the person (OIDC Core §2).
	Provider string `json:"p,omitempty"`
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	// Reason is one of policies.BreakGlassReasons (never free text).
	Reason string `json:"reason"`
	// Node is the node id of the node that granted it.
	Node string `json:"node,omitempty"`
	// Created and Expires bound the window the grant opens the route for.
	Created time.Time `json:"cr"`
	Expires time.Time `json:"ex"`
	// Review is nil while the use is unreviewed.
	Review *GrantReview `json:"rv,omitempty"`
}

// GrantReview is a reviewer's outcome for a grant.
type GrantReview struct {
	// Outcome is one of policies.BreakGlassOutcomes.
	Outcome string `json:"outcome"`
	// Note is the reviewer's note (at most policies.MaxReviewNoteBytes);
	// it may name a patient, so it is kept sealed in the store only and
	// never written to the audit trail or a log.
	Note string `json:"note,omitempty"`
	// Issuer and Subject identify the reviewer; Via is how the review came
	// ("page" on the public listener, "admin" on the admin listener).
	Issuer  string    `json:"iss"`
	Subject string    `json:"sub"`
	Via     string    `json:"via"`
	Time    time.Time `json:"t"`
}

// Unexpired reports whether g still opens its route at now.
func (g *Grant) Unexpired(now time.Time) bool { return now.Before(g.Expires) }

// GrantLimits bound a GrantStore.
type GrantLimits struct {
	// Max caps the grants kept (active and past). When full, the oldest
	// reviewed grant is removed; with none reviewed, Create fails with
	// ErrGrantStoreFull. ≤0: no cap.
	Max int
	// PerSubject caps the unexpired grants of one (issuer, subject). ≤0:
	// no cap.
	PerSubject int
}

// GrantStore keeps break-glass grants. Implementations must be safe for
// concurrent use, and atomic across the nodes sharing them. The
// conformance suite in grants_conformance_test.go
// (runGrantStoreConformance) is the contract every implementation passes.
type GrantStore interface {
	// Create stores g, a new grant with a fresh ID (NewGrantID). It fails
	// with ErrGrantSubjectLimit or ErrGrantStoreFull (see GrantLimits);
	// grants that expired by now do not count towards PerSubject.
	Create(ctx context.Context, g *Grant, now time.Time) error
	// Active returns the latest grant of (issuer, subject) on route that is
	// unexpired at now, or ErrNotFound.
	Active(ctx context.Context, route, issuer, subject string, now time.Time) (*Grant, error)
	// Get returns the grant with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Grant, error)
	// List returns up to limit grants (all when limit ≤ 0), newest first.
	List(ctx context.Context, limit int) ([]*Grant, error)
	// Review records r on the grant with id and returns the grant with it;
	// ErrNotFound when there is none, ErrGrantReviewed when it has one
	// already (the first review stands).
	Review(ctx context.Context, id string, r GrantReview) (*Grant, error)
}

// NewGrantID returns a fresh random grant id (22 base64url characters).
func NewGrantID() string { return randomToken(16) }

// grantStorer is a session store that also keeps grants.
type grantStorer interface {
	Grants(GrantLimits) GrantStore
}

// Grants returns the grant store kept in the service's session store
// (BoltStore.Grants or RedisStore.Grants), capped by l. It fails for a
// session store that keeps no grants (one passed in Options.Store).
func (s *Service) Grants(l GrantLimits) (GrantStore, error) {
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
	out := make([]byte, len(hdr), len(hdr)+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, hdr)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, aad(id, hdr)), nil
}

// openJSON opens a record of sealJSON with a header of hdrLen bytes into
// v; what names the record in errors.
func openJSON(aead cipher.AEAD, id string, rec []byte, hdrLen int, what string, v any) error {
	ns := aead.NonceSize()
	if len(rec) < hdrLen+ns+aead.Overhead() {
		return fmt.Errorf("auth: %s record truncated", what)
	}
	hdr, nonce, ct := rec[:hdrLen], rec[hdrLen:hdrLen+ns], rec[hdrLen+ns:]
	plain, err := aead.Open(nil, nonce, ct, aad(id, hdr))
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

func sealGrant(aead cipher.AEAD, g *Grant) ([]byte, error) {
	return sealJSON(aead, grantAAD+g.ID, nil, g)
}

func openGrant(aead cipher.AEAD, id string, rec []byte) (*Grant, error) {
	g := new(Grant)
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
