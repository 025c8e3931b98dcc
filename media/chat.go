package media

import (
	"net/http"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// Waiting-room chat (docs/visits.md, "Waiting-room chat"): a patient who
// waits and the clinicians who may manage the visit write to each other
// before admission, through the gateway — the call's data channel does
// not exist yet. GET /.telegate/visits/{id}/chat upgrades to a WebSocket
// (RFC 6455) for a participant in the waiting room (state waiting) or a
// manager of the visit. A client sends
//
//	{"type":"chat","text":"…","to":"<participant id>"}
//	{"type":"ping"}
//
// "to" is required from a manager (a waiting participant of the visit)
// and refused from a waiting participant, whose messages go to every
// manager page of the visit. The server stamps the sender and sends
//
//	{"type":"welcome","self":"<participant id>"}
//	{"type":"chat","from":"<id>","name":"<sender's display name>","to":"<id>","text":"…"}
//	{"type":"pong"} / {"type":"error","error":"…"}
//
// A message is at most chatMaxChars characters (after control and
// format characters are dropped and spaces folded), a frame at most
// chatMaxBytes; each participant has chatRate messages per second with a
// burst of chatBurst, kept across its sockets and, with Redis, across
// every node (chatAllowed), and a socket over it is closed (1008). With
// visits on Redis a message and the end of a participant's chat reach
// every node over the signaling bus (bus.go); the bounds and the
// allowance are applied once, on the sender's node.
// Messages are not stored, not logged and not in the audit
// trail, which records only that a chat socket was refused. A socket is
// closed when its participant leaves the waiting room (admitted,
// declined, removed), at the visit's end and at sign-out.
const (
	chatMaxChars = 1000
	chatMaxBytes = 8 * 1024
	chatRate     = 1
	chatBurst    = 10
)

// chatClientMsg is one message from a chat socket.
type chatClientMsg struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
	To   string `json:"to,omitempty"`
}

// chatServerMsg is one message to a chat socket.
type chatServerMsg struct {
	Type  string `json:"type"`
	Self  string `json:"self,omitempty"`
	From  string `json:"from,omitempty"`
	Name  string `json:"name,omitempty"`
	To    string `json:"to,omitempty"`
	Text  string `json:"text,omitempty"`
	Error string `json:"error,omitempty"`
}

// chatLimit is the allowance of chat messages of one person in one
// visit, kept in Service.limiter (chatAllowed).
var chatLimit = config.RateLimit{Rate: chatRate, Burst: chatBurst}

// chatAllowed returns the func that takes one message from the
// waiting-room chat allowance of the person (iss, sub) in visit vid:
// one bucket of the node's rate limiter (Options.Limiter; with Redis,
// policies.RedisLimiter, one bucket for every node, named by an HMAC, no
// identity in Redis), whichever of its sockets and nodes the message
// comes from. The bounds and the allowance are applied once, on the
// sender's node.
func (s *Service) chatAllowed(vid, iss, sub string) func() bool {
	route, who := "visit-chat:"+vid, iss+"\x00"+sub
	return func() bool { return s.limiter.AllowSubject(route, who, chatLimit) }
}

// parseChat decodes one chat message: known fields only, a known type,
// for "chat" a text of 1 … chatMaxChars characters once cleaned.
func parseChat(b []byte) (*chatClientMsg, bool) {
	if len(b) > chatMaxBytes || !utf8.Valid(b) {
		return nil, false
	}
	m, ok := decodeStrict[chatClientMsg](b)
	if !ok {
		return nil, false
	}
	switch m.Type {
	case "ping":
		return m, m.Text == "" && m.To == ""
	case "chat":
		if utf8.RuneCountInString(m.Text) > chatMaxChars || (m.To != "" && !validID(m.To)) {
			return nil, false
		}
		m.Text = cleanText(m.Text, chatMaxChars)
		return m, m.Text != ""
	}
	return nil, false
}

// chatPeer is one chat socket: a peer (send queue, writer, pinger, close
// handling) that is not in the call's room.
type chatPeer struct {
	*peer
	manager bool
}

