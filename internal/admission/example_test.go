package admission_test

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/telegate/telegate/internal/admission"
)

// A TLS listener admitted by a controller: the TLS handshake is done by
// the server's own goroutine, which reports it; the session then tells
// the controller when the connection waits (Idle) and serves again
// (Active); closing it releases its slot.
func Example() {
	ctl, err := admission.New(admission.Options{Limits: admission.Limits{
		MaxPending: 1024, MaxPendingPerSource: 32, MaxConns: 16384, MaxConnsPerSource: 512,
		FirstByteTimeout: 2 * time.Second, HandshakeTimeout: 10 * time.Second,
	}})
	if err != nil {
		panic(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ln := tls.NewListener(ctl.Listen(tcp), &tls.Config{ /* certificates */ })
	defer ln.Close()
	serve := func(c net.Conn) {
		defer c.Close()
		if err := c.(*tls.Conn).Handshake(); err != nil || !admission.HandshakeDone(c) {
			return // timed out, evicted, or its source is full
		}
		// For each message: Idle while waiting for it, Active while
		// answering it.
		admission.Idle(c)
		// … read a message …
		admission.Active(c)
		// … answer it …
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
}
