package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// Signaling WebSocket close codes (RFC 6455 §7.4; 4000–4999 are private).
const (
	statusGoingAway   = websocket.StatusGoingAway       // the node is shutting down (restartReason)
	statusPolicy      = websocket.StatusPolicyViolation // rate limit, malformed message
	statusFingerprint = websocket.StatusCode(4001)      // DTLS fingerprint changed without ICE restart
	statusRemoved     = websocket.StatusCode(4003)      // removed from the visit
	statusEnded       = websocket.StatusCode(4004)      // the visit ended
	statusSignedOut   = websocket.StatusCode(4005)      // the sign-in session ended
	statusReplaced    = websocket.StatusCode(4009)      // a newer socket of the same participant
)

// restartReason is the close reason of the signaling sockets (1001) when
// the node shuts down: the visit goes on, and the page reconnects — to
// another node behind the load balancer, or to this one once it is back.
const restartReason = "telegate is restarting; rejoining the call"

const (
	writeTimeout = 5 * time.Second
	pingInterval = 20 * time.Second
	pingTimeout  = 10 * time.Second
)

// queueSlack is the room in every send queue beyond the message burst
// (visits.message_burst), for the server's own messages to the socket:
// welcome, peer-joined, peer-left.
const queueSlack = 16

// sendWait is how long a message waits for room in a recipient's full
// send queue. Meanwhile its sender waits too, reading nothing more
// (backpressure: the sender's TCP window closes). A queue still full after
// sendWait has overflowed: its socket (the recipient's) is closed with
// 1013 "too slow", never the sender's.
const sendWait = time.Second

// sendQueue is the capacity (in messages) of one socket's send queue: a
// participant's whole burst fits, so a sender within its allowance never
// overflows a recipient that keeps reading at the allowed rate.
func sendQueue(c config.Visits) int { return c.MessageBurst + queueSlack }

// Signaling messages. A client sends one JSON object per text message:
//
//	{"type":"offer"|"answer","sdp":"v=0…","to":"<participant id>"}
//	{"type":"candidate","candidate":{"candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"…"},"to":"…"}
//	{"type":"media","media":{"audio":"on","video":"blocked"}} (what the sender sends; see mediaJSON)
//	{"type":"ping"} / {"type":"bye"}
//
// "to" is optional (default: every other participant). A "from" field is
// accepted and ignored: the server stamps the sender. The server sends:
//
//	{"type":"welcome","self":"<id>","peers":[{"id","name","role","label","session"}],"away":["<id>",…],"ends_at":"…"}
//	(away: the admitted participants not connected now who may come back,
//	their signaling lost; anyone else a page knew of has left the call —
//	hung up, removed — and is dropped)
//	{"type":"peer-joined","peer":{…}} / {"type":"peer-left","id":"…"}
//	{"type":"offer"|"answer","from":"<id>","sdp":"…"} (the SDP unchanged)
//	{"type":"candidate","from":"<id>","candidate":{…}} (unchanged)
//	{"type":"media","from":"<id>","media":{…}} (unchanged)
//	{"type":"pong"} / {"type":"removed"} / {"type":"ended"} / {"type":"error","error":"…"}
//	{"type":"relay-moved"} (the visit's relay moved off a draining node:
//	fetch fresh ICE servers and restart ICE; drain.go)

// candidateJSON is an RTCIceCandidateInit (W3C WebRTC §4.8.1).
type candidateJSON struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// mediaJSON is what a participant's page sends of its microphone and
// camera, so the others can say why there is no picture or sound instead
// of showing a poor connection. Each is "on", "off" (turned off in the
// call), "blocked" (permission denied) or "absent" (no such device, or it
// failed to start).
type mediaJSON struct {
	Audio string `json:"audio"`
	Video string `json:"video"`
}

// mediaStates are the values of mediaJSON's fields.
var mediaStates = []string{"on", "off", "blocked", "absent"}

