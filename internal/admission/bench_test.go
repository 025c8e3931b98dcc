package admission

import (
	"net"
	"net/http"
	"testing"
)

// BenchmarkConnStateRequest is what one keep-alive HTTP request costs the
// controller: the ConnState hook's StateActive and StateIdle on an
// established connection of a loopback listener, with other idle
// connections of the same source in the lists.
func BenchmarkConnStateRequest(b *testing.B) {
	lim := testLimits()
	ctl, err := New(Options{Limits: lim})
	if err != nil {
		b.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln := ctl.Listen(inner)
	defer ln.Close()
	hook := ConnState(nil)
	var conns []net.Conn
	for range lim.MaxConnsPerSource {
		d, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		hook(c, http.StateActive)
		hook(c, http.StateIdle)
		conns = append(conns, c)
	}
	c := conns[0]
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		hook(c, http.StateActive)
		hook(c, http.StateIdle)
	}
	b.StopTimer()
	if st := ctl.Stats(); st.Idle != lim.MaxConnsPerSource || st.Active != 0 {
		b.Fatalf("stats %+v, want %d idle", st, lim.MaxConnsPerSource)
	}
}
