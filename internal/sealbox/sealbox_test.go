package sealbox

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// TestRegression_SealedRecordOpensOnlyAsSealed: a record opens only with
// its key, its purpose and its name, unchanged; every other form fails
// with ErrOpen.
func TestRegression_SealedRecordOpensOnlyAsSealed(t *testing.T) {
	box, err := New(key(1), "telegate test v1")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN PRIVATE KEY-----")
	rec := box.Seal([]byte("prefix|"), plain, []byte("a/b.key"))
	if !bytes.HasPrefix(rec, []byte("prefix|")) || len(rec) != len("prefix|")+len(plain)+Overhead {
		t.Fatalf("record %x: want prefix | %d bytes", rec, len(plain)+Overhead)
	}
	rec = rec[len("prefix|"):]
	if bytes.Contains(rec, plain) {
		t.Fatal("the record holds the plaintext")
	}
	if got, err := box.Open(rec, []byte("a/b.key")); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if again := box.Seal(nil, plain, []byte("a/b.key")); bytes.Equal(again[:12], rec[:12]) {
		t.Error("two records share a nonce")
	}
	otherKey, _ := New(key(2), "telegate test v1")
	otherPurpose, _ := New(key(1), "telegate other v1")
	raw, _ := FromKey(key(1))
	flipped := bytes.Clone(rec)
	flipped[len(flipped)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another name":    func() ([]byte, error) { return box.Open(rec, []byte("a/c.key")) },
		"another key":     func() ([]byte, error) { return otherKey.Open(rec, []byte("a/b.key")) },
		"another purpose": func() ([]byte, error) { return otherPurpose.Open(rec, []byte("a/b.key")) },
		"the master key":  func() ([]byte, error) { return raw.Open(rec, []byte("a/b.key")) },
		"a flipped bit":   func() ([]byte, error) { return box.Open(flipped, []byte("a/b.key")) },
		"truncated":       func() ([]byte, error) { return box.Open(rec[:Overhead-1], []byte("a/b.key")) },
		"empty":           func() ([]byte, error) { return box.Open(nil, []byte("a/b.key")) },
	} {
		if got, err := open(); !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, got, err)
		}
	}
	if _, err := New(key(1)[:16], "p"); err == nil {
		t.Error("a 16-byte key was accepted")
	}
	if _, err := New(key(1), ""); err == nil {
		t.Error("an empty purpose was accepted")
	}
}
