package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The rule for secret and key files, in one place. `telegate check`
// (through Load and Validate) and the readers that run at start (auth,
// audit, gateway, media/relay) both call the functions below, so that a
// file check accepts is a file run accepts, and the other way round.
//
// A secret file must
//   - exist and be a regular file this process can open for reading;
//   - be neither readable nor writable by every user: mode&0o007 == 0
//     (fix with "chmod 600 FILE"); on Windows, without Unix permission
//     bits, this part is skipped;
//   - hold at most MaxSecretFileBytes, and not be empty;
//   - hold what its reader needs: a session key decodes to 32 bytes
//     (DecodeSessionKey), an audit key to at least 32 (DecodeAuditKey),
//     each relay secret is at least RelaySecretMinBytes long
//     (ParseRelaySecrets), the assertion signing key is a PEM EC P-256
//     private key (ParseSigningKey).
//
// Files telegate creates itself in the data directory on first start
// (SessionKeyInDataDir, AuditKeyInDataDir, AuditCheckpointKeyInDataDir,
// SigningKeyInDataDir, RelaySecretInDataDir) may be absent; when present they follow the same
// rule.

// Files telegate generates once in the data directory when the
// configuration names no key of its own (paths relative to data_dir, with
// forward slashes).
const (
	SessionKeyInDataDir = "keys/session.key"
	AuditKeyInDataDir   = "keys/audit.key"
	// AuditCheckpointKeyInDataDir holds the Ed25519 key that signs the
	// audit trail's checkpoints (a note signer key, one line).
	AuditCheckpointKeyInDataDir = "keys/audit-checkpoint.key"
	SigningKeyInDataDir         = "keys/assertion.pem"
	// TLSStorageKeyInDataDir seals the certificate file storage when
	// tls.storage_key_file names no key.
	TLSStorageKeyInDataDir = "keys/tls-storage.key"
	RelaySecretInDataDir   = "relay/secret"
)

// RelaySecretMinBytes is the shortest relay secret accepted.
const RelaySecretMinBytes = 16

// CheckSecretFile applies the file part of the rule to path: an existing
// regular file, readable by this process, not readable or writable by
// every user (mode&0o007 == 0), of at most MaxSecretFileBytes. The error
// names path and, for a bad mode, the mode and the fix; it wraps the
// underlying error, so errors.Is(err, fs.ErrNotExist) tells a missing
// file.
func CheckSecretFile(path string) error {
	_, err := readSecretBytes(path)
	return err
}

