// Package redistest starts a real redis-server for tests: on 127.0.0.1, a
// free port, a random password, no persistence, noeviction, killed at the
// test's cleanup. It is imported only by tests of the packages that keep
// state in Redis (sessions, sign-in round trips, rate limits, visits).
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server. Addr is "127.0.0.1:PORT".
type Server struct {
	Addr, Password string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	bin    string
	args   []string // the command line minus the binary, for Restart
}

// Start starts redis-server (on PATH or /usr/bin). It skips the test only
// when the binary is absent and CI is unset; in CI a missing binary fails
// it (scripts/test installs redis-server).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr == nil {
			bin = "/usr/bin/redis-server"
		} else if os.Getenv("CI") == "" {
			t.Skip("redis-server is not installed (apt-get install redis-server, or run scripts/test); set CI to make this a failure")
		} else {
			t.Fatal("redis-server is not installed; scripts/test installs it")
		}
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s := &Server{Password: hex.EncodeToString(pw)}
	dir := t.TempDir()
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		s.bin = bin
		s.args = []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--requirepass", s.Password, "--protected-mode", "yes",
			"--maxmemory-policy", "noeviction", "--loglevel", "warning"}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd, exited, err := s.start()
		if err != nil {
			t.Fatal(err)
		}
		if cmd != nil {
			s.cmd, s.exited = cmd, exited
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatal("redis-server did not start")
	return nil
}

// start runs the server and waits until it answers; it returns a nil
// command (and no error) when the server exited or did not answer in
// time.
func (s *Server) start() (*exec.Cmd, chan struct{}, error) {
	var logs bytes.Buffer
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if s.ready(exited) {
		return cmd, exited, nil
	}
	_ = cmd.Process.Kill()
	<-exited
	return nil, nil, nil
}

// Restart starts the server again after Stop, on the same address with
// the same password (and, without persistence, no data): tests use it to
// bring Redis back. It fails the test when the server does not come up
// (for instance because the port was taken meanwhile).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd, exited, err := s.start()
	if err != nil {
		t.Fatal(err)
	}
	if cmd == nil {
		t.Fatalf("redis-server did not start again on %s", s.Addr)
	}
	s.cmd, s.exited = cmd, exited
}

// ready waits up to 5 s for the server to answer PING.
func (s *Server) ready(exited <-chan struct{}) bool {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DialTimeout: time.Second, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Stop kills the server and waits for it to exit (idempotent): tests use
// it to take Redis away mid-test.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd, s.exited = nil, nil
	}
}

// Client is a raw client, closed at cleanup, for looking at what was
// stored.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DisableIdentity: true, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
