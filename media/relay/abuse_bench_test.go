package relay

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// BenchmarkRelayUnderAbuse measures a legitimate pair's relayed media
// while an attacker holds the relay's resources: a participant over UDP
// and one over TURN over TLS (RFC 8656 §3.1) send each other a 200-byte
// packet every 2 ms on a bound channel (turnwire.MeasurePair), one op
// being one packet each way. Besides ns/op (the pace, about 2 ms) it reports:
//
//   - loss_%: packets sent by the pair that never arrived (both ways);
//   - gap_p99_ms and gap_max_ms: the 99th percentile and the largest
//     inter-arrival time at the receivers, both ways pooled (the pace is
//     2 ms; a relay that pauses shows here);
//   - out/in_bytes (the UDP flood only): bytes the relay answered the
//     flood with over the bytes of the flood.
//
// Sub-benchmarks: quiet (no attacker), a stalled TLS reader (an admitted
// participant that never reads its TURN-over-TLS connection while another
// floods it with relayed data and it provokes answers, coming back as
// soon as it is closed), slot holders (unauthenticated TLS connections
// from many sources holding and renewing every relay.max_tls_conns slot),
// and an unauthenticated UDP flood (Binding and credential-less Allocate
// requests from several sources to the listening socket). Run with a
// fixed count, e.g. -benchtime 2000x, under flock (see docs/benchmarks.md,
// "Relay under abuse").
func BenchmarkRelayUnderAbuse(b *testing.B) {
	for _, sc := range []struct {
		name   string
		mod    func(*config.Relay)
		attack func(ctx context.Context, b *testing.B, f *fixture, tlsAddr string) (stats func() map[string]float64)
		// before: the attacker starts before the pair connects (it
		// holds what there is to hold when the pair comes).
		before bool
	}{
		{"quiet", nil, nil, false},
		{"stalled TLS reader", nil, stalledTLSReader, false},
		{"slot holders", func(c *config.Relay) { c.MaxTLSConns = 16 }, tlsSlotHolders, true},
		{"unauthenticated UDP flood", func(c *config.Relay) { c.UnauthenticatedRate = config.RateLimit{} }, udpFlood, false},
	} {
		b.Run(sc.name, func(b *testing.B) {
			f := newFixture(b, func(c *config.Relay) {
				c.BandwidthBitsPerSecond = 400_000_000
				if sc.mod != nil {
					sc.mod(c)
				}
			})
			addr := f.tlsFront(b, 16<<10)
			ctx, cancel := context.WithCancel(context.Background())
			var stats func() map[string]float64
			if sc.attack != nil && sc.before {
				stats = sc.attack(ctx, b, f, addr)
				time.Sleep(500 * time.Millisecond)
			}
			a, ra := f.allocate(b, "v", "alice")
			t, rt, _ := f.tlsAllocate(b, addr, "127.0.0.2", "v", "bob", 0)
			for _, p := range []struct {
				c    *turnwire.Client
				peer netip.AddrPort
				ch   uint16
			}{{a, rt, 0x4000}, {t, ra, 0x4000}} {
				if err := p.c.ChannelBind(p.ch, p.peer); err != nil {
					b.Fatal(err)
				}
			}
			if sc.attack != nil && !sc.before {
				stats = sc.attack(ctx, b, f, addr)
				time.Sleep(500 * time.Millisecond)
			}
			b.ResetTimer()
			res := turnwire.MeasurePair(a, t, turnwire.Pair{Channel: 0x4000, Packets: b.N, Sent: b.StopTimer})
			cancel()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(res.LossPercent(), "loss_%")
			b.ReportMetric(ms(res.Gap(0.99)), "gap_p99_ms")
			b.ReportMetric(ms(res.Gap(1)), "gap_max_ms")
			if stats != nil {
				for k, v := range stats() {
					b.ReportMetric(v, k)
				}
			}
		})
	}
}

