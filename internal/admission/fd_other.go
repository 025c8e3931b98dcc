//go:build !linux

package admission

import (
	"errors"
	"net"
)

// batchAccept: only Linux takes a listener's queue in batches.
const batchAccept = false

func acceptFD(int) (accepted, error) { return accepted{}, errors.ErrUnsupported }
func fdConn(int) (net.Conn, error)   { return nil, errors.ErrUnsupported }
func closeFD(int)                    {}

func readable(uintptr) bool { return true }
