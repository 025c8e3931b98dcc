//go:build telegate_testhooks

package node

import (
	"net"
	"net/http"
	"os"
	"time"

	"github.com/telegate/telegate/media/relay"
)

// With the build tag telegate_testhooks (test binaries only, never a
// release), TELEGATE_TEST_HOOKS=127.0.0.1:PORT serves hooks that let a test
// break what a network would: POST /relay/revoke?visit=ID&participant=ID
// closes that participant's relay allocations (relay.Server.Remove), as a
// relay that lost them would. Loopback only.
func init() {
	relayStarted = func(turn *relay.Server) {
		addr := os.Getenv("TELEGATE_TEST_HOOKS")
		if addr == "" {
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil || !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
			panic("telegate test hooks: need a loopback address: " + addr)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("POST /relay/revoke", func(w http.ResponseWriter, r *http.Request) {
			turn.Remove(r.URL.Query().Get("visit"), r.URL.Query().Get("participant"))
			w.WriteHeader(http.StatusNoContent)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
	}
}
