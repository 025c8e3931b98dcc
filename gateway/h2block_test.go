package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/telegate/telegate/config"
)

// h2Answer is what a raw HTTP/2 client read until the connection ended.
type h2Answer struct {
	goaway *http2.GoAwayFrame // nil: none read
	status string             // :status of stream 1's response, "" if none
	closed bool               // the server closed the connection
	after  time.Duration      // from the first frame sent to the end
}

// h2Raw opens an h2 connection to s, sends the preface and SETTINGS, and
// returns the framer, a channel that delivers what was read once the
// connection ends (or after 8 s) and one that delivers the :status of
// stream 1's response.
func h2Raw(t *testing.T, s *served) (*http2.Framer, <-chan h2Answer, <-chan string) {
	t.Helper()
	_, fr, out, status := h2RawConn(t, s)
	return fr, out, status
}

// h2RawConn is h2Raw with the connection itself, for bytes written
// outside frames' order or pace.
func h2RawConn(t *testing.T, s *served) (*tls.Conn, *http2.Framer, <-chan h2Answer, <-chan string) {
	t.Helper()
	c := s.dialTLS(t, appHost, "h2")
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatal("h2 not negotiated")
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The server's SETTINGS is acknowledged now, so that no frame of the
	// client's comes between those a case sends.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	} else if _, ok := f.(*http2.SettingsFrame); !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	out := make(chan h2Answer, 1)
	status := make(chan string, 1)
	start := time.Now()
	go func() {
		var a h2Answer
		_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				a.closed = !isTimeout(err)
				a.after = time.Since(start)
				out <- a
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				a.goaway = f
			case *http2.MetaHeadersFrame:
				if f.StreamID == 1 && a.status == "" {
					a.status = f.PseudoValue("status")
					status <- a.status
				}
			}
		}
	}()
	return c, fr, out, status
}

// h2Block is the HPACK block of a GET of path with extra header fields.
func h2Block(path string, extra ...hpack.HeaderField) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", appHost}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, f := range extra {
		_ = enc.WriteField(f)
	}
	return b.Bytes()
}

// h2Member runs one member on a fresh raw HTTP/2 connection to s (h2Raw):
// send writes its frames; with code 0 stream 1 must be answered 200, and
// otherwise the connection must end with GOAWAY code within within. It
// returns what was read.
func h2Member(t *testing.T, s *served, send func(*http2.Framer) error, code http2.ErrCode, within time.Duration) h2Answer {
	t.Helper()
	fr, answer, status := h2Raw(t, s)
	werr := make(chan error, 1)
	go func() { werr <- send(fr) }()
	if code == 0 {
		select {
		case a := <-answer:
			t.Fatalf("connection ended (GOAWAY %v) before a response", a.goaway)
		case st := <-status:
			if st != "200" {
				t.Errorf("status %s, want 200", st)
			}
			return h2Answer{status: st}
		case <-time.After(5 * time.Second):
			t.Fatal("no response")
		}
	}
	a := <-answer
	if !a.closed {
		t.Fatalf("connection still open after %v", a.after)
	}
	if a.after > within {
		t.Errorf("closed after %v, want within %v", a.after, within)
	}
	if a.goaway == nil {
		t.Fatalf("closed after %v without GOAWAY", a.after)
	}
	if a.goaway.ErrCode != code {
		t.Errorf("GOAWAY %v, want %v", a.goaway.ErrCode, code)
	}
	if err := <-werr; err != nil && !errors.Is(err, io.EOF) {
		t.Logf("write: %v", err)
	}
	return a
}

