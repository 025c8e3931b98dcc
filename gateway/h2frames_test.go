package gateway

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/time/rate"
)

// TestH2FrameBudgetCountsHeadersFrames: the frame scanner spends one token
// per HEADERS frame however the bytes are split across reads, passes every
// other frame, and stops exactly at the start of the first HEADERS frame
// past the budget, none of whose bytes it passes.
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
		for off := 0; off < len(all) && !f.denied; off = min(off+chunk, len(all)) {
			f.scan(all[off:min(off+chunk, len(all))])
		}
		if !f.denied {
			t.Errorf("chunk %d: not denied after %d HEADERS frames", chunk, budget+2)
			continue
		}
		// Everything before the refused frame is passed, nothing of it.
		if !bytes.Equal(f.out, all[:cut]) {
			t.Errorf("chunk %d: passed %d bytes, the refused HEADERS frame starts at %d", chunk, len(f.out), cut)
		}
	}
}

// TestH2SettingsRewrite: a SETTINGS frame that names a parameter twice
// is passed with each named once, at its last value, whatever the reads'
// sizes; one without repeats, with an invalid value or with a repeated
// SETTINGS_HEADER_TABLE_SIZE is passed as it is.
func TestH2SettingsRewrite(t *testing.T) {
	t.Parallel()
	frame := func(ss ...http2.Setting) []byte {
		var b bytes.Buffer
		_ = http2.NewFramer(&b, nil).WriteSettings(ss...)
		return b.Bytes()
	}
	iws, mcs, hts := http2.SettingInitialWindowSize, http2.SettingMaxConcurrentStreams, http2.SettingHeaderTableSize
	cases := []struct {
		in, want []byte
	}{
		{frame(http2.Setting{ID: iws, Val: 100}, http2.Setting{ID: iws, Val: 1}), frame(http2.Setting{ID: iws, Val: 1})},
		{frame(http2.Setting{ID: iws, Val: 100}, http2.Setting{ID: mcs, Val: 5}, http2.Setting{ID: iws, Val: 1}),
			frame(http2.Setting{ID: mcs, Val: 5}, http2.Setting{ID: iws, Val: 1})},
		{frame(http2.Setting{ID: iws, Val: 100}, http2.Setting{ID: mcs, Val: 5}), frame(http2.Setting{ID: iws, Val: 100}, http2.Setting{ID: mcs, Val: 5})},
		{frame(http2.Setting{ID: hts, Val: 100}, http2.Setting{ID: hts, Val: 4096}), frame(http2.Setting{ID: hts, Val: 100}, http2.Setting{ID: hts, Val: 4096})},
		{frame(http2.Setting{ID: iws, Val: 1 << 31}, http2.Setting{ID: iws, Val: 1}), frame(http2.Setting{ID: iws, Val: 1 << 31}, http2.Setting{ID: iws, Val: 1})},
	}
	for i, tc := range cases {
		in := append([]byte(http2.ClientPreface), tc.in...)
		want := append([]byte(http2.ClientPreface), tc.want...)
		for _, chunk := range []int{1, 5, 9, 10, len(in)} {
			f := &h2FrameBudget{preface: len(http2.ClientPreface)}
			for off := 0; off < len(in); off += chunk {
				f.scan(in[off:min(off+chunk, len(in))])
			}
			if !bytes.Equal(f.out, want) {
				t.Errorf("case %d, chunk %d: passed %x, want %x", i, chunk, f.out, want)
			}
		}
	}
}

// FuzzH2FrameScanner: whatever a client sends after the preface, split
// however, the scanner does not panic, never passes more than it read
// (a SETTINGS rewrite only shortens), and passes the same bytes whatever
// the split — up to a refusal inside a frame's payload, which is found
// where the read ends, so one of the two is then a prefix of the other.
func FuzzH2FrameScanner(f *testing.F) {
	var seed bytes.Buffer
	fr := http2.NewFramer(&seed, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x86}, EndHeaders: false})
	_ = fr.WriteContinuation(1, true, []byte{0x84})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x40, 0x02, 't', 'e', 0x04, 'g', 'z', 'i', 'p'}, EndHeaders: true, PadLength: 3})
	f.Add(seed.Bytes(), uint8(7))
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 0, 1}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		in := append([]byte(http2.ClientPreface), data...)
		run := func(chunk int) ([]byte, bool) {
			s := &h2FrameBudget{preface: len(http2.ClientPreface), limits: h2BlockLimits{maxBytes: 1 << 10}}
			for off := 0; off < len(in) && !s.denied; off += chunk {
				s.scan(in[off:min(off+chunk, len(in))])
			}
			return s.out, s.denied
		}
		whole, denied := run(len(in))
		if len(whole) > len(in) {
			t.Fatalf("passed %d bytes of %d", len(whole), len(in))
		}
		split, splitDenied := run(int(cut%32) + 1)
		if denied != splitDenied {
			t.Fatalf("refused %v in one read, %v in split reads", denied, splitDenied)
		}
		n := min(len(split), len(whole))
		if !denied && !bytes.Equal(split, whole) || !bytes.Equal(split[:n], whole[:n]) {
			t.Fatalf("split reads passed %x, one read %x", split, whole)
		}
	})
}

// BenchmarkH2FrameScanner: the scanner's cost for one browser-like GET
// (HEADERS of a dozen fields, HPACK-encoded as a browser does) and for a
// 16 KiB DATA frame, per frame.
func BenchmarkH2FrameScanner(b *testing.B) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "GET"}, {":scheme", "https"}, {":authority", appHost}, {":path", "/clinic/patients/4711?tab=notes"},
		{"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
		{"accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, {"accept-language", "en-GB,en;q=0.9"},
		{"accept-encoding", "gzip, deflate, br, zstd"}, {"cookie", "__Host-telegate=" + strings.Repeat("k", 43)},
		{"sec-fetch-site", "same-origin"}, {"sec-fetch-mode", "navigate"}, {"sec-fetch-dest", "document"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, bc := range []struct {
		name  string
		frame func(fr *http2.Framer, i uint32)
	}{
		{"headers", func(fr *http2.Framer, i uint32) {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2*i + 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		}},
		{"data16k", func(fr *http2.Framer, _ uint32) { _ = fr.WriteData(1, false, make([]byte, 16<<10)) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// The same connection throughout, as the server reads it; the
			// frames are made beforehand, a batch at a time.
			f := &h2FrameBudget{}
			var buf bytes.Buffer
			fr := http2.NewFramer(&buf, nil)
			const batch = 64
			for i := uint32(0); i < batch; i++ {
				bc.frame(fr, i)
			}
			frames := buf.Bytes()
			b.SetBytes(int64(len(frames) / batch))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				f.scan(frames)
				f.out = f.out[:0]
			}
		})
	}
}
