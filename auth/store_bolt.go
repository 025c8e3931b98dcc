package auth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	bolt "go.etcd.io/bbolt"
)

// DefaultSessionCacheSize is how many decrypted sessions a BoltStore keeps
// in memory for Get (least recently used evicted first).
const DefaultSessionCacheSize = 4096

// Bucket names of the embedded store.
var (
	bucketSessions = []byte("sessions")  // id → header | nonce | AES-GCM(record)
	bucketExpiry   = []byte("by-expiry") // expires(8, big endian ns) | id → ""
	bucketSubject  = []byte("by-sub")    // H(iss, sub)(16) | id → ""
	bucketSID      = []byte("by-sid")    // H(iss, sid)(16) | id → ""
)

const (
	hashLen   = 16
	headerLen = 8 + hashLen + hashLen // expires | H(iss,sub) | H(iss,sid) (zero when no sid)
)

// BoltStore is the default SessionStore: a bbolt file in the data directory
// with every record sealed with AES-256-GCM (NIST SP 800-38D) under a
// 32-byte key, the session id and the clear-text index header as associated
// data. Index keys hold only truncated SHA-256 hashes of issuer+subject and
// issuer+sid, so the file yields neither cookies nor user names.
//
// Get is served from a bounded in-memory cache of decrypted records
// (DefaultSessionCacheSize entries, least recently used evicted), keyed by
// the session id (the SHA-256 of the cookie handle, never the handle). Only
// Get fills it; every write (Put, Delete, DeleteBySubject, DeleteExpired,
// eviction) drops the records it touches before it returns, so a session
// that was ended is never served from memory afterwards. The cache is
// coherent because bbolt locks the file to one process. Callers still check
// the idle and absolute deadlines on every Get (the store does not).
type BoltStore struct {
	db   *bolt.DB
	aead cipher.AEAD
	max  int

	mu    sync.Mutex // guards count (writes are serialised by bbolt too)
	count int

	cacheMu sync.Mutex // guards cache and epoch
	cache   *simplelru.LRU[string, *Session]
	// epoch counts invalidations: a Get that read the file before an
	// invalidation does not put what it read into the cache.
	epoch uint64
}

// OpenBoltStore opens (creating if needed, mode 0600) the store at path with
// a 32-byte AES-256 key; maxSessions caps the number of records (≤0 means
// no cap). It fails if another process holds the file for more than 2s.
func OpenBoltStore(path string, key []byte, maxSessions int) (*BoltStore, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("auth: session encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("auth: session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: session cipher: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: session store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("auth: open session store %s: %w", path, err)
	}
	s := &BoltStore{db: db, aead: aead, max: maxSessions}
	s.cache, _ = simplelru.NewLRU[string, *Session](DefaultSessionCacheSize, nil)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range append([][]byte{bucketSessions, bucketExpiry, bucketSubject, bucketSID}, grantBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		s.count = tx.Bucket(bucketSessions).Stats().KeyN
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("auth: prepare session store %s: %w", path, err)
	}
	return s, nil
}

func indexHash(issuer, v string) []byte {
	h := sha256.New()
	h.Write([]byte(issuer))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return h.Sum(nil)[:hashLen]
}

func expiryKey(t time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	copy(k[8:], id)
	return k
}

func (s *BoltStore) seal(sess *Session) ([]byte, error) {
	hdr := make([]byte, headerLen)
	ns := sess.Expires.UnixNano()
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(hdr, uint64(ns))
	copy(hdr[8:], indexHash(sess.Issuer, sess.Subject))
	if sess.SID != "" {
		copy(hdr[8+hashLen:], indexHash(sess.Issuer, sess.SID))
	}
	return sealJSON(s.aead, sess.ID, hdr, sess)
}

// aad is the associated data of a record: its id, a zero byte, its
// clear-text header.
func aad(id string, hdr []byte) []byte {
	a := make([]byte, 0, len(id)+1+len(hdr))
	a = append(a, id...)
	a = append(a, 0)
	return append(a, hdr...)
}