// TestRegression_HTTP2HeaderBlock: an HTTP/2 header block (HEADERS and
// its CONTINUATION frames) that is not finished within the header
// timeout, that runs past the cap on frames or bytes (CVE-2023-45288),
// that is broken by another frame, or that carries a connection-specific
// field (RFC 9113 §8.2.2), gets GOAWAY with its code and the connection
// closed, and nothing reaches the upstream; a large block in a few
// frames, and a normal client, are served.
func TestRegression_HTTP2HeaderBlock(t *testing.T) {
	t.Parallel()
	// quick has a short header timeout, for the member that waits for it;
	// every other member runs on slow, whose header timeout is far beyond
	// the time it allows, so only the cap or the order rule can close it.
	const headerTimeout = 300 * time.Millisecond
	quick := serveTestGateway(t, func(c *config.Config, _ *Options) {
		c.Server.ReadHeaderTimeout = headerTimeout
	})
	slow := serveTestGateway(t, func(c *config.Config, _ *Options) {
		c.Server.ReadHeaderTimeout = time.Minute
	})
	start := h2Block("/public/h2block")
	cases := []struct {
		name string
		s    *served
		send func(fr *http2.Framer) error
		code http2.ErrCode // the GOAWAY expected; 0: served (200)
		// within bounds the time to the connection's end.
		within time.Duration
	}{
		{"headers then silence", quick, func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start, EndStream: true})
		}, http2.ErrCodeEnhanceYourCalm, headerTimeout + 2*time.Second},
		{"endless tiny continuation", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start, EndStream: true}); err != nil {
				return err
			}
			for i := 0; i < 100000; i++ {
				if err := fr.WriteContinuation(1, false, nil); err != nil {
					return err
				}
			}
			return nil
		}, http2.ErrCodeEnhanceYourCalm, 3 * time.Second},
		{"endless one-byte continuation", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start, EndStream: true}); err != nil {
				return err
			}
			// A literal field whose value never ends, a byte a frame.
			if err := fr.WriteContinuation(1, false, []byte{0x40, 0x01, 'x', 0x7f, 0xff, 0x7f}); err != nil {
				return err
			}
			for i := 0; i < 100000; i++ {
				if err := fr.WriteContinuation(1, false, []byte{'a'}); err != nil {
					return err
				}
			}
			return nil
		}, http2.ErrCodeEnhanceYourCalm, 3 * time.Second},
		{"one huge continuation", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start, EndStream: true}); err != nil {
				return err
			}
			return fr.WriteContinuation(1, true, bytes.Repeat([]byte{0x82}, 256<<10))
		}, http2.ErrCodeEnhanceYourCalm, 3 * time.Second},
		{"continuation on another stream", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start[:2], EndStream: true}); err != nil {
				return err
			}
			return fr.WriteContinuation(3, true, start[2:])
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"ping inside the block", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start[:2], EndStream: true}); err != nil {
				return err
			}
			if err := fr.WritePing(false, [8]byte{1}); err != nil {
				return err
			}
			return fr.WriteContinuation(1, true, start[2:])
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"headers of another stream inside the block", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start[:2], EndStream: true}); err != nil {
				return err
			}
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: start, EndStream: true, EndHeaders: true})
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"continuation with no block", slow, func(fr *http2.Framer) error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: start, EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return fr.WriteContinuation(1, true, nil)
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"transfer-encoding in the block", slow, func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
				BlockFragment: h2Block("/public/h2smuggle", hpack.HeaderField{Name: "transfer-encoding", Value: "chunked"})})
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"connection in a continuation", slow, func(fr *http2.Framer) error {
			block := h2Block("/public/h2smuggle", hpack.HeaderField{Name: "connection", Value: "x-telegate-assertion"})
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:len(block)/2], EndStream: true}); err != nil {
				return err
			}
			return fr.WriteContinuation(1, true, block[len(block)/2:])
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"te other than trailers", slow, func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
				BlockFragment: h2Block("/public/h2smuggle", hpack.HeaderField{Name: "te", Value: "gzip"})})
		}, http2.ErrCodeProtocol, 3 * time.Second},
		{"te trailers is served", slow, func(fr *http2.Framer) error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
				BlockFragment: h2Block("/public/h2block", hpack.HeaderField{Name: "te", Value: "trailers"})})
		}, 0, 0},
		{"large block in a few frames is served", slow, func(fr *http2.Framer) error {
			block := h2Block("/public/h2block", hpack.HeaderField{Name: "x-large", Value: strings.Repeat("v", 20<<10)})
			n := len(block) / 4
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:n], EndStream: true}); err != nil {
				return err
			}
			for i := 1; i < 4; i++ {
				end := min((i+1)*n, len(block))
				if i == 3 {
					end = len(block)
				}
				if err := fr.WriteContinuation(1, i == 3, block[i*n:end]); err != nil {
					return err
				}
			}
			return nil
		}, 0, 0},
	}
	// The group returns once its parallel members have.
	t.Run("members", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				a := h2Member(t, tc.s, tc.send, tc.code, tc.within)
				// A stray CONTINUATION after a whole, well-formed block:
				// stream 1 may be answered before the frame after it is
				// read (RFC 9113 §6.10 makes that frame the connection's
				// error, not the stream's).
				if tc.code != 0 && a.status != "" && tc.name != "continuation with no block" {
					t.Errorf("stream 1 answered %s", a.status)
				}
			})
		}
	})
	// No malformed request reached the upstream.
	for _, r := range append(quick.rec.all(), slow.rec.all()...) {
		if strings.Contains(r.RequestURI, "h2smuggle") {
			t.Errorf("the upstream received %s", r.RequestURI)
		}
	}
	// A normal HTTP/2 client is still served.
	h2Served(t, slow, "/public/h2block")
}

