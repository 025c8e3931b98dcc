package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/telegate/telegate/e2e/internal/load"
)

// get answers nil when u answers 200 (certificates not checked: the
// peers' own roots are not this process's concern).
func get(u string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	return nil
}

// startTelegate runs telegate with a public, a signed-in and an inspected
// route to the upstream; limits are raised out of the way.
func startTelegate(c *benchConfig, port, admin int, issuer, secret string) (*proc, error) {
	dir := filepath.Join(c.dir, "telegate-run")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(cfg, load.TelegateConfig(load.TelegateSite{DataDir: filepath.Join(dir, "data"), Port: port, Admin: admin,
		Issuer: issuer, ClientID: "telegate", Upstream: c.upstream,
		// The rapid-reset guard (default 200 new streams/s per connection)
		// would close h2load's connections, the per-source pending cap
		// (default 32) closes some of the 64 connections wrk and h2load
		// open at once from 127.0.0.1, and the per-source connection cap
		// would refuse the idle keep-alive connections.
		Server: "  h2_max_requests_per_second: 1000000\n",
		Top:    "connections:\n  max_pending_per_source: 1024\n  max_conns: 40000\n  max_conns_per_source: 40000\ninspection:\n  enabled: false\n",
		Routes: fmt.Sprintf("  - id: inspected\n    path: /inspected/\n    upstream: http://%s\n    inspect: true\n    policy: {public: true}\n", c.upstream),
	}), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(c.dir, "telegate", []string{load.SecretEnv + "=" + secret}, c.telegate, "run", "-c", cfg)
	if err != nil {
		return nil, err
	}
	return p, p.waitReady(func() error { return get(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)) })
}

func startCaddy(c *benchConfig) (httpPeer, error) {
	port := load.FreePort()
	caddyfile := filepath.Join(c.dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, load.Caddyfile(filepath.Join(c.dir, "caddy-data"), port, c.cert+" "+c.key, c.upstream), 0o600); err != nil {
		return httpPeer{}, err
	}
	p, err := startProc(c.dir, "caddy", []string{"HOME=" + c.dir, "XDG_DATA_HOME=" + c.dir, "XDG_CONFIG_HOME=" + c.dir},
		"caddy", "run", "--config", caddyfile, "--adapter", "caddyfile")
	if err != nil {
		return httpPeer{}, err
	}
	base := fmt.Sprintf("https://localhost:%d", port)
	return httpPeer{"Caddy reverse_proxy", base, p}, p.waitReady(func() error { return get(base + "/1k") })
}

func startNginx(c *benchConfig) (httpPeer, error) {
	port := load.FreePort()
	dir := filepath.Join(c.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return httpPeer{}, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 45000;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log error;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	upstream backend {
		server %[2]s;
		keepalive 128;
	}
	server {
		listen 127.0.0.1:%[3]d ssl http2;
		server_name localhost;
		ssl_certificate %[4]s;
		ssl_certificate_key %[5]s;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, dir, c.upstream, port, c.cert, c.key), 0o600); err != nil {
		return httpPeer{}, err
	}
	p, err := startProc(c.dir, "nginx", nil, "nginx", "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return httpPeer{}, err
	}
	base := fmt.Sprintf("https://localhost:%d", port)
	return httpPeer{"nginx proxy_pass", base, p}, p.waitReady(func() error { return get(base + "/1k") })
}