// stalledTLSReader admits a participant that never reads its TLS
// connection (a 4 KiB receive buffer), sends it Binding requests every
// 5 ms and has a UDP participant flood it with 1200-byte packets every
// millisecond; once the relay closes the connection it comes back with a
// new one.
func stalledTLSReader(ctx context.Context, b *testing.B, f *fixture, addr string) func() map[string]float64 {
	flooder, rflood := f.allocate(b, "v", "carol")
	var rounds atomic.Int64
	go func() {
		big := make([]byte, 1200)
		binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
		for ctx.Err() == nil {
			f.s.Admit("v", "stuck")
			cred := f.s.Credential("v", "stuck")
			conn, err := dialTLSFrom(addr, "127.0.0.4", 4<<10)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			s := turnwire.NewStream(conn, cred.Username, cred.Password)
			rs, err := s.Allocate(turnwire.UDP)
			// A channel number binds one peer for good (RFC 8656 §12):
			// a fresh one for every comeback.
			ch := uint16(0x4001 + rounds.Load()%0x3000)
			if err == nil {
				err = s.CreatePermission(rflood)
			}
			if err == nil {
				err = flooder.ChannelBind(ch, rs)
			}
			if err != nil {
				_ = conn.Close()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			rounds.Add(1)
			for i := 0; ctx.Err() == nil; i++ {
				if flooder.Write(turnwire.ChannelData(nil, ch, big)) != nil {
					break
				}
				if i%5 == 0 && s.Write(binding) != nil {
					break // closed by the relay (write_stalled)
				}
				time.Sleep(time.Millisecond)
			}
			_ = conn.Close()
		}
	}()
	return func() map[string]float64 {
		return map[string]float64{"stuck_conns": float64(rounds.Load())}
	}
}

// tlsSlotHolders keeps 24 unauthenticated TLS connections from as many
// loopback sources against 16 slots, each sending a Binding request every
// 100 ms and reconnecting 10 ms after the relay closes it.
func tlsSlotHolders(ctx context.Context, _ *testing.B, _ *fixture, addr string) func() map[string]float64 {
	var opened atomic.Int64
	for i := range 24 {
		src := netip.AddrFrom4([4]byte{127, 0, 4, byte(10 + i)}).String()
		go func() {
			binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
			for ctx.Err() == nil {
				conn, err := dialTLSFrom(addr, src, 0)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				go func() { <-ctx.Done(); _ = conn.Close() }()
				go func() { _, _ = io.Copy(io.Discard, conn) }()
				for ctx.Err() == nil {
					if _, err := conn.Write(binding); err != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				_ = conn.Close()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	return func() map[string]float64 {
		return map[string]float64{"holder_conns": float64(opened.Load())}
	}
}

// udpFlood sends, from 8 sockets on as many loopback sources, Binding and
// credential-less Allocate requests in turn, 8 per source every
// millisecond, to the relay's listening socket, counting what comes back.
func udpFlood(ctx context.Context, b *testing.B, f *fixture, _ string) func() map[string]float64 {
	var in, out atomic.Int64
	reqs := [][]byte{
		stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw,
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), turnwire.UDP).Raw,
	}
	for i := range 8 {
		pc, err := net.ListenPacket("udp4", netip.AddrFrom4([4]byte{127, 0, 3, byte(10 + i)}).String()+":0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { <-ctx.Done(); _ = pc.Close() }()
		go func() {
			buf := make([]byte, 2048)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				out.Add(int64(n))
			}
		}()
		go func() {
			for j := 0; ctx.Err() == nil; j++ {
				for k := range 8 {
					r := reqs[(j+k)%2]
					if _, err := pc.WriteTo(r, f.addr); err == nil {
						in.Add(int64(len(r)))
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return func() map[string]float64 {
		return map[string]float64{"out/in_bytes": float64(out.Load()) / float64(max(in.Load(), 1)), "flood_MB": float64(in.Load()) / 1e6}
	}
}
