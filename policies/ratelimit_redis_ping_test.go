package policies

import (
	"context"
	"strings"
	"testing"
)

// TestRedisLimiterPing: Ping answers for the readiness check while Redis
// is up, fails (without the password) while it is down, and answers again
// once it is back.
func TestRedisLimiterPing(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	l := r.limiter(t)
	ctx := context.Background()
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Redis up: %v", err)
	}
	r.Stop()
	err := l.Ping(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "redis PING: ") || strings.Contains(err.Error(), r.Password) {
		t.Fatalf("Redis down: %v", err)
	}
	r.Restart(t)
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Redis back: %v", err)
	}
}
