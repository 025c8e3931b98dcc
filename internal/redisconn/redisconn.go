// Package redisconn builds the Redis client of every part of telegate
// that keeps state in Redis: sessions, sign-in round trips, break-glass
// grants and logout tokens (auth), rate limits (policies), visits, the
// signaling bus and the relay registry (media), certificate storage
// (gateway/edgetls). The address, ACL user, password, database and TLS
// settings of the redis section reach go-redis only through Options, so a
// setting added here (TLS, say) applies to every one of them.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/config"
)

// Conn is where a Redis is and how telegate proves itself to it.
type Conn struct {
	// Addr is "host:port".
	Addr string
	// Username is the ACL user; "" authenticates as "default" (or not at
	// all when Password is "" too).
	Username string
	// Password is sent with AUTH; "" sends none.
	Password string
	// DB is the database number (SELECT).
	DB int
	// TLS, when not nil, is used for every connection (TLS 1.2 or later,
	// ServerName set); nil means plain TCP.
	TLS *tls.Config
}

// FromConfig returns the Conn of the redis section: the password from
// password or password_file (one trailing newline and surrounding white
// space removed, config.ReadSecretFile's rule), the TLS configuration
// from redis.tls (config.ClientTLSConfig; server_name defaults to the
// host of addr). It fails when addr is empty or malformed or a file fails
// its rule; the error names the field and never holds a secret.
func FromConfig(rc config.Redis) (Conn, error) {
	if rc.Addr == "" {
		return Conn{}, errors.New("redis address missing (redis.addr)")
	}
	host, _, err := net.SplitHostPort(rc.Addr)
	if err != nil {
		return Conn{}, fmt.Errorf("redis.addr %q: must be host:port", rc.Addr)
	}
	c := Conn{Addr: rc.Addr, Username: rc.Username, Password: rc.Password, DB: rc.DB}
	if c.Password == "" && rc.PasswordFile != "" {
		s, err := config.ReadSecretFile(rc.PasswordFile)
		if err != nil {
			return Conn{}, fmt.Errorf("redis.password_file: %w", err)
		}
		c.Password = strings.TrimSpace(s)
	}
	if t := rc.TLS; t.Enabled {
		sn := t.ServerName
		if sn == "" {
			sn = host
		}
		tc, err := config.ClientTLSConfig("redis.tls", t.CAFile, t.CertFile, t.KeyFile, sn)
		if err != nil {
			return Conn{}, err
		}
		c.TLS = tc
	} else if t != (config.RedisTLS{}) {
		return Conn{}, errors.New("redis.tls: ca_file, cert_file, key_file and server_name apply only with enabled: true")
	}
	return c, nil
}

// Tuning is how one user of Redis waits and retries.
type Tuning struct {
	// Timeout bounds dial (TCP and TLS handshake), each read and write,
	// the wait for a pooled connection and, through the context, the
	// whole command.
	Timeout time.Duration
	// MaxRetries is go-redis's MaxRetries: -1 for none.
	MaxRetries int
	// DialerRetries is how many times a dial is tried; 0 is go-redis's
	// default.
	DialerRetries int
	// Rest, when above 0, puts a Breaker on the client: after a call Redis
	// did not answer, every call fails at once with ErrResting for Rest,
	// so a Redis that is down or hung costs one timeout per Rest rather
	// than one per request.
	Rest time.Duration
}

// Options returns the go-redis options for c tuned by t. RESP2 and no
// CLIENT SETINFO: the ACL user needs no HELLO or CLIENT command.
func (c Conn) Options(t Tuning) *redis.Options {
	o := &redis.Options{
		Addr:                  c.Addr,
		Username:              c.Username,
		Password:              c.Password,
		DB:                    c.DB,
		DialTimeout:           t.Timeout,
		ReadTimeout:           t.Timeout,
		WriteTimeout:          t.Timeout,
		PoolTimeout:           t.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            t.MaxRetries,
		DialerRetries:         t.DialerRetries,
		DisableIdentity:       true,
		Protocol:              2,
	}
	if c.TLS != nil {
		o.TLSConfig = c.TLS.Clone()
	}
	return o
}

// NewClient returns a client for c tuned by t. It does not connect.
func (c Conn) NewClient(t Tuning) *redis.Client {
	rdb := redis.NewClient(c.Options(t))
	if t.Rest > 0 {
		rdb.AddHook(breakerHook{b: &Breaker{Rest: t.Rest}})
	}
	return rdb
}

// DefaultRest is the Tuning.Rest of the clients of sessions and visits.
const DefaultRest = time.Second

// ErrRefused marks an error that will not pass by itself: Redis's
// certificate does not verify, the TLS handshake fails, or Redis refuses
// the user or password. A node stops at start on it (fail closed), where
// an unreachable Redis may only be away for a moment.
var ErrRefused = errors.New("redis refused the connection")

