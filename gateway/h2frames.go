package gateway

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// maxHeaderBlockFrames is how many frames one HTTP/2 header block may
// take: its HEADERS frame and its CONTINUATION frames together (RFC 9113
// §4.3, §6.10). A browser sends a block in one frame, or a few when it
// is larger than the peer's frame size (16 KiB at least, §6.5.2), so 32
// frames leave room for a 64 KiB block in minimum-size frames many times
// over; a client sending more is flooding the header decoder with tiny
// frames (CVE-2023-45288, CONTINUATION flood).
const maxHeaderBlockFrames = 32

// h2BlockLimits bound one HTTP/2 header block (HEADERS and its
// CONTINUATION frames, RFC 9113 §4.3) as the frame scanner reads it.
type h2BlockLimits struct {
	// timeout is how long a block may stay unfinished (no END_HEADERS)
	// from its HEADERS frame on: server.read_header_timeout, the
	// HTTP/1 header timeout. 0: none.
	timeout time.Duration
	// maxBytes caps the payload bytes of a block's frames, padding
	// included: server.max_header_bytes, the HTTP/1 header cap (HPACK
	// never makes a header list longer on the wire than decoded, give or
	// take a few bytes per field). 0: none.
	maxBytes int
}

// h2FrameBudget reads an HTTP/2 connection (RFC 9113 §4.1 frame layout)
// for the HTTP/2 server and refuses, before the server sees them:
//   - a control frame (isControlFrame: PING, SETTINGS, PRIORITY, empty
//     DATA) past the connection's control budget (h2Guard.takeControl):
//     GOAWAY ENHANCE_YOUR_CALM;
//   - a HEADERS frame past the connection's stream budget: one token of
//     its h2Guard per HEADERS frame (§6.2), so streams reset before their
//     handler ever starts count too (CVE-2023-44487, rapid reset);
//     answered with GOAWAY ENHANCE_YOUR_CALM;
//   - a header block of more than maxHeaderBlockFrames frames, or of more
//     than h2BlockLimits.maxBytes payload bytes (CVE-2023-45288,
//     CONTINUATION flood): GOAWAY ENHANCE_YOUR_CALM;
//   - a header block not finished within h2BlockLimits.timeout, from
//     its HEADERS frame to the last byte of its END_HEADERS frame, one
//     frame or many (the HTTP/2 form of a slow request head): GOAWAY
//     ENHANCE_YOUR_CALM;
//   - past the control budget, the RST_STREAM frames the server writes
//     (h2FrameBudget.countResets: each one a client frame made it write —
//     DATA on a closed stream, a malformed request; CVE-2019-9514, reset
//     flood): GOAWAY ENHANCE_YOUR_CALM;
//   - any frame but a CONTINUATION of the same stream inside a header
//     block, and a CONTINUATION outside one (§6.10): GOAWAY
//     PROTOCOL_ERROR;
//   - a header block with a connection-specific field (h2Fields, §8.2.2):
//     GOAWAY PROTOCOL_ERROR, before the block's last byte reaches the
//     server; one that does not decode: GOAWAY COMPRESSION_ERROR.
//
// It also rewrites a SETTINGS frame that names a parameter twice to name
// it once (h2Settings), since the HTTP/2 server refuses one (RFC 9113
// §6.5.3 wants the values processed in order).
//
// A refusal is answered by the scanner itself, whichever HTTP/2 server
// reads the connection: it writes GOAWAY with the refusal's code and the
// highest stream the server was given (§6.8; never above the server's
// own GOAWAY's) between two of the server's frames and after its SETTINGS
// (§3.4; Write follows their layout, h2Layout), stops passing bytes, and
// the h2Guard closes the connection within 500 ms; until then Read reads
// and discards what the client still sends, so that the close does not
// reset the connection before the client has read the GOAWAY. The
// connection preface (24 bytes, §3.4) is passed through first.
type h2FrameBudget struct {
	*tls.Conn // ConnectionState stays visible to the HTTP/2 server (r.TLS)
	info      *connInfo
	guard     *h2Guard
	limits    h2BlockLimits

	// The server's side: wmu serialises its writes and the scanner's
	// GOAWAY; wout follows the frames written.
	wmu       sync.Mutex
	wout      h2Layout
	goAwayDue atomic.Bool // a refusal's GOAWAY waits for a frame boundary
	lastID    atomic.Uint32

	mu      sync.Mutex
	preface int    // preface bytes still to pass
	hdr     []byte // bytes of the frame header being read
	skip    int    // payload bytes of the current frame still to pass
	held    []byte // bytes read from the conn but not yet scanned
	denied  bool
	code    http2.ErrCode // the refusal's GOAWAY code, once denied

	// The header block being read: its stream (0: none), its frames and
	// payload bytes so far, and the timer of its deadline.
	block       uint32
	blockFrames int
	blockBytes  int
	blockSeq    uint64 // blocks begun, so a late timer knows its own
	blockTimer  *time.Timer

	cur      h2Frame   // the frame being passed
	fields   *h2Fields // the header fields of every block, decoded
	settings []byte    // a SETTINGS frame being gathered for h2Settings
	out      []byte    // bytes passed and not yet returned by Read
}

