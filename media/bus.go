package media

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegate/telegate/scope"
)

// bus carries signaling between the nodes that share the visits' Redis,
// so a participant's socket may be on any node. Each node subscribes (Redis
// pub/sub) to two channels below the store's prefix:
//
//	sig:node:<node id>  what is addressed to this node's sockets: a peer
//	                    joined or left elsewhere, a message from a peer
//	                    elsewhere to peers here
//	sig:all             what every node must act on: a visit ended, a
//	                    participant removed, a sign-in session ended, a
//	                    waiting-room chat message, a participant out of
//	                    the waiting room (its chat sockets close)
//
// and keeps, per visit with a socket on it, where the visit's other peers
// are (bus.remote). Presence lives in the hash room:<visit id>
// (participant id → sealed {node, peer info}), written and read in one
// script when a socket opens, so of two sockets opening at once on two
// nodes the later sees the earlier and tells it. Each node keeps
// node:<id> alive (15 s TTL, refreshed every 5 s); presence of a node
// without it is ignored, and its peers are taken for gone (peer-left) at
// the next heartbeat.
//
// The sender is stamped and the fingerprint rule applied on the sender's
// node, exactly as for a local peer (Service.forward); the bus carries the
// message as it goes out to sockets. Everything on the bus and in presence
// is sealed (AES-256-GCM under the visits' key): names, SDP and candidates
// never reach Redis in the clear; a bus message older than 30 s (replayed)
// is dropped. Waiting-room chat (chat.go) rides the same channel to every
// node — no presence is kept for chat sockets; a message is small
// (chatMaxBytes) and each participant's rate bounded (chatRate) — and,
// like signaling, is published and delivered, never stored or logged. A
// message published while a node's
// subscription is down (Redis restarting) is lost; the client's own
// reconnection and ICE restart recover the call.
type bus struct {
	s      *Service
	rdb    *redis.Client
	c      *sealer
	prefix string
	node   string
	ps     *redis.PubSub
	stop   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
	// rs is this node's part in relay choice (relaychoice.go).
	rs relayState
	// lastWarn is when a failed publish was last logged (Unix ns): at
	// most one line per warnEvery while Redis is away.
	lastWarn atomic.Int64

	// Guarded by s.mu:
	// remote: visit id → participant id → where a peer elsewhere is, for
	// the visits with a socket on this node.
	remote map[string]map[string]remotePeer
	// mine: "visit id/participant id" → the presence value this node
	// wrote for its socket.
	mine map[string]string
}

type remotePeer struct {
	node string
	info peerInfo
}

// presence is a room hash value (sealed).
type presence struct {
	Node string   `json:"n"`
	Info peerInfo `json:"i"`
}

// envelope is one bus message (sealed).
type envelope struct {
	Kind    string          `json:"k"` // joined, left, msg, admit; ended, removed, session, moved, chat, chat-left
	Node    string          `json:"n"` // the sending node
	At      int64           `json:"a"` // when it was sent, Unix ms
	Visit   string          `json:"v,omitempty"`
	PID     string          `json:"p,omitempty"` // the participant it is about, or the sender
	To      string          `json:"t,omitempty"`
	Info    *peerInfo       `json:"i,omitempty"`
	Data    json.RawMessage `json:"d,omitempty"`
	Session string          `json:"s,omitempty"`
	Iss     string          `json:"is,omitempty"`
	Sub     string          `json:"su,omitempty"`
	Manager bool            `json:"m,omitempty"` // chat: the sender manages the visit
}

const (
	busAD         = "telegate signaling bus v1"
	nodeTTL       = 15 * time.Second
	nodeHeartbeat = 5 * time.Second
	presenceTTL   = 26 * time.Hour // beyond visits.max_duration's largest value
	warnEvery     = 10 * time.Second
	busMaxAge     = 30 * time.Second // nodes' clocks must agree within this
)

// joinScript: KEYS room; ARGV participant id, presence, TTL ms. Returns
// the room as it was (field, value, …) and writes the participant in.
var joinScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return all
`)

// leaveScript: KEYS room; ARGV participant id, presence. Removes the
// participant only if the value is still the one given.
var leaveScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`)

