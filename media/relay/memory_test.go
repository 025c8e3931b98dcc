package relay

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/telegate/telegate/config"
)

// TestMemoryPerAllocation: an open allocation, with its permission and
// channel, costs at most 64 KiB of heap and stacks in the relay.
func TestMemoryPerAllocation(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	f := newFixture(t, func(c *config.Relay) {
		c.MaxAllocations = 1000
		c.MaxAllocationsPerVisit = 1000
	})
	const pairs = 60
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc + ms.StackInuse
	}
	// Clients first, so that only the relay's share grows afterwards.
	for i := range pairs {
		f.s.Admit(fmt.Sprint("v", i), "a")
		f.s.Admit(fmt.Sprint("v", i), "b")
	}
	before := measure()
	for i := range pairs {
		v := fmt.Sprint("v", i)
		a, ra := f.allocate(t, v, "a")
		b, rb := f.allocate(t, v, "b")
		if err := a.CreatePermission(rb); err != nil {
			t.Fatal(err)
		}
		if err := b.ChannelBind(0x4000, ra); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	after := measure()
	per := float64(after-before) / (2 * pairs) / 1024
	t.Logf("%.1f KiB per allocation (heap and stacks, clients included)", per)
	if per > 64 {
		t.Fatalf("%.1f KiB per allocation, want ≤ 64", per)
	}
}
