package relay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"

	"github.com/telegate/telegate/audit"
)

// STUN/TURN constants pion/stun does not name.
const attrAccessToken stun.AttrType = 0x001B // RFC 7635 §6.2

// More STUN/TURN numbers, untyped.
const (
	protoUDP           = 17 // REQUESTED-TRANSPORT, RFC 8656 §18.7
	protoTCP           = 6
	familyIPv4         = 0x01 // REQUESTED-ADDRESS-FAMILY, RFC 8656 §18.11
	familyIPv6         = 0x02
	typeSendIndication = 0x0016
	typeDataIndication = 0x0017
)

// guardConn stands in front of pion on one listening socket (a UDP socket
// or the TLS stream mux). Pion reads requests through it and writes its
// answers through it.
//
// Inbound, every TURN request needing authentication is checked here
// first: the long-term credential (RFC 8489 §9.2) with telegate's own
// nonces, then the relay's rules (expiry, admission, 437 Allocation
// Mismatch, 441 Wrong Credentials, 442 for TCP, 403 for peers outside the
// visit). A request that passes is handed to pion re-signed with a nonce
// pion accepts; its MESSAGE-INTEGRITY key is handed over by the
// AuthHandler. ChannelData and Send indications pass untouched (the relay
// socket filters them).
//
// Binding requests are answered here. Outbound, answers without
// MESSAGE-INTEGRITY to sources without an allocation are rate limited per
// source address (sourceLimiter), those the guard builds are at most
// maxAnswerFactor times their request's size, and pion's own nonces are
// replaced by telegate's.
type guardConn struct {
	net.PacketConn
	s         *Server
	id        int
	transport string
	held      *heldRequest
	batch     *batchReader // nil: read one datagram per call
	out       *batchWriter // nil: write one datagram per call
	// readErr is the error that ended reading (the socket failed), unless
	// the server was closing.
	readErr atomic.Pointer[error]
}

// heldRequest waits while a probe obtains a fresh pion nonce.
type heldRequest struct {
	m    *stun.Message
	ac   *authCtx
	from net.Addr
}

// authCtx is an authenticated request.
type authCtx struct {
	username string
	user     Username
	key      stun.MessageIntegrity
}

// inflight hands the key of a request the guard authenticated to pion's
// AuthHandler.
type inflight struct {
	userID string
	key    []byte
	at     time.Time
}

type harvestedNonce struct {
	nonce string
	at    time.Time
}

// probeAddr is the source of the guard's own probe requests; answers to it
// never leave the process.
var probeAddr = &net.UDPAddr{IP: net.IPv4zero, Port: 0}

func isProbe(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.Port == 0 && u.IP.IsUnspecified()
}

func inflightKey(username string, from net.Addr) string {
	return username + "\x00" + from.String()
}

// ReadFrom implements net.PacketConn for pion.
func (g *guardConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if h := g.held; h != nil {
			g.held = nil
			if out, ok := g.handOver(h.m, h.ac, h.from, false); ok && len(out) <= len(p) {
				return copy(p, out), h.from, nil
			}
			continue
		}
		var (
			n    int
			from net.Addr
			err  error
		)
		if g.batch != nil {
			n, from, err = g.batch.ReadFrom(p)
		} else {
			n, from, err = g.PacketConn.ReadFrom(p)
		}
		if err != nil {
			// pion's read loop ends on any error: the socket serves no more.
			if !g.s.closed.Load() {
				g.readErr.Store(&err)
			}
			return n, from, err
		}
		out, ok := g.inspect(p[:n], from)
		if !ok || len(out) > len(p) {
			continue
		}
		if len(out) > 0 && &out[0] != &p[0] {
			n = copy(p, out)
		} else {
			n = len(out)
		}
		if g.held != nil {
			return n, probeAddr, nil
		}
		return n, from, nil
	}
}