// activeVisit returns the active visit vid, or the error to answer:
// 404 for an unknown one, 410 for an ended one, the store's error. Caller
// holds s.mu.
func (s *Service) activeVisit(vid string) (*visit, error) {
	var v *visit
	var err error
	if validID(vid) {
		v, err = s.lookup(vid)
	}
	switch {
	case err != nil:
		return nil, err
	case v == nil:
		return nil, fail(http.StatusNotFound, "unknown-visit", "no such visit")
	case !v.active():
		return nil, fail(http.StatusGone, "ended", "this visit has ended")
	}
	return v, nil
}

// chatRole returns the caller's participant id in v and whether the
// caller may chat as a manager; "" when the caller may not chat. Caller
// holds s.mu.
func (s *Service) chatRole(v *visit, id *scope.Identity) (pid, name string, manager bool) {
	p := v.byIdentity(id)
	if s.canManage(v, id) {
		if p != nil {
			return p.ID, p.Name, true
		}
		return "manager", displayName(id), true
	}
	if p != nil && p.State == stateWaiting {
		return p.ID, p.Name, false
	}
	return "", "", false
}

// handleChat upgrades a waiting participant's or a manager's request to
// the visit's waiting-room chat socket: 401 without identity, 403 with a
// missing or foreign Origin or for anyone else, 404/410 for an unknown or
// ended visit, 503 when the socket table is full.
func (s *Service) handleChat(w http.ResponseWriter, r *http.Request) {
	id := identity(r)
	if id == nil || id.Subject == "" {
		writeError(w, r, fail(http.StatusUnauthorized, "unauthenticated", "sign in first"))
		return
	}
	vid := r.PathValue("id")
	if r.Header.Get("Origin") == "" || !sameOrigin(r) {
		s.auditVisit(r, "visit.chat", id, vid, "", "deny", "origin")
		writeError(w, r, fail(http.StatusForbidden, "origin", "cross-origin WebSocket refused"))
		return
	}
	s.mu.Lock()
	v, err := s.activeVisit(vid)
	var pid, name string
	var manager bool
	if err == nil {
		if pid, name, manager = s.chatRole(v, id); pid == "" {
			err = fail(http.StatusForbidden, "not-waiting", "only someone in the waiting room and the clinician can chat here")
		}
	}
	if err == nil && s.nchats >= s.cfg.MaxPeers {
		err = fail(http.StatusServiceUnavailable, "max-peers", "too many people at the moment; try again shortly")
	}
	if err != nil {
		s.mu.Unlock()
		if ae, ok := err.(*apiError); ok && ae.status == http.StatusForbidden {
			s.auditVisit(r, "visit.chat", id, vid, "", "deny", ae.reason)
		}
		writeError(w, r, err)
		return
	}
	s.nchats++ // taken now: a burst of upgrades cannot pass the cap
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.nchats--
		s.mu.Unlock()
	}
	draining, ok := refuseWhileDraining(w, r)
	if !ok {
		release()
		return
	}
	conn, aerr := acceptWS(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if aerr != nil {
		release()
		return
	}
	conn.SetReadLimit(chatMaxBytes)
	p := &chatPeer{peer: &peer{
		s: s, visitID: vid, pid: pid,
		info: peerInfo{ID: pid, Name: name},
		iss:  id.Issuer, sub: id.Subject, sessionID: id.SessionID,
		conn:   conn,
		send:   make(chan []byte, chatBurst+queueSlack),
		done:   make(chan struct{}),
		wrote:  make(chan struct{}),
		shared: s.chatAllowed(vid, id.Issuer, id.Subject),
	}, manager: manager}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		release()
		conn.closeWithGrace(statusGoingAway, restartReason, closeGrace)
		return
	}
	room := s.chats[vid]
	if room == nil {
		room = make(map[*chatPeer]struct{})
		s.chats[vid] = room
	}
	room[p] = struct{}{}
	s.mu.Unlock()
	s.peersWG.Add(1)
	defer s.peersWG.Done()
	go p.writer()
	go p.pinger()
	if draining != nil {
		// Closed with 1001 as the node's signaling sockets are, so the
		// drain never waits for a chat.
		go s.drainWatch(p.peer, draining)
	}
	p.enqueue(mustJSON(chatServerMsg{Type: "welcome", Self: pid}), nil)
	s.chatLoop(p)
	p.shutdown(websocket.StatusNormalClosure, "", nil)
	<-p.wrote
	p.conn.closeTCP()
	s.mu.Lock()
	delete(s.chats[vid], p)
	if len(s.chats[vid]) == 0 {
		delete(s.chats, vid)
	}
	s.nchats--
	s.mu.Unlock()
}

