package admission

import (
	"net"
	"net/netip"
	"os"
	"syscall"
)

// batchAccept: Listener takes a TCP listener's queue in batches.
const batchAccept = true

// acceptFD takes one connection off the queue of the listening socket
// lfd, as a blocking close-on-exec descriptor (so that os.NewFile does
// not register it with the poller before fdConn does), with its source.
func acceptFD(lfd int) (accepted, error) {
	fd, sa, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
	if err != nil {
		return accepted{}, err
	}
	var ip netip.Addr
	switch t := sa.(type) {
	case *syscall.SockaddrInet4:
		ip = netip.AddrFrom4(t.Addr)
	case *syscall.SockaddrInet6:
		ip = netip.AddrFrom16(t.Addr)
	}
	return accepted{fd: fd, src: sourceOfIP(ip)}, nil
}

// fdConn makes the accepted descriptor fd a net.Conn registered with the
// runtime's poller (as net.TCPListener.Accept would: no delay, keep-alive
// on). On an error fd is closed.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	_ = f.Close()
	return c, err
}

// closeFD closes an accepted descriptor that never became a net.Conn.
func closeFD(fd int) { _ = syscall.Close(fd) }

// readable reports whether the socket fd has a byte to read, its end of
// stream or an error, without taking any of it: false only when a read
// would wait (RawConn.Read then waits for the poller).
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EINTR
}
