package relay

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// streamMux presents every TURN-over-TLS connection (RFC 8656 §3.1) as
// one packet socket to pion: ReadFrom yields the next framed message of
// any connection with the connection's remote address, WriteTo queues a
// message for the connection of that address. Framing (RFC 8656 §12.5):
// STUN messages carry their length; ChannelData messages are padded to
// four bytes.
//
// One loop (pion's, behind the guard) reads every connection's messages
// and answers them, so nothing it calls may wait for one client: WriteTo
// never blocks. Nor may one client fill that loop: at most
// inFlightPerConn of a connection's messages wait for it at once, so a
// client sending requests faster than they are answered is held back in
// its own TCP connection while the others' messages pass. Each connection has its own send queue (sendQueueBytes)
// drained by its own writer with a write deadline (streamWriteTimeout); a
// message that does not fit is dropped (counted tls_send_queue), and a
// write that cannot finish within the deadline closes that connection
// (write_stalled). A connection without an authenticated allocation is
// closed at relay.tls_allocate_timeout, and is the first to give up its
// slot when relay.max_tls_conns is reached. A connection whose allocation
// ends (a Refresh with LIFETIME 0 or expiry, RFC 8656 §7.3) is again one
// without: the deadline starts anew. One whose allocation is revoked (its
// participant removed, its visit ended) is closed at once (revoked).
type streamMux struct {
	s     *Server
	local net.Addr
	in    chan muxPacket
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	conns map[netip.AddrPort]*streamConn
}

type muxPacket struct {
	b    []byte
	from net.Addr
	sc   *streamConn // gives back its turn (streamConn.turns) when read
}

// streamConn is one TURN-over-TLS connection and its send queue.
type streamConn struct {
	m      *streamMux
	c      net.Conn
	since  time.Time
	queue  chan []byte
	queued atomic.Int64 // bytes in queue
	done   chan struct{}
	once   sync.Once
	// allocated: the connection holds an allocation (an Allocate on it
	// succeeded, AllocatePacketConn, and it has not ended since).
	allocated atomic.Bool
	// deadline closes the connection relay.tls_allocate_timeout after it
	// came or after its allocation ended, unless it holds one by then.
	deadline *time.Timer
	// turns bounds this connection's messages waiting for the shared
	// loop (inFlightPerConn): a client that sends faster than the loop
	// answers waits for its own, in TCP, and every other connection's
	// message waits behind at most inFlightPerConn of its.
	turns chan struct{}
}

const (
	maxFrame           = 1600 - 1 // pion drops datagrams of 1600 bytes and more
	firstFrameTimeout  = 10 * time.Second
	streamWriteTimeout = 2 * time.Second
	// sendQueueBytes bounds what waits to be written to one connection:
	// about 130 ms of media at the default 4 Mbit/s bandwidth cap, in
	// front of the kernel's socket buffer.
	sendQueueBytes = 64 << 10
	sendQueueLen   = 256
	// streamWriteBatch is how much of the queue one TLS write takes at most.
	streamWriteBatch = 16 << 10
	// inFlightPerConn is how many of one connection's messages may wait
	// for the shared loop at once.
	inFlightPerConn = 8
)

func newStreamMux(s *Server) *streamMux {
	return &streamMux{
		s:     s,
		local: &net.TCPAddr{IP: net.IPv4zero, Port: 0},
		in:    make(chan muxPacket, 256),
		done:  make(chan struct{}),
		conns: make(map[netip.AddrPort]*streamConn),
	}
}

func (m *streamMux) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-m.in:
		<-pk.sc.turns
		return copy(p, pk.b), pk.from, nil
	case <-m.done:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo queues p for the connection of to without waiting; see
// streamConn.enqueue. It always reports success (datagram semantics).
func (m *streamMux) WriteTo(p []byte, to net.Addr) (int, error) {
	ap, ok := addrPortOf(to)
	if !ok {
		return len(p), nil
	}
	m.mu.Lock()
	sc := m.conns[ap]
	m.mu.Unlock()
	if sc != nil {
		sc.enqueue(p)
	}
	return len(p), nil
}

