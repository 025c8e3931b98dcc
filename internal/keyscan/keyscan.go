// Package keyscan finds private keys left in clear in bytes at rest
// (files, Redis values), whatever the key: for tests that show none is.
package keyscan

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// base64Run is a run of base64 long enough to hold a private key's DER
// (an EC P-256 key's SEC 1 DER is 121 bytes, 160 characters).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{100,}={0,2}`)

// Find names the private keys in clear in b, whatever the key:
// a PEM block labelled PRIVATE KEY (PKCS #8, "EC PRIVATE KEY", "RSA
// PRIVATE KEY", "ENCRYPTED" excepted), a DER PKCS #8, SEC 1 or PKCS #1
// private key at any offset, or one of those in base64 (a PEM body
// without its label, a JSON []byte).
func Find(b []byte) []string {
	var found []string
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") && !strings.Contains(blk.Type, "ENCRYPTED") {
			found = append(found, "PEM "+blk.Type)
		}
	}
	if len(found) == 0 && bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		found = append(found, "PEM label")
	}
	found = append(found, derKeysIn(b)...)
	for _, run := range base64Run.FindAll(b, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if dec, err := enc.DecodeString(string(run)); err == nil {
				for _, f := range derKeysIn(dec) {
					found = append(found, f+" in base64")
				}
				break
			}
		}
	}
	return found
}

// derKeysIn names the DER private keys at any offset of b.
func derKeysIn(b []byte) []string {
	var found []string
	for i := range b {
		if b[i] != 0x30 { // SEQUENCE
			continue
		}
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(b[i:], &raw); err != nil || len(raw.FullBytes) < 32 {
			continue
		}
		der := raw.FullBytes
		if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
			found = append(found, "PKCS #8 DER")
		} else if _, err := x509.ParseECPrivateKey(der); err == nil {
			found = append(found, "SEC 1 DER")
		} else if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
			found = append(found, "PKCS #1 DER")
		}
	}
	return found
}

// Files calls fn with the path and contents of every regular file below
// dir and returns how many it read.
func Files(dir string, fn func(path string, b []byte)) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		fn(p, b)
		return nil
	})
	return n, err
}
