package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSecretFileRule(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		frag    string // "" when accepted
	}{
		{"owner only", "s", 0o600, ""},
		{"owner read only", "s", 0o400, ""},
		{"group may read", "s", 0o640, ""},
		{"world-readable", "s", 0o604, "readable by every user (mode 0604)"},
		{"world-writable", "s", 0o602, "writable by every user (mode 0602)"},
		{"world-executable", "s", 0o701, "accessible by every user (mode 0701)"},
		{"world-everything", "s", 0o666, "readable and writable by every user (mode 0666)"},
		{"empty", "", 0o600, "is empty"},
		{"too large", strings.Repeat("x", MaxSecretFileBytes+1), 0o600, "larger than"},
	}
	for _, tc := range cases {
		p := writeSecret(t, dir, strings.ReplaceAll(tc.name, " ", "-"), tc.content, tc.mode)
		err := CheckSecretFile(p)
		switch {
		case tc.frag == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.frag != "" && (err == nil || !strings.Contains(err.Error(), tc.frag)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.frag)
		case tc.frag != "" && strings.Contains(tc.frag, "every user") && !strings.Contains(err.Error(), `"chmod 600 `+p+`"`):
			t.Errorf("%s: the error does not give the fix: %v", tc.name, err)
		}
	}
	if err := CheckSecretFile(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want one wrapping fs.ErrNotExist", err)
	}
	if err := CheckSecretFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
}

func TestSecretDecoders(t *testing.T) {
	t.Parallel()
	raw := []byte("0123456789abcdef0123456789abcde\x00") // 32 raw bytes, not base64 text
	if k, err := DecodeSessionKey(raw); err != nil || len(k) != 32 {
		t.Errorf("raw session key: %v", err)
	}
	if _, err := DecodeSessionKey([]byte("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n")); err != nil {
		t.Errorf("base64 session key: %v", err)
	}
	if _, err := DecodeSessionKey([]byte("c2hvcnQ=")); err == nil {
		t.Error("short session key accepted")
	}
	if _, err := DecodeAuditKey("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"); err != nil {
		t.Errorf("unpadded audit key: %v", err)
	}
	if _, err := DecodeAuditKey("%%%"); err == nil {
		t.Error("audit key that is not base64 accepted")
	}
	s, err := ParseRelaySecrets("# comment\n\n  first-secret-0123456  \nsecond-secret-789012\n")
	if err != nil || len(s) != 2 || s[0] != "first-secret-0123456" {
		t.Errorf("relay secrets = %q, %v", s, err)
	}
	if _, err := ParseRelaySecrets("# only a comment\n"); err == nil || !strings.Contains(err.Error(), "holds no secret") {
		t.Errorf("no relay secret: %v", err)
	}
	if _, err := ParseRelaySecrets("long-enough-secret-1\nshort\n"); err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "short\n") {
		t.Errorf("short relay secret: %v", err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if _, err := ParseSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		t.Errorf("P-256 signing key: %v", err)
	}
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(k384)
	if _, err := ParseSigningKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil {
		t.Error("P-384 signing key accepted")
	}
	if _, err := ParseSigningKey([]byte("not pem")); err == nil {
		t.Error("non-PEM signing key accepted")
	}
}

// TestGeneratedSecretsChecked: keys telegate generated in the data
// directory on an earlier start are fine when absent and must pass the
// rule when present, since the next start reads them.
func TestGeneratedSecretsChecked(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), readTestdata(t, "ca.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(readTestdata(t, "valid.yaml")), "data_dir: ./data\n", "data_dir: ./data # <-\n", 1)
	name := filepath.Join(dir, "c.yaml")
	if _, err := parse([]byte(src), name, lookup(testEnv)); err != nil {
		t.Fatalf("absent generated keys: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data", "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := writeSecret(t, filepath.Join(dir, "data", "keys"), "session.key", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n", 0o644)
	_, err := parse([]byte(src), name, lookup(testEnv))
	if err == nil || !strings.Contains(err.Error(), name+":2: data_dir: "+p+" is readable by every user") {
		t.Fatalf("world-readable generated session key: err = %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, filepath.Join(dir, "data", "keys"), "audit.key", "c2hvcnQ=\n", 0o600)
	_, err = parse([]byte(src), name, lookup(testEnv))
	if err == nil || !strings.Contains(err.Error(), "data_dir: "+filepath.Join(dir, "data", "keys", "audit.key")+": key is 5 bytes") {
		t.Fatalf("short generated audit key: err = %v", err)
	}
}

// TestKeyPairChecked: a TLS key file that does not pair with its
// certificate is refused at check, as the TLS loaders refuse it at start.
func TestKeyPairChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), readTestdata(t, "ca.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	pemKey := func(k *ecdsa.PrivateKey) string {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"gw.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k1.PublicKey, k1)
	if err != nil {
		t.Fatal(err)
	}
	writeSecret(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	writeSecret(t, dir, "right.key", pemKey(k1), 0o600)
	writeSecret(t, dir, "wrong.key", pemKey(k2), 0o600)
	base := string(readTestdata(t, "valid.yaml"))
	name := filepath.Join(dir, "c.yaml")
	for key, want := range map[string]string{"right.key": "", "wrong.key": name + ":13: tls.hosts[0].key_file: " + filepath.Join(dir, "wrong.key") + " and cert_file"} {
		src := strings.Replace(base, "      mode: local", "      mode: files\n      cert_file: cert.pem\n      key_file: "+key, 1)
		_, err := parse([]byte(src), name, lookup(testEnv))
		if want == "" && err != nil {
			t.Errorf("%s: %v", key, err)
		}
		if want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: err = %v, want %q", key, err, want)
		}
	}
}