// Explain returns err, from a command to the Redis at c, in words an
// operator can act on: a certificate that does not verify names
// redis.tls.ca_file and server_name, a TLS Redis spoken to in plain TCP
// names redis.tls.enabled, refused credentials name redis.username and
// redis.password_file. Those wrap ErrRefused. Other errors (Redis down or
// slow) come back wrapped with the address only. nil stays nil.
func (c Conn) Explain(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		recHdr   tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &verify) && !errors.As(err, &hostname):
		return fmt.Errorf("%w: redis %s: its TLS certificate does not verify against redis.tls.ca_file: %v", ErrRefused, c.Addr, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: redis %s: its TLS certificate is not for the name expected (redis.tls.server_name): %v", ErrRefused, c.Addr, err)
	case errors.As(err, &recHdr), errors.As(err, &alert), strings.Contains(msg, "remote error: tls:"):
		return fmt.Errorf("%w: redis %s: the TLS handshake failed (is redis.tls.enabled right for this port, does Redis want a client certificate, redis.tls.cert_file?): %v", ErrRefused, c.Addr, err)
	case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid username-password pair"),
		strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "NOPERM"):
		return fmt.Errorf("%w: redis %s refused user %q: check redis.username and redis.password_file (%s)", ErrRefused, c.Addr, userName(c.Username), firstLine(msg))
	case c.TLS == nil && (strings.Contains(msg, "connection reset by peer") || errors.Is(err, io.EOF)):
		return fmt.Errorf("redis %s closed the connection: if it serves TLS only, set redis.tls.enabled: %w", c.Addr, err)
	}
	return fmt.Errorf("redis %s: %w", c.Addr, err)
}

// Check connects and sends PING, all within timeout, returning Explain's
// error. A connection reset is tried again (up to three PINGs): under
// TLS 1.3 a server refusing the client certificate sends its alert after
// the handshake, and the reset that follows can overtake it. Three resets
// in a row over TLS are that refusal (ErrRefused).
func (c Conn) Check(ctx context.Context, timeout time.Duration) error {
	rdb := c.NewClient(Tuning{Timeout: timeout, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for i := 0; i < 3; i++ {
		err = c.Explain(rdb.Ping(ctx).Err())
		if err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "connection reset") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
	if c.TLS != nil {
		// Every try got through the TCP connection and the handshake, then
		// was cut: a refusal whose alert the reset overtook each time.
		return fmt.Errorf("%w: redis %s: the TLS handshake failed: the connection was cut right after it, three times (does Redis want a client certificate, redis.tls.cert_file?): %v", ErrRefused, c.Addr, err)
	}
	return err
}

func userName(u string) string {
	if u == "" {
		return "default"
	}
	return u
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// The least a Redis ACL user needs for telegate (docs/deployment.md,
// "Redis"): the commands below, keys and pub/sub channels under
// "telegate:" (every key prefix telegate uses starts with it). Scripts
// (EVALSHA, falling back to EVAL) run under the same user, so the
// commands they call are listed too.
var (
	// ACLCommands are the commands telegate sends, directly or from its
	// Lua scripts.
	ACLCommands = []string{
		"ping", "auth", "select",
		"get", "set", "del", "exists", "getdel", "mget", "incr", "pexpire", "pttl",
		"hset", "hget", "hgetall", "hmget", "hdel", "hstrlen",
		"sadd", "srem", "smembers", "scard",
		"zadd", "zrem", "zcard", "zrange", "zrangebyscore", "zrangebylex", "zremrangebyscore", "zscore", "zpopmin",
		"scan", "time",
		"eval", "evalsha", "multi", "exec", "discard",
		"publish", "subscribe", "unsubscribe",
	}
	// ACLKeys and ACLChannels are the key and channel patterns.
	ACLKeys     = "telegate:*"
	ACLChannels = "telegate:*"
	// ACLCheckCommands may be granted besides, so that `telegate check`
	// can read how Redis is set up (maxmemory-policy, persistence); they
	// are not needed to run.
	ACLCheckCommands = []string{"config|get", "info"}
)

// ACLRules returns the ACL SETUSER rules (after the user name and its
// password) that grant exactly ACLCommands on ACLKeys and ACLChannels,
// plus ACLCheckCommands when withCheck.
func ACLRules(withCheck bool) []string {
	r := []string{"on", "resetkeys", "~" + ACLKeys, "resetchannels", "&" + ACLChannels, "-@all"}
	for _, c := range ACLCommands {
		r = append(r, "+"+c)
	}
	if withCheck {
		for _, c := range ACLCheckCommands {
			r = append(r, "+"+c)
		}
	}
	return r
}
