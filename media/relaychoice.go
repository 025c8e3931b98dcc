package media

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/media/relay"
)

// Relay choice across the nodes that share the visits' Redis. Each node
// whose visits.ice_host is set registers its relay, below the store's
// prefix, with the bus heartbeat (every 5 s, 15 s TTL):
//
//	relay:<node id>  JSON relayEntry: the relay's turn:/turns: URLs at
//	                 visits.ice_host, its load (relay.Server.Load: its
//	                 allocations plus one per Mbit/s it carries) and
//	                 whether the node is draining
//	relays           the set of node ids that registered (members whose
//	                 relay:<id> is gone are pruned when read)
//	vrelay:<visit>   the node id whose relay serves the visit
//
// A visit is given its relay when its call starts (the first GET …/ice):
// the least loaded registered relay that is not draining, written only
// when the visit has none, so that of two nodes choosing at once one
// choice holds. /ice costs one Redis round trip (iceScript): it reads
// every registration and the visit's relay, gives the visit the relay
// this node picked from the registrations it read last (the heartbeat's
// or the last /ice's) when it has none, and publishes the participant's
// admission to that relay's node; only a move (the visit's relay gone or
// draining, or the pick stale) takes a second one. /ice on
// any node then hands out that relay's URLs with a credential of the
// shared relay secrets (relay.secrets must be the same on every node) and
// tells that node, over the bus, to admit the participant — so the relay's
// per-visit peer filter and its in-process hand-over see every participant
// of the visit. When the visit's relay is gone (its registration lapsed)
// or draining, the next /ice moves the visit to another relay
// (moveScript: compare and set, so that every node agrees on one), and
// the old relay answers new Allocates of the visit with 300
// ALTERNATE-SERVER (relay.Options.Redirect). Nothing of this is on the
// per-packet path: the relay reads Redis only to answer an Allocate for a
// visit it does not serve.
//
// A node without visits.ice_host registers no relay; when no node
// registers one, each node's visits use its own relay as on one node.
// Registrations are sealed (AES-256-GCM under the visits' key, as the
// bus): whoever can write to Redis cannot point browsers at a relay of
// their own. A relay that is not healthy (relay.Server.Healthy) registers
// as draining.

// relayEntry is a node's relay registration (relay:<node id>).
type relayEntry struct {
	URLs []string `json:"urls"`
	// Addr is the relay's UDP address (IP:port, the turn: URL's host
	// resolved): where a liveness probe and ALTERNATE-SERVER point.
	Addr string `json:"addr,omitempty"`
	// Load is the relay's load figure in allocation units
	// (relay.Server.Load): Allocations plus one per Mbit/s of
	// BitsPerSecond, rounded up. The least loaded relay is chosen.
	Load int `json:"load"`
	// Allocations and BitsPerSecond are its parts: allocations live or
	// being set up, and the traffic carried (bits/s, a 10 s moving
	// average); for operators.
	Allocations   int   `json:"allocations,omitempty"`
	BitsPerSecond int64 `json:"bits_per_second,omitempty"`
	Draining      bool  `json:"draining"`
}

// loadReporter is a Relay that tells its load (*relay.Server.Load).
type loadReporter interface{ Load() int }

// trafficReporter is a Relay that tells the parts of its load
// (*relay.Server).
type trafficReporter interface {
	Allocations() int
	Throughput() float64
}

// healthReporter is a Relay that knows whether its sockets work
// (*relay.Server.Healthy).
type healthReporter interface{ Healthy() error }

// relayAD is the additional data of a sealed registration.
const relayAD = "telegate relay registration v1"

