package relay

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// recordingConn records every datagram a relay socket forwards, both ways.
type recordingConn struct {
	net.PacketConn
	rec *recorder
}

type recorder struct {
	mu        sync.Mutex
	datagrams [][]byte
}

func (r *recorder) add(p []byte) {
	r.mu.Lock()
	r.datagrams = append(r.datagrams, append([]byte(nil), p...))
	r.mu.Unlock()
}

func (c *recordingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.rec.add(p[:n])
	}
	return n, a, err
}

func (c *recordingConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.rec.add(p)
	return c.PacketConn.WriteTo(p, a)
}

// TestWebRTCThroughRelay: two WebRTC peers restricted to relay candidates
// connect through the relay, exchange a video track and, on the data
// channel as the web client uses it (negotiated id 0, visit.js), a chat
// message and a file in 64 KiB chunks; the relay only ever sees
// ciphertext: the plaintext canary never appears in a forwarded
// datagram, SRTP does.
func TestWebRTCThroughRelay(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	f := newFixture(t, nil, func(s *Server) {
		s.wrapRelay = func(pc net.PacketConn) net.PacketConn { return &recordingConn{PacketConn: pc, rec: rec} }
	})
	f.s.Admit("visit-w", "clinician")
	f.s.Admit("visit-w", "patient")

	canary := []byte("CANARY-plaintext-PHI-0123456789")
	newPeer := func(part string) *webrtc.PeerConnection {
		se := webrtc.SettingEngine{}
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		// Loopback is the only interface the filter keeps; ICE skips it
		// unless told otherwise.
		se.SetIncludeLoopbackCandidate(true)
		api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
		cred := f.s.Credential("visit-w", part)
		pc, err := api.NewPeerConnection(webrtc.Configuration{
			ICEServers: []webrtc.ICEServer{{
				URLs:       []string{fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", f.addr.Port)},
				Username:   cred.Username,
				Credential: cred.Password,
			}},
			ICETransportPolicy: webrtc.ICETransportPolicyRelay,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc
	}
	offerer, answerer := newPeer("clinician"), newPeer("patient")

	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "visit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offerer.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	// The web client's channel: negotiated on both sides, id 0.
	negotiated, id := true, uint16(0)
	dcInit := &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &id}
	dc, err := offerer.CreateDataChannel("telegate", dcInit)
	if err != nil {
		t.Fatal(err)
	}
	answerDC, err := answerer.CreateDataChannel("telegate", dcInit)
	if err != nil {
		t.Fatal(err)
	}
	// A file of 3 chunks and a bit, the canary all through it.
	file := bytes.Repeat(append([]byte("file-"), canary...), 3*65536/36+100)
	gotVideo := make(chan struct{})
	gotMsg := make(chan string, 1)
	gotFile := make(chan []byte, 1)
	var videoOnce sync.Once
	answerer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if bytes.Contains(pkt.Payload, canary) {
				videoOnce.Do(func() { close(gotVideo) })
			}
		}
	})
	var received []byte // the answerer's file so far (its callbacks run one at a time)
	answerDC.OnMessage(func(m webrtc.DataChannelMessage) {
		switch {
		case !m.IsString:
			received = append(received, m.Data...)
		case bytes.Contains(m.Data, []byte(`"t":"chat"`)):
			select {
			case gotMsg <- string(m.Data):
			default:
			}
		case bytes.Contains(m.Data, []byte(`"t":"file-end"`)):
			select {
			case gotFile <- received:
			default:
			}
		}
	})
	var open atomic.Bool
	dc.OnOpen(func() {
		open.Store(true)
		_ = dc.SendText(`{"t":"chat","text":"hello from the clinician ` + string(canary) + `"}`)
		_ = dc.SendText(fmt.Sprintf(`{"t":"file","name":"notes.txt","size":%d,"type":"text/plain"}`, len(file)))
		for off := 0; off < len(file); off += 65536 {
			_ = dc.Send(file[off:min(off+65536, len(file))])
		}
		_ = dc.SendText(`{"t":"file-end"}`)
	})

	// Signal: offer and answer with every candidate gathered.
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gather = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gather
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		frame := append(append([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, canary...), canary...)
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_ = track.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
			}
		}
	}()

	timeout := time.After(15 * time.Second)
	select {
	case <-gotVideo:
	case <-timeout:
		t.Fatalf("no video through the relay (ICE %s / %s)", offerer.ICEConnectionState(), answerer.ICEConnectionState())
	}
	select {
	case msg := <-gotMsg:
		if !bytes.Contains([]byte(msg), canary) {
			t.Fatalf("data channel message %q", msg)
		}
	case <-timeout:
		t.Fatal("no data channel message through the relay")
	}
	select {
	case got := <-gotFile:
		if !bytes.Equal(got, file) {
			t.Fatalf("the file arrived as %d bytes, want %d", len(got), len(file))
		}
	case <-timeout:
		t.Fatal("no file through the relay")
	}

	for name, pc := range map[string]*webrtc.PeerConnection{"offerer": offerer, "answerer": answerer} {
		pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s: selected pair %s/%s, want relay/relay", name, pair.Local.Typ, pair.Remote.Typ)
		}
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	srtp := 0
	for _, d := range rec.datagrams {
		if bytes.Contains(d, canary) {
			t.Fatalf("the relay forwarded the plaintext canary: %x", d)
		}
		// RTP version 2 with a dynamic payload type: SRTP (RFC 3711 keeps
		// the RTP header in clear and encrypts the payload).
		if len(d) > 12 && d[0]>>6 == 2 && d[1]&0x7f >= 96 {
			srtp++
		}
	}
	if srtp == 0 {
		t.Fatalf("no SRTP among %d forwarded datagrams", len(rec.datagrams))
	}
	t.Logf("relay forwarded %d datagrams, %d SRTP, no plaintext", len(rec.datagrams), srtp)
}