// clientMsg is one message from a participant.
type clientMsg struct {
	Type      string          `json:"type"`
	To        string          `json:"to,omitempty"`
	From      json.RawMessage `json:"from,omitempty"` // ignored
	SDP       string          `json:"sdp,omitempty"`
	Candidate *candidateJSON  `json:"candidate,omitempty"`
	Media     *mediaJSON      `json:"media,omitempty"`

	facts sdpFacts
}

// peerInfo describes a connected participant to the others. Session is
// the page's own call id (the signal URL's ?session=, up to 32 letters
// and digits, or ""): a socket that reconnects with the same one resumes
// the same peer connections; another one is a new page (a reload), whose
// peers start afresh.
type peerInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
	// Label is what the participant is in the visit (labelOf): set by
	// the server, never by the participant.
	Label   string `json:"label"`
	Session string `json:"session,omitempty"`
}

// callSession returns the signal request's ?session= when it is 1 to 32
// ASCII letters and digits, else "".
func callSession(r *http.Request) string {
	v := r.URL.Query().Get("session")
	if len(v) > 32 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return ""
		}
	}
	return v
}

// serverMsg is one message from the server.
type serverMsg struct {
	Type      string         `json:"type"`
	From      string         `json:"from,omitempty"`
	SDP       string         `json:"sdp,omitempty"`
	Candidate *candidateJSON `json:"candidate,omitempty"`
	Media     *mediaJSON     `json:"media,omitempty"`
	Self      string         `json:"self,omitempty"`
	Peers     []peerInfo     `json:"peers,omitempty"`
	Away      *[]string      `json:"away,omitempty"` // welcome only; present (maybe empty) there
	Peer      *peerInfo      `json:"peer,omitempty"`
	ID        string         `json:"id,omitempty"`
	EndsAt    *time.Time     `json:"ends_at,omitempty"`
	Error     string         `json:"error,omitempty"`
}

var errMessage = errors.New("malformed signaling message")

// decodeStrict decodes b as one JSON value of type T with known fields
// only and nothing after it.
func decodeStrict[T any](b []byte) (*T, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := new(T)
	if err := dec.Decode(m); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// parseClientMessage decodes and checks one signaling message of at most
// max bytes: known fields only, a known type, the fields that type needs,
// and for offers and answers an SDP with a DTLS fingerprint and ICE
// credentials.
func parseClientMessage(b []byte, max int64) (*clientMsg, error) {
	if int64(len(b)) > max {
		return nil, errMessage
	}
	m, ok := decodeStrict[clientMsg](b)
	if !ok {
		return nil, errMessage
	}
	if m.To != "" && !validID(m.To) {
		return nil, errMessage
	}
	if m.Media != nil && m.Type != "media" {
		return nil, errMessage
	}
	switch m.Type {
	case "media":
		if m.Media == nil || m.SDP != "" || m.Candidate != nil ||
			!slices.Contains(mediaStates, m.Media.Audio) || !slices.Contains(mediaStates, m.Media.Video) {
			return nil, errMessage
		}
	case "offer", "answer":
		if m.Candidate != nil || m.SDP == "" {
			return nil, errMessage
		}
		f, err := parseSDPFacts(m.SDP)
		if err != nil {
			return nil, errMessage
		}
		m.facts = f
	case "candidate":
		c := m.Candidate
		if c == nil || m.SDP != "" || len(c.Candidate) > 1024 ||
			(c.SDPMid != nil && len(*c.SDPMid) > 64) ||
			(c.UsernameFragment != nil && len(*c.UsernameFragment) > 256) {
			return nil, errMessage
		}
		// An empty candidate is end-of-candidates (RFC 8838 §4.5).
		if c.Candidate != "" && !bytes.HasPrefix([]byte(c.Candidate), []byte("candidate:")) {
			return nil, errMessage
		}
	case "ping", "bye":
		if m.SDP != "" || m.Candidate != nil || m.To != "" {
			return nil, errMessage
		}
	default:
		return nil, errMessage
	}
	return m, nil
}

// allowance is a participant's signaling allowance: a token bucket of
// visits.message_rate messages per second and visits.message_burst, kept
// with the participant (participant.allowance) so that reconnecting does
// not refill it. A message is counted when the server reads it. While a
// recipient's full queue holds the participant's reading back (enqueue),
// the bucket may fill up and lose the tokens beyond its burst; those are
// credited, so that the messages the sender sent meanwhile within its
// allowance, which the server then reads in a clump, are not held against
// it. The credit lasts while the server works through that clump, however
// slowly a loaded node reads it: it lapses only once the reader has found
// no message for a whole refill time (burst ÷ rate, the clump is read),
// never at a fixed time after the hold.
type allowance struct {
	mu     sync.Mutex
	bucket *rate.Limiter
	credit float64   // messages, at most burst + rate × sendWait
	last   time.Time // the last read, or the end of the last hold
}

func newAllowance(c config.Visits) *allowance {
	return &allowance{bucket: rate.NewLimiter(rate.Limit(c.MessageRate), c.MessageBurst)}
}

// idle is a whole refill time of the bucket: a reader that found no
// message for that long has read every message sent before.
func (a *allowance) idle() time.Duration {
	return time.Duration(float64(a.bucket.Burst()) / float64(a.bucket.Limit()) * float64(time.Second))
}

// allow takes one message from the allowance and reports whether there
// was one.
func (a *allowance) allow() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if now.Sub(a.last) >= a.idle() {
		a.credit = 0
	}
	a.last = now
	if a.bucket.AllowN(now, 1) {
		return true
	}
	if a.credit >= 1 {
		a.credit--
		return true
	}
	return false
}