// startBus subscribes this node to its channels (waiting for Redis to
// confirm both) and starts the receive and heartbeat loops.
func startBus(s *Service, st *redisStore) (*bus, error) {
	b := &bus{s: s, rdb: st.rdb, c: st.c, prefix: st.prefix, node: newID(), stop: make(chan struct{}),
		remote: map[string]map[string]remotePeer{}, mine: map[string]string{}}
	b.startRelayChoice()
	ctx, cancel := storeCtx()
	defer cancel()
	if err := b.beat(ctx); err != nil {
		return nil, err
	}
	b.ps = b.rdb.Subscribe(ctx, b.nodeChan(b.node), b.allChan())
	for n := 0; n < 2; {
		m, err := b.ps.Receive(ctx)
		if err != nil {
			_ = b.ps.Close()
			return nil, errors.Join(errors.New("media: subscribing to the signaling bus"), err)
		}
		if _, ok := m.(*redis.Subscription); ok {
			n++
		}
	}
	ch := b.ps.Channel(redis.WithChannelSize(1024))
	b.wg.Add(2)
	go b.receive(ch)
	go b.heartbeat()
	return b, nil
}

func (b *bus) nodeChan(node string) string { return b.prefix + "sig:node:" + node }
func (b *bus) allChan() string             { return b.prefix + "sig:all" }
func (b *bus) roomKey(vid string) string   { return b.prefix + "room:" + vid }
func (b *bus) nodeKey(node string) string  { return b.prefix + "node:" + node }

func (b *bus) beat(ctx context.Context) error {
	if err := b.rdb.Set(ctx, b.nodeKey(b.node), "1", nodeTTL).Err(); err != nil {
		return err
	}
	return b.registerRelay(ctx)
}

func (b *bus) heartbeat() {
	defer b.wg.Done()
	t := time.NewTicker(nodeHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			ctx, cancel := storeCtx()
			if err := b.beat(ctx); err != nil {
				b.s.log.Warn("signaling bus heartbeat failed", "err", err)
			}
			cancel()
			b.dropGone()
		}
	}
}

// close leaves the bus: no more messages, this node's presence lapses at
// once, and its relay stays registered as draining until the registration
// lapses (no visit is given it, the visits it served move). Idempotent.
func (b *bus) close() {
	if b == nil {
		return
	}
	b.closed.Do(func() {
		close(b.stop)
		_ = b.ps.Close()
		b.wg.Wait()
		ctx, cancel := storeCtx()
		defer cancel()
		_ = b.drain(ctx)
		_ = b.rdb.Del(ctx, b.nodeKey(b.node)).Err()
	})
}

// seal stamps e with this node and the time and seals it for the bus.
func (b *bus) seal(e envelope) (string, error) {
	e.Node, e.At = b.node, time.Now().UnixMilli()
	plain, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	sealed, err := b.c.sealWith([]byte(busAD), plain)
	return string(sealed), err
}

// publish seals e and sends it on channel ch.
func (b *bus) publish(ch string, e envelope) {
	sealed, err := b.seal(e)
	if err != nil {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	if err := b.rdb.Publish(ctx, ch, sealed).Err(); err != nil {
		now := time.Now().UnixNano()
		if last := b.lastWarn.Load(); now-last >= int64(warnEvery) && b.lastWarn.CompareAndSwap(last, now) {
			b.s.log.Warn("signaling bus publish failed (further failures within 10 s not logged)", "visit", e.Visit, "err", err)
		}
	}
}

func (b *bus) receive(ch <-chan *redis.Message) {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			plain, err := b.c.openWith([]byte(busAD), []byte(m.Payload))
			var e envelope
			if err != nil || json.Unmarshal(plain, &e) != nil {
				b.s.log.Warn("signaling bus message refused (another key?)")
				continue
			}
			// A message replayed into Redis later is dropped.
			if age := time.Since(time.UnixMilli(e.At)); age > busMaxAge || age < -busMaxAge {
				continue
			}
			if e.Node != b.node {
				b.handle(e)
			}
		}
	}
}