// inspect returns the packet to give pion (possibly rewritten) or false to
// drop it, having answered the client itself where that is due.
func (g *guardConn) inspect(pkt []byte, from net.Addr) ([]byte, bool) {
	if len(pkt) < 4 {
		return nil, false
	}
	if pkt[0]&0xC0 == 0x40 { // ChannelData, RFC 8656 §12.4
		return pkt, true
	}
	if !stun.IsMessage(pkt) {
		return nil, false
	}
	if t := binary.BigEndian.Uint16(pkt[0:2]); t == typeSendIndication {
		return pkt, true
	}
	m := &stun.Message{Raw: append([]byte(nil), pkt...)}
	if err := m.Decode(); err != nil || m.Type.Class != stun.ClassRequest {
		return nil, false
	}
	switch m.Type.Method {
	case stun.MethodBinding:
		g.answerBinding(from, m)
		return nil, false
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind,
		stun.MethodConnect, stun.MethodConnectionBind:
	default:
		return nil, false
	}
	ac, ok := g.authenticate(m, from)
	if !ok {
		return nil, false
	}
	src, _ := addrPortOf(from)
	key := tupleKey{listener: g.id, src: src}
	s := g.s
	switch m.Type.Method {
	case stun.MethodConnect, stun.MethodConnectionBind:
		g.reply(from, m, stun.CodeBadRequest, ac.key)
		return nil, false
	case stun.MethodAllocate:
		if s.lookup(key) != nil {
			break // pion answers a retransmission or 437
		}
		if s.now().After(ac.user.Expires) {
			s.denyAllocation(ac.username, ac.user, key, "expired")
			g.challenge(from, m, stun.CodeUnauthorized)
			return nil, false
		}
		if to, moved := s.redirectTo(ac.user.Visit); moved {
			s.denyAllocation(ac.username, ac.user, key, "moved")
			g.tryAlternate(from, m, to, ac.key)
			return nil, false
		}
		s.mu.Lock()
		_, p := s.admittedLocked(ac.user.Visit, ac.user.Participant)
		revoked := p == nil && s.revokedLocked(ac.user.Visit, ac.user.Participant)
		s.mu.Unlock()
		switch {
		case revoked:
			s.denyAllocation(ac.username, ac.user, key, "revoked")
			g.challenge(from, m, stun.CodeUnauthorized)
			return nil, false
		case p == nil:
			s.denyAllocation(ac.username, ac.user, key, "not-admitted")
			g.reply(from, m, stun.CodeForbidden, ac.key)
			return nil, false
		}
		if v, err := m.Get(stun.AttrRequestedTransport); err == nil && len(v) == 4 && v[0] != protoUDP {
			s.denyAllocation(ac.username, ac.user, key, "unsupported-transport")
			g.reply(from, m, stun.CodeUnsupportedTransProto, ac.key)
			return nil, false
		}
		if !g.hasFamily(m, src) {
			s.denyAllocation(ac.username, ac.user, key, "address-family")
			g.reply(from, m, stun.CodeAddrFamilyNotSupported, ac.key)
			return nil, false
		}
	default: // Refresh, CreatePermission, ChannelBind: RFC 8656 §7.3, §9, §12
		a := s.lookup(key)
		if a == nil {
			s.m.denial("allocation_mismatch")
			g.reply(from, m, stun.CodeAllocMismatch, ac.key)
			return nil, false
		}
		if a.username != ac.username {
			s.m.denial("wrong_credentials")
			g.reply(from, m, stun.CodeWrongCredentials, ac.key)
			return nil, false
		}
		if reason := g.checkPeers(m, a); reason != "" {
			s.m.denial(reason)
			s.record(audit.Event{
				Type: "relay.permission", Client: src.Addr().String(), Decision: "deny", Reason: reason,
				Attrs: map[string]string{"visit": a.visit, "participant": a.participant, "method": m.Type.Method.String()},
			})
			code := stun.CodeForbidden
			if reason == "bad_request" {
				code = stun.CodeBadRequest
			}
			g.reply(from, m, code, ac.key)
			return nil, false
		}
	}
	return g.handOver(m, ac, from, true)
}

// hasFamily reports whether the relay has a relay address of the family
// an Allocate asks for: REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.11, 0x01
// IPv4, 0x02 IPv6; any other value is a family the relay does not have),
// or without it the family pion defaults to (the listening socket's, or
// the client's when that socket is bound to the unspecified address). A
// malformed attribute is left to pion (400). False is answered 440
// Address Family not Supported (RFC 8656 §7.2).
func (g *guardConn) hasFamily(m *stun.Message, src netip.AddrPort) bool {
	v6 := false
	v, err := m.Get(stun.AttrRequestedAddressFamily)
	switch {
	case err == nil && len(v) != 4:
		return true
	case err == nil && v[0] == familyIPv4:
	case err == nil && v[0] == familyIPv6:
		v6 = true
	case err == nil:
		return false
	default:
		local, _ := addrPortOf(g.LocalAddr())
		if local.Addr().IsUnspecified() || !local.IsValid() {
			v6 = !src.Addr().Unmap().Is4()
		} else {
			v6 = !local.Addr().Unmap().Is4()
		}
	}
	if v6 {
		return g.s.relay6 != nil
	}
	return g.s.relay4 != nil
}