// iceScript: KEYS relays, vrelay:<visit>; ARGV the prefix of relay:<id>
// keys, the node this node picked for the visit should it have none
// ("": none), the TTL of vrelay in ms, the prefix of the nodes' bus
// channels, this node's id, and a sealed bus envelope to publish on the
// channel of the visit's relay's node unless it is this node ("":
// none). Prunes the members of relays whose registration lapsed and
// returns {the visit's relay ("" none), 1 when it was given the pick now
// else 0, id, registration, id, registration, …}. The relay:<id> keys are
// named by the script, not KEYS: one Redis, no Cluster (they share the
// prefix's hash tag).
var iceScript = redis.NewScript(`
local out = {'', 0}
local gone = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    gone[#gone + 1] = id
  end
end
if #gone > 0 then redis.call('SREM', KEYS[1], unpack(gone)) end
local cur = redis.call('GET', KEYS[2])
if cur == false and ARGV[2] ~= '' and redis.call('EXISTS', ARGV[1] .. ARGV[2]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  cur = ARGV[2]
  out[2] = 1
end
if cur then
  out[1] = cur
  if ARGV[6] ~= '' and cur ~= ARGV[5] then redis.call('PUBLISH', ARGV[4] .. cur, ARGV[6]) end
end
return out
`)