// newH2Conn is an HTTP/2 connection as the public server is given it: c
// read through its frame budget with stream budget g and block limits l,
// and info (its TLS state) for ConnContext.
func newH2Conn(c *tls.Conn, info *connInfo, g *h2Guard, l h2BlockLimits) *h2FrameBudget {
	return &h2FrameBudget{Conn: c, info: info, guard: g, limits: l, preface: len(http2.ClientPreface)}
}

// Read implements net.Conn: it returns the bytes the scanner passed
// (f.out), reading and scanning more while there are none; once those
// before a refusal are returned it discards what the client sends until
// the connection is closed (h2Guard.closeSoon) or a second has passed.
func (f *h2FrameBudget) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.out) == 0 {
		if f.denied {
			f.mu.Unlock()
			err := f.discard(p)
			f.mu.Lock()
			return 0, err
		}
		if len(f.held) == 0 {
			f.mu.Unlock()
			n, err := f.Conn.Read(p)
			f.mu.Lock()
			if n == 0 {
				if f.denied {
					continue
				}
				return 0, err
			}
			f.held = append(f.held[:0], p[:n]...)
			continue
		}
		n := f.scan(f.held)
		f.held = f.held[n:]
	}
	n := copy(p, f.out)
	if n == len(f.out) {
		f.out = f.out[:0]
	} else {
		f.out = f.out[n:]
	}
	return n, nil
}

// SetReadDeadline implements net.Conn. Once the connection is refused it
// keeps the deadline that woke the read (the HTTP/2 server clears the
// read deadline after each request's headers).
func (f *h2FrameBudget) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied {
		return nil
	}
	return f.Conn.SetReadDeadline(t)
}

// deny refuses the connection with code; f.mu is held.
func (f *h2FrameBudget) deny(code http2.ErrCode) {
	if f.denied {
		return
	}
	f.denied, f.code = true, code
	if f.blockTimer != nil {
		f.blockTimer.Stop()
	}
	if f.guard != nil {
		f.guard.closeSoon()
	}
	f.goAwayDue.Store(true)
	if f.Conn != nil {
		go func() {
			f.wmu.Lock()
			defer f.wmu.Unlock()
			f.goAwayLocked()
		}()
	}
}

// discard reads and drops the client's bytes after a refusal, until the
// connection is closed or its one-second deadline passes.
func (f *h2FrameBudget) discard(p []byte) error {
	if f.Conn == nil {
		return net.ErrClosed
	}
	_ = f.Conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, err := f.Conn.Read(p); err != nil {
			return err
		}
	}
}

// Write implements net.Conn: the server's bytes pass unchanged, frame by
// frame, and a refusal's GOAWAY goes out at the first boundary between
// two of them.
func (f *h2FrameBudget) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := f.goAwayLocked(); err != nil {
			return n, err
		}
		k := f.wout.next(p)
		f.countResets()
		m, err := f.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, f.goAwayLocked()
}

// countResets spends a token of the control budget for every RST_STREAM
// the server begins to write: a client whose frames make the server reset
// streams as fast as it can send them — DATA on closed streams, malformed
// requests (CVE-2019-9514, reset flood) — is refused like a control-frame
// flood. f.wmu is held.
func (f *h2FrameBudget) countResets() {
	for ; f.wout.resets > 0; f.wout.resets-- {
		if f.guard != nil && !f.guard.takeControl() {
			f.mu.Lock()
			f.deny(http2.ErrCodeEnhanceYourCalm)
			f.mu.Unlock()
			f.wout.resets = 0
			return
		}
	}
}

// goAwayLocked writes the refusal's GOAWAY (RFC 9113 §6.8: the last
// stream the server was given, the refusal's code) if one is due and the
// server's output is between frames; f.wmu is held.
func (f *h2FrameBudget) goAwayLocked() error {
	if !f.goAwayDue.Load() || !f.wout.boundary() {
		return nil
	}
	f.goAwayDue.Store(false)
	f.mu.Lock()
	code := f.code
	f.mu.Unlock()
	last := f.lastID.Load()
	if f.wout.goAway {
		last = min(last, f.wout.goAwayID) // it never grows (§6.8)
	}
	var b [9 + 8]byte
	b[2] = 8
	b[3] = byte(http2.FrameGoAway)
	binary.BigEndian.PutUint32(b[9:], last)
	binary.BigEndian.PutUint32(b[13:], uint32(code))
	_, err := f.Conn.Write(b[:])
	return err
}

