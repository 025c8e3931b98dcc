package auth

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

const (
	// preAuthTTL is how long a sign-in (or sign-out) round trip through the
	// OpenID Provider may take.
	preAuthTTL = 10 * time.Minute
	// maxPreAuth caps the pre-auth table; the least recently created
	// records are evicted first.
	maxPreAuth = 10000
)

// preAuth is the server-side half of a round trip through the OpenID
// Provider, keyed by SHA-256 of the random handle in the pre-auth cookie.
type preAuth struct {
	// Kind is "login" or "logout".
	Kind     string
	Provider string
	State    string
	Nonce    string
	Verifier string // PKCE code_verifier (RFC 7636 §4.1)
	ReturnTo string
	// Switch marks a sign-out to switch account: the signed-out page
	// offers signing in with another account first.
	Switch  bool `json:",omitempty"`
	Expires time.Time
}

// preAuthStore holds the pre-auth records of round trips in flight. Every
// implementation is single-use (take returns a record at most once, across
// every node that shares it), never returns a record whose Expires is not
// after now, matches nothing for a handle that is empty or longer than 64
// bytes, and is bounded. An error means the store could not answer (Redis
// down or slow): callers refuse the sign-in, never accept it without its
// record (fail closed).
type preAuthStore interface {
	// put stores rec under a fresh random handle and returns the handle
	// for the pre-auth cookie.
	put(ctx context.Context, rec *preAuth) (string, error)
	// take removes and returns the record for handle; nil, nil when there
	// is none or it expired at now.
	take(ctx context.Context, handle string, now time.Time) (*preAuth, error)
	// peek returns the record for handle without removing it; nil, nil
	// when there is none or it expired at now.
	peek(ctx context.Context, handle string, now time.Time) (*preAuth, error)
}

// memoryPreAuth is the preAuthStore of a single node: a preAuthTable in
// this process (bounded by maxPreAuth, least recently created evicted
// first). It never fails.
type memoryPreAuth struct{ t *preAuthTable }

func (m memoryPreAuth) put(_ context.Context, rec *preAuth) (string, error) {
	return m.t.put(rec), nil
}

func (m memoryPreAuth) take(_ context.Context, handle string, now time.Time) (*preAuth, error) {
	return m.t.take(handle, now), nil
}

func (m memoryPreAuth) peek(_ context.Context, handle string, now time.Time) (*preAuth, error) {
	return m.t.peek(handle, now), nil
}

// preAuthTable is a bounded, single-use table of pre-auth records.
type preAuthTable struct {
	mu    sync.Mutex
	cache *lru.Cache[[32]byte, *preAuth]
}

func newPreAuthTable(size int) *preAuthTable {
	c, err := lru.New[[32]byte, *preAuth](size)
	if err != nil {
		panic(err) // size is a positive constant
	}
	return &preAuthTable{cache: c}
}

// put stores rec under a fresh handle and returns the handle for the cookie.
func (t *preAuthTable) put(rec *preAuth) string {
	h := randomToken(32)
	t.cache.Add(sha256.Sum256([]byte(h)), rec)
	return h
}

// take removes and returns the record for handle when it exists and has not
// expired at now. A record is returned at most once.
func (t *preAuthTable) take(handle string, now time.Time) *preAuth {
	if handle == "" || len(handle) > 64 {
		return nil
	}
	k := sha256.Sum256([]byte(handle))
	t.mu.Lock()
	rec, ok := t.cache.Peek(k)
	if ok {
		t.cache.Remove(k)
	}
	t.mu.Unlock()
	if !ok || !now.Before(rec.Expires) {
		return nil
	}
	return rec
}

// peek returns the record for handle when it exists and has not expired
// at now, leaving it in the table.
func (t *preAuthTable) peek(handle string, now time.Time) *preAuth {
	if handle == "" || len(handle) > 64 {
		return nil
	}
	t.mu.Lock()
	rec, ok := t.cache.Peek(sha256.Sum256([]byte(handle)))
	t.mu.Unlock()
	if !ok || !now.Before(rec.Expires) {
		return nil
	}
	return rec
}

// maxPendingSignins is how many sign-ins one browser may have in flight at
// once (one per tab); the pre-auth cookie holds their handles, newest
// first, separated by ".".
const maxPendingSignins = 4

// pendingHandles parses the pre-auth cookie value: at most
// maxPendingSignins well-formed handles.
func pendingHandles(v string) []string {
	var hs []string
	for h := range strings.SplitSeq(v, ".") {
		if len(hs) == maxPendingSignins {
			break
		}
		if validHandle(h) {
			hs = append(hs, h)
		}
	}
	return hs
}

func (t *preAuthTable) len() int { return t.cache.Len() }
