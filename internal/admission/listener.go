package admission

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
)

// Listener is a net.Listener whose Accept returns only admitted
// connections, each a *Conn.
//
// Over a TCP listener on Linux, once the inner listener's Accept returns
// a connection, it takes the rest of the kernel's accept queue with it
// (accept4 until the queue is empty, at most acceptBatch in all) and
// decides on the whole batch before the rest is registered with the
// runtime's poller: of a source with more connections in one batch than
// its MaxPendingPerSource, the oldest are closed at once (the source's
// newer connections would evict them as its oldest pending ones, Reason
// SourcePending), as bare descriptors, and only the rest become
// net.Conns and are admitted, in accept order; the dropped ones are
// closed after those. A flood from one source that queues a wave of
// connections thus costs an accept and a close for most of them, and the
// queue drains faster than the flood refills it.
type Listener struct {
	net.Listener
	ctl *Controller
	rc  syscall.RawConn // the inner listener's; nil: one connection at a time

	mu     sync.Mutex // Accept and Close
	ready  []accepted // to admit, oldest first
	drop   []accepted // to close
	closed bool
}

// acceptBatch bounds the connections one batch holds.
const acceptBatch = 1024

// accepted is a connection taken off the accept queue: conn, or the bare
// descriptor fd when conn is nil.
type accepted struct {
	conn net.Conn
	fd   int
	src  netip.Prefix
}

func (a accepted) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	} else {
		closeFD(a.fd)
	}
}

// Listen wraps ln: every connection it accepts is admitted by c (older
// ones may be closed to make room) or refused and closed, and Accept
// returns the next admitted one.
func (c *Controller) Listen(ln net.Listener) *Listener {
	l := &Listener{Listener: ln, ctl: c}
	if tl, ok := ln.(*net.TCPListener); ok && batchAccept {
		if rc, err := tl.SyscallConn(); err == nil {
			l.rc = rc
		}
	}
	return l
}

// Accept returns the next admitted connection (a *Conn), or the inner
// listener's error.
func (l *Listener) Accept() (net.Conn, error) {
	if l.rc == nil {
		for {
			raw, err := l.Listener.Accept()
			if err != nil {
				return nil, err
			}
			if c := l.ctl.admit(raw); c != nil {
				return c, nil
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for len(l.ready) > 0 {
			a := l.ready[0]
			l.ready[0] = accepted{} // the slice keeps no connection it returned
			l.ready = l.ready[1:]
			raw := a.conn
			if raw == nil {
				var err error
				if raw, err = fdConn(a.fd); err != nil {
					continue // fdConn closed it
				}
			}
			if c := l.ctl.admit(raw); c != nil {
				return c, nil
			}
		}
		// The batch's survivors are on their way: now close what it
		// dropped.
		for _, a := range l.drop {
			a.close()
			l.ctl.emit(Event{Reason: SourcePending})
		}
		l.drop = l.drop[:0]
		if l.closed {
			return nil, net.ErrClosed
		}
		l.mu.Unlock()
		raw, err := l.Listener.Accept()
		l.mu.Lock()
		if err != nil {
			return nil, err
		}
		if l.closed {
			_ = raw.Close()
			return nil, net.ErrClosed
		}
		l.ready = append(l.ready, accepted{conn: raw, src: SourceOf(raw.RemoteAddr())})
		l.drain()
		l.sortBatch()
	}
}

// drain appends to ready what the accept queue holds, up to acceptBatch
// connections in ready. An error ends it: the inner listener's next
// Accept reports it.
func (l *Listener) drain() {
	_ = l.rc.Control(func(lfd uintptr) {
		for len(l.ready) < acceptBatch {
			a, err := acceptFD(int(lfd))
			switch {
			case err == nil:
				l.ready = append(l.ready, a)
			case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ECONNABORTED):
			default:
				return
			}
		}
	})
}

// sortBatch moves to drop, in ready's order, the oldest connections of
// each source that has more than MaxPendingPerSource in ready.
func (l *Listener) sortBatch() {
	per := l.ctl.lim.MaxPendingPerSource
	if len(l.ready) <= per {
		return
	}
	n := map[netip.Prefix]int{}
	for _, a := range l.ready {
		n[a.src]++
	}
	keep := l.ready[:0]
	for _, a := range l.ready {
		if n[a.src] > per {
			n[a.src]--
			l.drop = append(l.drop, a)
			continue
		}
		keep = append(keep, a)
	}
	l.ready = keep
}

// Close closes the inner listener and the connections taken off its
// queue and not yet returned by Accept.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	if l.rc != nil {
		l.mu.Lock()
		l.closed = true
		for _, a := range l.ready {
			a.close()
		}
		for _, a := range l.drop {
			a.close()
		}
		l.ready, l.drop = nil, nil
		l.mu.Unlock()
	}
	return err
}

// Controller is the listener's controller.
func (l *Listener) Controller() *Controller { return l.ctl }

