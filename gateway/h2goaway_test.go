package gateway

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestRegression_HTTP2RefusalGoAwayBetweenFrames: the frame budget's own
// GOAWAY goes out between two of the server's frames, never inside one,
// however the server splits its frames across writes and wherever the
// refusal falls — before any write, inside a frame header, inside a
// payload, exactly at a boundary — never before the server's SETTINGS
// (RFC 9113 §3.4), and carries the highest stream the server was given
// (never above the server's own GOAWAY's, §6.8) and the refusal's code;
// every frame the server wrote reaches the client intact and in order.
func TestRegression_HTTP2RefusalGoAwayBetweenFrames(t *testing.T) {
	t.Parallel()
	// The server's output: SETTINGS, HEADERS of stream 5, DATA frames of
	// several sizes, a PING ACK.
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: []byte{0x88}, EndHeaders: true})
	for _, n := range []int{16384, 1, 0, 9000, 16384} {
		_ = fr.WriteData(5, false, bytes.Repeat([]byte{'d'}, n))
	}
	_ = fr.WritePing(true, [8]byte{7})
	frames := out.Bytes()
	// The same output with the server's own GOAWAY (last stream 3) in it.
	var own bytes.Buffer
	ofr := http2.NewFramer(&own, nil)
	_ = ofr.WriteSettings()
	_ = ofr.WriteGoAway(3, http2.ErrCodeProtocol, []byte("debug"))
	_ = ofr.WriteData(5, false, bytes.Repeat([]byte{'d'}, 100))
	cert, pool := testCert(t, appHost)
	cases := []struct {
		name   string
		chunk  int    // the server's write size
		at     int    // bytes written when the refusal comes (-1: before any)
		frames []byte // the server's output (nil: frames)
		last   uint32 // the GOAWAY's last-stream-id (0: 5)
	}{
		{"before any write", 4096, -1, nil, 0},
		{"inside a frame header", 3, 12, nil, 0},
		{"inside a payload, one write per frame", 1 << 20, 0, nil, 0},
		{"inside a payload, small writes", 1000, 5000, nil, 0},
		{"inside a payload, odd writes", 4093, 20000, nil, 0},
		{"at a boundary", 15, 15, nil, 0},
		{"inside the last frame", 7, len(frames) - 3, nil, 0},
		{"after the server's own GOAWAY", 5, own.Len() - 50, own.Bytes(), 3},
	}
	for _, tc := range cases {
		if tc.frames == nil {
			tc.frames, tc.last = frames, 5
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, cc := net.Pipe()
			srv := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{cert}})
			cli := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: appHost})
			t.Cleanup(func() { sc.Close(); cc.Close() })
			f := newH2Conn(srv, &connInfo{}, nil, h2BlockLimits{})
			f.lastID.Store(5)
			refuse := func() {
				f.mu.Lock()
				f.deny(http2.ErrCodeEnhanceYourCalm)
				f.mu.Unlock()
			}
			// The server's writes: frames cut every chunk bytes and at the
			// refusal's offset; the refusal comes after the write ending
			// there.
			var cuts []int
			for off := tc.chunk; off < len(tc.frames); off += tc.chunk {
				cuts = append(cuts, off)
			}
			if tc.at > 0 {
				cuts = append(cuts, tc.at)
			}
			slices.Sort(cuts)
			cuts = append(slices.Compact(cuts), len(tc.frames))
			werr := make(chan error, 1)
			go func() {
				if err := srv.Handshake(); err != nil {
					werr <- err
					return
				}
				if tc.at <= 0 {
					refuse()
				}
				prev := 0
				for _, c := range cuts {
					if _, err := f.Write(tc.frames[prev:c]); err != nil {
						werr <- err
						return
					}
					if c == tc.at {
						refuse()
					}
					prev = c
				}
				werr <- nil
			}()
			_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
			rf := http2.NewFramer(nil, cli)
			rf.SetMaxReadFrameSize(1 << 20)
			var got []string
			want := frameList(t, tc.frames)
			for len(got) < len(want)+1 {
				fm, err := rf.ReadFrame()
				if err != nil {
					t.Fatalf("after %d frames %v: %v", len(got), got, err)
				}
				if ga, ok := fm.(*http2.GoAwayFrame); ok && ga.ErrCode == http2.ErrCodeEnhanceYourCalm {
					if ga.LastStreamID != tc.last || ga.StreamID != 0 {
						t.Errorf("GOAWAY last stream %d on stream %d, want last stream %d on 0", ga.LastStreamID, ga.StreamID, tc.last)
					}
					got = append(got, "GOAWAY")
					continue
				}
				got = append(got, describe(fm))
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			var rest []string
			for _, g := range got {
				if g != "GOAWAY" {
					rest = append(rest, g)
				}
			}
			if fmt.Sprint(rest) != fmt.Sprint(want) {
				t.Errorf("the server's frames arrived as %v, want %v", rest, want)
			}
			// The GOAWAY follows the frame the refusal fell in (none
			// when it fell before any byte or at a boundary).
			// The server's SETTINGS comes first in any case (§3.4).
			before, end := 0, 0
			for _, n := range frameLengths(tc.frames) {
				if end >= max(tc.at, 1) {
					break
				}
				end += n
				before++
			}
			if i := slices.Index(got, "GOAWAY"); i != before {
				t.Errorf("GOAWAY after %d of the server's frames, want after %d: %v", i, before, got)
			}
		})
	}
}

// frameList describes each frame of b.
func frameList(t *testing.T, b []byte) []string {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(1 << 20)
	var out []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return out
		}
		out = append(out, describe(f))
	}
}

// frameLengths is the length of each frame of b, header included.
func frameLengths(b []byte) []int {
	var out []int
	for len(b) >= 9 {
		n := 9 + (int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
		out = append(out, n)
		b = b[n:]
	}
	return out
}

func describe(f http2.Frame) string {
	h := f.Header()
	return fmt.Sprintf("%v/%d/%d", h.Type, h.StreamID, h.Length)
}