// handle acts on one message from another node.
func (b *bus) handle(e envelope) {
	s := b.s
	switch e.Kind {
	case "joined":
		if e.Info == nil {
			return
		}
		s.mu.Lock()
		room := s.rooms[e.Visit]
		if room == nil {
			s.mu.Unlock()
			return
		}
		// The participant's newer socket is on that node: this one is
		// replaced, and leaves without telling anyone.
		old := room[e.PID]
		if old != nil {
			delete(room, e.PID)
			delete(b.mine, e.Visit+"/"+e.PID)
			s.npeers--
		}
		b.remoteRoom(e.Visit)[e.PID] = remotePeer{node: e.Node, info: *e.Info}
		others := peersOf(room, "")
		if len(room) == 0 {
			delete(s.rooms, e.Visit)
			delete(b.remote, e.Visit)
		}
		s.mu.Unlock()
		if old != nil {
			old.shutdown(statusReplaced, "replaced by a newer connection", nil)
		}
		joined := mustJSON(serverMsg{Type: "peer-joined", Peer: e.Info})
		for _, o := range others {
			o.enqueue(joined, nil)
		}
	case "left":
		s.mu.Lock()
		rp, ok := b.remote[e.Visit][e.PID]
		var others []*peer
		if ok && rp.node == e.Node {
			delete(b.remote[e.Visit], e.PID)
			others = peersOf(s.rooms[e.Visit], "")
		}
		s.mu.Unlock()
		left := mustJSON(serverMsg{Type: "peer-left", ID: e.PID})
		for _, o := range others {
			o.enqueue(left, nil)
		}
	case "msg":
		s.mu.Lock()
		var targets []*peer
		if e.To != "" {
			if t := s.rooms[e.Visit][e.To]; t != nil {
				targets = append(targets, t)
			}
		} else {
			targets = peersOf(s.rooms[e.Visit], e.PID)
		}
		s.mu.Unlock()
		for _, t := range targets {
			t.enqueue(e.Data, nil)
		}
	case "ended":
		s.relay.EndVisit(e.Visit)
		s.mu.Lock()
		if v := s.visits[e.Visit]; v != nil && v.active() {
			v.Ended = s.now()
		}
		socks := peersOf(s.rooms[e.Visit], "")
		s.mu.Unlock()
		for _, p := range socks {
			p.shutdown(statusEnded, "the visit has ended", serverMsg{Type: "ended"})
		}
		s.chatOver(e.Visit, "")
	case "chat":
		s.mu.Lock()
		targets := s.chatTargetsLocked(e.Visit, e.To, e.Manager, nil)
		s.mu.Unlock()
		for _, t := range targets {
			t.enqueue(e.Data, nil)
		}
	case "chat-left":
		s.chatOver(e.Visit, e.PID)
	case "removed":
		s.relay.Remove(e.Visit, e.PID)
		s.mu.Lock()
		if v := s.visits[e.Visit]; v != nil {
			if p := v.participant(e.PID); p != nil {
				p.State = stateRemoved
			}
		}
		sock := s.rooms[e.Visit][e.PID]
		s.mu.Unlock()
		if sock != nil {
			sock.shutdown(statusRemoved, "removed from the visit", serverMsg{Type: "removed"})
		}
	case "admit":
		s.relay.Admit(e.Visit, e.PID)
	case "moved":
		var re relayEntry
		if json.Unmarshal(e.Data, &re) == nil {
			b.moved(e.Visit, e.To, re)
		} else if json.Unmarshal(e.Data, &re.URLs) == nil { // a node of the version before
			b.moved(e.Visit, e.To, re)
		}
	case "relay-moved":
		s.relayMoved(e.Visit)
	case "session":
		var id *scope.Identity
		if e.Sub != "" {
			id = &scope.Identity{Issuer: e.Iss, Subject: e.Sub}
		}
		s.sessionEndedHere(e.Session, id)
	}
}

