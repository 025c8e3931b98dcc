package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// h2specConfig serves one public route on the test's own certificate:
// %[1]s data dir, %[2]d public port, %[3]d admin port, %[4]s certificate,
// %[5]s key, %[6]s upstream. Rate limits and stream budget are high and
// inspection is off: h2spec opens a connection per case.
const h2specConfig = `
data_dir: %[1]s
server:
  listen: 127.0.0.1:%[2]d
  http_listen: ""
  admin: 127.0.0.1:%[3]d
  h2_max_requests_per_second: 5000
tls:
  hosts:
    - names: [localhost]
      mode: files
      cert_file: %[4]s
      key_file: %[5]s
rate_limits:
  per_client: {rate: 10000, burst: 10000}
inspection:
  enabled: false
routes:
  - id: root
    path: /
    upstream: %[6]s
    policy:
      public: true
log:
  format: text
`

// h2specResult is one case of h2spec's JUnit report.
type h2specResult struct {
	id      string // package/number, e.g. http2/6.5.3/1
	desc    string
	failed  bool
	skipped bool
	detail  string
}

// readH2specReport reads h2spec's JUnit report: each case's id is its
// suite's package and its position in the suite, as h2spec numbers them.
func readH2specReport(t *testing.T, path string) []h2specResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Desc  string `xml:"classname,attr"`
				Error *struct {
					Text string `xml:",chardata"`
				} `xml:"error"`
				Failure *struct {
					Text string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var out []h2specResult
	for _, s := range rep.Suites {
		for i, c := range s.Cases {
			r := h2specResult{id: fmt.Sprintf("%s/%d", s.Package, i+1), desc: c.Desc}
			switch {
			case c.Error != nil:
				r.failed, r.detail = true, c.Error.Text
			case c.Failure != nil:
				r.failed, r.detail = true, c.Failure.Text
			case c.Skipped != nil:
				r.skipped = true
			}
			out = append(out, r)
		}
	}
	return out
}

// readExpectedFailures reads testdata/h2spec-expected-failures.txt: case
// id, a tab or spaces, and the reason; every entry must give one.
func readExpectedFailures(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("testdata/h2spec-expected-failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, "\t")
		if !strings.Contains(line, "\t") {
			id, reason, _ = strings.Cut(line, " ")
		}
		if strings.TrimSpace(reason) == "" {
			t.Errorf("h2spec-expected-failures.txt:%d: %s has no reason", n, id)
		}
		want[strings.TrimSpace(id)] = strings.TrimSpace(reason)
	}
	return want
}

// TestH2Spec runs h2spec (HTTP/2 conformance, RFC 9113 and RFC 7541)
// against telegate's public listener on loopback, over TLS with the
// test's own certificate, and fails on every failed case that
// testdata/h2spec-expected-failures.txt does not list, and on every case
// listed there that now passes. Without h2spec on PATH it is skipped,
// unless TELEGATE_REQUIRE_H2SPEC is set (scripts/test installs h2spec).
func TestH2Spec(t *testing.T) {
	bin, err := exec.LookPath("h2spec")
	if err != nil {
		if os.Getenv("TELEGATE_REQUIRE_H2SPEC") != "" {
			t.Fatal("h2spec is not on PATH and TELEGATE_REQUIRE_H2SPEC is set (scripts/test installs it)")
		}
		t.Skip("h2spec is not on PATH: scripts/test installs it; set TELEGATE_REQUIRE_H2SPEC to make this a failure")
	}
	t.Parallel()
	expected := readExpectedFailures(t)
	dir := t.TempDir()
	certFile, keyFile := writeLocalhostCert(t, dir)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(up.Close)
	d := &demo{t: t, dataDir: filepath.Join(dir, "data"), port: freePort(t), admin: freePort(t)}
	cfg := filepath.Join(dir, "telegate.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(h2specConfig, d.dataDir, d.port, d.admin, certFile, keyFile, up.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start("run", "-c", cfg)

	results := runH2spec(t, bin, d.port, filepath.Join(dir, "telegate.xml"))
	passed, skipped, seen := 0, 0, map[string]bool{}
	for _, r := range results {
		if r.skipped {
			skipped++
			continue
		}
		seen[r.id] = true
		_, listed := expected[r.id]
		switch {
		case r.failed && !listed:
			t.Errorf("h2spec %s (%s) failed:\n%s", r.id, r.desc, r.detail)
		case !r.failed && listed:
			t.Errorf("h2spec %s (%s) passes now: take it off testdata/h2spec-expected-failures.txt", r.id, r.desc)
		case !r.failed:
			passed++
		}
	}
	var unknown []string
	for id := range expected {
		if !seen[id] {
			unknown = append(unknown, id)
		}
	}
	sort.Strings(unknown)
	for _, id := range unknown {
		t.Errorf("testdata/h2spec-expected-failures.txt lists %s, which h2spec did not run", id)
	}

	// Go's own HTTP/2 server (net/http) on the same certificate, for
	// the comparison in docs/security-model.md: telegate's front must not
	// fail more cases than it.
	goSrv := httptest.NewUnstartedServer(up.Config.Handler)
	goSrv.EnableHTTP2 = true
	goSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	goSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	goSrv.StartTLS()
	t.Cleanup(goSrv.Close)
	goPassed := 0
	for _, r := range runH2spec(t, bin, goSrv.Listener.Addr().(*net.TCPAddr).Port, filepath.Join(dir, "go.xml")) {
		if !r.failed && !r.skipped {
			goPassed++
		}
	}
	t.Logf("h2spec: %d of %d pass (%d skipped), Go's net/http: %d", passed, len(results), skipped, goPassed)
	if passed < goPassed {
		t.Errorf("telegate passes %d h2spec cases, Go's net/http %d", passed, goPassed)
	}
}

// runH2spec runs h2spec over TLS against localhost:port and returns its
// report's cases.
func runH2spec(t *testing.T, bin string, port int, report string) []h2specResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-t", "-k", "-h", "localhost", "-p", fmt.Sprint(port), "-o", "5", "-j", report)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("h2spec did not finish in time:\n%s", out)
	}
	if _, statErr := os.Stat(report); statErr != nil {
		t.Fatalf("h2spec wrote no report (%v):\n%s", err, out)
	}
	results := readH2specReport(t, report)
	if len(results) < 100 {
		t.Fatalf("h2spec reported %d cases:\n%s", len(results), out)
	}
	return results
}

// writeLocalhostCert writes a certificate for localhost and 127.0.0.1,
// signed by a CA made for this test, and its key, as PEM files in dir.
func writeLocalhostCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "telegate h2spec test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
