package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/telegate/telegate/config"
)

// Dependency is something the node needs in order to serve (Redis, the
// TURN relay, the audit trail, an identity provider), checked by /readyz
// on the admin listener.
type Dependency struct {
	// Name identifies the dependency in /readyz answers, e.g.
	// "redis:sessions", "redis:rate-limits", "relay", "audit" or
	// "provider:<id>". Names should be unique.
	Name string
	// Check returns nil when the dependency is usable and an error saying
	// why not otherwise. It is given a context that ends after
	// config.DefaultReadyCheckTimeout (1 s) and should return by then; one
	// that does not is reported as not ready ("no answer within 1s") and
	// left to finish on its own. Checks run concurrently with each other
	// and with the dependency's ordinary work. The error's text is shown
	// to whoever reaches the admin listener: only its first line, at most
	// maxReadyErrorBytes (200) bytes; it must carry no secret.
	Check func(ctx context.Context) error
}

// DependencyStatus is one dependency in a /readyz answer.
type DependencyStatus struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Error is why the dependency is not ready ("" when it is).
	Error string `json:"error,omitempty"`
}

// Readiness is the /readyz answer (JSON).
type Readiness struct {
	// Ready is true when Listening and every dependency is ready; /readyz
	// then answers 200, else 503.
	Ready bool `json:"ready"`
	// Listening is true once every listener is up and a configuration is
	// loaded, and false again while shutting down.
	Listening bool `json:"listening"`
	// Generation is the running configuration generation's ID and
	// ConfigHash its configuration's hash (see node.Hash): nodes that
	// report the same hash run the same configuration.
	Generation uint64 `json:"generation"`
	ConfigHash string `json:"config_hash"`
	// Dependencies in the order of Options.Dependencies (an empty list when
	// none is configured).
	Dependencies []DependencyStatus `json:"dependencies"`
	// Draining is true from the moment the drain begins (SIGTERM or POST
	// /drain): the node takes no new visit and is on its way out.
	Draining bool `json:"draining"`
}

// maxReadyErrorBytes caps the error text of one dependency in /readyz.
const maxReadyErrorBytes = 200

// readiness runs the dependency checks for /readyz: all at once, each
// bounded by timeout, at most one round at a time, and its results reused
// for cacheFor, so that a flood of /readyz costs each dependency at most
// one check per cacheFor.
type readiness struct {
	deps []Dependency
	// gen gives the running generation's ID and its own dependencies
	// (Generation.Dependencies), checked after deps.
	gen      func() (uint64, []Dependency)
	timeout  time.Duration
	cacheFor time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	at    time.Time          // when last was taken
	atGen uint64             // the generation last was taken for
	last  []DependencyStatus // nil before the first round
	round chan struct{}      // closed when the running round ends; nil when none runs
}

func newReadiness(deps []Dependency, gen func() (uint64, []Dependency), now func() time.Time, log *slog.Logger) *readiness {
	return &readiness{
		deps:     deps,
		gen:      gen,
		timeout:  config.DefaultReadyCheckTimeout,
		cacheFor: config.DefaultReadyCacheFor,
		now:      now,
		log:      log,
	}
}

// statuses returns the dependencies' statuses: the cached ones while they
// are fresh, else those of a new round (or of the one already running).
// When ctx ends before the first round does, every dependency is reported
// as not checked yet.
func (r *readiness) statuses(ctx context.Context) []DependencyStatus {
	id, extra := r.gen()
	deps := append(r.deps[:len(r.deps):len(r.deps)], extra...)
	if len(deps) == 0 {
		return []DependencyStatus{}
	}
	r.mu.Lock()
	if r.last != nil && r.atGen == id && r.now().Sub(r.at) < r.cacheFor {
		last := r.last
		r.mu.Unlock()
		return last
	}
	if r.round == nil {
		r.round = make(chan struct{})
		go r.run(r.round, id, deps) // not tied to one request: its result serves them all
	}
	round := r.round
	r.mu.Unlock()
	select {
	case <-round:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil || r.atGen != id {
		out := make([]DependencyStatus, len(deps))
		for i, d := range deps {
			out[i] = DependencyStatus{Name: d.Name, Error: "not checked yet"}
		}
		return out
	}
	return r.last
}

// run checks every dependency concurrently and stores the results as
// those of generation id.
func (r *readiness) run(done chan struct{}, id uint64, deps []Dependency) {
	out := make([]DependencyStatus, len(deps))
	var wg sync.WaitGroup
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.check(d)
		}()
	}
	wg.Wait()
	r.mu.Lock()
	r.last, r.at, r.atGen, r.round = out, r.now(), id, nil
	r.mu.Unlock()
	close(done)
}

// check runs one dependency's check within the timeout.
func (r *readiness) check(d Dependency) DependencyStatus {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("readiness check panicked", "dependency", d.Name, "panic", fmt.Sprint(p))
				errc <- fmt.Errorf("check failed unexpectedly")
			}
		}()
		if d.Check == nil {
			errc <- nil
			return
		}
		errc <- d.Check(ctx)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", r.timeout)
	}
	st := DependencyStatus{Name: d.Name, Ready: err == nil}
	if err != nil {
		st.Error = shortError(err)
	}
	return st
}

// shortError is the first line of err's text, at most maxReadyErrorBytes
// (cut at a rune boundary).
func shortError(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	s = strings.TrimSpace(s)
	if len(s) > maxReadyErrorBytes {
		s = s[:maxReadyErrorBytes]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	if s == "" {
		s = "not ready"
	}
	return s
}

// serveReadyz answers /readyz: 200 with Readiness JSON when the gateway
// listens and every dependency is ready, else 503 with the same JSON.
func (g *Gateway) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{
		Listening:    g.Ready(),
		Dependencies: g.readiness.statuses(r.Context()),
		Draining:     g.shuttingDown(),
	}
	rd.Generation, rd.ConfigHash = g.Current()
	rd.Ready = rd.Listening
	for _, d := range rd.Dependencies {
		rd.Ready = rd.Ready && d.Ready
	}
	b, _ := json.Marshal(rd)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(b, '\n'))
}
