package node

import (
	"bytes"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/internal/redistest"
)

// TestCertificatesFollowSessionStore: with sessions on Redis, certificate
// storage is on the same Redis (tls.storage defaults to "redis") with a
// storage key every node derives alike from the session key, unlike the
// visits' key and not the session key itself; a tls.storage_key_file
// replaces the derived key; with file sessions nothing is given (edgetls
// seals its file storage itself).
func TestCertificatesFollowSessionStore(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := nodeConfig(t, rdb)
	if cfg.TLS.Storage != edgetls.StorageRedis {
		t.Fatalf("tls.storage %q with sessions on Redis, want redis", cfg.TLS.Storage)
	}
	var o1, o2 edgetls.Options
	if err := certsOnRedis(cfg, &o1); err != nil {
		t.Fatal(err)
	}
	if err := certsOnRedis(nodeConfig(t, rdb), &o2); err != nil {
		t.Fatal(err)
	}
	if o1.Redis == nil || o1.Redis.Conn.Addr != rdb.Addr || o1.Redis.Conn.Password != rdb.Password {
		t.Fatalf("certificates not on the sessions' Redis: %+v", o1.Redis)
	}
	if len(o1.StorageKey) != 32 || !bytes.Equal(o1.StorageKey, o2.StorageKey) {
		t.Error("two nodes with one session key derived different storage keys")
	}
	if bytes.Equal(o1.StorageKey, []byte("01234567890123456789012345678901")) {
		t.Error("the storage key is the session key itself")
	}

	withFile := *cfg
	withFile.TLS.StorageKeyFile = "/etc/telegate/tls-storage.key"
	var ok edgetls.Options
	if err := certsOnRedis(&withFile, &ok); err != nil || ok.StorageKey != nil || ok.Redis == nil {
		t.Errorf("with tls.storage_key_file: key %x, redis %+v, %v; want the file's key (read by edgetls) on Redis", ok.StorageKey, ok.Redis, err)
	}

	file := *cfg
	file.TLS.Storage = edgetls.StorageFile
	var of edgetls.Options
	if err := certsOnRedis(&file, &of); err != nil || of.Redis != nil || of.StorageKey != nil {
		t.Errorf("file storage: %+v, %v; want nothing given", of.Redis, err)
	}

	nokey := *cfg
	nokey.Sessions = config.Sessions{Store: "redis"}
	if err := certsOnRedis(&nokey, &of); err == nil {
		t.Error("Redis certificate storage without a shared key")
	}
}
