// Package turnwire is a small TURN client (RFC 8656) over one UDP socket or
// one stream (TCP/TLS), for tests and load generators: every request is
// explicit (Allocate, Refresh, CreatePermission, ChannelBind, Send), error
// responses come back as *ErrorResponse with their code, and data is sent
// and read as raw ChannelData or Data indications.
//
// Control calls are not safe for concurrent use; read data yourself only
// between them.
package turnwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// ErrorResponse is a TURN error response (RFC 8489 §14.8).
type ErrorResponse struct {
	Code   int
	Reason string
	// Nonce and Realm of a 401 or 438 challenge.
	Nonce, Realm string
	// Authenticated reports whether the response carried a valid
	// MESSAGE-INTEGRITY for the client's key.
	Authenticated bool
}

func (e *ErrorResponse) Error() string { return fmt.Sprintf("turn error %d %s", e.Code, e.Reason) }

// Code returns the error code of err, or 0.
func Code(err error) int {
	var e *ErrorResponse
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Client speaks TURN to one server.
type Client struct {
	pc     net.PacketConn // datagram transport, or
	stream net.Conn       // stream transport
	server net.Addr

	Username, Password, Realm string
	Nonce                     string
	// Timeout for each transaction. Default 2s.
	Timeout time.Duration
	// RTO is the first retransmission timeout over UDP, doubled after each
	// retransmission (RFC 8489 §6.2.1). Default 200ms.
	RTO time.Duration
	// Last is the last response received.
	Last *stun.Message
}

// NewUDP returns a client sending from pc to server.
func NewUDP(pc net.PacketConn, server net.Addr, username, password string) *Client {
	return &Client{pc: pc, server: server, Username: username, Password: password, Timeout: 2 * time.Second}
}

// NewStream returns a client over a connected stream (TCP or TLS).
func NewStream(c net.Conn, username, password string) *Client {
	return &Client{stream: c, server: c.RemoteAddr(), Username: username, Password: password, Timeout: 2 * time.Second}
}

// Write sends raw bytes to the server.
func (c *Client) Write(b []byte) error {
	if c.stream != nil {
		_, err := c.stream.Write(b)
		return err
	}
	_, err := c.pc.WriteTo(b, c.server)
	return err
}

// Read reads one message from the server (a datagram, or one frame of the
// stream) into buf, waiting until deadline.
func (c *Client) Read(buf []byte, deadline time.Time) (int, error) {
	if c.stream != nil {
		_ = c.stream.SetReadDeadline(deadline)
		if _, err := io.ReadFull(c.stream, buf[:4]); err != nil {
			return 0, err
		}
		l := int(binary.BigEndian.Uint16(buf[2:4]))
		n := 20 + l
		if buf[0]&0xC0 == 0x40 {
			n = 4 + (l+3)&^3
		}
		if n > len(buf) {
			return 0, errors.New("turnwire: frame too large")
		}
		if _, err := io.ReadFull(c.stream, buf[4:n]); err != nil {
			return 0, err
		}
		return n, nil
	}
	_ = c.pc.SetReadDeadline(deadline)
	for {
		n, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		if from.String() == c.server.String() {
			return n, nil
		}
	}
}

// Key is the long-term credential key MD5(username:realm:password).
func (c *Client) Key() stun.MessageIntegrity {
	return stun.NewLongTermIntegrity(c.Username, c.Realm, c.Password)
}

// Request builds, without sending it, a request of method with attrs and,
// once the client has a nonce, its credentials (USERNAME, REALM, NONCE,
// MESSAGE-INTEGRITY), as Do sends them; a fresh transaction id each call.
func (c *Client) Request(method stun.Method, attrs ...stun.Setter) []byte {
	return stun.MustBuild(c.request(method, attrs)...).Raw
}

// request is what Request and Do build a request from.
func (c *Client) request(method stun.Method, attrs []stun.Setter) []stun.Setter {
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	if c.Nonce != "" {
		setters = append(setters, stun.NewUsername(c.Username), stun.NewRealm(c.Realm), stun.NewNonce(c.Nonce), c.Key())
	}
	return setters
}

// BindingRequest is a Binding request (RFC 8489 §6.1) with a fresh
// transaction id.
func BindingRequest() []byte { return stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw }

// Provocation is a request that makes a TURN server answer, for tests of
// a client that sends them and does not read the answers.
type Provocation struct {
	Name string
	// Build returns the request for c, whose allocation may reach peer.
	Build func(c *Client, peer netip.AddrPort) []byte
}

// Provocations: a Binding request, and an authenticated CreatePermission
// toward peer.
var Provocations = []Provocation{
	{"Binding requests", func(*Client, netip.AddrPort) []byte { return BindingRequest() }},
	{"authenticated CreatePermission", func(c *Client, peer netip.AddrPort) []byte {
		return c.Request(stun.MethodCreatePermission, PeerAddress(peer))
	}},
}

// Raw sends the message built from setters as is and returns the response
// with the same transaction id (error responses as *ErrorResponse too).
func (c *Client) Raw(setters ...stun.Setter) (*stun.Message, error) {
	req, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	return c.roundTrip(req)
}

func (c *Client) roundTrip(req *stun.Message) (*stun.Message, error) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(c.Timeout)
	rto := c.RTO
	if rto <= 0 {
		rto = 200 * time.Millisecond
	}
	for time.Now().Before(deadline) {
		if err := c.Write(req.Raw); err != nil {
			return nil, err
		}
		wait := time.Now().Add(rto)
		if c.stream != nil {
			wait = deadline
		}
		if wait.After(deadline) {
			wait = deadline
		}
		for {
			n, err := c.Read(buf, wait)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			if !stun.IsMessage(buf[:n]) {
				continue
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.TransactionID != req.TransactionID {
				continue
			}
			c.Last = m
			if m.Type.Class == stun.ClassErrorResponse {
				return m, c.errorOf(m)
			}
			return m, nil
		}
		rto *= 2
	}
	return nil, fmt.Errorf("turnwire: %w", errTimeout)
}

var errTimeout = errors.New("no response")

// IsTimeout reports whether err is a transaction that got no response.
func IsTimeout(err error) bool { return errors.Is(err, errTimeout) }

func (c *Client) errorOf(m *stun.Message) error {
	var ec stun.ErrorCodeAttribute
	e := &ErrorResponse{}
	if ec.GetFrom(m) == nil {
		e.Code = int(ec.Code)
		e.Reason = string(ec.Reason)
	}
	var n stun.Nonce
	if n.GetFrom(m) == nil {
		e.Nonce = n.String()
	}
	var r stun.Realm
	if r.GetFrom(m) == nil {
		e.Realm = r.String()
	}
	if c.Realm != "" && m.Contains(stun.AttrMessageIntegrity) {
		e.Authenticated = c.Key().Check(m) == nil
	}
	return e
}

// Do sends an authenticated request of method with attrs, answering one
// 401 or 438 challenge.
func (c *Client) Do(method stun.Method, attrs ...stun.Setter) (*stun.Message, error) {
	for try := 0; try < 3; try++ {
		m, err := c.Raw(c.request(method, attrs)...)
		var e *ErrorResponse
		if errors.As(err, &e) && (e.Code == 401 || e.Code == 438) && e.Nonce != "" {
			if e.Code == 401 && c.Nonce != "" && try > 0 {
				return m, err
			}
			c.Nonce, c.Realm = e.Nonce, e.Realm
			continue
		}
		return m, err
	}
	return nil, errors.New("turnwire: authentication loop")
}

// RequestedTransport is the REQUESTED-TRANSPORT attribute (RFC 8656 §18.7).
type RequestedTransport byte

// Transport protocol numbers.
const (
	UDP RequestedTransport = 17
	TCP RequestedTransport = 6
)

// AddTo implements stun.Setter.
func (t RequestedTransport) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedTransport, []byte{byte(t), 0, 0, 0})
	return nil
}