// h2Served requires an ordinary HTTP/2 client to be served path by s.
func h2Served(t *testing.T, s *served, path string) {
	t.Helper()
	resp, err := s.client(s.addr).Get("https://" + appHost + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("an ordinary HTTP/2 client: %s %d", resp.Proto, resp.StatusCode)
	}
}

// TestRegression_HTTP2ControlFrameFlood: a client that sends control
// frames as fast as it can — PINGs or SETTINGS that each make the server
// write an acknowledgement, PRIORITY frames, empty DATA frames — while
// reading every answer (so the HTTP/2 server's own queue limit never
// trips) gets GOAWAY ENHANCE_YOUR_CALM and its connection closed, instead
// of keeping the server busy for every other client; a client sending a
// few of them, and another connection, are served.
func TestRegression_HTTP2ControlFrameFlood(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	const flood = 5 * h2ControlFrameBurst
	post := func(fr *http2.Framer) error {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", appHost}, {":path", "/public/h2flood"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b.Bytes(), EndHeaders: true})
	}
	repeat := func(n int, send func(fr *http2.Framer, i int) error) func(fr *http2.Framer) error {
		return func(fr *http2.Framer) error {
			for i := 0; i < n; i++ {
				if err := send(fr, i); err != nil {
					return err
				}
			}
			return nil
		}
	}
	ping := func(fr *http2.Framer, i int) error { return fr.WritePing(false, [8]byte{byte(i)}) }
	cases := []h2Flood{
		{"PING flood", repeat(flood, ping), false},
		{"SETTINGS flood", repeat(flood, func(fr *http2.Framer, _ int) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}), false},
		{"empty SETTINGS flood", repeat(flood, func(fr *http2.Framer, _ int) error { return fr.WriteSettings() }), false},
		{"PRIORITY flood", repeat(flood, func(fr *http2.Framer, i int) error {
			return fr.WritePriority(uint32(2*i+3), http2.PriorityParam{StreamDep: 1, Weight: 10})
		}), false},
		{"empty DATA flood", func(fr *http2.Framer) error {
			if err := post(fr); err != nil {
				return err
			}
			return repeat(flood, func(fr *http2.Framer, _ int) error { return fr.WriteData(1, false, nil) })(fr)
		}, false},
		{"PINGs and SETTINGS mixed", repeat(flood, func(fr *http2.Framer, i int) error {
			if i%2 == 0 {
				return ping(fr, i)
			}
			return fr.WriteSettings()
		}), false},
		{"a few PINGs, then a request", func(fr *http2.Framer) error {
			if err := repeat(20, ping)(fr); err != nil {
				return err
			}
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Block("/public/h2flood"), EndStream: true, EndHeaders: true})
		}, true},
	}
	h2Floods(t, s, cases)
	// Nothing of the floods reached the upstream; another connection is
	// served.
	for _, r := range s.rec.all() {
		if r.Method == "POST" && strings.Contains(r.RequestURI, "h2flood") {
			t.Errorf("the upstream received %s %s", r.Method, r.RequestURI)
		}
	}
	h2Served(t, s, "/public/h2flood")
}

