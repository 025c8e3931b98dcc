package auth

import (
	"context"
	"strings"
	"testing"
)

// TestRedisStorePing: Ping answers for the readiness check while Redis
// is up, fails (without the password) while it is down, and answers again
// once it is back.
func TestRedisStorePing(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := r.store(t, testKey(1), 10, "")
	s := &Service{store: st}
	ctx := context.Background()
	if err := s.PingSessionStore(ctx); err != nil {
		t.Fatalf("Redis up: %v", err)
	}
	r.Stop()
	err := s.PingSessionStore(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "redis PING: ") || strings.Contains(err.Error(), r.Password) {
		t.Fatalf("Redis down: %v", err)
	}
	r.Restart(t)
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Redis back: %v", err)
	}
	if err := (&Service{store: memStoreForPing{}}).PingSessionStore(ctx); err != nil {
		t.Errorf("a store without a server: %v", err)
	}
}

// memStoreForPing is a session store without a server (no Ping).
type memStoreForPing struct{ SessionStore }