// startSub runs one of this binary's own proxies (goproxy, coraza).
func startSub(c *benchConfig, kind string) (httpPeer, error) {
	port := load.FreePort()
	p, err := startProc(c.dir, kind, nil, c.self, kind, "-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"-upstream", c.upstream, "-cert", c.cert, "-key", c.key)
	if err != nil {
		return httpPeer{}, err
	}
	name := map[string]string{"goproxy": "Go httputil.ReverseProxy", "coraza": "stock Coraza"}[kind]
	base := fmt.Sprintf("https://localhost:%d", port)
	return httpPeer{name, base, p}, p.waitReady(func() error { return get(base + "/1k") })
}

// startOAuth2Proxy runs oauth2-proxy v7 as an OIDC client of the
// development provider with a cookie session, over HTTPS.
func startOAuth2Proxy(c *benchConfig, port int, issuer, secret string) (httpPeer, error) {
	base := fmt.Sprintf("https://localhost:%d", port)
	p, err := startProc(c.dir, "oauth2-proxy", []string{"OAUTH2_PROXY_CLIENT_SECRET=" + secret, "OAUTH2_PROXY_COOKIE_SECRET=" + cookieSecret()},
		c.oauth2Proxy,
		"--provider=oidc", "--oidc-issuer-url="+issuer, "--client-id=oauth2-proxy",
		"--redirect-url="+base+"/oauth2/callback", "--upstream=http://"+c.upstream+"/",
		"--http-address=", "--https-address=127.0.0.1:"+strconv.Itoa(port),
		"--tls-cert-file="+c.cert, "--tls-key-file="+c.key,
		"--email-domain=*", "--insecure-oidc-allow-unverified-email=true", "--code-challenge-method=S256",
		"--skip-provider-button=true", "--cookie-secure=true", "--session-store-type=cookie",
		"--request-logging=false", "--auth-logging=false", "--standard-logging=false")
	if err != nil {
		return httpPeer{}, err
	}
	return httpPeer{"oauth2-proxy", base, p}, p.waitReady(func() error { return get(base + "/ping") })
}

// idleConns opens n TLS connections to p, sends one HTTP/1.1 request on
// each, keeps them open and returns p's RSS growth per connection in KiB.
func idleConns(p httpPeer, path string, n int) (float64, error) {
	addr := p.base[len("https://"):]
	_, port, _ := net.SplitHostPort(addr)
	before := p.p.rssKiB()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// Spread the connections over loopback sources (250 each).
				src := &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/250/250), byte(2+i/250%250))}
				d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: src}
				c, err := tls.DialWithDialer(d, "tcp", "127.0.0.1:"+port, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path)
					if err == nil {
						var resp *http.Response
						if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
							resp.Body.Close()
							if resp.StatusCode != 200 {
								err = fmt.Errorf("status %d", resp.StatusCode)
							}
						}
					}
					_ = c.SetDeadline(time.Time{})
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if c != nil {
					conns[i] = c
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if firstErr != nil {
		return 0, firstErr
	}
	time.Sleep(time.Second)
	return float64(p.p.rssKiB()-before) / float64(n), nil
}

// relayResult is the part of e2e/relayload's JSON line used here.
type relayResult struct {
	OfferedPPS   float64 `json:"offered_pps"`
	ForwardedPPS float64 `json:"forwarded_pps"`
	LossPercent  float64 `json:"loss_percent"`
	P50us        int32   `json:"latency_p50_us"`
	P99us        int32   `json:"latency_p99_us"`
	ServerCPU    float64 `json:"server_cpu_percent"`
	KiBPerAlloc  float64 `json:"server_kib_per_allocation"`
}