// h2Layout follows the server's HTTP/2 frames (RFC 9113 §4.1: a 9-byte
// header — payload length (3 bytes), type, flags, stream — then the
// payload), for what the frame budget needs of them: where one ends, the
// RST_STREAM frames the server writes, and the last-stream-id of a GOAWAY
// of its own.
type h2Layout struct {
	hdr    [9]byte
	n      int // header bytes seen of the current frame
	skip   int // payload bytes of the current frame still to come
	frames int // frames written whole
	typ    http2.FrameType
	pos    int // payload bytes seen of the current frame

	resets   int    // RST_STREAM frames begun and not yet counted
	goAway   bool   // the server wrote a GOAWAY
	goAwayID uint32 // its last-stream-id (the lowest, if several)
	id       uint32 // the last-stream-id of the GOAWAY being read
}

// boundary reports whether the bytes so far end a frame, and the server's
// first frame — its SETTINGS, which must open its side of the connection
// (§3.4) — is written.
func (l *h2Layout) boundary() bool { return l.n == 0 && l.skip == 0 && l.frames > 0 }

// next consumes p up to the end of the current frame, or all of it, and
// returns how many bytes that is.
func (l *h2Layout) next(p []byte) int {
	i := 0
	for i < len(p) {
		if l.skip > 0 {
			k := min(l.skip, len(p)-i)
			if l.typ == http2.FrameGoAway {
				for j := i; j < i+k && l.pos < 4; j++ {
					l.id = l.id<<8 | uint32(p[j])
					l.pos++
				}
				if l.pos == 4 {
					l.id &= 1<<31 - 1
					if !l.goAway || l.id < l.goAwayID {
						l.goAwayID = l.id
					}
					l.goAway = true
					l.pos++
				}
			}
			l.skip -= k
			i += k
			if l.skip == 0 {
				l.frames++
				return i
			}
			continue
		}
		l.hdr[l.n] = p[i]
		l.n++
		i++
		if l.n == 9 {
			l.n, l.pos, l.id = 0, 0, 0
			l.skip = int(l.hdr[0])<<16 | int(l.hdr[1])<<8 | int(l.hdr[2])
			l.typ = http2.FrameType(l.hdr[3])
			if l.typ == http2.FrameRSTStream {
				l.resets++
			}
			if l.skip == 0 {
				l.frames++
				return i
			}
		}
	}
	return i
}

// blockExpired is the deadline of header block seq: if it is still
// unfinished the connection is refused and a read waiting on the socket
// is woken.
func (f *h2FrameBudget) blockExpired(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied || f.block == 0 || f.blockSeq != seq {
		return
	}
	f.deny(http2.ErrCodeEnhanceYourCalm)
	if f.Conn != nil {
		_ = f.Conn.SetReadDeadline(time.Now())
	}
}

// scan walks b through the frame layout and appends to f.out what may
// be passed on: everything but a refused frame and what follows it, and a
// SETTINGS frame as h2Settings rewrites it. A frame header is held until
// it is whole and judged. It returns how many bytes of b it used (all of
// them unless the connection is refused).
func (f *h2FrameBudget) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch {
		case f.preface > 0:
			k := min(f.preface, len(b)-i)
			f.out = append(f.out, b[i:i+k]...)
			f.preface -= k
			i += k
		case f.skip > 0:
			k := min(f.skip, len(b)-i)
			part := b[i : i+k]
			ok := !f.cur.fields || f.fieldsOf().write(f.cur.fragment(part))
			f.skip -= k
			i += k
			code := http2.ErrCodeCompression
			if ok && f.skip == 0 && f.cur.fields && f.cur.endHeaders {
				code, ok = f.fields.end()
			}
			if ok && f.skip == 0 && f.cur.endsBlock {
				f.endBlock()
			}
			switch {
			case !ok:
				// Keep the block's last byte back: the server never
				// has the whole block.
				f.out = append(f.out, part[:len(part)-1]...)
				f.deny(code)
				return i - 1
			case f.settings != nil:
				f.settings = append(f.settings, part...)
				if f.skip == 0 {
					f.out = append(f.out, h2Settings(f.settings)...)
					f.settings = nil
				}
			default:
				f.out = append(f.out, part...)
			}
		default:
			k := min(9-len(f.hdr), len(b)-i)
			f.hdr = append(f.hdr, b[i:i+k]...)
			i += k
			if len(f.hdr) < 9 {
				continue
			}
			length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			typ := http2.FrameType(f.hdr[3])
			flags := http2.Flags(f.hdr[4])
			stream := (uint32(f.hdr[5])<<24 | uint32(f.hdr[6])<<16 | uint32(f.hdr[7])<<8 | uint32(f.hdr[8])) & (1<<31 - 1)
			code, ok := f.frame(typ, flags, stream, length, len(b)-i)
			if ok && f.cur.fields && f.cur.endHeaders && length == 0 {
				code, ok = f.fieldsOf().end()
			}
			if !ok {
				f.hdr = f.hdr[:0]
				f.deny(code)
				return i
			}
			if typ == http2.FrameSettings && !flags.Has(http2.FlagSettingsAck) && length > 0 && length <= maxSettingsRewrite {
				f.settings = append([]byte(nil), f.hdr...)
			} else {
				f.out = append(f.out, f.hdr...)
			}
			f.hdr = f.hdr[:0]
			f.skip = length
		}
	}
	return i
}

