//go:build !linux

package policies

// threadCPU is 0 where the thread's CPU time cannot be read.
func threadCPU() int64 { return 0 }
