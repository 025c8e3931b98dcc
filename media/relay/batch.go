package relay

import (
	"net"
	"sync"

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

// batchWriter sends relayed datagrams on a UDP listening socket several
// per system call (sendmmsg(2) on Linux) without adding a goroutine or a
// wait: the first writer to find no send in progress sends its own
// datagram at once and then, until the queue is empty, whatever other
// writers queued meanwhile. A writer that finds the queue full sends its
// datagram itself, so memory stays bounded (two batches per socket) and no
// datagram is dropped here that the socket would have taken.
type batchWriter struct {
	pc    net.PacketConn
	write func([]ipv4.Message, int) (int, error)

	mu       sync.Mutex
	flushing bool
	pending  *writeBatch
	spare    *writeBatch
}

// writeBatch is a batch of queued datagrams with their own buffers.
type writeBatch struct {
	msgs []ipv4.Message
	n    int
}

const (
	// writeBatchLen is the most datagrams queued per socket (and sent
	// per system call).
	writeBatchLen = 32
	// writeBufSize holds a ChannelData message or Data indication of any
	// datagram the relay forwards.
	writeBufSize = 2048
)

func newWriteBatch() *writeBatch {
	wb := &writeBatch{msgs: make([]ipv4.Message, writeBatchLen)}
	buf := make([]byte, writeBatchLen*writeBufSize)
	for i := range wb.msgs {
		wb.msgs[i].Buffers = [][]byte{buf[i*writeBufSize : (i+1)*writeBufSize : (i+1)*writeBufSize]}
	}
	return wb
}

// newBatchWriter returns a batchWriter for pc, or nil when batching does
// not apply.
func newBatchWriter(pc net.PacketConn) *batchWriter {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	w := &batchWriter{pc: pc, pending: newWriteBatch(), spare: newWriteBatch()}
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		w.write = ipv6.NewPacketConn(uc).WriteBatch
	} else {
		w.write = ipv4.NewPacketConn(uc).WriteBatch
	}
	return w
}

// WriteTo sends p to to, or queues a copy for the writer that is sending
// now. A queued datagram is reported written (UDP gives no delivery
// guarantee either); a send error of a queued one drops it.
func (w *batchWriter) WriteTo(p []byte, to net.Addr) (int, error) {
	if len(p) > writeBufSize {
		return w.pc.WriteTo(p, to)
	}
	w.mu.Lock()
	if w.flushing {
		q := w.pending
		if q.n < len(q.msgs) {
			m := &q.msgs[q.n]
			m.Buffers[0] = m.Buffers[0][:copy(m.Buffers[0][:cap(m.Buffers[0])], p)]
			m.Addr = to
			q.n++
			w.mu.Unlock()
			return len(p), nil
		}
		w.mu.Unlock()
		return w.pc.WriteTo(p, to)
	}
	w.flushing = true
	w.mu.Unlock()
	n, err := w.pc.WriteTo(p, to)
	w.flush()
	return n, err
}

// flush sends queued batches until the queue is empty, then gives up the
// sender's role.
func (w *batchWriter) flush() {
	for {
		w.mu.Lock()
		q := w.pending
		if q.n == 0 {
			w.flushing = false
			w.mu.Unlock()
			return
		}
		w.pending, w.spare = w.spare, nil
		w.mu.Unlock()

		for i := 0; i < q.n; {
			k, err := w.write(q.msgs[i:q.n], 0)
			if err != nil {
				k = max(k, 1) // drop the datagram the socket refused
			}
			i += k
		}
		for i := range q.msgs[:q.n] {
			q.msgs[i].Addr = nil
		}
		q.n = 0
		w.mu.Lock()
		w.spare = q
		w.mu.Unlock()
	}
}
