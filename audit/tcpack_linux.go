//go:build linux

package audit

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unacked is the number of bytes written to c that the peer's TCP has not
// acknowledged yet — sent and unacknowledged, or not sent (SIOCOUTQ,
// tcp(7)); ok is false when c does not say.
func unacked(c net.Conn) (n int, ok bool) {
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
