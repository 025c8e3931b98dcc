package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/node"
)

// run: telegate [run] -c FILE [--watch INTERVAL]
func (c cli) run(ctx context.Context, args []string) int {
	fs := c.flags("run", "telegate run -c FILE [--watch INTERVAL]")
	var path string
	fs.StringVar(&path, "c", "", "configuration `FILE` (YAML; see docs/config.md)")
	fs.StringVar(&path, "config", "", "configuration `FILE` (same as -c)")
	poll := fs.Duration("watch", 0, "also reload when FILE changes, checking every `INTERVAL` such as 5s (0: reload only on SIGHUP)")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	if path == "" {
		return c.usageError(fs, `-c FILE is required (to try telegate without one, run "telegate demo")`)
	}
	if *poll < 0 {
		return c.usageError(fs, "--watch must not be negative")
	}
	cfg, err := config.Load(path)
	if err != nil {
		c.printErrors(err)
		return exitFail
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	logger := newLogger(c.stderr, cfg.Log.Format, level)
	logWarnings(logger, cfg.Warnings)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	reloads := make(chan struct{}, 1)
	go watchConfig(ctx, path, *poll, logger, reloads)

	logger.Info("telegate starting", "config", path, "version", versionString(), "pid", os.Getpid())
	err = node.Run(ctx, cfg, node.Options{
		Logger:  logger,
		Reloads: reloads,
		Ready: func(r node.Ready) {
			logger.Info("telegate ready", "url", r.URL, "admin", r.AdminAddr)
		},
		Load: func() (*config.Config, error) { return config.Load(path) },
		Applied: func(cfg *config.Config) {
			logWarnings(logger, cfg.Warnings)
			level.Set(parseLevel(cfg.Log.Level))
		},
	})
	return stopped(ctx, logger, err)
}

// stopped logs how node.Run ended and returns the exit status: 0 after a
// signal and a clean drain (or a signal during start-up), 1 when the node
// failed, before or during its shutdown (an audit trail that could not be
// flushed, say).
func stopped(ctx context.Context, logger *slog.Logger, err error) int {
	if err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		logger.Error("telegate stopped", "error", err)
		return exitFail
	}
	logger.Info("telegate stopped")
	return exitOK
}

// watchConfig asks the node to reload its configuration on SIGHUP and,
// when poll is positive, whenever the file's content has changed and then
// stayed the same for one poll interval (a file still being written is
// not taken half-way; write it elsewhere and rename it over, or use
// SIGHUP, for a reload at once). A request not yet taken is not queued
// twice. The node reads, checks and applies
// the file and logs the outcome (node.Run).
func watchConfig(ctx context.Context, path string, poll time.Duration, logger *slog.Logger, reloads chan<- struct{}) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	last := fileStamp(path)
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("reloading configuration", "reason", "SIGHUP")
		case <-tick:
			now := fileStamp(path)
			if now == last {
				continue
			}
			// An editor or a deploy tool may still be writing: a file
			// cut short can be valid and drop a route. Reload once it
			// has stayed the same for a whole interval.
			if !settled(ctx, path, now, poll) {
				continue
			}
			logger.Info("reloading configuration", "reason", "file changed")
		}
		last = fileStamp(path)
		select {
		case reloads <- struct{}{}:
		default: // one is pending: it will read the newest file
		}
	}
}

// settled waits one interval and reports whether the file at path still
// has stamp, that is, whether a write had ended.
func settled(ctx context.Context, path, stamp string, interval time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(interval):
	}
	return fileStamp(path) == stamp
}

// fileStamp identifies a version of the file cheaply: size and mtime.
func fileStamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
}

// check: telegate check -c FILE. It builds the configuration's generation
// as run does (node.Build) without listening or contacting anything but
// the configured Redis (node.Check), so a file check accepts is one run
// starts with.
func (c cli) check(args []string) int {
	fs := c.flags("check", "telegate check -c FILE")
	var path string
	fs.StringVar(&path, "c", "", "configuration `FILE` to validate")
	fs.StringVar(&path, "config", "", "configuration `FILE` (same as -c)")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	if path == "" {
		return c.usageError(fs, "-c FILE is required")
	}
	cfg, err := node.Check(path)
	if err != nil {
		c.printErrors(err)
		return exitFail
	}
	for _, w := range cfg.Warnings {
		w.Message = "warning: " + w.Message
		fmt.Fprintln(c.stderr, w.Error())
	}
	fmt.Fprintf(c.stdout, "%s: ok\n", path)
	return exitOK
}

// printErrors prints every configuration problem on its own line.
func (c cli) printErrors(err error) {
	var fes config.Errors
	if errors.As(err, &fes) {
		for _, fe := range fes {
			fmt.Fprintln(c.stderr, fe.Error())
		}
		return
	}
	fmt.Fprintln(c.stderr, err)
}

// version: telegate version
func (c cli) version(args []string) int {
	fs := c.flags("version", "telegate version")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	fmt.Fprintf(c.stdout, "telegate %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// versionString is the module version and VCS revision from the build
// information, e.g. "v1.2.0 (rev 4f1c2ab, modified)" or
// "(devel) (rev unknown)".
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	rev, modified := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		return fmt.Sprintf("%s (rev %s, modified)", v, rev)
	}
	return fmt.Sprintf("%s (rev %s)", v, rev)
}

// newLogger returns the process logger: JSON (default) or text on w.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// logWarnings logs each configuration warning.
func logWarnings(logger *slog.Logger, ws []config.FieldError) {
	for _, w := range ws {
		logger.Warn("configuration warning", "problem", w.Error())
	}
}