// answerBinding answers a Binding request (RFC 8489 §6.3.1) with the
// source as XOR-MAPPED-ADDRESS: an answer without MESSAGE-INTEGRITY, so
// subject to the per-source limit and the size bound.
func (g *guardConn) answerBinding(from net.Addr, m *stun.Message) {
	ap, ok := addrPortOf(from)
	if !ok {
		return
	}
	g.send(from, m, false,
		&stun.Message{TransactionID: m.TransactionID},
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())},
		stun.Fingerprint,
	)
}

// checkPeers applies the peer filter to CreatePermission (every
// XOR-PEER-ADDRESS, RFC 8656 §9) and ChannelBind (§12): each must be the
// exact relayed transport address of a sibling. A permission is per IP
// (§9), so the port is checked here, where it is still known: clients
// (browsers, pion) send the remote candidate's full address. "" admits.
func (g *guardConn) checkPeers(m *stun.Message, a *allocation) string {
	switch m.Type.Method {
	case stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return ""
	}
	peers, err := peerAddresses(m)
	if err != nil || len(peers) == 0 || (m.Type.Method == stun.MethodChannelBind && len(peers) != 1) {
		return "bad_request"
	}
	for _, ap := range peers {
		if r := a.permitAddr(ap); r != "" {
			return r
		}
	}
	return ""
}

// peerAddresses decodes every XOR-PEER-ADDRESS of m (RFC 8656 §18.3) as
// sent: an IPv4-mapped IPv6 address stays an IPv6 address.
func peerAddresses(m *stun.Message) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, at := range m.Attributes {
		if at.Type != stun.AttrXORPeerAddress {
			continue
		}
		tmp := &stun.Message{TransactionID: m.TransactionID}
		tmp.WriteHeader()
		tmp.Add(stun.AttrXORPeerAddress, at.Value)
		var xa stun.XORMappedAddress
		if err := xa.GetFromAs(tmp, stun.AttrXORPeerAddress); err != nil {
			return nil, err
		}
		ip, ok := netip.AddrFromSlice(xa.IP)
		if !ok || xa.Port < 0 || xa.Port > 65535 {
			return nil, fmt.Errorf("relay: bad peer address")
		}
		out = append(out, netip.AddrPortFrom(ip, uint16(xa.Port)))
	}
	return out, nil
}

// authenticate checks the long-term credential of m (RFC 8489 §9.2.4),
// answering 400, 401 or 438 itself when it fails.
func (g *guardConn) authenticate(m *stun.Message, from net.Addr) (*authCtx, bool) {
	s := g.s
	if !m.Contains(stun.AttrMessageIntegrity) || m.Contains(attrAccessToken) {
		g.challenge(from, m, stun.CodeUnauthorized)
		return nil, false
	}
	var (
		user  stun.Username
		realm stun.Realm
		nonce stun.Nonce
	)
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		g.reply(from, m, stun.CodeBadRequest, nil)
		return nil, false
	}
	if realm.String() != s.cfg.Realm {
		g.challenge(from, m, stun.CodeUnauthorized)
		return nil, false
	}
	if s.nonces.check(nonce.String(), s.now(), nonceLifetime) != nil {
		g.challenge(from, m, stun.CodeStaleNonce)
		return nil, false
	}
	name := user.String()
	u, err := ParseUsername(name)
	if err != nil {
		s.m.total("unauthorized")
		g.challenge(from, m, stun.CodeUnauthorized)
		return nil, false
	}
	for _, sec := range s.secrets {
		key := stun.NewLongTermIntegrity(name, s.cfg.Realm, Password(sec, name))
		if key.Check(m) == nil {
			return &authCtx{username: name, user: u, key: key}, true
		}
	}
	s.m.total("unauthorized")
	g.challenge(from, m, stun.CodeUnauthorized)
	return nil, false
}

