// Package grants holds the shape of break-glass grants (emergency access,
// 45 CFR 164.312(a)(2)(ii)) and the contract of the stores that keep
// them: package auth keeps them in the session store (the bbolt file, or
// the Redis several nodes share), package policies grants, honours and
// reviews them. Each grant is one use to review: it stays "unreviewed"
// until a reviewer records an outcome (Store.Review).
package grants

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"
)

// ErrNotFound: no grant has the id, or no unexpired grant matches.
var ErrNotFound = errors.New("grants: not found")

// Errors of a Store.
var (
	// ErrSubjectLimit: the subject already holds Limits.PerSubject
	// unexpired grants.
	ErrSubjectLimit = errors.New("grants: too many active break-glass grants for this subject")
	// ErrStoreFull: the store holds Limits.Max grants and none of
	// them is reviewed (only reviewed grants are evicted to make room).
	ErrStoreFull = errors.New("grants: break-glass grant store full of unreviewed grants")
	// ErrReviewed: the grant already has a review; a review is final.
	ErrReviewed = errors.New("grants: break-glass grant already reviewed")
)

// Grant is one break-glass use: who opened which route, why, and for how
// long, and its review once recorded. It is sealed at rest by package auth like a session
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
	Review *Review `json:"rv,omitempty"`
}

// Review is a reviewer's outcome for a grant.
type Review struct {
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

// Limits bound a Store.
type Limits struct {
	// Max caps the grants kept (active and past). When full, the oldest
	// reviewed grant is removed; with none reviewed, Create fails with
	// ErrStoreFull. ≤0: no cap.
	Max int
	// PerSubject caps the unexpired grants of one (issuer, subject). ≤0:
	// no cap.
	PerSubject int
}

// Store keeps break-glass grants. Implementations must be safe for
// concurrent use, and atomic across the nodes sharing them. The
// conformance suite in auth/grants_conformance_test.go
// (auth.runGrantStoreConformance) is the contract every implementation passes.
type Store interface {
	// Create stores g, a new grant with a fresh ID (NewID). It fails
	// with ErrSubjectLimit or ErrStoreFull (see Limits);
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
	// ErrNotFound when there is none, ErrReviewed when it has one
	// already (the first review stands).
	Review(ctx context.Context, id string, r Review) (*Grant, error)
}

// ValidID reports whether s has the shape of a grant id (22 base64url
// characters). Anything else is never looked up, nor written to the
// audit trail.
func ValidID(s string) bool {
	if len(s) != 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// NewID returns a fresh random grant id (22 base64url characters).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b[:])
}
