// Package abuse holds connection-level attackers for end-to-end tests and
// benchmarks: each holds as many connections as it has workers to a
// listener from one loopback source address and opens a new one whenever
// the server closes one, until its context ends. They never leave
// loopback.
package abuse

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is one attack.
type Kind string

// The attacks.
const (
	// IdleTCP opens TCP connections and sends nothing.
	IdleTCP Kind = "idle-tcp"
	// SlowHandshake sends the start of a TLS ClientHello (a record
	// header announcing 512 bytes and a few of them), then one byte every
	// Options.Dribble.
	SlowHandshake Kind = "slow-handshake"
	// SlowHeader completes the TLS handshake (ALPN http/1.1) and sends an
	// HTTP/1.1 request head one header line every Options.Dribble, never
	// ending it.
	SlowHeader Kind = "slow-header"
	// IdleKeepAlive completes the TLS handshake, sends one whole request,
	// reads its answer and keeps the connection open, idle.
	IdleKeepAlive Kind = "idle-keepalive"
)

// Kinds are every attack, in a fixed order.
var Kinds = []Kind{IdleTCP, SlowHandshake, SlowHeader, IdleKeepAlive}

// Options configure Run.
type Options struct {
	// Target is the listener, "127.0.0.1:port".
	Target string
	// Source is the loopback address the attacker dials from.
	Source net.IP
	// Workers is how many connections the attacker tries to hold.
	Workers int
	// Pause is how long a worker waits before it opens a new connection
	// after the server closed its last one. Default 10ms.
	Pause time.Duration
	// Dribble is the interval between the bytes or lines the slow attacks
	// send. Default 500ms.
	Dribble time.Duration
	// ServerName is the SNI of the TLS attacks. Default "localhost".
	ServerName string
	// Path is what the HTTP attacks ask for. Default "/".
	Path string
	// Stats, when set, is where Run counts (and what it returns), so
	// that the counts can be read while it runs. Default a new one.
	Stats *Stats
}

// Stats count what an attacker did.
type Stats struct {
	// Opened counts connections the attacker opened, Closed those of them
	// the server closed, Failed the dials that failed.
	Opened, Closed, Failed atomic.Int64
}

func (s *Stats) String() string {
	return fmt.Sprintf("%d opened, %d closed by the server, %d dials failed", s.Opened.Load(), s.Closed.Load(), s.Failed.Load())
}

// Run runs the attack kind until ctx ends, then closes its connections
// and returns what it did.
func Run(ctx context.Context, kind Kind, o Options) *Stats {
	if o.Pause == 0 {
		o.Pause = 10 * time.Millisecond
	}
	if o.Dribble == 0 {
		o.Dribble = 500 * time.Millisecond
	}
	if o.ServerName == "" {
		o.ServerName = "localhost"
	}
	if o.Path == "" {
		o.Path = "/"
	}
	st := o.Stats
	if st == nil {
		st = &Stats{}
	}
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				hold(ctx, kind, o, st)
				select {
				case <-ctx.Done():
				case <-time.After(o.Pause):
				}
			}
		}()
	}
	wg.Wait()
	return st
}

// Start runs the attack in the background; the returned function stops
// it and returns its stats.
func Start(ctx context.Context, kind Kind, o Options) (stop func() *Stats) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan *Stats, 1)
	go func() { done <- Run(ctx, kind, o) }()
	return func() *Stats {
		cancel()
		return <-done
	}
}

// hold opens one connection, does the attack on it and returns once the
// server closed it or ctx ended.
func hold(ctx context.Context, kind Kind, o Options, st *Stats) {
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: o.Source}}
	raw, err := d.DialContext(ctx, "tcp", o.Target)
	if err != nil {
		if ctx.Err() == nil {
			st.Failed.Add(1)
		}
		return
	}
	st.Opened.Add(1)
	var c net.Conn = raw
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	defer raw.Close()
	switch kind {
	case IdleTCP:
	case SlowHandshake:
		// A handshake record (type 22, TLS 1.0 record version) of 512
		// bytes, whose body starts as a ClientHello (type 1).
		if _, err := raw.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}); err != nil {
			st.Closed.Add(1)
			return
		}
		go dribble(ctx, raw, o.Dribble, func() []byte { return []byte{0x42} })
	case SlowHeader, IdleKeepAlive:
		tc := tls.Client(raw, &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			st.Closed.Add(1)
			return
		}
		c = tc
		head := "GET " + o.Path + " HTTP/1.1\r\nHost: " + o.ServerName + "\r\n"
		if kind == IdleKeepAlive {
			if _, err := io.WriteString(tc, head+"\r\n"); err != nil {
				st.Closed.Add(1)
				return
			}
			// The answer is read below with everything else.
		} else {
			if _, err := io.WriteString(tc, head); err != nil {
				st.Closed.Add(1)
				return
			}
			n := 0
			go dribble(ctx, tc, o.Dribble, func() []byte {
				n++
				return []byte("X-Slow-" + strings.Repeat("a", n%8+1) + ": b\r\n")
			})
		}
	}
	// Wait for the server to close: read (and drop) whatever it sends.
	_, _ = io.Copy(io.Discard, c)
	if ctx.Err() == nil {
		st.Closed.Add(1)
	}
}

// dribble writes next() on c every interval until a write fails or ctx
// ends.
func dribble(ctx context.Context, c net.Conn, interval time.Duration, next func() []byte) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(next()); err != nil {
			return
		}
	}
}
