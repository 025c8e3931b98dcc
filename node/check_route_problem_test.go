package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
)

// TestRegression_RouteProblemAtItsCause: `telegate check` reports a
// route's host list that names one host twice (in any spelling) at that
// entry, once, and never as a path "already served by another route"
// or the same hosts as the route itself; a host tls.hosts names twice is
// reported at tls.hosts alone; a tls.hosts name the router cannot serve
// for a route without hosts is reported at that route's hosts, naming
// tls.hosts; a path another route serves names that route.
func TestRegression_RouteProblemAtItsCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tlsNames, route string
		field, says           string // the one problem of routes[1] ("" none), or of routes[0] for "0:"
	}{
		{"a host twice in other case", "[localhost, a.example]", "path: /other/\n    hosts: [A.example, a.example]", "routes[1].hosts[1]", "already listed for this route"},
		{"a host twice with a trailing dot", "[localhost, a.example]", "path: /other/\n    hosts: [a.example., a.example]", "routes[1].hosts[1]", "already listed for this route"},
		{"a host twice as written", "[localhost, a.example]", "path: /third/\n    hosts: [a.example, a.example]", "routes[1].hosts[1]", "already listed for this route"},
		{"a path another route serves", "[localhost]", "path: /clinic/\n    hosts: [localhost]", "routes[1].path", "routes[0]"},
		{"a tls name twice", "[localhost, LOCALHOST]", "path: /other/", "", ""},
		{"a wildcard tls name for routes without hosts", "[localhost, \"*.example.org\"]", "path: /other/", "routes[0].hosts", "tls.hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "server:\n  listen: localhost:8443\n  http_listen: \"\"\n  admin: 127.0.0.1:9090\n" +
				"tls:\n  hosts:\n    - names: " + tc.tlsNames + "\n      mode: local\n" +
				"routes:\n  - id: first\n    path: /clinic/\n    upstream: http://127.0.0.1:8080\n" +
				"  - id: second\n    " + tc.route + "\n    upstream: http://127.0.0.1:8080\n"
			file := filepath.Join(t.TempDir(), "telegate.yaml")
			if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Check(file)
			var errs config.Errors
			if err != nil && !errors.As(err, &errs) {
				t.Fatalf("Check: %v", err)
			}
			var routes config.Errors
			for _, e := range errs {
				if strings.HasPrefix(e.Field, "routes") {
					routes = append(routes, e)
				}
				if strings.Contains(e.Message, "another route") {
					t.Errorf("%v: does not say which route", e)
				}
			}
			if tc.field == "" {
				if len(routes) != 0 {
					t.Errorf("problems at routes for a fault of tls.hosts:\n%v", routes)
				}
				if len(errs) == 0 {
					t.Error("the doubled tls name is not refused")
				}
				return
			}
			if len(routes) != 1 || routes[0].Field != tc.field || !strings.Contains(routes[0].Message, tc.says) {
				t.Errorf("want one problem at %s saying %q; got:\n%v", tc.field, tc.says, routes)
			}
		})
	}
}