// relayBench runs e2e/relayload against telegate's relay
// (e2e/relayload/relayserver) and coturn, alternating, at 120 B and
// 1200 B.
func relayBench(c *benchConfig, o *loadOpts) error {
	gen, srv := filepath.Join(c.dir, "relayload"), filepath.Join(c.dir, "relayserver")
	for bin, pkg := range map[string]string{gen: "./e2e/relayload", srv: "./e2e/relayload/relayserver"} {
		b := exec.Command("go", "build", "-o", bin, pkg)
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}
	secret := cookieSecret()
	tgPort, ctPort := load.FreeUDPPort(), load.FreeUDPPort()
	tg, err := startProc(c.dir, "relay", []string{"RELAYLOAD_SECRET=" + secret}, srv,
		"-listen", fmt.Sprintf("127.0.0.1:%d", tgPort), "-visits", strconv.Itoa(c.pairs), "-bandwidth", "1000000000", "-secret", secret)
	if err != nil {
		return err
	}
	ct, err := startProc(c.dir, "coturn", nil, "turnserver", "--use-auth-secret", "--static-auth-secret="+secret, "--realm", "telegate",
		"--no-tcp", "--no-tls", "--no-dtls", "--listening-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", ctPort),
		"--relay-ip=127.0.0.1", "--allow-loopback-peers", "--no-cli", "-n", "--log-file=/dev/null",
		"--min-port", "30000", "--max-port", "39999", "--userdb", filepath.Join(c.dir, "turndb"), "--pidfile", filepath.Join(c.dir, "turnserver.pid"))
	if err != nil {
		return err
	}
	// Ready: the server answers a relayload allocation (one pair, a short
	// run); the time includes relayload's own setup.
	probe := func(p *proc, port int) error {
		return p.waitReady(func() error {
			return exec.Command(gen, "-server", fmt.Sprintf("127.0.0.1:%d", port), "-secret", secret, "-pairs", "1", "-rate", "10", "-duration", "100ms", "-visit-prefix", "load").Run()
		})
	}
	if err := probe(tg, tgPort); err != nil {
		return err
	}
	if err := probe(ct, ctPort); err != nil {
		return err
	}
	fmt.Printf("\n## Relay (e2e/relayload, %d allocation pairs, ChannelData both ways, %d rounds of %v)\n\n", c.pairs, c.rounds, c.dur)
	fmt.Printf("time to ready (first relayed packet, relayload setup included): telegate relay %.0f ms, coturn %.0f ms\n\n", float64(tg.ready.Milliseconds()), float64(ct.ready.Milliseconds()))
	fmt.Println("| payload | round | server | offered pps | forwarded pps | loss % | p50 µs | p99 µs | CPU % | peak RSS MiB | KiB per allocation |\n|---|---|---|---|---|---|---|---|---|---|---|")
	servers := []struct {
		name string
		p    *proc
		port int
	}{{"telegate relay", tg, tgPort}, {"coturn", ct, ctPort}}
	type agg struct{ fwd, kib []float64 }
	sum := map[string]*agg{}
	for _, size := range []struct{ bytes, rate int }{{120, 1000}, {1200, 300}} {
		rate := size.rate
		if c.quick {
			rate /= 5
		}
		for r := range c.rounds {
			for k := range servers {
				s := servers[(r+k)%len(servers)]
				stop := peakSampler(s.p)
				out, err := exec.Command(gen, "-server", fmt.Sprintf("127.0.0.1:%d", s.port), "-secret", secret,
					"-pairs", strconv.Itoa(c.pairs), "-size", strconv.Itoa(size.bytes), "-rate", strconv.Itoa(rate),
					"-duration", c.dur.String(), "-pid", strconv.Itoa(s.p.pid()), "-json").Output()
				peak := stop()
				if err != nil {
					return fmt.Errorf("relayload %s: %w", s.name, err)
				}
				var res relayResult
				if err := json.Unmarshal(out, &res); err != nil {
					return fmt.Errorf("relayload %s: %w: %s", s.name, err, out)
				}
				fmt.Printf("| %d B | %d | %s | %.0f | %.0f | %.3f | %d | %d | %.0f | %.1f | %.1f |\n", size.bytes, r+1, s.name,
					res.OfferedPPS, res.ForwardedPPS, res.LossPercent, res.P50us, res.P99us, res.ServerCPU, float64(peak)/1024, res.KiBPerAlloc)
				o.record(round{Scenario: fmt.Sprintf("relay %d B", size.bytes), Round: r + 1, Target: s.name, RPS: res.ForwardedPPS, PeakRSSKiB: peak,
					Extra: map[string]float64{"offered_pps": res.OfferedPPS, "loss_percent": res.LossPercent, "p99_us": float64(res.P99us), "cpu_percent": res.ServerCPU, "kib_per_allocation": res.KiBPerAlloc}})
				key := fmt.Sprintf("%d B %s", size.bytes, s.name)
				if sum[key] == nil {
					sum[key] = &agg{}
				}
				sum[key].fwd = append(sum[key].fwd, res.ForwardedPPS)
				// RSS growth per allocation means something only on the
				// first full setup on a fresh server: later runs reuse
				// memory the earlier allocations freed.
				if r == 0 {
					sum[key].kib = append(sum[key].kib, res.KiBPerAlloc)
				}
			}
		}
	}
	fmt.Println("\n| payload | telegate forwarded pps (median) | coturn | telegate / coturn | RSS growth per allocation, first setup, KiB: telegate / coturn |\n|---|---|---|---|---|")
	for _, size := range []int{120, 1200} {
		t, k := sum[fmt.Sprintf("%d B telegate relay", size)], sum[fmt.Sprintf("%d B coturn", size)]
		fmt.Printf("| %d B | %.0f | %.0f | %.2f× | %.1f / %.1f |\n", size, median(t.fwd), median(k.fwd), median(t.fwd)/median(k.fwd), median(t.kib), median(k.kib))
	}
	return nil
}

var idleLine = regexp.MustCompile(`(idle session: .*|session in the cache: .*)`)

// idleSessions runs auth's idle-session footprint test (Go heap and store
// bytes per idle session) with c.idleSessions sessions.
func idleSessions(c *benchConfig) error {
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestIdleSessionFootprint$", "-v", "./auth/")
	cmd.Env = append(os.Environ(), "IDLE_SESSIONS="+strconv.Itoa(c.idleSessions))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("idle sessions: %w\n%s", err, out)
	}
	fmt.Printf("\n## Idle sessions (go test -run TestIdleSessionFootprint ./auth/, %d sessions)\n\n", c.idleSessions)
	for _, m := range idleLine.FindAllString(string(out), -1) {
		fmt.Println("    " + m)
	}
	return nil
}
