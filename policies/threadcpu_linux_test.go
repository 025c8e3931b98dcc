package policies

import "golang.org/x/sys/unix"

// threadCPU is the CPU time (user + system, ns) the calling OS thread has
// used; the caller locks its goroutine to the thread.
func threadCPU() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
