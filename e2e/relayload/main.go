// Command relayload is a load generator for TURN relays (RFC 8656). It
// opens N pairs of allocations against a server with TURN REST credentials
// (username "expiry:visit:participant", password
// base64(HMAC-SHA1(secret, username)), as telegate and coturn's
// use-auth-secret accept), binds a channel between the two allocations of
// each pair, relays ChannelData both ways at a fixed rate, and reports
// forwarded packets per second, loss, one-way latency (p50, p99) and,
// given the server's pid, its CPU time and resident memory from /proc.
//
//	relayload -server 127.0.0.1:3478 -secret S -pairs 50 -size 120 -rate 500 -duration 10s -pid 1234
//
// Visits are named PREFIX0000… with participants "a" and "b"; a telegate
// relay must have admitted them (see relayserver).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telegate/telegate/media/relay"
	"github.com/telegate/telegate/media/relay/turnwire"
)

type endpoint struct {
	srv        *net.UDPAddr
	user, pass string
	c          *turnwire.Client
	pc         *net.UDPConn
	relayed    netip.AddrPort
	peer       *endpoint
	sent       atomic.Uint64
	recv       atomic.Uint64
	lat        []int32 // microseconds, written by this endpoint's receiver only
}

// Result is what one run measured.
type Result struct {
	Server        string  `json:"server"`
	Pairs         int     `json:"pairs"`
	Size          int     `json:"size_bytes"`
	OfferedPPS    float64 `json:"offered_pps"`
	ForwardedPPS  float64 `json:"forwarded_pps"`
	Sent          uint64  `json:"sent"`
	Received      uint64  `json:"received"`
	LossPercent   float64 `json:"loss_percent"`
	P50us         int32   `json:"latency_p50_us"`
	P99us         int32   `json:"latency_p99_us"`
	ServerCPU     float64 `json:"server_cpu_percent,omitempty"`
	RSSIdleKiB    int64   `json:"server_rss_idle_kib,omitempty"`
	RSSLoadedKiB  int64   `json:"server_rss_allocated_kib,omitempty"`
	KiBPerAlloc   float64 `json:"server_kib_per_allocation,omitempty"`
	DurationS     float64 `json:"duration_s"`
	SetupSeconds  float64 `json:"setup_s"`
	Allocations   int     `json:"allocations"`
	ServerPID     int     `json:"server_pid,omitempty"`
	RatePerSender float64 `json:"rate_per_sender_pps"`
}

func main() {
	var (
		server   = flag.String("server", "127.0.0.1:3478", "TURN server host:port (UDP)")
		secret   = flag.String("secret", "", "shared secret (TURN REST); or $RELAYLOAD_SECRET")
		realm    = flag.String("realm", "telegate", "realm (informational; taken from the challenge)")
		pairs    = flag.Int("pairs", 10, "allocation pairs")
		size     = flag.Int("size", 120, "payload bytes per packet (≥ 16)")
		rates    = flag.String("rate", "500", "packets per second per sender (each side of each pair sends); a comma list runs several steps")
		duration = flag.Duration("duration", 10*time.Second, "measurement time per step")
		pid      = flag.Int("pid", 0, "server pid for CPU and memory from /proc")
		prefix   = flag.String("visit-prefix", "load", "visit id prefix")
		jsonOut  = flag.Bool("json", false, "print one JSON object per step")
	)
	flag.Parse()
	if *secret == "" {
		*secret = os.Getenv("RELAYLOAD_SECRET")
	}
	if *secret == "" || *pairs < 1 || *size < 16 || *size > 1400 {
		flag.Usage()
		os.Exit(2)
	}
	_ = realm
	srv, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		log.Fatal(err)
	}
	rssIdle := rssKiB(*pid)
	setupStart := time.Now()
	eps, err := setup(srv, []byte(*secret), *prefix, *pairs)
	if err != nil {
		log.Fatalf("setup: %v", err)
	}
	setup := time.Since(setupStart)
	time.Sleep(200 * time.Millisecond)
	rssLoaded := rssKiB(*pid)

	for _, rs := range strings.Split(*rates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
		if err != nil || rate <= 0 {
			log.Fatalf("bad rate %q", rs)
		}
		r := run(eps, *size, rate, *duration, *pid)
		r.Server, r.Pairs, r.Size = *server, *pairs, *size
		r.SetupSeconds = setup.Seconds()
		r.Allocations = len(eps)
		r.ServerPID = *pid
		if *pid > 0 {
			r.RSSIdleKiB, r.RSSLoadedKiB = rssIdle, rssLoaded
			if rssLoaded > 0 && rssIdle > 0 {
				r.KiBPerAlloc = float64(rssLoaded-rssIdle) / float64(len(eps))
			}
		}
		if *jsonOut {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		} else {
			fmt.Printf("rate/sender %6.0f pps  offered %8.0f pps  forwarded %8.0f pps  loss %6.3f%%  p50 %5d µs  p99 %6d µs  server CPU %5.1f%%\n",
				rate, r.OfferedPPS, r.ForwardedPPS, r.LossPercent, r.P50us, r.P99us, r.ServerCPU)
		}
	}
	for _, e := range eps {
		if e.c != nil {
			_ = e.c.Refresh(0)
			_ = e.pc.Close()
		}
	}
}