// Lifetime is the LIFETIME attribute (RFC 8656 §18.2).
type Lifetime time.Duration

// AddTo implements stun.Setter.
func (l Lifetime) AddTo(m *stun.Message) error {
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], uint32(time.Duration(l)/time.Second))
	m.Add(stun.AttrLifetime, v[:])
	return nil
}

// PeerAddress is an XOR-PEER-ADDRESS attribute (RFC 8656 §18.3). An
// IPv4-mapped IPv6 address is sent as IPv6.
type PeerAddress netip.AddrPort

// AddTo implements stun.Setter.
func (p PeerAddress) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	ip := net.IP(ap.Addr().AsSlice())
	return (&stun.XORMappedAddress{IP: ip, Port: int(ap.Port())}).AddToAs(m, stun.AttrXORPeerAddress)
}

// ChannelNumber is the CHANNEL-NUMBER attribute (RFC 8656 §18.1).
type ChannelNumber uint16

// AddTo implements stun.Setter.
func (n ChannelNumber) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
	return nil
}

// Allocate requests a UDP relay (or transport t) and returns the relayed
// transport address.
func (c *Client) Allocate(t RequestedTransport, extra ...stun.Setter) (netip.AddrPort, error) {
	m, err := c.Do(stun.MethodAllocate, append([]stun.Setter{t}, extra...)...)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFromAs(m, stun.AttrXORRelayedAddress); err != nil {
		return netip.AddrPort{}, err
	}
	ip, _ := netip.AddrFromSlice(xa.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)), nil
}

