package redisconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/telegate/telegate/internal/redisconn"
	"github.com/telegate/telegate/internal/redistest"
)

// TestBreakerHungRedis: with Redis hung (SIGSTOP), a client with a rest
// pays one timeout, then fails at once with ErrResting until the rest
// ends, while PING still goes out (and fails); once Redis answers again
// the next call after the rest succeeds and a PING ends a rest at once.
// An error reply (Redis answered) starts no rest.
func TestBreakerHungRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	c := Conn{Addr: rdb.Addr, Password: rdb.Password}
	cl := c.NewClient(Tuning{Timeout: 300 * time.Millisecond, MaxRetries: -1, Rest: time.Second})
	defer cl.Close()
	ctx := context.Background()
	if err := cl.Set(ctx, "telegate:k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "NOSUCHCOMMAND").Err(); err == nil || errors.Is(err, ErrResting) {
		t.Fatalf("an unknown command: %v", err)
	}
	if err := cl.Get(ctx, "telegate:k").Err(); err != nil {
		t.Fatalf("an error reply started a rest: %v", err)
	}

	rdb.Pause(t)
	start := time.Now()
	if err := cl.Get(ctx, "telegate:k").Err(); err == nil || errors.Is(err, ErrResting) {
		t.Fatalf("first call to a hung Redis: %v, want its timeout", err)
	}
	first := time.Since(start)
	start = time.Now()
	for i := 0; i < 50; i++ {
		if err := cl.Get(ctx, "telegate:k").Err(); !errors.Is(err, ErrResting) {
			t.Fatalf("call %d while resting: %v, want ErrResting", i, err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("50 calls while resting took %v (the first took %v)", d, first)
	}
	if err := cl.Ping(ctx).Err(); err == nil || errors.Is(err, ErrResting) {
		t.Fatalf("PING while resting: %v, want it sent (and timed out)", err)
	}

	rdb.Resume(t)
	if err := cl.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Redis resumed: %v", err)
	}
	if v, err := cl.Get(ctx, "telegate:k").Result(); err != nil || v != "v" {
		t.Fatalf("a call after the PING ended the rest: %q %v", v, err)
	}
}
