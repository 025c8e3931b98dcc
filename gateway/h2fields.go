package gateway

import (
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 settings of the public listener that the frame scanner relies
// on (publicServer sets them on the HTTP/2 server).
const (
	// h2MaxFrameSize is the largest frame payload a client may send
	// (SETTINGS_MAX_FRAME_SIZE, RFC 9113 §6.5.2): the protocol's
	// default, so a larger frame is a FRAME_SIZE_ERROR (§4.2) and no
	// connection buffers more than 16 KiB of one frame.
	h2MaxFrameSize = 16 << 10
	// h2DecoderTableSize is the size of the server's HPACK dynamic table
	// (SETTINGS_HEADER_TABLE_SIZE, RFC 7541 §4.2): the protocol's
	// default. The scanner's own decoder has the same, so both read every
	// header block alike.
	h2DecoderTableSize = 4096
)

// h2Fields reads the header fields of every header block of an HTTP/2
// connection alongside the HTTP/2 server (the same HPACK decoder state:
// every block, in order, with the server's table size), so the frame
// scanner can refuse a request before the server has it. It refuses a
// block that carries a connection-specific field — Connection,
// Proxy-Connection, Keep-Alive, Transfer-Encoding, Upgrade — or TE with
// any value but "trailers" (RFC 9113 §8.2.2: the message is malformed,
// and an intermediary must not forward it, §8.1.1), as a connection
// error PROTOCOL_ERROR (§5.4.1 allows a stream error to be treated so),
// and one that does not decode as COMPRESSION_ERROR (§4.3).
type h2Fields struct {
	dec *hpack.Decoder
	bad bool // the block being read has a connection-specific field
	err bool // the decoder failed
}

// newH2Fields reads the blocks of a connection whose header cap is
// maxHeaderBytes (server.max_header_bytes; 0: none). Its decoder refuses
// a string longer than the HTTP/2 server's own decoder does: the cap plus
// h2FieldOverhead, which the server allows for HPACK's 32 bytes a field
// (RFC 7541 §4.1) on ten fields. A block whose strings are within that
// but whose header list is over the cap is the server's to answer (431),
// not a compression error.
func newH2Fields(maxHeaderBytes int) *h2Fields {
	h := &h2Fields{}
	h.dec = hpack.NewDecoder(h2DecoderTableSize, h.field)
	if maxHeaderBytes > 0 {
		h.dec.SetMaxStringLength(maxHeaderBytes + h2FieldOverhead)
	}
	return h
}

// h2FieldOverhead is what net/http's HTTP/2 server adds to MaxHeaderBytes
// for its header list size (SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113
// §6.5.2) and its decoder's longest string: 10 fields × 32 bytes.
const h2FieldOverhead = 10 * 32

// field is the decoder's emit function.
func (h *h2Fields) field(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		h.bad = true
	case "te":
		if f.Value != "trailers" {
			h.bad = true
		}
	}
}

// write decodes the next bytes of the block's fragment; false once the
// decoder failed.
func (h *h2Fields) write(p []byte) bool {
	if !h.err && len(p) > 0 {
		if _, err := h.dec.Write(p); err != nil {
			h.err = true
		}
	}
	return !h.err
}

// end ends a block: the refusal's code and false when it may not pass.
func (h *h2Fields) end() (http2.ErrCode, bool) {
	if !h.err && h.dec.Close() != nil {
		h.err = true
	}
	bad := h.bad
	h.bad = false
	switch {
	case h.err:
		return http2.ErrCodeCompression, false
	case bad:
		return http2.ErrCodeProtocol, false
	}
	return 0, true
}

// h2Frame is the frame whose payload the scanner is passing, as far as
// its header block fragment (RFC 9113 §6.2, §6.10) goes.
type h2Frame struct {
	fields     bool // HEADERS or CONTINUATION: the fragment is decoded
	endHeaders bool
	endsBlock  bool // the last frame of a header block the scanner times and caps
	length     int  // payload bytes
	pos        int  // payload bytes passed so far
	padded     bool // HEADERS with PADDED: the first byte is the pad length
	padLen     int
	fragStart  int // payload offset of the fragment (after pad length and priority)
}

// fragment returns the part of p (payload bytes from offset pos on) that
// is header block fragment, and advances pos.
func (fr *h2Frame) fragment(p []byte) []byte {
	if fr.padded && fr.pos == 0 && len(p) > 0 {
		fr.padLen = int(p[0])
	}
	start, end := fr.pos, fr.pos+len(p)
	fr.pos = end
	lo, hi := max(start, fr.fragStart), min(end, fr.length-fr.padLen)
	if lo >= hi {
		return nil
	}
	return p[lo-start : hi-start]
}

// maxSettingsRewrite is the largest SETTINGS payload the scanner gathers
// for h2Settings: 100 parameters (the HTTP/2 server refuses more).
const maxSettingsRewrite = 100 * 6

// h2Settings returns a client's SETTINGS frame (header and payload, RFC
// 9113 §6.5.1) with each parameter named once: the value of its last
// occurrence, in the order of the last occurrences. Processing the
// values in order (§6.5.3) leaves each parameter at its last value, so
// the frame means the same, and the HTTP/2 server, which refuses a
// parameter named twice, accepts it. A frame without repeats, with a
// value that is not allowed (§6.5.2, for the server to refuse), or that
// repeats SETTINGS_HEADER_TABLE_SIZE (each change of which the HPACK
// encoder must signal, RFC 7541 §4.2) is returned as it is.
func h2Settings(frame []byte) []byte {
	payload := frame[9:]
	if len(payload)%6 != 0 {
		return frame
	}
	type param struct {
		id  http2.SettingID
		val uint32
	}
	var ps []param
	last := map[http2.SettingID]int{}
	repeated := false
	for i := 0; i < len(payload); i += 6 {
		p := param{http2.SettingID(uint16(payload[i])<<8 | uint16(payload[i+1])),
			uint32(payload[i+2])<<24 | uint32(payload[i+3])<<16 | uint32(payload[i+4])<<8 | uint32(payload[i+5])}
		if (http2.Setting{ID: p.id, Val: p.val}).Valid() != nil {
			return frame
		}
		if _, ok := last[p.id]; ok {
			repeated = true
			if p.id == http2.SettingHeaderTableSize {
				return frame
			}
		}
		last[p.id] = len(ps)
		ps = append(ps, p)
	}
	if !repeated {
		return frame
	}
	out := append([]byte(nil), frame[:9]...)
	for i, p := range ps {
		if last[p.id] != i {
			continue
		}
		out = append(out, byte(p.id>>8), byte(p.id), byte(p.val>>24), byte(p.val>>16), byte(p.val>>8), byte(p.val))
	}
	n := len(out) - 9
	out[0], out[1], out[2] = byte(n>>16), byte(n>>8), byte(n)
	return out
}
