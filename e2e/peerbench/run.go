package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/telegate/telegate/demo/devop"
	"github.com/telegate/telegate/e2e/internal/load"
	"github.com/telegate/telegate/e2e/webclient"
)

type benchConfig struct {
	quick                          bool
	dur                            time.Duration
	rounds, conns, threads         int
	streams, idleConns             int
	idleSessions, pairs            int
	oauth2Proxy, telegate, out     string
	dir, cert, key, self, upstream string
	only                           *regexp.Regexp
	skipRelay, skipResources       bool
}

// The upstream's answers: /…64k gets 64 KiB, anything else 1 KiB; a POST
// body is read in full first.
const (
	small = 1 << 10
	large = 64 << 10
)

// startUpstream serves the fixed answers on 127.0.0.1 until the process
// ends.
func startUpstream() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s, l := []byte(strings.Repeat("s", small)), []byte(strings.Repeat("l", large))
	go (&http.Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		if strings.HasSuffix(r.URL.Path, "64k") {
			_, _ = w.Write(l)
			return
		}
		_, _ = w.Write(s)
	})}).Serve(ln)
	return ln.Addr().String(), nil
}

// selfSigned writes a self-signed ECDSA certificate for localhost and
// 127.0.0.1 (its own root) to dir/cert.pem and dir/key.pem.
func selfSigned(dir string) (cert, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "peerbench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return cert, key, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

// httpPeer is one HTTP server under test.
type httpPeer struct {
	name string
	base string // https://localhost:PORT
	p    *proc
}

func run(c *benchConfig) error {
	var err error
	if c.dir, err = os.MkdirTemp("", "peerbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.dir)
	if err := os.Chmod(c.dir, 0o755); err != nil { // nginx workers read nothing here, but its master may drop privileges
		return err
	}
	if c.self, err = os.Executable(); err != nil {
		return err
	}
	printMachine()
	for _, tool := range []string{"wrk", "h2load", "caddy", "nginx", "turnserver", c.oauth2Proxy} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (scripts/bench installs the peers)", tool)
		}
	}
	if c.telegate == "" {
		if c.telegate, err = load.BuildTelegate(c.dir); err != nil {
			return err
		}
	}
	printVersions(c)
	if c.cert, c.key, err = selfSigned(c.dir); err != nil {
		return err
	}
	if c.upstream, err = startUpstream(); err != nil {
		return err
	}
	out, err := os.Create(c.out)
	if err != nil {
		return err
	}
	defer out.Close()
	o := &loadOpts{dur: c.dur, conns: c.conns, threads: c.threads, streams: c.streams, dir: c.dir, rounds: c.rounds, roundsOut: out}

	// Peers.
	secret := "peerbench-client-secret-0123456789"
	tgPort, tgAdmin, o2Port := load.FreePort(), load.FreePort(), load.FreePort()
	tgBase := fmt.Sprintf("https://localhost:%d", tgPort)
	o2Base := fmt.Sprintf("https://localhost:%d", o2Port)
	op, err := devop.Start(context.Background(), devop.Options{
		Logger: slog.New(slog.DiscardHandler),
		Clients: []devop.Client{
			{ID: "telegate", Secret: secret, RedirectURIs: []string{tgBase + "/.telegate/callback/bench"}, PostLogoutRedirectURIs: []string{tgBase + "/.telegate/signed-out"}},
			{ID: "oauth2-proxy", Secret: secret, RedirectURIs: []string{o2Base + "/oauth2/callback"}},
		},
	})
	if err != nil {
		return err
	}
	defer op.Close()

	tg, err := startTelegate(c, tgPort, tgAdmin, op.Issuer(), secret)
	if err != nil {
		return err
	}
	caddy, err := startCaddy(c)
	if err != nil {
		return err
	}
	nginx, err := startNginx(c)
	if err != nil {
		return err
	}
	goproxy, err := startSub(c, "goproxy")
	if err != nil {
		return err
	}
	waf, err := startSub(c, "coraza")
	if err != nil {
		return err
	}
	o2, err := startOAuth2Proxy(c, o2Port, op.Issuer(), secret)
	if err != nil {
		return err
	}
	tgCookie, err := signIn(filepath.Join(c.dir, "telegate-run", "data", "ca", "root.pem"), tgBase+"/app/1k", tgBase, "__Host-telegate")
	if err != nil {
		return fmt.Errorf("telegate sign-in: %w", err)
	}
	o2Cookie, err := signIn(c.cert, o2Base+"/oauth2/start?rd=%2F1k", o2Base, "_oauth2_proxy")
	if err != nil {
		return fmt.Errorf("oauth2-proxy sign-in: %w", err)
	}
	fmt.Println("\n## Time to ready\n\n| peer | ready after (ms) | RSS at ready (MiB) |\n|---|---|---|")
	for _, p := range []*proc{tg, caddy.p, nginx.p, goproxy.p, waf.p, o2.p} {
		fmt.Printf("| %s | %.0f | %.1f |\n", p.name, float64(p.ready.Microseconds())/1000, float64(p.rssKiB())/1024)
	}

	// HTTP scenarios.
	tgPeer := httpPeer{"telegate", tgBase, tg}
	public := []httpPeer{tgPeer, caddy, nginx, goproxy}
	targets := func(peers []httpPeer, tgPath, path string) []target {
		var ts []target
		for i, p := range peers {
			u := p.base + path
			if i == 0 {
				u = p.base + tgPath
			}
			ts = append(ts, target{name: p.name, url: u, p: p.p})
		}
		return ts
	}
	var scenarios []scenario
	for _, tool := range []struct{ tool, proto string }{{"wrk", "HTTP/1.1"}, {"h2load", "HTTP/2"}} {
		for _, size := range []struct{ path, label string }{{"1k", "1 KiB"}, {"64k", "64 KiB"}} {
			scenarios = append(scenarios, scenario{
				name: fmt.Sprintf("public route, %s, %s", size.label, tool.proto), tool: tool.tool,
				targets: targets(public, "/public/"+size.path, "/"+size.path)})
		}
	}
	signed := []target{
		{name: "telegate signed-in", url: tgBase + "/app/1k", header: "Cookie: " + tgCookie, p: tg},
		{name: "oauth2-proxy", url: o2Base + "/1k", header: "Cookie: " + o2Cookie, p: o2.p},
		{name: "telegate public", url: tgBase + "/public/1k", p: tg},
	}
	scenarios = append(scenarios, scenario{name: "signed-in route, 1 KiB, HTTP/1.1", tool: "wrk", targets: signed})
	query := "/1k?patient=12345&visit=abc-def&q=blood+pressure+follow-up"
	scenarios = append(scenarios, scenario{name: "inspected GET with a query, HTTP/1.1", tool: "wrk", targets: []target{
		{name: "telegate inspected", url: tgBase + "/inspected" + query, p: tg},
		{name: "stock Coraza", url: waf.base + query, p: waf.p},
	}})
	form := url.Values{}
	for i, f := range []string{"name", "birthdate", "phone", "email", "reason", "medication", "allergies", "notes"} {
		form.Set(f, fmt.Sprintf("value %d for the %s field of an intake form", i, f))
	}
	scenarios = append(scenarios, scenario{name: "inspected 8-field form POST, HTTP/1.1", tool: "wrk", form: form.Encode(), targets: []target{
		{name: "telegate inspected", url: tgBase + "/inspected/1k", p: tg},
		{name: "stock Coraza", url: waf.base + "/1k", p: waf.p},
	}})
	for _, s := range scenarios {
		if c.only != nil && !c.only.MatchString(s.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", s.name)
		if err := o.runScenario(s); err != nil {
			return err
		}
	}
	fmt.Printf("\n## Requests (%d rounds of %v each, %d connections; ratios are telegate / peer per round, median)\n", c.rounds, c.dur, c.conns)
	for _, r := range o.printedScenarios {
		printScenario(os.Stdout, r)
	}

	if c.skipResources {
		return nil
	}
	// Idle keep-alive connections.
	fmt.Printf("\n## Idle keep-alive connections (%d per peer, each after one request)\n\n| peer | RSS growth per connection (KiB) |\n|---|---|\n", c.idleConns)
	for _, p := range []httpPeer{tgPeer, caddy, nginx, goproxy, o2} {
		path := "/1k"
		switch p.p {
		case tg:
			path = "/public/1k"
		case o2.p:
			path = "/ping" // answered without a session
		}
		per, err := idleConns(p, path, c.idleConns)
		if err != nil {
			return fmt.Errorf("idle connections, %s: %w", p.name, err)
		}
		fmt.Printf("| %s | %.1f |\n", p.name, per)
	}

	if !c.skipRelay {
		if err := relayBench(c, o); err != nil {
			return err
		}
	}
	return idleSessions(c)
}

// signIn signs in through the development provider at target and returns
// the Cookie header value of the session cookies named prefix….
func signIn(root, target, base, prefix string) (string, error) {
	wc, err := webclient.New(root)
	if err != nil {
		return "", err
	}
	defer wc.Close()
	resp, page, err := wc.SignIn(target, "clinician@demo.test", "demo")
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.300s", resp.StatusCode, page)
	}
	u, _ := url.Parse(base + "/")
	var parts []string
	for _, ck := range wc.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, prefix) {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("no %s cookie", prefix)
	}
	return strings.Join(parts, "; "), nil
}

