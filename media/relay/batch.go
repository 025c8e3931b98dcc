package relay

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchReader reads a UDP listening socket several datagrams per system
// call (recvmmsg(2) on Linux, one at a time elsewhere) and hands them out
// one by one. It returns as soon as at least one datagram is waiting, so
// it adds no latency; under load it saves most receive system calls.
// Only one goroutine may read through it (pion's read loop).
type batchReader struct {
	read func([]ipv4.Message, int) (int, error)
	msgs []ipv4.Message
	n, i int
}

const (
	// readBatch is the most datagrams one system call returns.
	readBatch = 32
	// batchBufSize holds any datagram pion accepts (it drops anything of
	// its 1600-byte inbound MTU or longer).
	batchBufSize = 2048
)

// newBatchReader returns a batchReader for uc, or nil when batching does
// not apply.
func newBatchReader(pc net.PacketConn) *batchReader {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	b := &batchReader{msgs: make([]ipv4.Message, readBatch)}
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		b.read = ipv6.NewPacketConn(uc).ReadBatch
	} else {
		b.read = ipv4.NewPacketConn(uc).ReadBatch
	}
	buf := make([]byte, readBatch*batchBufSize)
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{buf[i*batchBufSize : (i+1)*batchBufSize : (i+1)*batchBufSize]}
	}
	return b
}

// ReadFrom copies the next datagram into p (truncated to len(p), as
// recvfrom(2) does) and returns its source.
func (b *batchReader) ReadFrom(p []byte) (int, net.Addr, error) {
	if b.i >= b.n {
		b.i, b.n = 0, 0
		n, err := b.read(b.msgs, 0)
		if err != nil {
			return 0, nil, err
		}
		b.n = n
	}
	m := &b.msgs[b.i]
	b.i++
	n := copy(p, m.Buffers[0][:m.N])
	return n, m.Addr, nil
}
