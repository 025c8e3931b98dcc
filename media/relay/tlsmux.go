package relay

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// streamMux presents every TURN-over-TLS connection (RFC 8656 §3.1) as
// one packet socket to pion: ReadFrom yields the next framed message of
// any connection with the connection's remote address, WriteTo writes to
// the connection of that address. Framing (RFC 8656 §12.5): STUN messages
// carry their length; ChannelData messages are padded to four bytes.
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
}

type streamConn struct {
	c   net.Conn
	wmu sync.Mutex
}

const (
	maxFrame          = 1600 - 1 // pion drops datagrams of 1600 bytes and more
	streamWriteTimout = 5 * time.Second
	firstFrameTimeout = 10 * time.Second
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
		return copy(p, pk.b), pk.from, nil
	case <-m.done:
		return 0, nil, net.ErrClosed
	}
}

func (m *streamMux) WriteTo(p []byte, to net.Addr) (int, error) {
	ap, ok := addrPortOf(to)
	if !ok {
		return len(p), nil
	}
	m.mu.Lock()
	sc := m.conns[ap]
	m.mu.Unlock()
	if sc == nil {
		return len(p), nil
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_ = sc.c.SetWriteDeadline(time.Now().Add(streamWriteTimout))
	if _, err := sc.c.Write(p); err != nil {
		_ = sc.c.Close()
	}
	return len(p), nil
}

func (m *streamMux) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.mu.Lock()
		for _, sc := range m.conns {
			_ = sc.c.Close()
		}
		m.mu.Unlock()
	})
	return nil
}

func (m *streamMux) LocalAddr() net.Addr              { return m.local }
func (m *streamMux) SetDeadline(time.Time) error      { return nil }
func (m *streamMux) SetReadDeadline(time.Time) error  { return nil }
func (m *streamMux) SetWriteDeadline(time.Time) error { return nil }

var errFrame = errors.New("relay: bad TURN-over-TLS frame")

// serve reads frames from c until it ends, then closes c and its
// allocation.
func (m *streamMux) serve(c net.Conn) {
	ap, ok := addrPortOf(c.RemoteAddr())
	if !ok {
		_ = c.Close()
		return
	}
	sc := &streamConn{c: c}
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		_ = c.Close()
		return
	default:
	}
	if len(m.conns) >= m.s.limits().maxTLSConns || m.conns[ap] != nil {
		m.mu.Unlock()
		_ = c.Close()
		return
	}
	m.conns[ap] = sc
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.conns[ap] == sc {
			delete(m.conns, ap)
		}
		m.mu.Unlock()
		_ = c.Close()
		m.s.closeTuple(tupleKey{listener: m.s.muxID, src: ap}, "connection-closed")
	}()
	from := net.TCPAddrFromAddrPort(ap)
	timeout := firstFrameTimeout
	for {
		b, err := readFrame(c, timeout)
		if err != nil {
			return
		}
		timeout = m.s.limits().tlsIdleTimeout
		select {
		case m.in <- muxPacket{b: b, from: from}:
		case <-m.done:
			return
		}
	}
}

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