// peersOf lists room's sockets but except's, sorted by participant id.
func peersOf(room map[string]*peer, except string) []*peer {
	var out []*peer
	for pid, p := range room {
		if pid != except {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *peer) int { return compareStrings(a.pid, b.pid) })
	return out
}

// remoteRoom returns (creating) the remote peers of vid. Caller holds
// s.mu.
func (b *bus) remoteRoom(vid string) map[string]remotePeer {
	r := b.remote[vid]
	if r == nil {
		r = map[string]remotePeer{}
		b.remote[vid] = r
	}
	return r
}

// announce writes p (just registered on this node) into its visit's
// presence, tells the nodes with the visit's other peers (and the node of
// p's previous socket, which closes it), and returns the peers elsewhere
// for p's welcome and the func that tells the other nodes (to be called
// once the welcome is queued, so it comes first).
func (b *bus) announce(p *peer) ([]peerInfo, func()) {
	nothing := func() {}
	if b == nil {
		return nil, nothing
	}
	plain, _ := json.Marshal(presence{Node: b.node, Info: p.info})
	val, err := b.c.sealWith([]byte(busAD+"|"+p.visitID+"|"+p.pid), plain)
	if err != nil {
		return nil, nothing
	}
	ctx, cancel := storeCtx()
	defer cancel()
	res, err := joinScript.Run(ctx, b.rdb, []string{b.roomKey(p.visitID)}, p.pid, val, presenceTTL.Milliseconds()).StringSlice()
	if err != nil {
		b.s.log.Warn("signaling presence failed", "visit", p.visitID, "err", err)
		return nil, nothing
	}
	found := map[string]presence{}
	nodes := map[string]bool{}
	for i := 0; i+1 < len(res); i += 2 {
		pid := res[i]
		plain, err := b.c.openWith([]byte(busAD+"|"+p.visitID+"|"+pid), []byte(res[i+1]))
		var pr presence
		if err != nil || json.Unmarshal(plain, &pr) != nil || pr.Node == b.node {
			continue
		}
		found[pid] = pr
		nodes[pr.Node] = true
	}
	live, _ := b.live(ctx, nodes) // a node that cannot be checked is left out
	var infos []peerInfo
	b.s.mu.Lock()
	if b.s.rooms[p.visitID][p.pid] == p {
		b.mine[p.visitID+"/"+p.pid] = string(val)
		r := b.remoteRoom(p.visitID)
		for pid, pr := range found {
			if pid != p.pid && live[pr.Node] {
				r[pid] = remotePeer{node: pr.Node, info: pr.Info}
			}
		}
		for pid, rp := range r {
			if pid != p.pid {
				infos = append(infos, rp.info)
			}
		}
	}
	b.s.mu.Unlock()
	slices.SortFunc(infos, func(a, b peerInfo) int { return compareStrings(a.ID, b.ID) })
	return infos, func() {
		for node, ok := range live {
			if ok {
				b.publish(b.nodeChan(node), envelope{Kind: "joined", Visit: p.visitID, PID: p.pid, Info: &p.info})
			}
		}
	}
}

// live reports which of nodes keep their heartbeat, and the first error
// of a check (that node then counts as not live).
func (b *bus) live(ctx context.Context, nodes map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	var first error
	for node := range nodes {
		n, err := b.rdb.Exists(ctx, b.nodeKey(node)).Result()
		out[node] = err == nil && n == 1
		if first == nil {
			first = err
		}
	}
	return out, first
}