// hold starts a time the participant's reading is held back by
// backpressure; the returned func ends it and credits the tokens the
// bucket lost to its burst meanwhile.
func (a *allowance) hold() (release func()) {
	start := time.Now()
	before := a.bucket.TokensAt(start)
	return func() {
		now := time.Now()
		r, b := float64(a.bucket.Limit()), float64(a.bucket.Burst())
		lost := before + now.Sub(start).Seconds()*r - b
		a.mu.Lock()
		defer a.mu.Unlock()
		a.last = now // the hold is no idle time of the reader
		if lost > 0 {
			a.credit = min(a.credit+lost, b+r*sendWait.Seconds())
		}
	}
}

// peer is one participant's signaling socket.
type peer struct {
	s         *Service
	visitID   string
	pid       string
	info      peerInfo
	iss, sub  string
	sessionID string
	conn      *wsConn
	send      chan []byte // the send queue, sendQueue messages
	done      chan struct{}
	wrote     chan struct{}
	once      sync.Once
	code      websocket.StatusCode
	reason    string
	final     []byte
	closeBy   time.Time  // shutdown + closeDeadline
	allowance *allowance // the participant's (participant.allowance); nil with shared
	// shared, when set, is the allowance of the node's rate limiter the
	// socket draws from instead (the waiting-room chat's,
	// Service.chatAllowed).
	shared func() bool
}

// allow takes one message from p's allowance: the shared one when p has
// it, else the participant's signaling allowance.
func (p *peer) allow() bool {
	if p.shared != nil {
		return p.shared()
	}
	return p.allowance.allow()
}

// shutdown closes the socket with code and reason after sending final (a
// message value or nil): the writer sends final and the close frame, and
// the TCP connection is gone within closeDeadline, whether or not the
// client answers. Safe to call more than once and from any goroutine.
func (p *peer) shutdown(code websocket.StatusCode, reason string, final any) {
	p.once.Do(func() {
		p.code, p.reason = code, reason
		if final != nil {
			p.final, _ = json.Marshal(final)
		}
		deadline := closeDeadline
		if code == statusGoingAway {
			// The node is restarting and the page will reconnect: the
			// close frame, which tells it so, gets longer to be answered
			// before the connection is closed under it (a reset can lose
			// a frame the client has not read yet).
			deadline = restartCloseDeadline
		}
		p.closeBy = time.Now().Add(deadline)
		close(p.done)
		time.AfterFunc(deadline, p.conn.closeTCP)
	})
}

