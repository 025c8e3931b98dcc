// Package redistest starts a real redis-server for tests: on 127.0.0.1, a
// free port, a random password, no persistence, noeviction, killed at the
// test's cleanup. It is imported only by tests of the packages that keep
// state in Redis (sessions, sign-in round trips, rate limits, visits).
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/internal/freeport"
	"github.com/telegate/telegate/internal/redisconn"
)

// Server is a running redis-server. Addr is "127.0.0.1:PORT".
type Server struct {
	Addr, Password string
	// User is the ACL user of StartWith's Options.User ("" for the
	// default user, whose password is Password either way).
	User string
	// CAFile is the PEM CA that signed the server's certificate, when it
	// serves TLS (Options.TLS); ClientCertFile and ClientKeyFile are a
	// client certificate from the same CA (mode 0600).
	CAFile, ClientCertFile, ClientKeyFile string
	// Dir is the server's directory (its certificates, files of tests).
	Dir string
	// admin is the default user's password (Password without User).
	admin string
	tls   *tls.Config

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	bin    string
	args   []string // the command line minus the binary, for Restart
}

// Options are what StartWith sets up besides the defaults.
type Options struct {
	// TLS serves TLS only (tls-port, no plain port) with a certificate
	// for 127.0.0.1 and localhost from a CA made for the test (Server.CAFile).
	TLS bool
	// ClientCerts requires a client certificate from that CA
	// (tls-auth-clients yes); with TLS only.
	ClientCerts bool
	// User, when set, is an ACL user with Password and exactly
	// telegate's rules (redisconn.ACLRules, with the check commands when
	// CheckCommands); the default user then has another random password.
	User          string
	CheckCommands bool
	// Args are extra redis-server arguments (e.g. "--appendonly", "yes").
	Args []string
}

// Start starts redis-server (on PATH or /usr/bin) with the defaults. It
// skips the test only when the binary is absent and CI is unset; in CI a
// missing binary fails it (scripts/test installs redis-server).
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with o.
func StartWith(t testing.TB, o Options) *Server {
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
	s := &Server{Password: randomHex(), User: o.User, Dir: t.TempDir()}
	s.admin = s.Password
	dir := s.Dir
	var extra []string
	if o.TLS {
		extra = s.makeCerts(t, o.ClientCerts)
	}
	if o.User != "" {
		acl := append([]string{"user", o.User, ">" + s.Password}, redisconn.ACLRules(o.CheckCommands)...)
		aclFile := filepath.Join(dir, "users.acl")
		s.admin = randomHex()
		line := "user default on >" + s.admin + " ~* &* +@all\n" + strings.Join(acl, " ") + "\n"
		if err := os.WriteFile(aclFile, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "--aclfile", aclFile)
	}
	extra = append(extra, o.Args...)
	for attempt := 0; attempt < 5; attempt++ {
		port := freeport.TCP(t)
		s.bin = bin
		ports := []string{"--port", strconv.Itoa(port)}
		if o.TLS {
			ports = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
		}
		s.args = append([]string{"--bind", "127.0.0.1"}, ports...)
		s.args = append(s.args,
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--protected-mode", "yes",
			"--maxmemory-policy", "noeviction", "--loglevel", "warning")
		if o.User == "" {
			s.args = append(s.args, "--requirepass", s.Password)
		}
		s.args = append(s.args, extra...)
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

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
	o := s.options()
	o.DialTimeout, o.MaxRetries = time.Second, -1
	c := redis.NewClient(o)
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
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server too
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd, s.exited = nil, nil
	}
}

// Client is a raw client of the default user (every command and key),
// closed at cleanup, for looking at what was stored.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(s.options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// options are go-redis options reaching s as the default user (with the client
// certificate when it serves TLS).
func (s *Server) options() *redis.Options {
	o := &redis.Options{Addr: s.Addr, Password: s.admin, DisableIdentity: true, Protocol: 2}
	if s.tls != nil {
		o.TLSConfig = s.tls.Clone()
	}
	return o
}

// Pause stops the server's process with SIGSTOP: its port stays open and
// its connections established, but nothing is answered (a Redis hung or
// cut off by the network). Resume continues it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		t.Fatal("redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Values reads every key in s (SCAN) and its values: a string's value, a
// hash's fields and values, the members of a set or sorted set, a list's
// items; the key itself comes first. A key of another type fails t.
func (s *Server) Values(t testing.TB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	c := s.Client(t)
	out := map[string][]string{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		vals := []string{k}
		switch typ := c.Type(ctx, k).Val(); typ {
		case "string":
			vals = append(vals, c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "set":
			vals = append(vals, c.SMembers(ctx, k).Val()...)
		case "zset":
			vals = append(vals, c.ZRange(ctx, k, 0, -1).Val()...)
		case "list":
			vals = append(vals, c.LRange(ctx, k, 0, -1).Val()...)
		case "none": // gone meanwhile
			continue
		default:
			t.Errorf("redis key %s of type %s not read", k, typ)
		}
		out[k] = vals
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
