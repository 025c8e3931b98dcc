package admission

import (
	"net"
	"net/http"
)

// Listener is a net.Listener whose Accept returns only admitted
// connections, each a *Conn.
type Listener struct {
	net.Listener
	ctl *Controller
}

// Listen wraps ln: every connection it accepts is admitted by c (older
// ones may be closed to make room) or refused and closed, and Accept
// returns the next admitted one.
func (c *Controller) Listen(ln net.Listener) *Listener {
	return &Listener{Listener: ln, ctl: c}
}

// Accept returns the next admitted connection (a *Conn), or the inner
// listener's error.
func (l *Listener) Accept() (net.Conn, error) {
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
	a.timer.Stop()
	s.pending.Remove(a)
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
