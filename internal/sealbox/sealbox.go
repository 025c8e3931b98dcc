// Package sealbox seals records at rest with AES-256-GCM (NIST SP
// 800-38D) for every part of telegate that keeps them: sessions, grants
// and sign-in round trips (auth), visits (media), certificate storage
// (gateway/edgetls). One record is nonce(12) | ciphertext | tag(16), the nonce
// fresh from crypto/rand for every record, with additional data that
// names the record (its key or id), so a record copied under another
// name, or sealed under another key, does not open.
//
// A Box's key is derived from a 32-byte master key and a purpose label
// with HKDF-SHA256 (RFC 5869; no salt, the purpose as info): one master
// key (a key file) can seal several kinds of record, and no kind's key
// reveals the master key or another kind's key.
//
// Random 96-bit nonces bound a key to about 2^32 records (SP 800-38D
// §8.3); the records sealed here (certificates, keys, ACME state) are
// far fewer.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the size of a master key: 32 bytes.
const KeySize = 32

// Overhead is how many bytes sealing adds to a record: nonce and tag.
const Overhead = 12 + 16

// Magic starts every sealed value that shares a place with values of
// other kinds and must be told apart from them: the certificate storage's
// values and the generated assertion key file. A value without it is
// plaintext written by an earlier version (sealed at the next start,
// never served as is).
const Magic = "telegate-seal-1\x00"

// ErrOpen is returned by Open for a record that does not open: truncated,
// changed, sealed under another key, or under another name.
var ErrOpen = errors.New("sealbox: record does not open (another key, or changed)")

// Box seals and opens records under one derived key. Safe for concurrent
// use.
type Box struct {
	aead cipher.AEAD
}

// New returns the Box of master key and purpose (a label naming the one
// use, e.g. "telegate tls storage v1"). It fails when key is not KeySize
// bytes or purpose is empty.
func New(key []byte, purpose string) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: key is %d bytes, need %d", len(key), KeySize)
	}
	if purpose == "" {
		return nil, errors.New("sealbox: no purpose")
	}
	k, err := hkdf.Key(sha256.New, key, nil, purpose, 32)
	if err != nil {
		return nil, err
	}
	return FromKey(k)
}

// FromKey returns the Box that seals under key itself (KeySize bytes),
// for a key already derived for its one use.
func FromKey(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: key is %d bytes, need %d", len(key), KeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// FromAEAD returns the Box that seals with aead, an AES-GCM with the
// standard 12-byte nonce (cipher.NewGCM) that its owner already keeps.
func FromAEAD(aead cipher.AEAD) *Box { return &Box{aead: aead} }

// Seal appends the sealed record of plain, with ad as additional data,
// to dst and returns the result.
func (b *Box) Seal(dst, plain, ad []byte) []byte {
	ns := b.aead.NonceSize()
	start := len(dst)
	dst = append(dst, make([]byte, ns)...)
	_, _ = rand.Read(dst[start:]) // crypto/rand.Read never fails (Go 1.24+)
	return b.aead.Seal(dst, dst[start:start+ns], plain, ad)
}

// Open returns the plaintext of a record of Seal with the same ad, or
// ErrOpen.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < ns+b.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
