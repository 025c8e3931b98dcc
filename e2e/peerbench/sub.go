package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// serveProxy is the "goproxy" and "coraza" subcommands: a bare
// httputil.ReverseProxy over HTTPS (HTTP/1.1 and HTTP/2) to -upstream,
// wrapped in stock Coraza (coraza/v3/http.WrapHandler with telegate's
// Core Rule Set directives) when waf is true. It serves until killed.
func serveProxy(args []string, waf bool) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "HTTPS listen address (loopback)")
	upstream := fs.String("upstream", "", "upstream host:port (plain HTTP)")
	cert := fs.String("cert", "", "certificate PEM")
	key := fs.String("key", "", "key PEM")
	_ = fs.Parse(args)
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-listen %q: a loopback address is required", *listen)
	}
	u, err := url.Parse("http://" + *upstream)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}
	var h http.Handler = rp
	if waf {
		w, err := coraza.NewWAF(coraza.NewWAFConfig().
			WithRootFS(coreruleset.FS).
			WithDirectives(policies.Directives(config.DefaultParanoiaLevel, config.DefaultAnomalyThreshold)))
		if err != nil {
			return err
		}
		h = txhttp.WrapHandler(w, rp)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:          nil,
	}
	fmt.Fprintln(os.Stderr, "serving on", ln.Addr())
	return srv.ServeTLS(ln, "", "")
}