func setup(srv *net.UDPAddr, secret []byte, prefix string, pairs int) ([]*endpoint, error) {
	eps := make([]*endpoint, 0, 2*pairs)
	exp := time.Now().Add(time.Hour)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range pairs {
		visit := fmt.Sprintf("%s%04d", prefix, i)
		pair := [2]*endpoint{}
		for j, part := range []string{"a", "b"} {
			user := relay.FormatUsername(exp, visit, part)
			pair[j] = &endpoint{srv: srv, user: user, pass: relay.Password(secret, user)}
		}
		pair[0].peer, pair[1].peer = pair[1], pair[0]
		eps = append(eps, pair[0], pair[1])
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := preparePair(pair)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", visit, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return eps, firstErr
}

// allocate opens the endpoint's socket and allocates a UDP relay. A 437
// (a server still holding an allocation for a reused ephemeral port from an
// earlier run) is retried from another socket.
func (e *endpoint) allocate() error {
	var stale []*net.UDPConn
	defer func() {
		for _, pc := range stale {
			_ = pc.Close()
		}
	}()
	var err error
	for range 3 {
		var pc *net.UDPConn
		pc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		_ = pc.SetReadBuffer(4 << 20)
		_ = pc.SetWriteBuffer(4 << 20)
		c := turnwire.NewUDP(pc, e.srv, e.user, e.pass)
		c.Timeout = 5 * time.Second
		var r netip.AddrPort
		r, err = c.Allocate(turnwire.UDP)
		if err == nil {
			e.c, e.pc, e.relayed = c, pc, r
			return nil
		}
		stale = append(stale, pc)
		if turnwire.Code(err) != 437 {
			return err
		}
	}
	return err
}

func preparePair(p [2]*endpoint) error {
	for _, e := range p {
		if err := e.allocate(); err != nil {
			return fmt.Errorf("allocate: %w", err)
		}
	}
	for _, e := range p {
		if err := e.c.CreatePermission(e.peer.relayed); err != nil {
			return fmt.Errorf("permission: %w", err)
		}
		if err := e.c.ChannelBind(0x4000, e.peer.relayed); err != nil {
			return fmt.Errorf("channel bind: %w", err)
		}
	}
	return nil
}

func run(eps []*endpoint, size int, rate float64, d time.Duration, pid int) Result {
	start := time.Now()
	var stopRecv atomic.Bool
	var wg sync.WaitGroup
	for _, e := range eps {
		e.sent.Store(0)
		e.recv.Store(0)
		e.lat = e.lat[:0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for !stopRecv.Load() {
				_ = e.pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := e.pc.Read(buf)
				if err != nil {
					continue
				}
				_, p, ok := turnwire.ParseChannelData(buf[:n])
				if !ok || len(p) < 16 {
					continue
				}
				sentAt := time.Duration(binary.BigEndian.Uint64(p[8:16]))
				e.recv.Add(1)
				e.lat = append(e.lat, int32((time.Since(start)-sentAt)/time.Microsecond))
			}
		}()
	}
	cpu0 := cpuTicks(pid)
	t0 := time.Now()
	// A few pacing goroutines share the senders.
	workers := 4
	var sendWG sync.WaitGroup
	for w := range workers {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			var mine []*endpoint
			for i := w; i < len(eps); i += workers {
				mine = append(mine, eps[i])
			}
			payload := make([]byte, size)
			frame := make([]byte, 0, size+8)
			var seq uint64
			for {
				el := time.Since(t0)
				if el >= d {
					return
				}
				due := uint64(el.Seconds() * rate)
				for _, e := range mine {
					for e.sent.Load() < due {
						seq++
						binary.BigEndian.PutUint64(payload[0:8], seq)
						binary.BigEndian.PutUint64(payload[8:16], uint64(time.Since(start)))
						frame = turnwire.ChannelData(frame, 0x4000, payload)
						if _, err := e.pc.WriteToUDP(frame, e.c.ServerAddr()); err != nil {
							break
						}
						e.sent.Add(1)
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	sendWG.Wait()
	wall := time.Since(t0)
	cpu1 := cpuTicks(pid)
	time.Sleep(300 * time.Millisecond) // in-flight packets
	stopRecv.Store(true)
	wg.Wait()

	var sent, recv uint64
	var lat []int32
	for _, e := range eps {
		sent += e.sent.Load()
		recv += e.recv.Load()
		lat = append(lat, e.lat...)
	}
	slices.Sort(lat)
	r := Result{
		OfferedPPS:    float64(sent) / wall.Seconds(),
		ForwardedPPS:  float64(recv) / wall.Seconds(),
		Sent:          sent,
		Received:      recv,
		DurationS:     wall.Seconds(),
		RatePerSender: rate,
	}
	if sent > 0 {
		r.LossPercent = 100 * (1 - float64(recv)/float64(sent))
		if r.LossPercent < 0 {
			r.LossPercent = 0
		}
	}
	if len(lat) > 0 {
		r.P50us = lat[len(lat)/2]
		r.P99us = lat[len(lat)*99/100]
	}
	if pid > 0 && cpu1 >= cpu0 {
		r.ServerCPU = 100 * float64(cpu1-cpu0) / 100 / wall.Seconds() // USER_HZ is 100 on Linux
	}
	return r
}

// cpuTicks is utime+stime of pid in clock ticks (proc(5) /proc/pid/stat
// fields 14 and 15).
func cpuTicks(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// rssKiB is VmRSS of pid (proc(5) /proc/pid/status).
func rssKiB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}