// enqueue queues b for p's writer on behalf of from (the participant whose
// message b is, or nil for the server's own). When p's queue is full the
// caller waits for room, up to sendWait: a sender is slowed down by a
// recipient that is behind, and only the recipient whose queue stays full
// is closed ("too slow").
func (p *peer) enqueue(b []byte, from *peer) {
	// Nothing is queued once p is being closed (its participant removed,
	// out of the waiting room, the visit ended): a message that arrives
	// after that decision is not delivered.
	select {
	case <-p.done:
		return
	default:
	}
	select {
	case p.send <- b:
		return
	case <-p.done:
		return
	default:
	}
	var fromDone <-chan struct{}
	if from != nil {
		fromDone = from.done
		if from != p {
			defer from.allowance.hold()()
		}
	}
	t := time.NewTimer(sendWait)
	defer t.Stop()
	select {
	case p.send <- b:
	case <-p.done:
	case <-fromDone:
	case <-t.C:
		p.shutdown(websocket.StatusTryAgainLater, "too slow", nil)
	}
}

// writer writes p's queue in order until p is shut down, then closes the
// socket (close).
func (p *peer) writer() {
	defer close(p.wrote)
	for {
		select {
		case <-p.done:
			p.close()
			return
		default:
		}
		select {
		case b := <-p.send:
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err := p.conn.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				p.shutdown(websocket.StatusGoingAway, "write failed", nil)
			}
		case <-p.done:
			p.close()
			return
		}
	}
}

// close sends the final message (if any) and the close frame, and closes
// the TCP connection closeGrace later at most; all of it within
// closeDeadline of the shutdown.
func (p *peer) close() {
	if p.final != nil {
		ctx, cancel := context.WithDeadline(context.Background(), p.closeBy.Add(-closeGrace))
		_ = p.conn.Write(ctx, websocket.MessageText, p.final)
		cancel()
	}
	grace := closeGrace
	if p.code == statusGoingAway {
		grace = restartCloseDeadline - closeGrace
	}
	p.conn.closeWithGrace(p.code, p.reason, min(grace, time.Until(p.closeBy)))
}

func (p *peer) pinger() {
	p.every(pingInterval, pingTimeout, func(ctx context.Context) bool {
		if err := p.conn.Ping(ctx); err != nil {
			p.shutdown(websocket.StatusGoingAway, "ping timeout", nil)
			return false
		}
		return true
	})
}

// keepSessionActive tells the sign-in plane, while the socket is open,
// that the participant's session is in use: a participant in a call sends
// no HTTP request, and its session's idle timeout must not end the call.
// An open socket is a live one: the pinger closes it when the browser
// stops answering. Participants with a bearer token have no session.
func (p *peer) keepSessionActive() {
	sessions := p.s.sessions
	if sessions == nil || p.sessionID == "" {
		return
	}
	p.every(max(sessions.TouchInterval(), 10*time.Millisecond), writeTimeout, func(ctx context.Context) bool {
		sessions.Active(ctx, p.sessionID)
		return true
	})
}

