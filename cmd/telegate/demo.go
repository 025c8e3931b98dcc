package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/demo/demoapp"
	"github.com/telegate/telegate/node"
)

// errDemoNotLoopback is the message for a non-loopback address in demo mode.
const errDemoNotLoopback = `demo mode listens on loopback only; use "telegate run -c FILE" for a real deployment`

// demo: telegate demo [--listen ADDR] [--admin ADDR] [--relay ADDR] [--data-dir DIR]
func (c cli) demo(ctx context.Context, args []string) int {
	fs := c.flags("demo", "telegate demo [--listen ADDR] [--admin ADDR] [--relay ADDR] [--data-dir DIR]\n\n"+
		"Runs the whole product on localhost with a local CA, a development OpenID Provider\n"+
		"and a demo upstream app. DEMO MODE: not for patients or real data.")
	listen := fs.String("listen", config.DemoListen, "public HTTPS `ADDR` (loopback only)")
	admin := fs.String("admin", config.DemoAdmin, "admin `ADDR` for /healthz, /readyz, /metrics (loopback only)")
	relayAddr := fs.String("relay", config.DemoRelay, "TURN relay UDP `ADDR`, a loopback IP and port")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data `DIR` for the local CA, keys, sessions and the audit trail")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", *listen}, {"--admin", *admin}, {"--relay", *relayAddr}} {
		if err := checkLoopbackListen(a.addr); err != nil {
			fmt.Fprintf(c.stderr, "telegate demo: %s %s: %v\n", a.flag, a.addr, err)
			return exitUsage
		}
	}

	level := new(slog.LevelVar)
	logger := newLogger(c.stderr, "text", level)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	if ap, err := netip.ParseAddrPort(*relayAddr); err != nil || !ap.Addr().IsLoopback() {
		fmt.Fprintf(c.stderr, "telegate demo: --relay %s: must be a loopback IP and port, e.g. 127.0.0.1:3478\n", *relayAddr)
		return exitUsage
	}
	o := config.DemoOptions{Listen: *listen, Admin: *admin, Relay: *relayAddr, DataDir: *dataDir}
	cfg := config.Demo(o) // first pass: the public URL and the routes for the demo app
	roots := &rootFile{path: filepath.Join(cfg.DataDir, "ca", "root.pem")}
	upstream, closeApp, err := startDemoApp(context.WithoutCancel(ctx), logger, cfg, roots)
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate demo: starting the demo app: %v\n", err)
		return exitFail
	}
	defer closeApp()

	o.Upstream = upstream
	cfg = config.Demo(o)
	if err := cfg.Validate(); err != nil {
		c.printErrors(err)
		return exitFail
	}

	// The demo's provider is a development provider: node.Run starts the
	// development OpenID Provider and fills in its issuer and client.
	// SIGHUP asks for a reload, as with run; the demo has no file to read
	// again, so the node says so and keeps running (it does not die).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloads := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reloads <- struct{}{}:
				default:
				}
			}
		}
	}()
	err = node.Run(ctx, cfg, node.Options{
		Logger:  logger,
		Reloads: reloads,
		Ready: func(r node.Ready) {
			roots.setPath(r.LocalRoot)
			printBanner(c.stdout, r, cfg)
		},
	})
	return stopped(ctx, logger, err)
}

// checkLoopbackListen requires host:port whose host is "localhost" or a
// loopback IP literal (never empty, which would mean every interface).
func checkLoopbackListen(addr string) error {
	if err := config.CheckListenAddr(addr); err != nil {
		return err
	}
	if !config.IsLoopbackListenAddr(addr) {
		return errors.New(errDemoNotLoopback)
	}
	return nil
}

// startDemoApp starts the demo upstream app (demo/demoapp, which
// verifies the gateway's assertion against its JWKS) on an ephemeral
// loopback port and returns its URL and a function that stops it. The app
// fetches the JWKS over HTTPS from the gateway, trusting the local CA root
// that the gateway creates when it starts (roots names the file).
func startDemoApp(ctx context.Context, logger *slog.Logger, cfg *config.Config, roots *rootFile) (string, func(), error) {
	ids := make([]string, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		ids = append(ids, r.ID)
	}
	h, err := demoapp.New(demoapp.Options{
		JWKSURL:    cfg.Server.PublicURL + "/.telegate/jwks.json",
		Issuer:     cfg.Assertion.Issuer,
		Audiences:  ids,
		Header:     cfg.Assertion.Header,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: roots},
		Logger:     logger.With("component", "demoapp"),
	})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("demo app stopped", "error", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// rootFile is an http.RoundTripper that trusts only the CA root in a PEM
// file, read on first use (the gateway creates it when it starts) and again
// while it cannot be read.
type rootFile struct {
	mu   sync.Mutex
	path string
	rt   *http.Transport
}

// setPath names the root file (from node.Ready.LocalRoot).
func (f *rootFile) setPath(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p != "" && p != f.path {
		f.path, f.rt = p, nil
	}
}

// RoundTrip implements http.RoundTripper.
func (f *rootFile) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	rt := f.rt
	if rt == nil {
		pem, err := os.ReadFile(f.path)
		if err != nil {
			f.mu.Unlock()
			return nil, fmt.Errorf("demo: local CA root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			f.mu.Unlock()
			return nil, fmt.Errorf("demo: local CA root %s holds no certificate", f.path)
		}
		rt = &http.Transport{
			TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		}
		f.rt = rt
	}
	f.mu.Unlock()
	return rt.RoundTrip(req)
}

// printBanner tells the person at the terminal what is running and how to
// use it, loudly.
func printBanner(w io.Writer, r node.Ready, cfg *config.Config) {
	issuer := cfg.Providers[0].Issuer // filled in by node.Run
	url := r.URL
	if url == "" {
		url = cfg.Server.PublicURL + "/"
	}
	root := r.LocalRoot
	if root == "" {
		root = filepath.Join(cfg.DataDir, "ca", "root.pem")
	}
	admin := r.AdminAddr
	if admin == "" {
		admin = cfg.Server.Admin
	}
	line := strings.Repeat("=", 72)
	fmt.Fprintf(w, `
%[1]s
  TELEGATE DEMO MODE — NOT FOR PATIENTS OR REAL DATA
  A development identity provider with fixed passwords is running.
%[1]s

  Open:               %[2]s
  Video visits:       %[2]s.telegate/visits/lobby (sign in as the clinician)
  Trust this CA:      %[3]s
                      (the local CA root; your browser warns until you trust it)
  Demo users:         clinician@demo.test   patient@demo.test   admin@demo.test
  Password:           demo
  Identity provider:  %[4]s
  Admin listener:     http://%[5]s/healthz

  Stop with Ctrl-C.
%[1]s

`, line, url, root, issuer, admin)
}