// dropGone forgets the peers on nodes whose heartbeat is gone (a node
// that died without closing its sockets) and tells this node's sockets
// they left. It does nothing while Redis cannot tell.
func (b *bus) dropGone() {
	nodes := map[string]bool{}
	b.s.mu.Lock()
	for _, r := range b.remote {
		for _, rp := range r {
			nodes[rp.node] = true
		}
	}
	b.s.mu.Unlock()
	if len(nodes) == 0 {
		return
	}
	ctx, cancel := storeCtx()
	live, err := b.live(ctx, nodes)
	cancel()
	if err != nil {
		return
	}
	type gone struct {
		pid    string
		others []*peer
	}
	var left []gone
	b.s.mu.Lock()
	for vid, r := range b.remote {
		for pid, rp := range r {
			if !live[rp.node] {
				delete(r, pid)
				left = append(left, gone{pid, peersOf(b.s.rooms[vid], "")})
			}
		}
	}
	b.s.mu.Unlock()
	for _, g := range left {
		msg := mustJSON(serverMsg{Type: "peer-left", ID: g.pid})
		for _, o := range g.others {
			o.enqueue(msg, nil)
		}
	}
}

// leave removes p (just unregistered on this node) from presence and
// tells the nodes with the visit's other peers.
func (b *bus) leave(p *peer) {
	if b == nil {
		return
	}
	key := p.visitID + "/" + p.pid
	b.s.mu.Lock()
	val, ok := b.mine[key]
	delete(b.mine, key)
	nodes := b.nodesLocked(p.visitID, "")
	if b.s.rooms[p.visitID] == nil {
		delete(b.remote, p.visitID)
	}
	b.s.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	_ = leaveScript.Run(ctx, b.rdb, []string{b.roomKey(p.visitID)}, p.pid, val).Err()
	for _, n := range nodes {
		b.publish(b.nodeChan(n), envelope{Kind: "left", Visit: p.visitID, PID: p.pid})
	}
}

// nodesLocked lists the nodes with a peer of vid (only to's, when to is
// set). Caller holds s.mu.
func (b *bus) nodesLocked(vid, to string) []string {
	if b == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for pid, rp := range b.remote[vid] {
		if (to == "" || pid == to) && !seen[rp.node] {
			seen[rp.node] = true
			out = append(out, rp.node)
		}
	}
	return out
}

// send delivers out (a message of from, to "to" or everyone) to the
// given nodes' sockets of vid.
func (b *bus) send(nodes []string, vid, from, to string, out []byte) {
	for _, n := range nodes {
		b.publish(b.nodeChan(n), envelope{Kind: "msg", Visit: vid, PID: from, To: to, Data: out})
	}
}

// ended tells every node that vid ended: each revokes its relay's
// allocations and closes its sockets of the visit.
func (b *bus) ended(vid string) {
	if b == nil {
		return
	}
	b.publish(b.allChan(), envelope{Kind: "ended", Visit: vid})
	ctx, cancel := storeCtx()
	defer cancel()
	_ = b.rdb.Del(ctx, b.roomKey(vid)).Err()
}

// removed tells every node that pid was removed from vid.
func (b *bus) removed(vid, pid string) {
	if b == nil {
		return
	}
	b.publish(b.allChan(), envelope{Kind: "removed", Visit: vid, PID: pid})
}

// sessionEnded tells every node that the sign-in session ended
// (Service.SessionEnded).
func (b *bus) sessionEnded(sessionID string, id *scope.Identity) {
	if b == nil {
		return
	}
	e := envelope{Kind: "session", Session: sessionID}
	if id != nil {
		e.Iss, e.Sub = id.Issuer, id.Subject
	}
	b.publish(b.allChan(), e)
}

// chat tells every node a waiting-room chat message out (as it goes to
// sockets) from participant from to participant to; each node delivers
// it to its own sockets by chatTargetsLocked. The sender's node has
// stamped the sender and checked both sides.
func (b *bus) chat(vid, from, to string, manager bool, out []byte) {
	if b == nil {
		return
	}
	b.publish(b.allChan(), envelope{Kind: "chat", Visit: vid, PID: from, To: to, Manager: manager, Data: out})
}

// chatLeft tells every node that pid is out of vid's waiting room
// (admitted, declined, removed): its chat sockets close there.
func (b *bus) chatLeft(vid, pid string) {
	if b == nil {
		return
	}
	b.publish(b.allChan(), envelope{Kind: "chat-left", Visit: vid, PID: pid})
}
