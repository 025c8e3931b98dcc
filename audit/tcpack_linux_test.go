package audit

import (
	"errors"
	"syscall"
)

// setRcvbuf sets the receive buffer (SO_RCVBUF) of the socket c.
func setRcvbuf(c syscall.RawConn, n int) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n) })
	return errors.Join(err, serr)
}
