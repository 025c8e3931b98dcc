package node

import (
	"encoding/hex"
	"testing"

	"github.com/telegate/telegate/auth"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media"
)

// TestRegression_StoreKeysStayTheSame: the key each store on Redis seals
// its records with is the one earlier versions derived from the same
// session key — the certificates', the visits' and the webhook outbox's,
// through the path the node opens each store by — so records already in
// Redis (and the outbox in the data directory) still open after an
// upgrade. The values are known answers, computed apart from this code:
// HKDF-SHA-256 (RFC 5869) of the session key of nodeConfig ("0123…01",
// base64 in session.key), no salt, the store's purpose as info.
func TestRegression_StoreKeysStayTheSame(t *testing.T) {
	t.Parallel()
	cfg := nodeConfig(t, redistest.Start(t))
	var certs edgetls.Options
	if err := certsOnRedis(cfg, &certs); err != nil {
		t.Fatal(err)
	}
	var visits media.Options
	if err := visitsOnRedis(cfg, &visits); err != nil {
		t.Fatal(err)
	}
	visitsKey, err := VisitsKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := openStore(cfg, true, webhookOutboxKeyPurpose)
	if err != nil {
		t.Fatal(err)
	}
	hooksLocal, err := auth.LocalKey(cfg, webhookOutboxKeyPurpose)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		store string
		key   []byte
		want  string
	}{
		{"certificates", certs.StorageKey, "76e11048a26f0b8d2d4ada1b251f0100155019c5fbfff67c373c92b81141cc43"},
		{"visits", visits.InviteKey, "f7f32a7c26ff2cc893bfad6a2eb5bc23bc757b9dd0e91d22d599e4136e4d6ba8"},
		{"visits (VisitsKey)", visitsKey, "f7f32a7c26ff2cc893bfad6a2eb5bc23bc757b9dd0e91d22d599e4136e4d6ba8"},
		{"webhook outbox on Redis", hooks.Key, "b9af72e4663808bdb21400fc623a01b423ae49809ac6b03ed51c822a0cd87f3d"},
		{"webhook outbox in the data directory", hooksLocal, "b9af72e4663808bdb21400fc623a01b423ae49809ac6b03ed51c822a0cd87f3d"},
	} {
		if got := hex.EncodeToString(c.key); got != c.want {
			t.Errorf("%s: key %s, want %s: records sealed before would not open", c.store, got, c.want)
		}
	}
}
