package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
)

// nonceSource issues the NONCE values of the long-term credential
// mechanism (RFC 8489 §9.2). Each nonce is
// base64url(issued-unix-seconds(8) || counter(8) || HMAC-SHA256(key, first 16 bytes)[:16]),
// so no two nonces issued by one process are equal, and a nonce is
// verified without state.
type nonceSource struct {
	key [32]byte
	ctr atomic.Uint64
}

var errBadNonce = errors.New("relay: unknown or stale nonce")

const nonceRawLen = 32

func newNonceSource() *nonceSource {
	n := &nonceSource{}
	_, _ = rand.Read(n.key[:])
	var c [8]byte
	_, _ = rand.Read(c[:])
	n.ctr.Store(binary.BigEndian.Uint64(c[:]))
	return n
}

func (n *nonceSource) issue(now time.Time) string {
	var b [nonceRawLen]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.Unix()))
	binary.BigEndian.PutUint64(b[8:16], n.ctr.Add(1))
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check verifies that s was issued by n no longer than maxAge before now.
func (n *nonceSource) check(s string, now time.Time, maxAge time.Duration) error {
	if len(s) != base64.RawURLEncoding.EncodedLen(nonceRawLen) {
		return errBadNonce
	}
	var b [nonceRawLen]byte
	if k, err := base64.RawURLEncoding.Decode(b[:], []byte(s)); err != nil || k != nonceRawLen {
		return errBadNonce
	}
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return errBadNonce
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[0:8])), 0)
	if now.Before(issued.Add(-time.Minute)) || now.Sub(issued) > maxAge {
		return errBadNonce
	}
	return nil
}