// moveScript: KEYS vrelay:<visit>; ARGV old node ("" when none), new node,
// TTL ms. Sets the visit's relay to the new node only if it is still the
// old one; returns the visit's relay after it.
var moveScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return ARGV[2]
end
return cur
`)

func (b *bus) relayKey(node string) string     { return b.prefix + "relay:" + node }
func (b *bus) relaysKey() string               { return b.prefix + "relays" }
func (b *bus) visitRelayKey(vid string) string { return b.prefix + "vrelay:" + vid }

// relayState is this node's part in relay choice: set once by startBus.
type relayState struct {
	urls     []string // at visits.ice_host; nil: this node registers no relay
	addr     string   // the UDP address of urls' turn: URL, or ""
	draining atomic.Bool
	// probes: node id → the last liveness probe of its relay (bounded by
	// the registered relays; entries older than probeFor are probed anew).
	probeMu sync.Mutex
	probes  map[string]probe
	// away: visit id → the UDP address of its relay, for the visits moved
	// off this node's relay (bounded: movedMax, least recently used out).
	away *lru.Cache[string, netip.AddrPort]
	// seen are the registrations read last (heartbeat or /ice), from
	// which a visit without a relay is given one in the same round trip.
	seenMu sync.Mutex
	seen   map[string]relayEntry
}

// probe is one liveness probe's outcome.
type probe struct {
	ok bool
	at time.Time
}

// probeFor is how long a probe's outcome stands: a relay is probed at
// most once per probeFor by each node, however many /ice requests name it.
const probeFor = time.Second

// redirector is a Relay that can send a moved visit's Allocates elsewhere
// (*relay.Server.SetRedirect).
type redirector interface{ SetRedirect(relay.RedirectFunc) }

// startRelayChoice sets this node's part in relay choice up: its
// registration's URLs (when visits.ice_host is set) and the relay's
// redirect.
func (b *bus) startRelayChoice() {
	b.rs.away, _ = lru.New[string, netip.AddrPort](movedMax)
	b.rs.probes = map[string]probe{}
	if h := b.s.cfg.ICEHost; h != "" {
		b.rs.urls = registeredURLs(b.s.relay, h, b.s.relayName)
		if a, ok := resolveUDPAddr(b.rs.urls); ok {
			b.rs.addr = a.String()
		}
	}
	if r, ok := b.s.relay.(redirector); ok {
		r.SetRedirect(b.redirect)
	}
}

// registerRelay writes this node's relay registration (on every
// heartbeat, and at once when the node starts draining).
func (b *bus) registerRelay(ctx context.Context) error {
	if len(b.rs.urls) == 0 {
		return nil
	}
	e := relayEntry{URLs: b.rs.urls, Addr: b.rs.addr, Draining: b.rs.draining.Load()}
	if l, ok := b.s.relay.(trafficReporter); ok {
		e.Allocations, e.BitsPerSecond = l.Allocations(), int64(l.Throughput())
	}
	if l, ok := b.s.relay.(loadReporter); ok {
		e.Load = l.Load()
	}
	if h, ok := b.s.relay.(healthReporter); ok && h.Healthy() != nil {
		e.Draining = true
	}
	plain, err := json.Marshal(e)
	if err != nil {
		return err
	}
	v, err := b.c.sealWith([]byte(relayAD), plain)
	if err != nil {
		return err
	}
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b.relayKey(b.node), v, nodeTTL)
		p.SAdd(ctx, b.relaysKey(), b.node)
		return nil
	})
	if err != nil {
		return err
	}
	_, _, _, err = b.readRelays(ctx, "", "", "")
	return err
}

// drain marks this node's relay draining in Redis: no visit is given it
// from now on, and the visits it serves move at their next /ice.
func (b *bus) drain(ctx context.Context) error {
	b.rs.draining.Store(true)
	return b.registerRelay(ctx)
}

// readRelays runs iceScript for vid ("": none; the heartbeat's read)
// with pick and the admission envelope admit, remembers the
// registrations (rs.seen) and returns the visit's relay, whether it was
// given pick now, and every registered relay (node id → entry; one that
// does not open is left out, never chosen).
func (b *bus) readRelays(ctx context.Context, vid, pick, admit string) (cur string, picked bool, all map[string]relayEntry, err error) {
	res, err := iceScript.Run(ctx, b.rdb, []string{b.relaysKey(), b.visitRelayKey(vid)},
		b.prefix+"relay:", pick, presenceTTL.Milliseconds(), b.prefix+"sig:node:", b.node, admit).Slice()
	if err != nil {
		return "", false, nil, err
	}
	if len(res) < 2 {
		return "", false, nil, errors.New("media: relay script answered too little")
	}
	cur, _ = res[0].(string)
	n, _ := res[1].(int64)
	all = map[string]relayEntry{}
	for i := 2; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		v, _ := res[i+1].(string)
		var e relayEntry
		plain, err := b.c.openWith([]byte(relayAD), []byte(v))
		if err != nil || json.Unmarshal(plain, &e) != nil {
			continue // another key's: never chosen
		}
		all[id] = e
	}
	b.rs.seenMu.Lock()
	b.rs.seen = maps.Clone(all)
	b.rs.seenMu.Unlock()
	return cur, n == 1, all, nil
}

// pick is the relay this node would give a visit now, from the
// registrations it read last: the least loaded one not draining, leaving
// out those a recent probe found dead ("" when none is known).
func (b *bus) pick() string {
	b.rs.seenMu.Lock()
	all := maps.Clone(b.rs.seen)
	b.rs.seenMu.Unlock()
	b.rs.probeMu.Lock()
	for id := range all {
		if p, ok := b.rs.probes[id]; ok && !p.ok && time.Since(p.at) < probeFor {
			delete(all, id)
		}
	}
	b.rs.probeMu.Unlock()
	return leastLoaded(all, false)
}

// leastLoaded is the node of the least loaded relay in all that is not
// draining (ties: the smaller node id), or "". With draining true, a
// draining relay counts too: better than none.
func leastLoaded(all map[string]relayEntry, draining bool) string {
	best := ""
	for id, e := range all {
		if e.Draining && !draining {
			continue
		}
		if b, ok := all[best]; best == "" || !ok || e.Load < b.Load || e.Load == b.Load && id < best {
			best = id
		}
	}
	return best
}

// errNoRelay: the visit's relay changed while it was being chosen, to
// one whose registration is gone.
var errNoRelay = errors.New("media: no relay can take the visit")

// relayOf returns the node whose relay serves vid and its registration,
// giving the visit one when it has none and moving it when its relay is
// gone or draining (and another can take it). node is "" when no node
// registers a relay: the visit uses this node's relay. When pid is not
// "", the participant's admission reaches the relay's node over the bus
// (bus kind "admit") unless it is this node: the caller admits it here.
// One Redis round trip (iceScript); a move adds the compare-and-set and
// the admission on the new relay.
func (b *bus) relayOf(ctx context.Context, vid, pid string) (node string, e relayEntry, err error) {
	admit := ""
	if pid != "" {
		if admit, err = b.seal(envelope{Kind: "admit", Visit: vid, PID: pid}); err != nil {
			return "", relayEntry{}, err
		}
	}
	cur, picked, all, err := b.readRelays(ctx, vid, b.pick(), admit)
	if err != nil || len(all) == 0 {
		return "", relayEntry{}, err
	}
	if ce, ok := all[cur]; ok && picked && !ce.Draining && (cur == b.node || b.alive(cur, ce)) {
		return cur, ce, nil // given its relay now, the admission sent
	}
	// A relay whose node died keeps its registration until it lapses
	// (nodeTTL): a probe finds out sooner, so that pages restarting ICE
	// after the loss are handed a relay that works.
	if ce, ok := all[cur]; ok && cur != b.node && !b.alive(cur, ce) {
		delete(all, cur)
	}
	if ce, ok := all[cur]; ok && !ce.Draining {
		return cur, ce, nil // the admission sent
	}
	next := leastLoaded(all, false)
	for next != "" && next != b.node && !b.alive(next, all[next]) {
		delete(all, next)
		next = leastLoaded(all, false)
	}
	if next == "" {
		if ce, ok := all[cur]; ok {
			return cur, ce, nil // draining, and no other: it goes on serving; the admission sent
		}
		next = leastLoaded(all, true) // only draining ones are left
	}
	got, err := moveScript.Run(ctx, b.rdb, []string{b.visitRelayKey(vid)}, cur, next, presenceTTL.Milliseconds()).Text()
	if err != nil {
		return "", relayEntry{}, err
	}
	if ge, ok := all[got]; ok {
		if cur != "" && got != cur && !picked {
			b.s.log.Info("visit moved to another relay", "visit", vid, "from", cur, "to", got)
			b.moved(vid, got, ge)
			data, _ := json.Marshal(ge)
			b.publish(b.allChan(), envelope{Kind: "moved", Visit: vid, To: got, Data: data})
		}
		if pid != "" && got != cur && got != b.node {
			b.admitOn(got, vid, pid)
		}
		return got, ge, nil
	}
	return "", relayEntry{}, errNoRelay
}

// movedMax bounds the table of visits moved off this node's relay.
const movedMax = 4096

// moved records, on every node (bus kind "moved"), that vid's relay is now
// node's (registration e): this node's relay answers the visit's new
// Allocates with 300 ALTERNATE-SERVER (redirect) at e.Addr, unless the
// visit came to it.
func (b *bus) moved(vid, node string, e relayEntry) {
	if node == b.node {
		b.rs.away.Remove(vid)
		return
	}
	if a, err := netip.ParseAddrPort(e.Addr); err == nil {
		b.rs.away.Add(vid, a)
	} else if a, ok := udpAddrOf(e.URLs); ok {
		b.rs.away.Add(vid, a)
	}
}

// alive reports whether node's relay (registration e) answers a probe,
// from the last probe when it is recent (probeFor). A registration
// without an address cannot be probed and counts as alive.
func (b *bus) alive(node string, e relayEntry) bool {
	a, err := netip.ParseAddrPort(e.Addr)
	if err != nil {
		return true
	}
	b.rs.probeMu.Lock()
	p, ok := b.rs.probes[node]
	b.rs.probeMu.Unlock()
	if ok && time.Since(p.at) < probeFor {
		return p.ok
	}
	p = probe{ok: probeRelay(a), at: time.Now()}
	b.rs.probeMu.Lock()
	defer b.rs.probeMu.Unlock()
	for id, q := range b.rs.probes {
		if time.Since(q.at) > 10*probeFor {
			delete(b.rs.probes, id)
		}
	}
	if len(b.rs.probes) < movedMax {
		b.rs.probes[node] = p
	}
	if !p.ok {
		b.s.log.Warn("another node's relay does not answer; its visits move", "node", node)
	}
	return p.ok
}

// registeredURLs are the URLs this node registers for its relay: turn: at
// iceHost (visits.ice_host) and turns: at name — the TLS server name of
// the relay (relay.server_names[0]), one this node's certificate covers,
// so a browser sent here from another node can verify it — or at
// iceHost when there is none.
func registeredURLs(r Relay, iceHost, name string) []string {
	urls := r.ICEURLs(iceHost)
	if name == "" {
		return urls
	}
	var out []string
	for _, u := range urls {
		if !strings.HasPrefix(u, "turns:") {
			out = append(out, u)
		}
	}
	for _, u := range r.ICEURLs(name) {
		if strings.HasPrefix(u, "turns:") {
			out = append(out, u)
		}
	}
	return out
}

// resolveUDPAddr is the address of the first turn:HOST:PORT?transport=udp
// URL in urls, HOST resolved when it is a name (an IPv4 address first;
// bounded to 2 s).
func resolveUDPAddr(urls []string) (netip.AddrPort, bool) {
	if a, ok := udpAddrOf(urls); ok {
		return a, true
	}
	for _, u := range urls {
		rest, ok := strings.CutPrefix(u, "turn:")
		if !ok {
			continue
		}
		hp, _, _ := strings.Cut(rest, "?")
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		pn, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil || len(ips) == 0 {
			continue
		}
		slices.SortStableFunc(ips, func(a, b netip.Addr) int {
			if a.Is4() == b.Is4() {
				return 0
			}
			if a.Is4() {
				return -1
			}
			return 1
		})
		return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), true
	}
	return netip.AddrPort{}, false
}

// redirect is this node's relay.RedirectFunc: from memory, never Redis.
func (b *bus) redirect(vid string) (netip.AddrPort, bool) { return b.rs.away.Get(vid) }

// udpAddrOf is the address of the first turn:IP:PORT?transport=udp URL in
// urls (RFC 7065 §3.1); a host name is no address for ALTERNATE-SERVER.
func udpAddrOf(urls []string) (netip.AddrPort, bool) {
	for _, u := range urls {
		rest, ok := strings.CutPrefix(u, "turn:")
		if !ok {
			continue
		}
		hp, _, _ := strings.Cut(rest, "?")
		if a, err := netip.ParseAddrPort(hp); err == nil {
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// admitOn tells node's relay to admit the participant (bus kind "admit").
func (b *bus) admitOn(node, vid, pid string) {
	b.publish(b.nodeChan(node), envelope{Kind: "admit", Visit: vid, PID: pid})
}

// iceRelay is the relay part of an /ice answer for (vid, pid): the URLs to
// hand out, after admitting the participant on the visit's relay — this
// node's (the URLs for the request, iceURLs) or another node's. It fails
// (503) when Redis cannot tell which relay serves the visit.
func (s *Service) iceRelay(r *http.Request, vid, pid string) ([]string, error) {
	if s.bus != nil {
		ctx, cancel := storeCtx()
		node, e, err := s.bus.relayOf(ctx, vid, pid)
		cancel()
		if err != nil {
			return nil, fail(http.StatusServiceUnavailable, "relay", "the call's relay cannot be reached; try again shortly")
		}
		if node != "" && node != s.bus.node {
			return e.URLs, nil // admitted there by relayOf
		}
	}
	// Admission on the relay is idempotent; it is renewed here because a
	// sign-out revokes it while the participant stays admitted.
	s.relay.Admit(vid, pid)
	return s.iceURLs(r), nil
}

// Drain marks this node draining for relay choice: its relay is given no
// new visit, the visits it serves move to another relay at their next
// /ice, and their new Allocates here are answered with 300
// ALTERNATE-SERVER. Calls in progress keep their allocations. Without
// Redis (one node) it does nothing. Safe to call more than once.
func (s *Service) Drain() error {
	if s.bus == nil {
		return nil
	}
	ctx, cancel := storeCtx()
	defer cancel()
	return s.bus.drain(ctx)
}

// RelayRegistration opens one sealed relay registration (the value of
// relay:<node id> below the visits' Redis prefix) with the visits' key
// (Options.InviteKey) and returns the relay's ICE URLs, its load (in
// allocation units: allocations plus one per Mbit/s carried,
// relay.Server.Load) and whether it is draining; errors when the value does
// not open with that key. For operators' tools and tests: nothing in the
// request path needs it.
func RelayRegistration(key []byte, sealed string) (urls []string, load int, draining bool, err error) {
	c, err := newSealer(key)
	if err != nil {
		return nil, 0, false, err
	}
	plain, err := c.openWith([]byte(relayAD), []byte(sealed))
	if err != nil {
		return nil, 0, false, err
	}
	var e relayEntry
	if err := json.Unmarshal(plain, &e); err != nil {
		return nil, 0, false, err
	}
	return e.URLs, e.Load, e.Draining, nil
}
