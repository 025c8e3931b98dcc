package main

import (
	"context"
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
	"syscall"
	"time"

	"github.com/telegate/telegate/auth/devop"
	"github.com/telegate/telegate/config"
)

// errDemoNotLoopback is the message for a non-loopback address in demo mode.
const errDemoNotLoopback = `demo mode listens on loopback only; use "telegate run -c FILE" for a real deployment`

// demo: telegate demo [--listen ADDR] [--admin ADDR] [--data-dir DIR]
func (c cli) demo(ctx context.Context, args []string) int {
	fs := c.flags("demo", "telegate demo [--listen ADDR] [--admin ADDR] [--data-dir DIR]\n\n"+
		"Runs the whole product on localhost with a local CA, a development OpenID Provider\n"+
		"and a demo upstream app. DEMO MODE: not for patients or real data.")
	listen := fs.String("listen", config.DemoListen, "public HTTPS `ADDR` (loopback only)")
	admin := fs.String("admin", config.DemoAdmin, "admin `ADDR` for /healthz, /readyz, /metrics (loopback only)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data `DIR` for the local CA, keys, sessions and the audit trail")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", *listen}, {"--admin", *admin}} {
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

	o := config.DemoOptions{Listen: *listen, Admin: *admin, DataDir: *dataDir}
	cfg := config.Demo(o) // first pass: the public URL and the generated secret
	secret := cfg.Providers[0].ClientSecret
	op, err := startDevOP(ctx, logger, cfg.Server.PublicURL, secret)
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate demo: starting the development OpenID Provider: %v\n", err)
		return exitFail
	}
	defer op.Close()
	upstream, closeApp, err := startDemoApp(ctx, logger, cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate demo: starting the demo app: %v\n", err)
		return exitFail
	}
	defer closeApp()

	o.Issuer, o.ClientSecret, o.Upstream = op.Issuer(), secret, upstream
	cfg = config.Demo(o)
	if err := cfg.Validate(); err != nil {
		c.printErrors(err)
		return exitFail
	}

	err = serve(ctx, cfg, serveOptions{
		Logger: logger,
		Ready: func(r readyInfo) {
			printBanner(c.stdout, r, cfg, op.Issuer())
		},
	})
	if err != nil && ctx.Err() == nil {
		logger.Error("telegate stopped", "error", err)
		return exitFail
	}
	return exitOK
}

// checkLoopbackListen requires host:port whose host is "localhost" or a
// loopback IP literal (never empty, which would mean every interface).
func checkLoopbackListen(addr string) error {
	if err := config.CheckListenAddr(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return errors.New(errDemoNotLoopback)
}

// startDevOP starts the development OpenID Provider on an ephemeral
// loopback port with the demo users and telegate's client registered.
func startDevOP(ctx context.Context, logger *slog.Logger, publicURL, secret string) (*devop.Server, error) {
	return devop.Start(ctx, devop.Options{
		Addr:   "127.0.0.1:0",
		Logger: logger.With("component", "devop"),
		Clients: []devop.Client{{
			ID:                     config.DemoClientID,
			Secret:                 secret,
			RedirectURIs:           []string{publicURL + "/.telegate/callback/demo"},
			PostLogoutRedirectURIs: []string{publicURL + "/", publicURL + "/.telegate/signed-out"},
		}},
	})
}

// startDemoApp starts the demo upstream app on an ephemeral loopback port
// and returns its URL and a function that stops it.
//
// The demo app (package gateway/demoapp, which verifies the assertion) is
// wired here once it is in the tree; until then a small placeholder page
// stands in for it.
func startDemoApp(ctx context.Context, logger *slog.Logger, cfg *config.Config) (string, func(), error) {
	_ = cfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "telegate demo upstream (DEMO MODE, not for patients)\npath: %s\n", r.URL.Path)
	})
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

// printBanner tells the person at the terminal what is running and how to
// use it, loudly.
func printBanner(w io.Writer, r readyInfo, cfg *config.Config, issuer string) {
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

  Open:             %[2]s
  Trust this CA:    %[3]s
                    (the local CA root; add it to your browser or OS trust store)
  Demo users:       clinician@demo.test   patient@demo.test   admin@demo.test
  Password:         demo
  Identity provider %[4]s
  Admin listener    http://%[5]s/healthz

  Stop with Ctrl-C.
%[1]s

`, line, url, root, issuer, admin)
}