// open decrypts v (valid only inside the transaction) into a new Session.
func (s *BoltStore) open(id string, v []byte) (*Session, error) {
	sess := new(Session)
	if err := openJSON(s.aead, id, v, headerLen, "session", sess); err != nil {
		return nil, err
	}
	if sess.ID != id {
		return nil, errors.New("auth: session record id mismatch")
	}
	return sess, nil
}

// Get implements SessionStore. The returned Session is the caller's own
// copy; its slices and Claims map are shared with the cache and must not be
// modified in place (assign new ones instead).
func (s *BoltStore) Get(_ context.Context, id string) (*Session, error) {
	s.cacheMu.Lock()
	if c, ok := s.cache.Get(id); ok {
		s.cacheMu.Unlock()
		cp := *c
		return &cp, nil
	}
	epoch := s.epoch
	s.cacheMu.Unlock()
	var sess *Session
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		sess, err = s.open(id, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Clipped slices: an append by a caller reallocates instead of writing
	// into the cached record's arrays.
	sess.Roles, sess.Groups, sess.AMR = slices.Clip(sess.Roles), slices.Clip(sess.Groups), slices.Clip(sess.AMR)
	c := *sess
	s.cacheMu.Lock()
	if s.epoch == epoch {
		s.cache.Add(id, &c)
	}
	s.cacheMu.Unlock()
	return sess, nil
}

// forget drops ids from the cache and makes every Get in flight skip
// filling it. Writers call it after their transaction, whatever its
// outcome.
func (s *BoltStore) forget(ids ...string) {
	s.cacheMu.Lock()
	s.epoch++
	for _, id := range ids {
		s.cache.Remove(id)
	}
	s.cacheMu.Unlock()
}

// forgetReplace is forget for Put: it drops the evicted ids and, when the
// record of sess was cached and the write committed, replaces it with a
// copy of sess (otherwise drops it), so a session in use stays warm after
// its use is recorded.
func (s *BoltStore) forgetReplace(gone []string, sess *Session, committed bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.epoch++
	for _, id := range gone {
		s.cache.Remove(id)
	}
	if !committed || !s.cache.Contains(sess.ID) {
		s.cache.Remove(sess.ID)
		return
	}
	c := *sess
	c.Roles, c.Groups, c.AMR = clipClone(sess.Roles), clipClone(sess.Groups), clipClone(sess.AMR)
	c.Claims = maps.Clone(sess.Claims)
	s.cache.Add(sess.ID, &c)
}

func clipClone(v []string) []string {
	if v == nil {
		return nil
	}
	return slices.Clip(slices.Clone(v))
}

// cached reports whether id is in the memory cache (tests).
func (s *BoltStore) cached(id string) bool {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	return s.cache.Contains(id)
}

// removeLocked deletes the record with id and its index entries inside tx.
// It returns the decrypted record when it can be read (nil otherwise).
func (s *BoltStore) removeLocked(tx *bolt.Tx, id string) (*Session, bool) {
	b := tx.Bucket(bucketSessions)
	v := b.Get([]byte(id))
	if v == nil {
		return nil, false
	}
	if len(v) >= headerLen {
		hdr := v[:headerLen]
		exp := make([]byte, 8+len(id))
		copy(exp, hdr[:8])
		copy(exp[8:], id)
		_ = tx.Bucket(bucketExpiry).Delete(exp)
		_ = tx.Bucket(bucketSubject).Delete(append(bytes.Clone(hdr[8:8+hashLen]), id...))
		if sid := hdr[8+hashLen:]; !allZero(sid) {
			_ = tx.Bucket(bucketSID).Delete(append(bytes.Clone(sid), id...))
		}
	}
	sess, _ := s.open(id, v)
	_ = b.Delete([]byte(id))
	return sess, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Put implements SessionStore.
func (s *BoltStore) Put(_ context.Context, sess *Session) ([]*Session, error) {
	return s.put(sess, false)
}

// Touch implements SessionStore.
func (s *BoltStore) Touch(_ context.Context, sess *Session) error {
	_, err := s.put(sess, true)
	return err
}

// put stores sess; with existing it replaces a stored record only and
// returns ErrNotFound when there is none.
func (s *BoltStore) put(sess *Session, existing bool) ([]*Session, error) {
	if sess == nil || sess.ID == "" {
		return nil, errors.New("auth: session without id")
	}
	val, err := s.seal(sess)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var evicted []*Session
	var gone []string
	delta := 0
	defer func() { s.forgetReplace(gone, sess, err == nil) }()
	err = s.db.Update(func(tx *bolt.Tx) error {
		evicted, gone, delta = nil, nil, 0
		id := sess.ID
		if existing && tx.Bucket(bucketSessions).Get([]byte(id)) == nil {
			return ErrNotFound
		}
		if _, existed := s.removeLocked(tx, id); !existed {
			delta = 1
		}
		if delta == 1 && s.max > 0 {
			c := tx.Bucket(bucketExpiry).Cursor()
			for n := s.count; n >= s.max; n-- {
				k, _ := c.First()
				if k == nil {
					break
				}
				old, _ := s.removeLocked(tx, string(k[8:]))
				gone = append(gone, string(k[8:]))
				delta--
				if old != nil {
					evicted = append(evicted, old)
				}
			}
		}
		hdr := val[:headerLen]
		if err := tx.Bucket(bucketSessions).Put([]byte(id), val); err != nil {
			return err
		}
		exp := make([]byte, 8+len(id))
		copy(exp, hdr[:8])
		copy(exp[8:], id)
		if err := tx.Bucket(bucketExpiry).Put(exp, nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSubject).Put(append(bytes.Clone(hdr[8:8+hashLen]), id...), nil); err != nil {
			return err
		}
		if sid := hdr[8+hashLen:]; !allZero(sid) {
			if err := tx.Bucket(bucketSID).Put(append(bytes.Clone(sid), id...), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("auth: store session: %w", err)
	}
	s.count += delta
	return evicted, nil
}

// Delete implements SessionStore.
func (s *BoltStore) Delete(_ context.Context, id string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.forget(id)
	var sess *Session
	var existed bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		sess, existed = s.removeLocked(tx, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: delete session: %w", err)
	}
	if existed {
		s.count--
	}
	return sess, nil
}

// DeleteBySubject implements SessionStore.
func (s *BoltStore) DeleteBySubject(_ context.Context, issuer, subject, sid string) ([]*Session, error) {
	if subject == "" && sid == "" {
		return nil, errors.New("auth: delete by subject needs a subject or a sid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Session
	var gone []string
	n := 0
	defer func() { s.forget(gone...) }()
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, n = nil, 0
		var bucket []byte
		var prefix []byte
		if subject != "" {
			bucket, prefix = bucketSubject, indexHash(issuer, subject)
		} else {
			bucket, prefix = bucketSID, indexHash(issuer, sid)
		}
		var sidHash []byte
		if sid != "" {
			sidHash = indexHash(issuer, sid)
		}
		var ids []string
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[hashLen:]))
		}
		sessions := tx.Bucket(bucketSessions)
		for _, id := range ids {
			v := sessions.Get([]byte(id))
			if len(v) < headerLen {
				continue
			}
			if sidHash != nil && !bytes.Equal(v[8+hashLen:headerLen], sidHash) {
				continue
			}
			gone = append(gone, id)
			if sess, ok := s.removeLocked(tx, id); ok {
				n++
				if sess != nil {
					out = append(out, sess)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: delete sessions: %w", err)
	}
	s.count -= n
	return out, nil
}

// DeleteExpired implements SessionStore.
func (s *BoltStore) DeleteExpired(_ context.Context, now time.Time) ([]*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := expiryKey(now, "\xff")
	var out []*Session
	var gone []string
	n := 0
	defer func() { s.forget(gone...) }()
	err := s.db.Update(func(tx *bolt.Tx) error {
		out, n = nil, 0
		var ids []string
		c := tx.Bucket(bucketExpiry).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit[:8]) <= 0; k, _ = c.Next() {
			ids = append(ids, string(k[8:]))
		}
		gone = append(gone, ids...)
		for _, id := range ids {
			if sess, ok := s.removeLocked(tx, id); ok {
				n++
				if sess != nil {
					out = append(out, sess)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("auth: sweep sessions: %w", err)
	}
	s.count -= n
	return out, nil
}

// Len returns the number of stored sessions.
func (s *BoltStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Close implements SessionStore.
func (s *BoltStore) Close() error { return s.db.Close() }