// TestRegression_HTTP2SlowHeaderBlock: a header block whose frames are
// whole but whose bytes come slowly — one HEADERS frame with END_HEADERS,
// or the last CONTINUATION of a block, its payload a byte at a time — is
// refused with GOAWAY ENHANCE_YOUR_CALM once the header timeout has
// passed, like a block whose END_HEADERS never comes; nothing reaches the
// upstream, and a normal client is served.
func TestRegression_HTTP2SlowHeaderBlock(t *testing.T) {
	t.Parallel()
	const headerTimeout = 500 * time.Millisecond
	s := serveTestGateway(t, func(c *config.Config, _ *Options) {
		c.Server.ReadHeaderTimeout = headerTimeout
	})
	frame := func(typ http2.FrameType, flags http2.Flags, payload []byte) []byte {
		var b bytes.Buffer
		_ = http2.NewFramer(&b, nil).WriteRawFrame(typ, flags, 1, payload)
		return b.Bytes()
	}
	block := h2Block("/public/h2slow", hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("p", 64)})
	endStream, endHeaders := http2.Flags(http2.FlagHeadersEndStream), http2.Flags(http2.FlagHeadersEndHeaders)
	cases := []struct {
		name  string
		whole []byte // sent at once
		slow  []byte // sent a byte every 100 ms
	}{
		{"one HEADERS frame, payload dribbled", nil, frame(http2.FrameHeaders, endStream|endHeaders, block)},
		{"one HEADERS frame, header whole, payload dribbled", frame(http2.FrameHeaders, endStream|endHeaders, block)[:9], frame(http2.FrameHeaders, endStream|endHeaders, block)[9:]},
		{"last CONTINUATION dribbled", frame(http2.FrameHeaders, endStream, block[:10]), frame(http2.FrameContinuation, endHeaders, block[10:])},
		{"last CONTINUATION, header whole, payload dribbled", append(frame(http2.FrameHeaders, endStream, block[:10]), frame(http2.FrameContinuation, endHeaders, block[10:])[:9]...), frame(http2.FrameContinuation, endHeaders, block[10:])[9:]},
	}
	t.Run("members", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c, _, answer, _ := h2RawConn(t, s)
				if _, err := c.Write(tc.whole); err != nil {
					t.Fatal(err)
				}
				go func() {
					for _, b := range tc.slow {
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
				a := <-answer
				if !a.closed || a.goaway == nil {
					t.Fatalf("after %v: closed %v, GOAWAY %v", a.after, a.closed, a.goaway)
				}
				if a.goaway.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", a.goaway.ErrCode)
				}
				if a.after > headerTimeout+2*time.Second {
					t.Errorf("closed after %v, header timeout %v", a.after, headerTimeout)
				}
				if a.status != "" {
					t.Errorf("stream 1 answered %s", a.status)
				}
			})
		}
	})
	for _, r := range s.rec.all() {
		if strings.Contains(r.RequestURI, "h2slow") {
			t.Errorf("the upstream received %s", r.RequestURI)
		}
	}
	h2Served(t, s, "/public/h2block")
}

// TestRegression_HTTP2ResetFlood: a client whose frames make the server
// write a RST_STREAM each (CVE-2019-9514) — empty or one-byte DATA frames
// on a stream already closed, requests the server refuses as malformed —
// gets GOAWAY ENHANCE_YOUR_CALM and its connection closed; a client whose
// few uploads are cut short is served.
func TestRegression_HTTP2ResetFlood(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	const flood = 5 * h2ControlFrameBurst
	get := func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Block("/public/h2reset"), EndStream: true, EndHeaders: true})
	}
	onClosed := func(payload []byte, end bool) func(fr *http2.Framer) error {
		return func(fr *http2.Framer) error {
			if err := get(fr); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond) // stream 1 answered and closed
			for i := 0; i < flood; i++ {
				if err := fr.WriteData(1, end, payload); err != nil {
					return err
				}
			}
			return nil
		}
	}
	cases := []h2Flood{
		{"empty DATA ending a closed stream", onClosed(nil, true), false},
		{"one-byte DATA on a closed stream", onClosed([]byte{'x'}, false), false},
		{"one-byte DATA ending a closed stream", onClosed([]byte{'x'}, true), false},
		{"malformed requests", func(fr *http2.Framer) error {
			for i := 0; i < flood; i++ {
				// An upper-case field name: a malformed request, reset
				// by the server (RFC 9113 §8.2.1).
				bad := h2Block("/public/h2reset", hpack.HeaderField{Name: "X-Upper", Value: "1"})
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: bad, EndStream: true, EndHeaders: true}); err != nil {
					return err
				}
			}
			return nil
		}, false},
		{"a few DATA frames on a closed stream, then a request", func(fr *http2.Framer) error {
			if err := get(fr); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			for i := 0; i < 20; i++ {
				if err := fr.WriteData(1, true, nil); err != nil {
					return err
				}
			}
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h2Block("/public/h2reset"), EndStream: true, EndHeaders: true})
		}, true},
	}
	h2Floods(t, s, cases)
	h2Served(t, s, "/public/h2reset")
}

