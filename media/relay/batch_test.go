package relay

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBatchReadWrite sends datagrams from many goroutines through a
// batchWriter and reads them through a batchReader on real loopback
// sockets: every datagram arrives once, whole, with its source address,
// whatever its size up to the relay's largest.
func TestBatchReadWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, network, addr string
	}{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rx, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer rx.Close()
			_ = rx.(*net.UDPConn).SetReadBuffer(4 << 20)
			tx, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			r, w := newBatchReader(rx), newBatchWriter(tx)
			if r == nil || w == nil {
				t.Fatal("no batching on a UDP socket")
			}
			const writers, each = 4, 100
			sizes := []int{4, 124, 1204, writeBufSize, writeBufSize + 100}
			var wg sync.WaitGroup
			defer wg.Wait()
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						p := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
						binary.BigEndian.PutUint16(p, uint16(g<<12|i))
						if n, err := w.WriteTo(p, rx.LocalAddr()); err != nil || n != len(p) {
							t.Errorf("WriteTo = %d, %v", n, err)
						}
						if i%25 == 0 {
							time.Sleep(time.Millisecond) // let the socket drain
						}
					}
				}()
			}
			seen := map[uint16]bool{}
			buf := make([]byte, 4096)
			_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			for len(seen) < writers*each {
				n, from, err := r.ReadFrom(buf)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", len(seen), err)
				}
				if from.String() != tx.LocalAddr().String() {
					t.Fatalf("source %v, want %v", from, tx.LocalAddr())
				}
				id := binary.BigEndian.Uint16(buf)
				i := int(id & 0xfff)
				// Longer than the batch buffer: cut, as recvfrom(2) cuts to
				// the caller's buffer (pion drops it as over its MTU).
				if want := min(sizes[i%len(sizes)], batchBufSize); n != want {
					t.Fatalf("datagram %x: %d bytes, want %d", id, n, want)
				}
				if n > 2 && buf[n-1] != byte(i) {
					t.Fatalf("datagram %x: last byte %d, want %d", id, buf[n-1], byte(i))
				}
				if seen[id] {
					t.Fatalf("datagram %x twice", id)
				}
				seen[id] = true
			}
		})
	}
}

// TestBatchReaderTruncates: a datagram longer than the caller's buffer is
// cut to it, as recvfrom(2) does (pion then drops it as over its MTU), and
// the next datagram is returned whole.
func TestBatchReaderTruncates(t *testing.T) {
	t.Parallel()
	rx, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.Dial("udp4", rx.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.Write(bytes.Repeat([]byte{1}, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([]byte{2, 2, 2}); err != nil {
		t.Fatal(err)
	}
	r := newBatchReader(rx)
	_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	p := make([]byte, 10)
	if n, _, err := r.ReadFrom(p); err != nil || n != 10 {
		t.Fatalf("first: %d, %v; want 10 bytes", n, err)
	}
	if n, _, err := r.ReadFrom(p); err != nil || n != 3 || p[0] != 2 {
		t.Fatalf("second: %d %v, %v; want [2 2 2]", n, p[:n], err)
	}
	_ = rx.Close()
	if _, _, err := r.ReadFrom(p); err == nil {
		t.Fatal("read on a closed socket succeeded")
	}
}

// TestBatchNotUDP: batching applies only to UDP sockets.
func TestBatchNotUDP(t *testing.T) {
	t.Parallel()
	if newBatchReader(nil) != nil || newBatchWriter(nil) != nil {
		t.Fatal("batching on a non-UDP connection")
	}
}
