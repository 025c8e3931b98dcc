package auth

import (
	"bytes"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// lastKnown is what a RedisStore serves while Redis is unreachable: the
// sealed record of each session Redis last confirmed to this node (a Get,
// Put or Touch that succeeded), with when. A record older than stale is
// not served, so a session lives through a Redis outage at most one idle
// window past its last confirmed use (the callers' idle check still runs
// on the record's LastSeen, which does not move while Redis is away). It
// holds sealed bytes only (never a decrypted session) and at most
// DefaultSessionCacheSize records, least recently used evicted.
//
// Every way this node ends a session forgets it here first, whether or
// not Redis took the deletion: a sign-out or back-channel logout during
// the outage is never undone by the fallback. Sessions ended on another
// node are forgotten at this node's next successful Get (ErrNotFound),
// which every request makes before the fallback is consulted.
type lastKnown struct {
	stale time.Duration
	mu    sync.Mutex
	lru   *simplelru.LRU[string, knownRecord]
}

type knownRecord struct {
	sealed []byte
	at     time.Time
}

func newLastKnown(stale time.Duration) *lastKnown {
	if stale <= 0 {
		return nil
	}
	l, _ := simplelru.NewLRU[string, knownRecord](DefaultSessionCacheSize, nil)
	return &lastKnown{stale: stale, lru: l}
}

// put records that Redis confirmed id's sealed record at now.
func (k *lastKnown) put(id string, sealed []byte, now time.Time) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.lru.Get(id); ok && bytes.Equal(r.sealed, sealed) {
		r.at = now // the same record confirmed again: no copy
		k.lru.Add(id, r)
		return
	}
	k.lru.Add(id, knownRecord{sealed: bytes.Clone(sealed), at: now})
}

// get returns id's record when Redis confirmed it less than stale ago.
func (k *lastKnown) get(id string, now time.Time) ([]byte, bool) {
	if k == nil {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.lru.Get(id)
	if !ok || now.Sub(r.at) >= k.stale {
		return nil, false
	}
	return r.sealed, true
}

// forget drops ids.
func (k *lastKnown) forget(ids ...string) {
	if k == nil {
		return
	}
	k.mu.Lock()
	for _, id := range ids {
		k.lru.Remove(id)
	}
	k.mu.Unlock()
}

// forgetIndexed drops every record whose clear-text header (see
// BoltStore.seal: expires(8) | H(iss,sub)(16) | H(iss,sid)(16)) holds
// subHash (when not nil, and sidHash too when not nil) or, with subHash
// nil, sidHash: the sessions a back-channel logout names.
func (k *lastKnown) forgetIndexed(subHash, sidHash []byte) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range k.lru.Keys() {
		r, ok := k.lru.Peek(id)
		if !ok || len(r.sealed) < 40 {
			k.lru.Remove(id)
			continue
		}
		sub, sid := r.sealed[8:24], r.sealed[24:40]
		match := subHash != nil && bytes.Equal(sub, subHash) && (sidHash == nil || bytes.Equal(sid, sidHash)) ||
			subHash == nil && sidHash != nil && bytes.Equal(sid, sidHash)
		if match {
			k.lru.Remove(id)
		}
	}
}