// handOver re-signs an authenticated request with a nonce pion accepts,
// dropping everything after MESSAGE-INTEGRITY, and registers its key for
// the AuthHandler. When no fresh pion nonce is known and probe is true, it
// holds the request and returns a probe instead.
func (g *guardConn) handOver(m *stun.Message, ac *authCtx, from net.Addr, probe bool) ([]byte, bool) {
	s := g.s
	hn := s.pionNonce.Load()
	if hn == nil || s.now().Sub(hn.at) > pionNonceRefresh {
		if !probe {
			return nil, false
		}
		g.held = &heldRequest{m: m, ac: ac, from: from}
		pm, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest))
		if err != nil {
			g.held = nil
			return nil, false
		}
		return pm.Raw, true
	}
	src, _ := addrPortOf(from)
	userID := ac.username + "|" + strconv.Itoa(g.id) + "|" + src.String()
	s.inflight.Store(inflightKey(ac.username, from), &inflight{userID: userID, key: ac.key, at: s.now()})
	out := resign(m, hn.nonce, ac.key)
	return out, true
}

// resign copies m without NONCE, MESSAGE-INTEGRITY(-SHA256), FINGERPRINT
// and anything after MESSAGE-INTEGRITY, then adds nonce and a
// MESSAGE-INTEGRITY with key.
func resign(m *stun.Message, nonce string, key stun.MessageIntegrity) []byte {
	out := &stun.Message{TransactionID: m.TransactionID, Type: m.Type}
	out.WriteHeader()
	for _, at := range m.Attributes {
		if at.Type == stun.AttrMessageIntegrity {
			break
		}
		switch at.Type {
		case stun.AttrNonce, stun.AttrFingerprint, stun.AttrMessageIntegritySHA256:
			continue
		}
		out.Add(at.Type, at.Value)
	}
	out.Add(stun.AttrNonce, []byte(nonce))
	_ = key.AddTo(out)
	return out.Raw
}

// challenge answers 401 or 438 with REALM and a fresh NONCE (RFC 8489
// §9.2.4), subject to the per-source limit and the size bound.
func (g *guardConn) challenge(from net.Addr, m *stun.Message, code stun.ErrorCode) {
	g.send(from, m, false,
		&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code},
		stun.NewRealm(g.s.cfg.Realm),
		stun.NewNonce(g.s.nonces.issue(g.s.now())),
	)
}

// reply answers an error; with MESSAGE-INTEGRITY when key is set.
func (g *guardConn) reply(from net.Addr, m *stun.Message, code stun.ErrorCode, key stun.MessageIntegrity) {
	setters := []stun.Setter{
		&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code},
	}
	if key != nil {
		setters = append(setters, key)
	}
	g.send(from, m, key != nil, setters...)
}

// maxAnswerFactor bounds an answer without MESSAGE-INTEGRITY to this many
// times the size of the request it answers, so the relay is no reflection
// amplifier whatever the rate: a larger one is not sent.
const maxAnswerFactor = 4

// send answers req. Without MESSAGE-INTEGRITY (authenticated false) the
// answer is sent only if it is at most maxAnswerFactor times req's size
// and the per-source limit allows it.
func (g *guardConn) send(to net.Addr, req *stun.Message, authenticated bool, setters ...stun.Setter) {
	msg, err := stun.Build(setters...)
	if err != nil {
		return
	}
	if !authenticated {
		if len(msg.Raw) > maxAnswerFactor*len(req.Raw) {
			g.s.m.denial("amplification")
			return
		}
		if !g.allowUnauthenticated(to) {
			return
		}
	}
	_, _ = g.PacketConn.WriteTo(msg.Raw, to)
}

// allowUnauthenticated applies the per-source limit on answers without
// MESSAGE-INTEGRITY (sourceLimiter). Sources holding an allocation are
// exempt.
func (g *guardConn) allowUnauthenticated(to net.Addr) bool {
	ap, ok := addrPortOf(to)
	if !ok {
		return false
	}
	s := g.s
	if s.lookup(tupleKey{listener: g.id, src: ap}) != nil {
		return true
	}
	if s.unauth.allow(ap.Addr(), s.now()) {
		return true
	}
	s.m.denial("unauthenticated_rate")
	return false
}

// WriteTo implements net.PacketConn for pion's answers.
func (g *guardConn) WriteTo(p []byte, to net.Addr) (int, error) {
	if len(p) >= 20 && p[0]&0xC0 == 0 {
		t := binary.BigEndian.Uint16(p[0:2])
		if t != typeDataIndication && stun.IsMessage(p) {
			return g.writeSTUN(p, to)
		}
	}
	if isProbe(to) {
		return len(p), nil
	}
	if g.out != nil {
		return g.out.WriteTo(p, to)
	}
	return g.PacketConn.WriteTo(p, to)
}

