package media

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The built-in client computes the security code in JavaScript
// (web/visit.js, securityCode); it must agree with SecurityCode, or two
// participants would read out different digits for the same connection.
func TestSecurityCodeMatchesWebClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	abs, err := filepath.Abs("web/visit.js")
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{"sha-256 " + fpOf(1), "sha-256 " + fpOf(100)},
		{"SHA-256 " + strings.ToLower(fpOf(7)), "sha-256 " + fpOf(9)},
		{"sha-1 " + fpOf(3)[:59], "sha-256 " + fpOf(200)},
	}
	for _, p := range pairs {
		want, err := SecurityCode(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		script := "import { securityCode } from " + jsString("file://"+abs) + ";\n" +
			"console.log(await securityCode(" + jsString(p[1]) + ", " + jsString(p[0]) + "));"
		out, err := exec.Command(node, "--input-type=module", "-e", script).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Fatalf("visit.js securityCode(%q, %q) = %s, media.SecurityCode = %s", p[1], p[0], got, want)
		}
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