func printMachine() {
	kernel, _ := exec.Command("uname", "-srm").Output()
	loadavg, _ := os.ReadFile("/proc/loadavg")
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimLeft(v, "\t :")
				break
			}
		}
	}
	fmt.Printf("# scripts/bench, %s\n\n## Machine\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("- nproc %d (%s), kernel %s, load average %s", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), strings.Join(strings.Fields(string(loadavg))[:3], " "))
	fmt.Println(" (at start)")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func printVersions(c *benchConfig) {
	fmt.Println("\n## Versions\n\n| peer | version |\n|---|---|")
	ver := func(name string, args ...string) {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		fmt.Printf("| %s | %s |\n", name, firstLine(out))
	}
	ver("telegate", "git", "describe", "--always", "--dirty")
	ver("Go", "go", "version")
	ver("Caddy", "caddy", "version")
	ver("nginx", "nginx", "-v")
	ver("coturn", "turnserver", "--version")
	// go install leaves oauth2-proxy's --version unset; its build
	// information names the module version.
	if out, err := exec.Command("go", "version", "-m", c.oauth2Proxy).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" {
				fmt.Printf("| oauth2-proxy | %s %s |\n", f[1], f[2])
			}
		}
	}
	ver("wrk", "wrk", "-v")
	ver("h2load", "h2load", "--version")
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/corazawaf/coraza/v3" || m.Path == "github.com/corazawaf/coraza-coreruleset/v4" {
				fmt.Printf("| %s | %s |\n", m.Path, m.Version)
			}
		}
	}
}

// cookieSecret is a random 32-byte oauth2-proxy cookie secret.
func cookieSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:32]
}