func (g *guardConn) writeSTUN(p []byte, to net.Addr) (int, error) {
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if err := m.Decode(); err != nil {
		return len(p), nil
	}
	if m.Contains(stun.AttrMessageIntegrity) {
		if isProbe(to) {
			return len(p), nil
		}
		return g.PacketConn.WriteTo(p, to)
	}
	var nonce stun.Nonce
	if m.Type.Class == stun.ClassErrorResponse && nonce.GetFrom(m) == nil {
		// A challenge from pion: learn its nonce, answer with ours.
		g.s.pionNonce.Store(&harvestedNonce{nonce: nonce.String(), at: g.s.now()})
		if isProbe(to) {
			return len(p), nil
		}
		out := &stun.Message{TransactionID: m.TransactionID, Type: m.Type}
		out.WriteHeader()
		for _, at := range m.Attributes {
			switch at.Type {
			case stun.AttrNonce, stun.AttrFingerprint, stun.AttrSoftware:
				continue
			}
			out.Add(at.Type, at.Value)
		}
		out.Add(stun.AttrNonce, []byte(g.s.nonces.issue(g.s.now())))
		p = out.Raw
	}
	if isProbe(to) || !g.allowUnauthenticated(to) {
		return len(p), nil
	}
	return g.PacketConn.WriteTo(p, to)
}

// authHandler is pion's AuthHandler: it only hands over the key of a
// request the guard has just authenticated (fail closed otherwise).
func (s *Server) authHandler(ra *turn.RequestAttributes) (string, []byte, bool) {
	if ra == nil || ra.SrcAddr == nil {
		return "", nil, false
	}
	v, ok := s.inflight.LoadAndDelete(inflightKey(ra.Username, ra.SrcAddr))
	if !ok {
		return "", nil, false
	}
	in := v.(*inflight)
	return in.userID, in.key, true
}

// quotaHandler is pion's QuotaHandler: it reserves one allocation against
// the participant, visit and total caps and the per-participant rate (keyed
// on visit and participant, not on the username, so a fresh credential
// shares its participant's bucket), or refuses (486 Allocation Quota
// Reached, RFC 8656 §7.2 step 8).
func (s *Server) quotaHandler(userID, _ string, srcAddr net.Addr) bool {
	parts := strings.SplitN(userID, "|", 3)
	if len(parts) != 3 {
		return false
	}
	name := parts[0]
	listener, err := strconv.Atoi(parts[1])
	if err != nil {
		return false
	}
	u, err := ParseUsername(name)
	if err != nil {
		return false
	}
	src, _ := addrPortOf(srcAddr)
	key := tupleKey{listener: listener, src: src}

	pk := participantKey(u.Visit, u.Participant)
	lim, ok := s.allocRate.Get(pk)
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.limits().allocRate.Rate), s.limits().allocRate.Burst)
		if prev, found, _ := s.allocRate.PeekOrAdd(pk, lim); found {
			lim = prev
		}
	}
	if !lim.Allow() {
		s.denyAllocation(name, u, key, "rate-limited")
		return false
	}

	now := s.now()
	l := s.limits()
	s.mu.Lock()
	s.expireTicketsLocked(now)
	vs, p := s.admittedLocked(u.Visit, u.Participant)
	reason := ""
	switch {
	case p == nil:
		reason = "not-admitted"
	case p.count >= l.perParticipant:
		reason = "quota-participant"
	case vs.count >= l.perVisit:
		reason = "quota-visit"
	case s.total >= l.total:
		reason = "quota-total"
	}
	if reason == "" {
		if old := s.tickets[userID]; old != nil {
			s.unreserveLocked(old.user.Visit, old.user.Participant, old.vs, old.p)
		}
		p.count++
		vs.count++
		s.total++
		s.tickets[userID] = &ticket{user: u, username: name, key: key, vs: vs, p: p, deadline: now.Add(ticketLifetime)}
	}
	s.mu.Unlock()
	if reason != "" {
		s.denyAllocation(name, u, key, reason)
		return false
	}
	return true
}

// permissionHandler is pion's PermissionHandler for listener id: a second
// line behind the guard, admitting only the advertised IPs of siblings.
func (s *Server) permissionHandler(id int) turn.PermissionHandler {
	return func(clientAddr net.Addr, peerIP net.IP) bool {
		src, ok := addrPortOf(clientAddr)
		if !ok {
			return false
		}
		a := s.lookup(tupleKey{listener: id, src: src})
		if a == nil {
			return false
		}
		ip, ok := netip.AddrFromSlice(peerIP)
		if !ok || (len(peerIP) == 16 && ip.Is4In6()) {
			return false
		}
		return a.permitIP(ip) == ""
	}
}