// allocated records that the connection of ap made an allocation: it is
// no longer subject to the allocate deadline nor evicted for a newcomer.
// False: the connection is gone or closing, and the allocation must not
// outlive it.
func (m *streamMux) allocated(ap netip.AddrPort) bool {
	m.mu.Lock()
	sc := m.conns[ap]
	m.mu.Unlock()
	if sc == nil {
		return false
	}
	sc.allocated.Store(true)
	select {
	case <-sc.done:
		return false
	default:
		return true
	}
}

// released records that an allocation of the connection of ap ended
// (allocation.close, with its reason). revoked (the participant was
// removed or the visit ended: "revoked", "visit-ended") closes the
// connection at once; any other end leaves it without an allocation
// unless another one holds its 5-tuple by now: the allocate deadline
// starts anew and the connection may be evicted for a newcomer.
func (m *streamMux) released(ap netip.AddrPort, revoked bool) {
	m.mu.Lock()
	sc := m.conns[ap]
	m.mu.Unlock()
	if sc == nil {
		return
	}
	if revoked {
		sc.close("revoked")
		return
	}
	if m.s.lookup(tupleKey{listener: m.s.muxID, src: ap}) != nil {
		return
	}
	sc.allocated.Store(false)
	sc.deadline.Reset(m.s.limits().tlsAllocate)
}

func (m *streamMux) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.mu.Lock()
		all := make([]*streamConn, 0, len(m.conns))
		for _, sc := range m.conns {
			all = append(all, sc)
		}
		m.mu.Unlock()
		for _, sc := range all {
			sc.close("shutdown")
		}
	})
	return nil
}

func (m *streamMux) LocalAddr() net.Addr              { return m.local }
func (m *streamMux) SetDeadline(time.Time) error      { return nil }
func (m *streamMux) SetReadDeadline(time.Time) error  { return nil }
func (m *streamMux) SetWriteDeadline(time.Time) error { return nil }

var errFrame = errors.New("relay: bad TURN-over-TLS frame")

// admit registers sc under ap. At relay.max_tls_conns the oldest
// connection without an allocation is closed to make room (evicted); with
// none, or with ap already connected, sc is refused (false).
func (m *streamMux) admit(ap netip.AddrPort, sc *streamConn) bool {
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return false
	default:
	}
	if m.conns[ap] != nil {
		m.mu.Unlock()
		return false
	}
	var victim *streamConn
	if len(m.conns) >= m.s.limits().maxTLSConns {
		for _, o := range m.conns {
			if !o.allocated.Load() && (victim == nil || o.since.Before(victim.since)) {
				victim = o
			}
		}
		if victim == nil {
			m.mu.Unlock()
			return false
		}
		for k, o := range m.conns {
			if o == victim {
				delete(m.conns, k)
			}
		}
	}
	m.conns[ap] = sc
	m.mu.Unlock()
	if victim != nil {
		victim.close("evicted")
	}
	return true
}

