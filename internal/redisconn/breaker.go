package redisconn

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrResting is returned by a user of Redis while its Breaker rests: the
// last call failed less than the rest period ago, so no call is sent.
var ErrResting = errors.New("redis unavailable (resting after an error)")

// Breaker keeps a Redis that is down or hung from costing every request
// one timeout: after a failed call, calls are not sent for Rest (their
// callers answer at once, from what they hold or with ErrResting), then
// one is let through again. Safe for concurrent use; the zero value never
// rests.
type Breaker struct {
	// Rest is how long calls rest after a failure. 0 never rests.
	Rest time.Duration
	// until is the end of the rest, Unix ns.
	until atomic.Int64
}

// Resting reports whether calls should not be sent now.
func (b *Breaker) Resting() bool {
	return b != nil && b.Rest > 0 && time.Now().UnixNano() < b.until.Load()
}

// Done records the outcome of a call: an error that shows Redis did not
// answer (a network error, a timeout — not redis.Nil and not an error
// reply, which Redis sent) starts a rest. It returns err.
func (b *Breaker) Done(err error) error {
	if Unavailable(err) {
		b.Fail()
	}
	return err
}

// Fail starts a rest whatever the error was.
func (b *Breaker) Fail() {
	if b != nil && b.Rest > 0 {
		b.until.Store(time.Now().Add(b.Rest).UnixNano())
	}
}

// Unavailable reports whether err means Redis did not answer: not nil,
// not redis.Nil, not an error reply of the server.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var reply redis.Error
	return !errors.As(err, &reply)
}

// breakerHook applies a Breaker to every command and pipeline of a client
// (go-redis hooks): while it rests, a command fails at once with
// ErrResting instead of waiting for its timeout. PING always goes out:
// it is how readiness checks see Redis, and a PING answered ends the rest;
// so do the commands go-redis sets a new connection up with (HELLO, AUTH,
// SELECT, CLIENT).
type breakerHook struct{ b *Breaker }

func (h breakerHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h breakerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "ping":
			err := next(ctx, cmd)
			if err == nil {
				h.b.until.Store(0)
			}
			return h.done(ctx, err)
		case "hello", "auth", "select", "client":
			// A new connection's set-up, run through the hooks too.
			return next(ctx, cmd)
		}
		if h.b.Resting() {
			cmd.SetErr(ErrResting)
			return ErrResting
		}
		return h.done(ctx, next(ctx, cmd))
	}
}

// ProcessPipelineHook records pipelines' outcomes but never holds one
// back: go-redis authenticates each new connection (AUTH, SELECT) with a
// pipeline through these hooks, and a PING must be able to connect.
func (h breakerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.done(ctx, next(ctx, cmds))
	}
}

// done records err unless the caller gave up (its context was cancelled):
// that says nothing about Redis.
func (h breakerHook) done(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrResting) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return h.b.Done(err)
}