// readSecretBytes checks path by the rule and returns its content.
func readSecretBytes(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPathError(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o007 != 0 {
		what := "readable"
		switch {
		case perm&0o004 != 0 && perm&0o002 != 0:
			what = "readable and writable"
		case perm&0o002 != 0:
			what = "writable"
		case perm&0o004 == 0:
			what = "accessible"
		}
		return nil, fmt.Errorf("%s is %s by every user (mode %04o); restrict it with \"chmod 600 %s\"", path, what, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(b) > MaxSecretFileBytes {
		return nil, fmt.Errorf("secret file %s is larger than %d bytes", path, MaxSecretFileBytes)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}

// DecodeSessionKey returns the 32-byte session encryption key held in b:
// base64 text (standard or URL alphabet, padded or not, surrounding white
// space ignored) of 32 bytes, or the 32 raw bytes themselves.
func DecodeSessionKey(b []byte) ([]byte, error) {
	if len(b) == 32 && !isBase64Text(b) {
		return append([]byte(nil), b...), nil
	}
	k, ok := decodeBase64(strings.TrimSpace(string(b)))
	if !ok {
		return nil, errors.New("must be 32 bytes in base64 (e.g. openssl rand -base64 32)")
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("must be 32 bytes in base64 (e.g. openssl rand -base64 32), not %d", len(k))
	}
	return k, nil
}

// DecodeAuditKey returns the audit key held in s: base64 (standard or URL
// alphabet, padded or not, surrounding white space ignored) of at least
// 32 bytes.
func DecodeAuditKey(s string) ([]byte, error) {
	k, ok := decodeBase64(strings.TrimSpace(s))
	if !ok {
		return nil, errors.New("key is not base64; it must be at least 32 bytes in base64 (generate one with `openssl rand -base64 32`)")
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("key is %d bytes, need at least 32 in base64 (generate one with `openssl rand -base64 32`)", len(k))
	}
	return k, nil
}

// CheckRelaySecret requires one relay secret to be at least
// RelaySecretMinBytes long.
func CheckRelaySecret(s string) error {
	if len(s) < RelaySecretMinBytes {
		return fmt.Errorf("must be at least %d bytes", RelaySecretMinBytes)
	}
	return nil
}

// ParseRelaySecrets returns the secrets of a relay secrets file: one per
// line, surrounding white space removed, blank lines and lines starting
// with "#" skipped. It fails when there is none or one is too short
// (CheckRelaySecret); the error gives the line number, never the secret.
func ParseRelaySecrets(s string) ([]string, error) {
	var out []string
	for i, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if err := CheckRelaySecret(l); err != nil {
			return nil, fmt.Errorf("line %d: secret %w", i+1, err)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no secret")
	}
	return out, nil
}

// ParseSigningKey returns the assertion signing key held in PEM text b: an
// EC P-256 private key (ES256, RFC 7518 §3.4) as SEC 1 "EC PRIVATE KEY" or
// PKCS #8 "PRIVATE KEY".
func ParseSigningKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block: want a PEM EC P-256 private key")
	}
	var (
		key any
		err error
	)
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM type %q, want EC PRIVATE KEY or PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("not an EC P-256 key (ES256, RFC 7518 §3.4)")
	}
	return ek, nil
}

// ReadSessionKeyFile reads a session encryption key file by the rule
// (CheckSecretFile, DecodeSessionKey).
func ReadSessionKeyFile(path string) ([]byte, error) {
	b, err := readSecretBytes(path)
	if err != nil {
		return nil, err
	}
	k, err := DecodeSessionKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadAuditKeyFile reads an audit key file by the rule (CheckSecretFile,
// DecodeAuditKey).
func ReadAuditKeyFile(path string) ([]byte, error) {
	b, err := readSecretBytes(path)
	if err != nil {
		return nil, err
	}
	k, err := DecodeAuditKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadAuditEncryptionKeyFile reads audit.encryption_key_file: 32 bytes
// (AES-256), by the rule of the session key file (ReadSessionKeyFile).
func ReadAuditEncryptionKeyFile(path string) ([]byte, error) {
	return ReadSessionKeyFile(path)
}

// ReadTLSStorageKeyFile reads tls.storage_key_file: 32 bytes (AES-256),
// by the rule of the session key file (ReadSessionKeyFile).
func ReadTLSStorageKeyFile(path string) ([]byte, error) {
	return ReadSessionKeyFile(path)
}

// ReadRelaySecretsFile reads a relay secrets file by the rule
// (CheckSecretFile, ParseRelaySecrets).
func ReadRelaySecretsFile(path string) ([]string, error) {
	b, err := readSecretBytes(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseRelaySecrets(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReadSigningKeyFile reads an assertion signing key file by the rule
// (CheckSecretFile, ParseSigningKey).
func ReadSigningKeyFile(path string) (*ecdsa.PrivateKey, error) {
	b, err := readSecretBytes(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// InDataDir returns the path of a file telegate keeps in the data
// directory (one of the *InDataDir constants).
func InDataDir(dataDir, name string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, filepath.FromSlash(name))
}

func isBase64Text(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// ReadCertPool reads a PEM bundle of certificates (trust anchors: a
// hospital CA, a device CA, an identity provider's or upstream's root)
// into a pool of its own. It refuses a file it cannot read and one that
// holds no PEM certificate. Every CA file of the configuration is read
// through it.
func ReadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// maxCAFileBytes bounds a CA bundle file.
const maxCAFileBytes = 1 << 20

// ReadCACertificates reads a PEM bundle that must hold only CA
// certificates (basic constraints CA:TRUE, RFC 5280 §4.2.1.9): a device
// CA of client_cas. It refuses a file it cannot read, one larger than
// 1 MiB, a block that is not a CERTIFICATE, a certificate that is not a
// CA, and a file with none.
func ReadCACertificates(path string) ([]*x509.Certificate, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxCAFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCAFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCAFileBytes)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q (only CERTIFICATE)", path, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("%s: %q is not a CA certificate", path, c.Subject.String())
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}
