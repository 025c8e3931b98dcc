package gateway

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/time/rate"
)

// TestH2FrameBudgetCountsHeadersFrames: the frame scanner spends one token
// per HEADERS frame however the bytes are split across reads, passes every
// other frame, and stops exactly at the start of the first HEADERS frame
// past the budget.
func TestH2FrameBudgetCountsHeadersFrames(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	stream.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&stream, nil)
	_ = fr.WriteSettings()
	_ = fr.WritePing(false, [8]byte{1})
	var cut int // offset of the HEADERS frame past the budget
	const budget = 3
	for i := uint32(0); i < 5; i++ {
		if i == budget {
			cut = stream.Len()
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2*i + 1, BlockFragment: []byte{0x82, 0x86, 0x84}, EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(2*i+1, http2.ErrCodeCancel)
		_ = fr.WriteData(2*i+1, false, bytes.Repeat([]byte{'x'}, 20))
	}
	all := stream.Bytes()
	for _, chunk := range []int{1, 2, 7, 9, 10, 64, len(all)} {
		g := &h2Guard{lim: rate.NewLimiter(0, budget)}
		f := &h2FrameBudget{guard: g, preface: len(http2.ClientPreface)}
		passed := 0
		for off := 0; off < len(all); {
			end := min(off+chunk, len(all))
			n := f.scan(all[off:end])
			passed += n
			if n < end-off {
				break
			}
			off = end
		}
		if !f.denied {
			t.Errorf("chunk %d: not denied after %d HEADERS frames", chunk, budget+2)
			continue
		}
		// Bytes of the refused frame's header that arrived in earlier
		// reads have been passed on; never anything after its header.
		if passed < cut || passed > cut+8 {
			t.Errorf("chunk %d: passed %d bytes, the refused HEADERS frame starts at %d", chunk, passed, cut)
		}
	}
}
