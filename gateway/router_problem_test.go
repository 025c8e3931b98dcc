package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// TestRegression_RouterProblemAtItsField: what the router refuses (two
// routes for one host and path, paths that differ only in letter case,
// a path or host it cannot use) is reported at the refused route's own
// field and line, like every validation error, and never at the file's
// "routes" key with the router's own wording, where `telegate check`
// showed it a second time on the wrong line.
func TestRegression_RouterProblemAtItsField(t *testing.T) {
	t.Parallel()
	const head = "server:\n  listen: localhost:8443\n  http_listen: \"\"\n  admin: 127.0.0.1:9090\n" +
		"tls:\n  hosts:\n    - names: [localhost]\n      mode: local\n" +
		"routes:\n  - id: first\n    path: /clinic/\n    upstream: http://127.0.0.1:8080\n    public: true\n"
	for _, tc := range []struct{ name, route, field string }{
		{"the same path twice", "path: /clinic/", "routes[1].path"},
		{"paths differing in letter case", "path: /Clinic/", "routes[1].path"},
		{"a path with a dot segment", "path: /a/../clinic/", "routes[1].path"},
		{"a path with an encoded slash", "path: \"/a%2fb/\"", "routes[1].path"},
		{"a host with a space", "path: /other/\n    hosts: [\"exa mple.org\"]", "routes[1].hosts[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := head + "  - id: second\n    " + tc.route + "\n    upstream: http://127.0.0.1:8080\n    public: true\n"
			file := filepath.Join(t.TempDir(), "telegate.yaml")
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			key := tc.field[strings.LastIndex(tc.field, ".")+1:]
			if i := strings.IndexByte(key, '['); i >= 0 {
				key = key[:i]
			}
			wantLine := 0
			for n, l := range strings.Split(src, "\n") {
				if n > 13 && strings.HasPrefix(strings.TrimSpace(l), key+":") {
					wantLine = n + 1
					break
				}
			}
			cfg, _ := config.LoadPartial(file)
			if cfg == nil {
				t.Fatal("the file did not load")
			}
			var errs config.Errors
			if err := Check(Generation{Config: cfg}); !errors.As(err, &errs) {
				t.Fatalf("Check: %v, want problems at fields", err)
			}
			found := false
			for _, e := range errs {
				if e.Field == "routes" || strings.Contains(e.Message, "route \"second\"") {
					t.Errorf("problem at the routes key: %v", e)
				}
				if e.Field == tc.field {
					found = true
					if e.Line != wantLine || e.File != file {
						t.Errorf("%v: at %s:%d, want line %d", e, e.File, e.Line, wantLine)
					}
				}
			}
			if !found {
				t.Errorf("no problem at %s; got:\n%v", tc.field, errs)
			}
		})
	}
}