// every runs f every interval, each run bounded by timeout, until the
// peer is done or f returns false.
func (p *peer) every(interval, timeout time.Duration, f func(ctx context.Context) bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			ok := f(ctx)
			cancel()
			if !ok {
				return
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// handleSignal upgrades an admitted participant's request to the signaling
// WebSocket (RFC 6455). 401 without identity, 403 with a missing or foreign
// Origin (RFC 6455 §10.2), 403 before admission, 410 after the visit ends,
// 503 when the socket table is full.
func (s *Service) handleSignal(w http.ResponseWriter, r *http.Request) {
	id := identity(r)
	if id == nil || id.Subject == "" {
		writeError(w, r, fail(http.StatusUnauthorized, "unauthenticated", "sign in first"))
		return
	}
	if r.Header.Get("Origin") == "" || !sameOrigin(r) {
		s.auditVisit(r, "visit.signal", id, r.PathValue("id"), "", "deny", "origin")
		writeError(w, r, fail(http.StatusForbidden, "origin", "cross-origin WebSocket refused"))
		return
	}
	s.mu.Lock()
	v, part := s.admittedParticipant(w, r, id)
	if v == nil {
		s.mu.Unlock()
		s.auditVisit(r, "visit.signal", id, r.PathValue("id"), "", "deny", "not-admitted")
		return
	}
	full := s.npeers >= s.cfg.MaxPeers && s.rooms[v.ID][part.ID] == nil
	// Who may come back: everyone else admitted who has not hung up.
	var mayReturn []string
	for _, q := range v.Participants {
		if q.ID != part.ID && q.State == stateAdmitted && !q.HungUp {
			mayReturn = append(mayReturn, q.ID)
		}
	}
	if part.allowance == nil {
		part.allowance = newAllowance(s.cfg)
	}
	p := &peer{
		s: s, visitID: v.ID, pid: part.ID,
		info: peerInfo{ID: part.ID, Name: part.Name, Role: part.Role, Label: labelOf(part), Session: callSession(r)},
		iss:  id.Issuer, sub: id.Subject, sessionID: id.SessionID,
		send:      make(chan []byte, sendQueue(s.cfg)),
		done:      make(chan struct{}),
		wrote:     make(chan struct{}),
		allowance: part.allowance,
	}
	if part.HungUp && !full {
		// Back in the call after hanging up.
		_, _ = s.change(v.ID, func(v *visit) error {
			q := v.participant(part.ID)
			if q == nil || !q.HungUp {
				return errNoChange
			}
			q.HungUp = false
			return nil
		})
	}
	s.mu.Unlock()
	if full {
		writeError(w, r, fail(http.StatusServiceUnavailable, "max-peers", "too many calls at the moment; try again shortly"))
		return
	}
	draining, ok := refuseWhileDraining(w, r)
	if !ok {
		return
	}
	conn, err := acceptWS(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered
	}
	conn.SetReadLimit(s.cfg.MaxMessageBytes)
	p.conn = conn

	old, others, endsAt, err := s.register(p)
	if err != nil {
		conn.closeWithGrace(statusPolicy, err.Error(), closeGrace)
		return
	}
	s.peersWG.Add(1)
	defer s.peersWG.Done()
	if old != nil {
		old.shutdown(statusReplaced, "replaced by a newer connection", nil)
	}
	go p.writer()
	go p.pinger()
	go p.keepSessionActive()
	if draining != nil {
		// The node is shutting down: tell the page when its calls are
		// over (drain.go), while the gateway drains the requests in
		// flight.
		go s.drainWatch(p, draining)
	}

	welcome := serverMsg{Type: "welcome", Self: p.pid, Peers: []peerInfo{}, EndsAt: timePtr(endsAt)}
	for _, o := range others {
		welcome.Peers = append(welcome.Peers, o.info)
	}
	elsewhere, tell := s.bus.announce(p)
	welcome.Peers = append(welcome.Peers, elsewhere...)
	away := []string{}
	for _, id := range mayReturn {
		if !slices.ContainsFunc(welcome.Peers, func(o peerInfo) bool { return o.ID == id }) {
			away = append(away, id)
		}
	}
	welcome.Away = &away
	p.enqueue(mustJSON(welcome), nil)
	joined := mustJSON(serverMsg{Type: "peer-joined", Peer: &p.info})
	for _, o := range others {
		o.enqueue(joined, nil)
	}
	tell()

	s.readLoop(p)
	p.shutdown(websocket.StatusNormalClosure, "", nil)
	<-p.wrote
	p.conn.closeTCP()
	s.unregister(p)
}

// register adds p to its visit's room after checking again (under the
// lock) that the visit is open and the participant admitted.
func (s *Service) register(p *peer) (old *peer, others []*peer, endsAt time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, time.Time{}, errors.New("shutting down")
	}
	v := s.visits[p.visitID]
	if v == nil || !v.active() {
		return nil, nil, time.Time{}, errors.New("visit ended")
	}
	if part := v.participant(p.pid); part == nil || part.State != stateAdmitted {
		return nil, nil, time.Time{}, errors.New("not admitted")
	}
	room := s.rooms[p.visitID]
	if room == nil {
		room = make(map[string]*peer)
		s.rooms[p.visitID] = room
	}
	old = room[p.pid]
	if old == nil {
		if s.npeers >= s.cfg.MaxPeers {
			return nil, nil, time.Time{}, errors.New("too many peers")
		}
		s.npeers++
	}
	room[p.pid] = p
	for pid, o := range room {
		if pid != p.pid {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b *peer) int { return compareStrings(a.pid, b.pid) })
	return old, others, v.EndsAt, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unregister removes p (if it is still the participant's current socket)
// and tells the others it left.
func (s *Service) unregister(p *peer) {
	s.mu.Lock()
	room := s.rooms[p.visitID]
	if room == nil || room[p.pid] != p {
		s.mu.Unlock()
		return
	}
	delete(room, p.pid)
	s.npeers--
	var others []*peer
	for _, o := range room {
		others = append(others, o)
	}
	if len(room) == 0 {
		delete(s.rooms, p.visitID)
	}
	s.mu.Unlock()
	left := mustJSON(serverMsg{Type: "peer-left", ID: p.pid})
	for _, o := range others {
		o.enqueue(left, nil)
	}
	s.bus.leave(p)
}

// readLoop reads p's messages until the socket closes or p breaks a rule.
func (s *Service) readLoop(p *peer) {
	p.readMessages(func() {
		s.auditVisit(nil, "visit.signal", &scope.Identity{Issuer: p.iss, Subject: p.sub}, p.visitID, p.pid, "deny", "rate")
	}, func(b []byte) bool {
		m, err := parseClientMessage(b, s.cfg.MaxMessageBytes)
		if err != nil {
			p.shutdown(statusPolicy, "malformed message", serverMsg{Type: "error", Error: "malformed message"})
			return false
		}
		return s.forward(p, m)
	})
}

// readMessages reads p's text messages until the socket closes or handle
// returns false. Each message costs one of p's allowance: past it,
// overRate runs and the socket is closed (1008 "too many messages"); a
// binary message closes it too (1003).
func (p *peer) readMessages(overRate func(), handle func(b []byte) bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.conn.gone: // closed by the writer, or at the close deadline
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		typ, b, err := p.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			p.shutdown(websocket.StatusUnsupportedData, "text messages only", nil)
			return
		}
		if !p.allow() {
			if overRate != nil {
				overRate()
			}
			p.shutdown(statusPolicy, "too many messages", serverMsg{Type: "error", Error: "too many messages"})
			return
		}
		if !handle(b) {
			return
		}
	}
}

// hungUp records that p's participant hung up (participant.HungUp),
// when p is their current socket: a page that meets the call again
// (welcome) drops them rather than waiting for them to come back.
func (s *Service) hungUp(p *peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[p.visitID][p.pid] != p {
		return
	}
	_, _ = s.change(p.visitID, func(v *visit) error {
		q := v.participant(p.pid)
		if q == nil || q.State != stateAdmitted || q.HungUp {
			return errNoChange
		}
		q.HungUp = true
		return nil
	})
}

// forward checks m from p and sends it to its recipients. It returns false
// when p's socket is being closed.
func (s *Service) forward(p *peer, m *clientMsg) bool {
	switch m.Type {
	case "ping":
		p.enqueue([]byte(`{"type":"pong"}`), p)
		return true
	case "bye":
		s.hungUp(p)
		p.shutdown(websocket.StatusNormalClosure, "bye", nil)
		return false
	}
	s.mu.Lock()
	v := s.visits[p.visitID]
	var part *participant
	if v != nil {
		part = v.participant(p.pid)
	}
	if v == nil || !v.active() || part == nil || part.State != stateAdmitted || s.rooms[p.visitID][p.pid] != p {
		s.mu.Unlock()
		p.shutdown(statusRemoved, "no longer admitted", nil)
		return false
	}
	if m.Type == "offer" || m.Type == "answer" {
		ok, changed := acceptFingerprint(part, m.facts)
		if !ok {
			s.mu.Unlock()
			s.auditVisit(nil, "visit.signal", &scope.Identity{Issuer: p.iss, Subject: p.sub}, p.visitID, p.pid, "deny", "fingerprint-change")
			p.shutdown(statusFingerprint, "DTLS fingerprint changed without an ICE restart",
				serverMsg{Type: "error", Error: "fingerprint changed without an ICE restart"})
			return false
		}
		if changed {
			s.saveFingerprint(v.ID, part)
		}
	}
	var targets []*peer
	for pid, o := range s.rooms[p.visitID] {
		if pid != p.pid && (m.To == "" || m.To == pid) {
			targets = append(targets, o)
		}
	}
	nodes := s.bus.nodesLocked(p.visitID, m.To)
	s.mu.Unlock()
	if len(targets) == 0 && len(nodes) == 0 {
		if m.To != "" {
			p.enqueue([]byte(`{"type":"error","error":"no such peer"}`), p)
		}
		return true
	}
	out := mustJSON(serverMsg{Type: m.Type, From: p.pid, SDP: m.SDP, Candidate: m.Candidate, Media: m.Media})
	for _, t := range targets {
		t.enqueue(out, p)
	}
	s.bus.send(nodes, p.visitID, p.pid, m.To, out)
	return true
}

// acceptFingerprint applies the rule that a participant's DTLS fingerprint
// may change only together with an ICE restart (new ice-ufrag and ice-pwd,
// RFC 8445 §9). It records f and reports whether f was accepted and whether
// the fingerprint changed (to be persisted).
func acceptFingerprint(part *participant, f sdpFacts) (ok, changed bool) {
	switch {
	case len(part.FP) == 0:
		changed = true
	case slices.Equal(part.FP, f.FP):
	case disjoint(f.Ufrag, part.Ufrag) && disjoint(f.Pwd, part.Pwd):
		changed = true
	default:
		return false, false
	}
	part.FP, part.Ufrag, part.Pwd = f.FP, f.Ufrag, f.Pwd
	return true, changed
}

// SessionEnded closes the signaling sockets opened with sessionID and
// revokes those participants on the relay (their allocations close within
// a second). When id is given, the identity's other admitted participations
// without a live socket are revoked too. The auth plane calls it on
// sign-out, back-channel logout and session expiry. A participant stays
// admitted: signing in again and reopening the call fetches fresh
// credentials.
func (s *Service) SessionEnded(sessionID string, id *scope.Identity) {
	s.sessionEndedHere(sessionID, id)
	s.bus.sessionEnded(sessionID, id)
}

// sessionEndedHere is SessionEnded for this node's sockets and relay.
func (s *Service) sessionEndedHere(sessionID string, id *scope.Identity) {
	type ref struct{ visit, pid string }
	var socks []*peer
	var revoke []ref
	s.mu.Lock()
	for vid, room := range s.rooms {
		for pid, p := range room {
			if sessionID != "" && p.sessionID == sessionID ||
				sessionID == "" && id != nil && p.iss == id.Issuer && p.sub == id.Subject {
				socks = append(socks, p)
				revoke = append(revoke, ref{vid, pid})
			}
		}
	}
	if id != nil && id.Subject != "" {
		for _, v := range s.visits {
			if !v.active() {
				continue
			}
			if p := v.byIdentity(id); p != nil && p.State == stateAdmitted && s.rooms[v.ID][p.ID] == nil {
				revoke = append(revoke, ref{v.ID, p.ID})
			}
		}
	}
	for _, room := range s.chats {
		for p := range room {
			if sessionID != "" && p.sessionID == sessionID ||
				sessionID == "" && id != nil && p.iss == id.Issuer && p.sub == id.Subject {
				socks = append(socks, p.peer)
			}
		}
	}
	s.mu.Unlock()
	for _, r := range revoke {
		s.relay.Remove(r.visit, r.pid)
	}
	for _, p := range socks {
		p.shutdown(statusSignedOut, "signed out", serverMsg{Type: "error", Error: "signed out"})
	}
}

// isClosed reports whether ch (which may be nil) is closed.
func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