// h2Flood is a member of a flood test: what it sends, and whether stream 1
// must be served (otherwise the connection must get GOAWAY
// ENHANCE_YOUR_CALM and be closed within 3 s).
type h2Flood struct {
	name   string
	send   func(fr *http2.Framer) error
	served bool
}

// h2Floods runs every member on a fresh connection to s, in parallel; it
// returns once they have.
func h2Floods(t *testing.T, s *served, cases []h2Flood) {
	t.Run("members", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				code := http2.ErrCodeEnhanceYourCalm
				if tc.served {
					code = 0
				}
				h2Member(t, s, tc.send, code, 3*time.Second)
			})
		}
	})
}

// TestRegression_HTTP2LongDecodedField: a header block within
// server.max_header_bytes on the wire whose Huffman-coded value decodes
// past the cap (RFC 7541 §5.2) is a header list too large — answered 431
// on its stream, the connection kept — not a compression error; a value
// within the cap is served, and one past the HTTP/2 server's own decoder
// limit gets COMPRESSION_ERROR from both alike.
func TestRegression_HTTP2LongDecodedField(t *testing.T) {
	t.Parallel()
	s := serveTestGateway(t, nil)
	maxHead := defaulted(testConfig(t, "http://127.0.0.1:1")).Server.MaxHeaderBytes
	cases := []struct {
		name   string
		n      int    // decoded length of the value
		status string // "": the connection is refused
	}{
		{"within the maxHead", maxHead - 8<<10, "200"},
		{"just past the maxHead", maxHead + 100, "431"},
		{"past the maxHead by 200", maxHead + 200, "431"},
		{"at the server's string limit", maxHead + h2FieldOverhead, "431"},
		{"past the server's string limit", maxHead + h2FieldOverhead + 2000, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			enc := hpack.NewEncoder(&b)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", appHost}, {":path", "/public/h2long"}, {"x-long", strings.Repeat("a", tc.n)}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			block := b.Bytes()
			if len(block) > maxHead {
				t.Fatalf("the block is %d bytes on the wire, past the maxHead %d", len(block), maxHead)
			}
			send := func(fr *http2.Framer) error {
				const frame = 16 << 10
				first := min(frame, len(block))
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:first], EndStream: true, EndHeaders: first == len(block)}); err != nil {
					return err
				}
				for off := first; off < len(block); off += frame {
					end := min(off+frame, len(block))
					if err := fr.WriteContinuation(1, end == len(block), block[off:end]); err != nil {
						return err
					}
				}
				return nil
			}
			fr, answer, status := h2Raw(t, s)
			werr := make(chan error, 1)
			go func() { werr <- send(fr) }()
			if tc.status == "" {
				a := <-answer
				if a.goaway == nil || a.goaway.ErrCode != http2.ErrCodeCompression {
					t.Errorf("GOAWAY %v, want COMPRESSION_ERROR", a.goaway)
				}
				return
			}
			select {
			case st := <-status:
				if st != tc.status {
					t.Errorf("status %s, want %s", st, tc.status)
				}
			case a := <-answer:
				t.Errorf("connection ended (GOAWAY %v) before a response", a.goaway)
			case <-time.After(5 * time.Second):
				t.Error("no response")
			}
			if err := <-werr; err != nil {
				t.Error(err)
			}
		})
	}
}