// fieldsOf returns the connection's header field reader, made at first
// use.
func (f *h2FrameBudget) fieldsOf() *h2Fields {
	if f.fields == nil {
		f.fields = newH2Fields(f.limits.maxBytes)
	}
	return f.fields
}

// frame accounts for one frame header, with held payload bytes of it
// already read; false with the GOAWAY code when the frame is refused.
func (f *h2FrameBudget) frame(typ http2.FrameType, flags http2.Flags, stream uint32, length, held int) (http2.ErrCode, bool) {
	f.cur = h2Frame{length: length}
	if typ == http2.FrameHeaders || typ == http2.FrameContinuation {
		f.cur.fields = true
		f.cur.endHeaders = flags.Has(http2.FlagHeadersEndHeaders)
	}
	if typ == http2.FrameHeaders {
		f.cur.padded = flags.Has(http2.FlagHeadersPadded)
		if f.cur.padded {
			f.cur.fragStart++
		}
		if flags.Has(http2.FlagHeadersPriority) {
			f.cur.fragStart += 5
		}
	}
	switch {
	case f.block != 0 && (typ != http2.FrameContinuation || stream != f.block),
		f.block == 0 && typ == http2.FrameContinuation,
		typ == http2.FrameHeaders && stream == 0:
		return http2.ErrCodeProtocol, false
	case isControlFrame(typ, flags, length):
		if f.guard != nil && !f.guard.takeControl() {
			return http2.ErrCodeEnhanceYourCalm, false
		}
	case typ == http2.FrameHeaders:
		if f.guard != nil && !f.guard.take() {
			return http2.ErrCodeEnhanceYourCalm, false
		}
		if stream > f.lastID.Load() {
			f.lastID.Store(stream)
		}
		f.block, f.blockFrames, f.blockBytes = stream, 0, 0
		f.blockSeq++
		// The block's deadline runs from its HEADERS frame to the last
		// byte of its END_HEADERS frame; a block already whole in the
		// bytes read (a browser's) needs no timer.
		if f.limits.timeout > 0 && (!flags.Has(http2.FlagHeadersEndHeaders) || length > held) {
			seq := f.blockSeq
			f.blockTimer = time.AfterFunc(f.limits.timeout, func() { f.blockExpired(seq) })
		}
	}
	if typ != http2.FrameHeaders && typ != http2.FrameContinuation || f.block == 0 {
		return 0, true
	}
	f.blockFrames++
	f.blockBytes += length
	if f.blockFrames > maxHeaderBlockFrames || f.limits.maxBytes > 0 && f.blockBytes > f.limits.maxBytes {
		return http2.ErrCodeEnhanceYourCalm, false
	}
	if flags.Has(http2.FlagHeadersEndHeaders) { // the same bit as CONTINUATION's
		f.cur.endsBlock = true
		if length == 0 {
			f.endBlock()
		}
	}
	return 0, true
}

// endBlock is the end of the header block being read: its last frame's
// last byte has been read.
func (f *h2FrameBudget) endBlock() {
	f.block = 0
	if f.blockTimer != nil {
		f.blockTimer.Stop()
		f.blockTimer = nil
	}
}

// isControlFrame reports whether a frame counts against the connection's
// control-frame budget (h2Guard.takeControl): PING and SETTINGS without
// ACK (each makes the server write an acknowledgement), PRIORITY, and an
// empty DATA frame that does not end its stream (RFC 9113 §6.7, §6.5,
// §6.3, §6.1).
func isControlFrame(typ http2.FrameType, flags http2.Flags, length int) bool {
	switch typ {
	case http2.FramePing, http2.FrameSettings:
		return !flags.Has(http2.FlagPingAck) // the ACK flag is 0x1 for both
	case http2.FramePriority:
		return true
	case http2.FrameData:
		return length == 0 && !flags.Has(http2.FlagDataEndStream)
	}
	return false
}
