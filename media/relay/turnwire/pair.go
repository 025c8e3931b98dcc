package turnwire

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pair configures MeasurePair.
type Pair struct {
	// Channel is the channel number (0x4000–0x7FFF) each side has bound to
	// the other's relayed address (RFC 8656 §12); without one a side
	// receives Data indications, which are counted alike.
	Channel uint16
	// Packets is how many packets each side sends.
	Packets int
	// Interval is the pace of each side's sending. Default 2ms (500
	// packets a second).
	Interval time.Duration
	// Size is the payload in bytes (at least 16: a sequence number and the
	// send time). Default 200.
	Size int
	// Grace is how long after the last packet what arrives still counts.
	// Default 300ms.
	Grace time.Duration
	// Sent, when set, is called as soon as the last packet has been sent
	// (a benchmark stops its timer there).
	Sent func()
}

// PairStats is what MeasurePair measured, both directions pooled.
type PairStats struct {
	// Sent and Received count packets.
	Sent, Received int
	// ReceivedAt counts the packets the first (0) and the second (1)
	// client received; each sent Sent/2.
	ReceivedAt [2]int
	// Gaps are the inter-arrival times at the receivers, sorted.
	Gaps []time.Duration
	// Pauses are the same less how late the sender already was (the
	// inter-arrival time minus the send-time difference of the two
	// packets, plus Interval), sorted: a pause of the relay shows whole, a
	// sender held off its core does not.
	Pauses []time.Duration
}

// LossPercent is the share of sent packets that did not arrive, in percent.
func (s PairStats) LossPercent() float64 {
	if s.Sent == 0 {
		return 0
	}
	return 100 * (1 - float64(s.Received)/float64(s.Sent))
}

// Pause returns the q quantile (0 < q ≤ 1) of Pauses, or 0 without any.
func (s PairStats) Pause(q float64) time.Duration { return quantile(s.Pauses, q) }

// Gap returns the q quantile (0 < q ≤ 1) of the inter-arrival times, or 0
// without any.
func (s PairStats) Gap(q float64) time.Duration { return quantile(s.Gaps, q) }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// MeasurePair relays media between the allocations of x and y: each sends
// the other p.Packets ChannelData messages of p.Size bytes, one every
// p.Interval, while each reads what arrives. After the last packet and
// p.Grace, an end marker (a payload one byte longer) is sent until both
// receivers have seen it or a read has waited 3 s in vain. x and y must
// be used by nobody else meanwhile.
func MeasurePair(x, y *Client, p Pair) PairStats {
	if p.Interval <= 0 {
		p.Interval = 2 * time.Millisecond
	}
	if p.Size < 16 {
		p.Size = 200
	}
	if p.Grace <= 0 {
		p.Grace = 300 * time.Millisecond
	}
	var (
		mu     sync.Mutex
		gaps   []time.Duration
		pauses []time.Duration
		got    [2]atomic.Int64
		wg     sync.WaitGroup
		done   [2]atomic.Bool
	)
	receive := func(c *Client, done *atomic.Bool, got *atomic.Int64) {
		defer wg.Done()
		defer done.Store(true)
		buf := make([]byte, 2048)
		var last, lastSent time.Time
		var local, localPauses []time.Duration
		for {
			// A read that waits this long means the relay has stopped;
			// it never ends in the middle of a stream of packets.
			n, err := c.Read(buf, time.Now().Add(3*time.Second))
			if err != nil {
				break
			}
			_, d, ok := ParseChannelData(buf[:n])
			if !ok {
				_, d, ok = ParseData(buf[:n])
			}
			if ok && len(d) == p.Size+1 {
				break
			}
			if !ok || len(d) != p.Size {
				continue
			}
			now := time.Now()
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(d[8:16])))
			if !last.IsZero() {
				local = append(local, now.Sub(last))
				localPauses = append(localPauses, now.Sub(last)-sent.Sub(lastSent)+p.Interval)
			}
			last, lastSent = now, sent
			got.Add(1)
		}
		mu.Lock()
		gaps = append(gaps, local...)
		pauses = append(pauses, localPauses...)
		mu.Unlock()
	}
	pair := []*Client{x, y}
	wg.Add(2)
	go receive(x, &done[0], &got[0])
	go receive(y, &done[1], &got[1])
	tick := time.NewTicker(p.Interval)
	payload := make([]byte, p.Size)
	var frame []byte
	for i := range p.Packets {
		<-tick.C
		binary.BigEndian.PutUint64(payload, uint64(i))
		binary.BigEndian.PutUint64(payload[8:], uint64(time.Now().UnixNano()))
		for _, c := range pair {
			frame = ChannelData(frame[:0], p.Channel, payload)
			_ = c.Write(frame)
		}
	}
	tick.Stop()
	if p.Sent != nil {
		p.Sent()
	}
	time.Sleep(p.Grace)
	marker := ChannelData(nil, p.Channel, make([]byte, p.Size+1))
	for !done[0].Load() || !done[1].Load() {
		for k, c := range pair {
			if !done[1-k].Load() {
				_ = c.Write(marker)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(gaps)
	slices.Sort(pauses)
	at := [2]int{int(got[0].Load()), int(got[1].Load())}
	return PairStats{Sent: 2 * p.Packets, Received: at[0] + at[1], ReceivedAt: at, Gaps: gaps, Pauses: pauses}
}
