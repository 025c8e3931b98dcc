package relay

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenUDP binds a UDP socket; with reusePort set, SO_REUSEPORT lets
// several sockets share the port and the kernel spreads clients across
// them by 4-tuple hash, so each client stays on one socket.
func listenUDP(ctx context.Context, addr string, reusePort bool) (net.PacketConn, error) {
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		// Absorb bursts; the kernel caps these at net.core.[rw]mem_max.
		_ = uc.SetReadBuffer(listenSocketBuffer)
		_ = uc.SetWriteBuffer(listenSocketBuffer)
	}
	return pc, nil
}

const listenSocketBuffer = 4 << 20