// Of returns the admitted connection under c: c itself, or what its
// NetConn method (as on *tls.Conn) returns, followed down. Nil when c was
// not admitted by a Controller.
func Of(c net.Conn) *Conn {
	for range 8 {
		switch t := c.(type) {
		case *Conn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// HandshakeDone reports that c (an admitted connection or a wrapper of
// one, see Of) finished its handshake: it stops being pending and counts
// as an active established connection of its source. When its source
// already holds MaxConnsPerSource established connections, the source's
// oldest idle one is closed; when none is idle, c itself is closed and
// HandshakeDone returns false. It returns true for a connection no
// Controller admitted, and for one already established.
func HandshakeDone(c net.Conn) bool {
	a := Of(c)
	if a == nil {
		return true
	}
	return a.ctl.established(a)
}

// Idle reports that c waits for its next request (an HTTP keep-alive
// connection between requests, an HTTP/2 connection without streams): it
// is closed first when its source or the listener needs room. A pending
// connection is first counted established (HandshakeDone).
func Idle(c net.Conn) {
	if a := Of(c); a != nil {
		a.ctl.setIdle(a, true)
	}
}

// Active reports that c serves something again (a request, a stream, a
// hijacked connection): it is no longer idle. A pending connection is
// first counted established (HandshakeDone).
func Active(c net.Conn) {
	if a := Of(c); a != nil {
		a.ctl.setIdle(a, false)
	}
}

// ConnState returns an http.Server ConnState hook that reports each
// connection's progress and then calls next (when not nil): StateActive
// and StateHijacked → Active (for a plain-HTTP listener the first request
// bytes are the handshake: HandshakeDone), StateIdle → Idle, and
// StateNew → Idle for a connection whose handshake is already done (a TLS
// connection that has not sent a whole request head yet: a browser's
// preconnect, or a client dribbling its headers, is closed first when
// room is needed).
func ConnState(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			if a := Of(c); a != nil {
				a.ctl.markIdle(a, true)
			}
		case http.StateActive, http.StateHijacked:
			Active(c)
		case http.StateIdle:
			Idle(c)
		}
		if next != nil {
			next(c, st)
		}
	}
}

// established moves a from pending to active, making room in its source
// (see HandshakeDone).
func (ctl *Controller) established(a *Conn) bool {
	ctl.mu.Lock()
	switch a.state {
	case stateClosed:
		ctl.mu.Unlock()
		return false
	case stateActive, stateIdle:
		ctl.mu.Unlock()
		return true
	}
	s := a.src
	var out *victim
	if s.nEst >= ctl.lim.MaxConnsPerSource {
		e := s.idle.Front()
		if e == nil {
			ctl.releaseLocked(a)
			ctl.mu.Unlock()
			_ = a.closeSocket()
			ctl.emit(Event{Reason: SourceConns, Refused: true})
			return false
		}
		v := ctl.evictLocked(e, SourceConns)
		out = &v
	}
	s.pending.Remove(a)
	ctl.unlistPendingLocked(a)
	ctl.nPend--
	s.nEst++
	a.state = stateActive
	ctl.mu.Unlock()
	if out != nil {
		_ = out.c.closeSocket()
		ctl.emit(out.ev)
	}
	return true
}

// setIdle moves an established connection between active and idle; a
// pending one is first made established.
func (ctl *Controller) setIdle(a *Conn, idle bool) {
	if !ctl.markIdle(a, idle) && ctl.established(a) {
		ctl.markIdle(a, idle)
	}
}

// markIdle moves an established a between active and idle under one
// lock acquisition (the per-request path of a keep-alive connection). It
// reports false, changing nothing, when a is still pending (the caller
// makes it established first, HandshakeDone); a closed a is left alone.
func (ctl *Controller) markIdle(a *Conn, idle bool) bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	s := a.src
	switch {
	case a.state == statePending:
		return false
	case a.state == stateClosed:
	case idle && a.state == stateActive:
		a.state = stateIdle
		s.idle.PushBack(a)
		ctl.idle.PushBack(a)
	case !idle && a.state == stateIdle:
		s.idle.Remove(a)
		ctl.idle.Remove(a)
		a.state = stateActive
	}
	return true
}

// AwaitFirstByte waits until c (an admitted connection or a wrapper of
// one, see Of) has a byte to read, has been closed by its peer or by the
// controller, or its read deadline has passed, without reading anything;
// the error is the last two's (net.ErrClosed, os.ErrDeadlineExceeded).
// It lets a server put off what it builds for a connection (a TLS
// handshake's state, the goroutine stack it grows) until the connection
// has something to say: connections that never send a byte cost only
// their wait. It returns nil at once when it cannot wait that way (a
// connection not admitted by a Controller, not a socket, another
// system than Linux).
func AwaitFirstByte(c net.Conn) error {
	a := Of(c)
	if a == nil {
		return nil
	}
	sc, ok := a.Conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc.Read(readable)
}