// serve reads frames from c until it ends, then closes c and its
// allocation.
func (m *streamMux) serve(c net.Conn) {
	ap, ok := addrPortOf(c.RemoteAddr())
	if !ok {
		_ = c.Close()
		return
	}
	l := m.s.limits()
	sc := &streamConn{m: m, c: c, since: time.Now(), queue: make(chan []byte, sendQueueLen), done: make(chan struct{}),
		turns: make(chan struct{}, inFlightPerConn)}
	// Armed before admit: released may Reset it as soon as sc is known.
	sc.deadline = time.AfterFunc(l.tlsAllocate, func() {
		if !sc.allocated.Load() {
			sc.close("allocate_timeout")
		}
	})
	if !m.admit(ap, sc) {
		sc.deadline.Stop()
		m.s.m.tlsClosed("refused")
		_ = c.Close()
		return
	}
	go sc.writeLoop()
	defer func() {
		sc.deadline.Stop()
		m.mu.Lock()
		if m.conns[ap] == sc {
			delete(m.conns, ap)
		}
		m.mu.Unlock()
		sc.close("ended")
		m.s.closeTuple(tupleKey{listener: m.s.muxID, src: ap}, "connection-closed")
	}()
	from := net.TCPAddrFromAddrPort(ap)
	timeout := firstFrameTimeout
	for {
		b, err := readFrame(c, timeout)
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				sc.close("idle")
			}
			return
		}
		timeout = l.tlsIdleTimeout
		select {
		case sc.turns <- struct{}{}:
		case <-m.done:
			return
		}
		select {
		case m.in <- muxPacket{b: b, from: from, sc: sc}:
		case <-m.done:
			return
		}
	}
}

// close ends the connection once, counting why
// (telegate_media_relay_tls_connections_closed_total). It closes the
// socket under TLS without a close_notify alert: sending one waits for a
// client that may not be reading (up to 5 s in crypto/tls).
func (sc *streamConn) close(reason string) {
	sc.once.Do(func() {
		sc.m.s.m.tlsClosed(reason)
		close(sc.done)
		if nc, ok := sc.c.(interface{ NetConn() net.Conn }); ok {
			_ = nc.NetConn().Close()
		} else {
			_ = sc.c.Close()
		}
	})
}

// enqueue copies p into the send queue, or drops it (tls_send_queue) when
// the queue holds sendQueueBytes or sendQueueLen messages already.
func (sc *streamConn) enqueue(p []byte) {
	select {
	case <-sc.done:
		return
	default:
	}
	if sc.queued.Add(int64(len(p))) > sendQueueBytes {
		sc.queued.Add(-int64(len(p)))
		sc.m.s.m.denial("tls_send_queue")
		return
	}
	select {
	case sc.queue <- append([]byte(nil), p...):
	default:
		sc.queued.Add(-int64(len(p)))
		sc.m.s.m.denial("tls_send_queue")
	}
}

// writeLoop writes the send queue to the connection, up to
// streamWriteBatch bytes per write, each write within
// streamWriteTimeout; a write that fails or runs out closes the
// connection (write_stalled). The batch buffer is held only while
// writing.
func (sc *streamConn) writeLoop() {
	for {
		var first []byte
		select {
		case first = <-sc.queue:
		case <-sc.done:
			return
		}
		bp := batchPool.Get().(*[]byte)
		buf := append((*bp)[:0], first...)
	fill:
		for len(buf) < streamWriteBatch {
			select {
			case b := <-sc.queue:
				buf = append(buf, b...)
			default:
				break fill
			}
		}
		sc.queued.Add(-int64(len(buf)))
		_ = sc.c.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := sc.c.Write(buf)
		*bp = buf[:0]
		batchPool.Put(bp)
		if err != nil {
			sc.close("write_stalled")
			return
		}
	}
}

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, streamWriteBatch+maxFrame); return &b }}

// readFrame reads one STUN or ChannelData message from a stream, waiting at
// most timeout for it.
func readFrame(c net.Conn, timeout time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n, err := frameLen(hdr)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

// frameLen is the total length of the frame that starts with hdr.
func frameLen(hdr [4]byte) (int, error) {
	l := int(binary.BigEndian.Uint16(hdr[2:4]))
	var n int
	switch hdr[0] & 0xC0 {
	case 0x00: // STUN: 20-byte header, attributes padded (RFC 8489 §5)
		if l%4 != 0 {
			return 0, errFrame
		}
		n = 20 + l
	case 0x40: // ChannelData, padded on streams (RFC 8656 §12.5)
		n = 4 + (l+3)&^3
	default:
		return 0, errFrame
	}
	if n > maxFrame {
		return 0, errFrame
	}
	return n, nil
}