// chatLoop reads p's messages until its socket closes or p may no longer
// chat.
func (s *Service) chatLoop(p *chatPeer) {
	p.readMessages(nil, func(b []byte) bool {
		m, ok := parseChat(b)
		if !ok {
			p.shutdown(statusPolicy, "malformed message", chatServerMsg{Type: "error", Error: "malformed message"})
			return false
		}
		if m.Type == "ping" {
			p.enqueue([]byte(`{"type":"pong"}`), nil)
			return true
		}
		return s.chatForward(p, m)
	})
}

// chatForward delivers m from p: a manager's to the sockets of the
// waiting participant it names, a waiting participant's to every manager
// socket of the visit — on this node, and through the bus on every other
// node that shares the visits (chatTargetsLocked there). Both sides'
// states are read from the store (Redis, when the visits are shared), so
// a decision taken on another node holds here. It returns false when p's
// socket is being closed.
func (s *Service) chatForward(p *chatPeer, m *chatClientMsg) bool {
	s.mu.Lock()
	v, err := s.lookup(p.visitID)
	if err != nil {
		s.mu.Unlock()
		p.enqueue(mustJSON(chatServerMsg{Type: "error", Error: "unavailable"}), nil)
		return true
	}
	if v == nil || !v.active() {
		s.mu.Unlock()
		p.shutdown(statusEnded, "the visit has ended", chatServerMsg{Type: "error", Error: "ended"})
		return false
	}
	if !p.manager {
		if q := v.participant(p.pid); q == nil || q.State != stateWaiting {
			s.mu.Unlock()
			p.shutdown(statusRemoved, "no longer in the waiting room", nil)
			return false
		}
	}
	var to string
	switch {
	case p.manager:
		q := v.participant(m.To)
		if q == nil || q.State != stateWaiting {
			s.mu.Unlock()
			p.enqueue(mustJSON(chatServerMsg{Type: "error", Error: "not-waiting", To: m.To}), nil)
			return true
		}
		to = q.ID
	case m.To != "":
		s.mu.Unlock()
		p.shutdown(statusPolicy, "malformed message", chatServerMsg{Type: "error", Error: "malformed message"})
		return false
	default:
		to = p.pid
	}
	targets := s.chatTargetsLocked(p.visitID, to, p.manager, p)
	s.mu.Unlock()
	out := mustJSON(chatServerMsg{Type: "chat", From: p.pid, Name: p.info.Name, To: to, Text: m.Text})
	for _, t := range targets {
		t.enqueue(out, nil)
	}
	s.bus.chat(p.visitID, p.pid, to, p.manager, out)
	return true
}

// chatTargetsLocked lists this node's chat sockets of vid that a message
// to "to" reaches, but except's: a manager's message (fromManager) goes
// to the participant's pages and to the other manager pages (they see
// the whole conversation), a participant's to the manager pages. The
// sender's node and every other node pick their sockets by this one
// rule. Caller holds s.mu.
func (s *Service) chatTargetsLocked(vid, to string, fromManager bool, except *chatPeer) []*chatPeer {
	var out []*chatPeer
	for o := range s.chats[vid] {
		if o != except && (o.manager || (fromManager && o.pid == to)) {
			out = append(out, o)
		}
	}
	return out
}

// chatOver closes this node's chat sockets of vid: participant pid's
// (1000: it left the waiting room — admitted, declined, removed), or
// every one when pid is "" (the visit ended). The node that took the
// decision calls it and tells the others over the bus, which call it too.
func (s *Service) chatOver(vid, pid string) {
	s.mu.Lock()
	chats := s.closeChatsLocked(vid, pid)
	s.mu.Unlock()
	for _, p := range chats {
		if pid == "" {
			p.shutdown(statusEnded, "the visit has ended", chatServerMsg{Type: "error", Error: "ended"})
		} else {
			p.shutdown(websocket.StatusNormalClosure, "left the waiting room", nil)
		}
	}
}

// closeChatsLocked returns the chat sockets of visitID to close — those
// of participant pid, or every one when pid is "". Caller holds s.mu.
func (s *Service) closeChatsLocked(visitID, pid string) []*chatPeer {
	var out []*chatPeer
	for p := range s.chats[visitID] {
		if pid == "" || (!p.manager && p.pid == pid) {
			out = append(out, p)
		}
	}
	return out
}
