package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/gateway/edgetls"
	"github.com/telegate/telegate/media/relay"
)

// discoveryWait bounds how long a reload waits for the first discovery
// of a provider it adds.
const discoveryWait = 10 * time.Second

// tlsPrepareWait bounds the local CA's issuing for names a reload adds.
const tlsPrepareWait = 30 * time.Second

// running is a node's generation state: the one place a new generation is
// built and made current.
type running struct {
	log     *slog.Logger
	env     Env
	trail   *audit.Log
	gw      *gateway.Gateway
	load    func() (*config.Config, error)
	applied func(*config.Config)
	// certs serves the public listener's certificates; a reload readies
	// its host table before the swap and applies it with the swap.
	certs *edgetls.Manager
	// turn is the relay, nil when it is off; it takes the generation's
	// limits with the swap.
	turn *relay.Server

	mu  sync.Mutex // one reload at a time
	cur *Generation

	reg       *prometheus.Registry
	genGauge  prometheus.Gauge
	hashGauge *prometheus.GaugeVec
}

// reload loads the configuration again, builds it as the following
// generation and swaps it in: the edge's router, upstreams, policies and
// assertion settings, auth's providers, routes and timeouts, inspection
// and rate limits change together, for requests that start after the
// swap; in the same step the TLS host table (names, modes, certificate
// files), the device CA pools and the lowest TLS version are served from
// the next handshake and the relay's limits apply to the next allocation.
// A device whose CA the reload removed is refused at its next handshake,
// and on a connection it already holds at its next request: auth checks
// every request's client certificate against the generation's pools. Requests already running finish on their
// generation. Everything is built and checked before anything changes: a
// configuration that changes a setting of the process (see fixed), does
// not build, or whose TLS hosts cannot be served (unreadable or
// mismatched files, names the local CA may not vouch for) is refused with
// every problem, logged one per line; the running generation stays.
func (n *running) reload() (uint64, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var next *config.Config
	err := errors.New("this node runs without a configuration file (demo): nothing to reload")
	if n.load != nil {
		next, err = n.load()
	}
	if err == nil {
		if probs := append(checkFixed(n.cur.Config, next), keepDevelopmentProviders(n.cur.Config, next)...); len(probs) > 0 {
			err = probs
		}
	}
	var gen *Generation
	if err == nil {
		env := n.env
		env.Previous = n.cur
		gen, err = Build(next, env)
	}
	var hosts *edgetls.Pending
	if err == nil && n.certs != nil {
		pctx, cancel := context.WithTimeout(context.Background(), tlsPrepareWait)
		hosts, err = n.certs.Prepare(pctx, next, gen.ClientTrust)
		cancel()
		if err != nil {
			err = config.Errors{next.Problem("tls.hosts", "%s", strings.TrimPrefix(err.Error(), "tls configuration: "))}
		}
	}
	if err == nil {
		wctx, cancel := context.WithTimeout(context.Background(), discoveryWait)
		gen.Auth.WaitDiscovered(wctx) // a new provider can sign in at once
		cancel()
		gen.ID = n.cur.ID + 1
		err = n.gw.Swap(gen.edge())
	}
	if hosts != nil {
		if err != nil {
			hosts.Discard()
		} else {
			hosts.Apply()
		}
	}
	if err == nil && n.turn != nil {
		n.turn.SetLimits(gen.RelayLimits)
	}
	if err != nil {
		var fes config.Errors
		if errors.As(err, &fes) {
			for _, fe := range fes {
				n.log.Error("invalid configuration", "problem", fe.Error())
			}
		} else {
			n.log.Error("invalid configuration", "problem", err.Error())
		}
		n.log.Error("configuration reload refused; the running configuration stays", "generation", n.cur.ID)
		n.trail.Record(context.Background(), audit.Event{Type: "config.refused", Decision: "deny", Generation: n.cur.ID})
		return n.cur.ID, n.cur.Hash, err
	}
	n.env.Auth.Activate(gen.Auth)
	prev := n.cur
	n.cur = gen
	if prev.Inspector != gen.Inspector {
		if prev.Inspector != nil {
			n.reg.Unregister(prev.Inspector)
		}
		if gen.Inspector != nil {
			n.reg.MustRegister(gen.Inspector)
		}
	}
	n.record(gen, "reload")
	if n.applied != nil {
		n.applied(next)
	}
	return gen.ID, gen.Hash, nil
}

// record records that gen is now the running generation: the audit
// trail stamps it on every record, the metrics and the log say so.
func (n *running) record(gen *Generation, why string) {
	n.trail.SetGeneration(gen.ID)
	n.trail.Record(context.Background(), audit.Event{Type: "config.apply", Decision: "allow", Reason: why, Generation: gen.ID,
		Attrs: map[string]string{"hash": gen.Hash}})
	n.genGauge.Set(float64(gen.ID))
	n.hashGauge.Reset()
	n.hashGauge.WithLabelValues(gen.Hash).Set(1)
	n.log.Info("configuration applied", "generation", gen.ID, "hash", gen.Hash, "routes", len(gen.Config.Routes), "reason", why)
}

// registerMetrics registers telegate_config_generation (the running
// generation's ID) and telegate_config_hash_info{hash} (1 for the running
// configuration's hash), so a fleet can show that all nodes run the same
// configuration, and telegate_config_builds_total (builds.Load: the
// generations this process built, taken or refused).
func (n *running) registerMetrics(reg *prometheus.Registry) error {
	n.reg = reg
	if n.cur.Inspector != nil {
		if err := reg.Register(n.cur.Inspector); err != nil {
			return err
		}
	}
	n.genGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "telegate_config_generation", Help: "ID of the running configuration generation (1 at start, one more per reload that took effect).",
	})
	n.hashGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "telegate_config_hash_info", Help: "1 for the SHA-256 of the running effective configuration.",
	}, []string{"hash"})
	built := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "telegate_config_builds_total", Help: "Configuration generations built by this process (Build), taken or refused: one at start, one per reload that got as far as building.",
	}, func() float64 { return float64(builds.Load()) })
	for _, c := range []prometheus.Collector{n.genGauge, n.hashGauge, built} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
