package audit

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

func TestKeyGeneratedOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := Key(config.Audit{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Key(config.Audit{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeyBytes || !bytes.Equal(k1, k2) {
		t.Fatalf("keys %x / %x", k1, k2)
	}
	info, err := os.Stat(filepath.Join(dir, "keys", "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", info.Mode().Perm())
	}
}

func TestKeySources(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{9}, 32)
	b64 := base64.StdEncoding.EncodeToString(raw)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k")
	os.WriteFile(keyFile, []byte(b64+"\n"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("tiny"))), 0o600)
	tests := []struct {
		name    string
		cfg     config.Audit
		dataDir string
		wantErr string
	}{
		{"inline std", config.Audit{Key: b64}, "", ""},
		{"inline url raw", config.Audit{Key: base64.RawURLEncoding.EncodeToString(raw)}, "", ""},
		{"file", config.Audit{KeyFile: keyFile}, "", ""},
		{"both", config.Audit{Key: b64, KeyFile: keyFile}, "", "not both"},
		{"not base64", config.Audit{Key: "%%%"}, "", "not base64"},
		{"short inline", config.Audit{Key: "dGlueQ=="}, "", "need at least 32"},
		{"short file", config.Audit{KeyFile: short}, "", "need at least 32"},
		{"missing file", config.Audit{KeyFile: filepath.Join(dir, "none")}, "", "key_file"},
		{"nowhere to keep", config.Audit{}, "", "no data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := Key(tt.cfg, tt.dataDir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Key err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), b64) {
					t.Fatalf("error reveals the key: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(k, raw) {
				t.Fatalf("Key = %x, %v", k, err)
			}
		})
	}
}

func TestPseudonym(t *testing.T) {
	t.Parallel()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	v4 := netip.MustParseAddr("192.0.2.10")
	mapped := netip.MustParseAddr("::ffff:192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	h := Pseudonym(k1, v4)
	if len(h) != 24 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("Pseudonym = %q, want 24 lower-case hex digits", h)
	}
	if Pseudonym(k1, v4) != h || Pseudonym(k1, mapped) != h {
		t.Error("pseudonym not stable across calls or IPv4-mapped form")
	}
	if Pseudonym(k1, netip.MustParseAddr("fe80::1%eth0")) != Pseudonym(k1, netip.MustParseAddr("fe80::1")) {
		t.Error("zone changes the pseudonym")
	}
	if Pseudonym(k2, v4) == h || Pseudonym(k1, v6) == h || Pseudonym(k1, netip.MustParseAddr("192.0.2.11")) == h {
		t.Error("pseudonym collides across keys or addresses")
	}
	if Pseudonym(k1, netip.Addr{}) != "-" {
		t.Error("invalid address not '-'")
	}
}

func TestPseudonymKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := PseudonymKey(dir)
	if err != nil || len(k) != KeyBytes {
		t.Fatalf("PseudonymKey = %d bytes, %v", len(k), err)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "pseudonym.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	again, err := PseudonymKey(dir)
	if err != nil || !bytes.Equal(again, k) {
		t.Errorf("second load gave another key (%v)", err)
	}
	ak, err := Key(config.Audit{}, dir)
	if err != nil || bytes.Equal(ak, k) {
		t.Errorf("pseudonym key is the audit key (%v)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "pseudonym.key"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := PseudonymKey(dir); err == nil {
		t.Error("a malformed key file was accepted")
	}
	if _, err := PseudonymKey(""); err == nil {
		t.Error("no data directory accepted")
	}
}
