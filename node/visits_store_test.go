package node

import (
	"bytes"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/internal/redistest"
	"github.com/telegate/telegate/media"
)

// TestVisitsFollowSessionStore: with sessions on Redis the visits are on
// the same Redis with an invite key every node derives alike (and that is
// not the session key); with the file store they stay in the data
// directory; Redis sessions without a given session key are refused.
func TestVisitsFollowSessionStore(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	cfg := nodeConfig(t, rdb)
	var o1, o2 media.Options
	if err := visitsOnRedis(cfg, &o1); err != nil {
		t.Fatal(err)
	}
	if err := visitsOnRedis(nodeConfig(t, rdb), &o2); err != nil {
		t.Fatal(err)
	}
	if o1.Redis == nil || o1.Redis.Conn.Addr != rdb.Addr || o1.Redis.Conn.Password != rdb.Password {
		t.Fatalf("visits not on the sessions' Redis: %+v", o1.Redis)
	}
	if len(o1.InviteKey) != 32 || !bytes.Equal(o1.InviteKey, o2.InviteKey) {
		t.Error("two nodes with one session key derived different invite keys")
	}
	if bytes.Equal(o1.InviteKey, []byte("01234567890123456789012345678901")) {
		t.Error("the invite key is the session key itself")
	}

	file := *cfg
	file.Sessions.Store = "file"
	var of media.Options
	if err := visitsOnRedis(&file, &of); err != nil || of.Redis != nil || of.InviteKey != nil {
		t.Errorf("file sessions: %+v, %v; want visits in the data directory", of.Redis, err)
	}

	nokey := *cfg
	nokey.Sessions = config.Sessions{Store: "redis"}
	if err := visitsOnRedis(&nokey, &of); err == nil {
		t.Error("Redis visits started without a shared session key")
	}
}
