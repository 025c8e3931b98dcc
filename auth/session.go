package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/telegate/telegate/scope"
)

// ErrNotFound is returned by SessionStore.Get when no session has the id
// (never created, deleted, evicted or expired and swept).
var ErrNotFound = errors.New("auth: session not found")

// Session is one server-side sign-in. It is stored encrypted at rest; the
// browser holds only a random handle whose SHA-256 is ID.
//
// Field names are short on purpose: records are JSON and every idle session
// costs store space.
type Session struct {
	// ID is base64url(SHA-256(cookie handle)), 43 characters. It is the
	// store key and the AES-GCM associated data of the record.
	ID string `json:"id"`
	// Provider is the config.Provider id that signed the user in.
	Provider string `json:"p"`
	// Issuer and Subject identify the user (OIDC Core §2: iss + sub).
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// SID is the OpenID Provider's session id (the ID token's "sid" claim,
	// OIDC Front-/Back-Channel Logout 1.0 §2/§3), "" when not sent.
	SID    string   `json:"sid,omitempty"`
	Roles  []string `json:"r,omitempty"`
	Groups []string `json:"g,omitempty"`
	AMR    []string `json:"amr,omitempty"`
	ACR    string   `json:"acr,omitempty"`
	// Claims retained for policy and the assertion allow-list: name,
	// email, preferred_username (string values only).
	Claims map[string]string `json:"c,omitempty"`

	// AuthTime is the ID token's auth_time, or the sign-in time.
	AuthTime time.Time `json:"at"`
	// Created is the sign-in time; the absolute lifetime runs from it.
	Created time.Time `json:"cr"`
	// LastSeen is the last recorded use (written at most every
	// touchInterval); the idle timeout runs from it.
	LastSeen time.Time `json:"ls"`
	// Expires is min(LastSeen+idle, Created+absolute): the store sweeps
	// and evicts by it.
	Expires time.Time `json:"ex"`

	// IDToken is the raw ID token, kept for id_token_hint at sign-out
	// (OIDC RP-Initiated Logout 1.0 §2).
	IDToken string `json:"idt,omitempty"`
	// RefreshToken (RFC 6749 §6) renews the sign-in when the access token
	// expires at TokenExpiry. The access token itself is not kept: telegate
	// never forwards it.
	RefreshToken string    `json:"rt,omitempty"`
	TokenExpiry  time.Time `json:"tex,omitzero"`
}

// Identity returns the request identity the session stands for.
func (s *Session) Identity() *scope.Identity {
	id := &scope.Identity{
		Kind:      "session",
		Provider:  s.Provider,
		Issuer:    s.Issuer,
		Subject:   s.Subject,
		Roles:     s.Roles,
		Groups:    s.Groups,
		AMR:       s.AMR,
		ACR:       s.ACR,
		SessionID: s.ID,
		AuthTime:  s.AuthTime,
	}
	if len(s.Claims) > 0 {
		id.Claims = make(map[string]any, len(s.Claims))
		for k, v := range s.Claims {
			id.Claims[k] = v
		}
	}
	return id
}

// SessionStore keeps sessions server-side. Implementations must be safe for
// concurrent use. The conformance suite in store_conformance_test.go
// (runStoreConformance) is the contract every implementation must pass.
type SessionStore interface {
	// Get returns the session with id, or ErrNotFound. It does not check
	// timeouts; the caller does, against its own clock.
	Get(ctx context.Context, id string) (*Session, error)
	// Put creates or replaces s. When a new session takes the store past
	// its cap, the sessions with the earliest Expires are evicted and
	// returned so the caller can end them.
	Put(ctx context.Context, s *Session) (evicted []*Session, err error)
	// Touch replaces the stored record of s with s (its use recorded: a
	// later LastSeen and Expires) only while a record with s.ID is still
	// stored; otherwise it returns ErrNotFound (or ErrSessionEnded), so
	// recording a use never brings back a session that ended meanwhile.
	Touch(ctx context.Context, s *Session) error
	// Delete removes the session with id and returns it (nil, nil when
	// there was none).
	Delete(ctx context.Context, id string) (*Session, error)
	// DeleteBySubject removes every session of (issuer, subject); when sid
	// is non-empty, only those whose SID equals sid, and subject may then be
	// "" to match any subject (OIDC Back-Channel Logout 1.0 §2.4). It
	// returns the removed sessions.
	DeleteBySubject(ctx context.Context, issuer, subject, sid string) ([]*Session, error)
	// DeleteExpired removes every session whose Expires is not after now
	// and returns them.
	DeleteExpired(ctx context.Context, now time.Time) ([]*Session, error)
	// Close releases the store.
	Close() error
}

// newHandle returns a fresh random 256-bit cookie handle (base64url, 43
// characters) and the session id derived from it.
func newHandle() (handle, id string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	handle = base64.RawURLEncoding.EncodeToString(b[:])
	return handle, sessionIDFor(handle)
}

// sessionIDFor maps a cookie handle to its session id:
// base64url(SHA-256(handle)). A stolen store yields ids, never handles.
func sessionIDFor(handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validHandle reports whether v has the shape of a cookie handle: 43
// base64url characters. Anything else is not looked up.
func validHandle(v string) bool {
	if len(v) != 43 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// randomToken returns n random bytes as base64url (state, nonce, jti).
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