// Refresh refreshes the allocation (0 deletes it).
func (c *Client) Refresh(lifetime time.Duration) error {
	_, err := c.Do(stun.MethodRefresh, Lifetime(lifetime))
	return err
}

// CreatePermission installs permissions for peers (RFC 8656 §9).
func (c *Client) CreatePermission(peers ...netip.AddrPort) error {
	attrs := make([]stun.Setter, 0, len(peers))
	for _, p := range peers {
		attrs = append(attrs, PeerAddress(p))
	}
	_, err := c.Do(stun.MethodCreatePermission, attrs...)
	return err
}

// ChannelBind binds channel number ch (0x4000–0x4FFF) to peer (RFC 8656 §12).
func (c *Client) ChannelBind(ch uint16, peer netip.AddrPort) error {
	_, err := c.Do(stun.MethodChannelBind, ChannelNumber(ch), PeerAddress(peer))
	return err
}

// Send sends data to peer in a Send indication (RFC 8656 §11).
func (c *Client) Send(peer netip.AddrPort, data []byte) error {
	m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), PeerAddress(peer), dataAttr(data))
	if err != nil {
		return err
	}
	return c.Write(m.Raw)
}

type dataAttr []byte

func (d dataAttr) AddTo(m *stun.Message) error {
	m.Add(stun.AttrData, d)
	return nil
}

// ChannelData encodes a ChannelData message (RFC 8656 §12.4) into dst,
// padded to four bytes, and returns it.
func ChannelData(dst []byte, ch uint16, data []byte) []byte {
	n := 4 + len(data)
	p := (n + 3) &^ 3
	if cap(dst) < p {
		dst = make([]byte, p)
	}
	dst = dst[:p]
	binary.BigEndian.PutUint16(dst[0:2], ch)
	binary.BigEndian.PutUint16(dst[2:4], uint16(len(data)))
	copy(dst[4:], data)
	clear(dst[n:])
	return dst
}

// ParseChannelData returns the channel and payload of a ChannelData
// message.
func ParseChannelData(b []byte) (uint16, []byte, bool) {
	if len(b) < 4 || b[0]&0xC0 != 0x40 {
		return 0, nil, false
	}
	l := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+l > len(b) {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(b[0:2]), b[4 : 4+l], true
}

// ParseData returns the peer and payload of a Data indication.
func ParseData(b []byte) (netip.AddrPort, []byte, bool) {
	if !stun.IsMessage(b) {
		return netip.AddrPort{}, nil, false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		return netip.AddrPort{}, nil, false
	}
	var xa stun.XORMappedAddress
	if xa.GetFromAs(m, stun.AttrXORPeerAddress) != nil {
		return netip.AddrPort{}, nil, false
	}
	d, err := m.Get(stun.AttrData)
	if err != nil {
		return netip.AddrPort{}, nil, false
	}
	ip, _ := netip.AddrFromSlice(xa.IP)
	return netip.AddrPortFrom(ip, uint16(xa.Port)), d, true
}

// ServerAddr is the server's UDP address (nil for a stream client).
func (c *Client) ServerAddr() *net.UDPAddr {
	u, _ := c.server.(*net.UDPAddr)
	return u
}
