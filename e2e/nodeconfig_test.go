package e2e

import (
	"strings"
	"text/template"
)

// runConfig is the `telegate run` configuration of a node in these tests,
// written once: each test sets only what its node does differently. Its
// String is a format for runWithDevOP and startWithDevOP, whose verbs
// are %[1]s the data directory, %[2]d the public port, %[3]d the admin
// port, %[4]d the relay's UDP port, %[5]s the development provider's
// issuer, %[6]s its client secret file and %[7]s the relay secrets file;
// a test's own values follow from %[8] on, and its fields may name them.
//
// Every field is YAML text, whole lines each ending in "\n" and indented
// as in the file, except Host, HTTPListen, Names and Relay.
type runConfig struct {
	// Host is the address of every listener and of the relay's
	// candidates (relay_addresses, visits.ice_host); default 127.0.0.1.
	Host string
	// HTTPListen is server.http_listen ("host:port"); default "", none.
	HTTPListen string
	// Server are more keys of server ("  shutdown_timeout: 1s\n").
	Server string
	// TLS are more keys of tls ("  min_version: \"1.3\"\n").
	TLS string
	// Names is the flow list of the local CA's TLS names; default
	// "[localhost]".
	Names string
	// TLSSection, when set, is the whole tls section instead (TLS and
	// Names are then unused).
	TLSSection string
	// Sections are more top-level sections (sessions, redis, rate_limits,
	// inspection).
	Sections string
	// Providers are the items of providers; default devOP with devRoles.
	Providers string
	// Routes are the items of routes; default publicRoute.
	Routes string
	// Relay turns the relay on, Visits the visits (which need the
	// relay); RelayMore and VisitsMore are more keys of each.
	Relay, Visits         bool
	RelayMore, VisitsMore string
}

// devOP is the development OpenID Provider as a sign-in provider (the
// item of providers), without a role mapping.
const devOP = `  - id: dev
    display_name: Development sign-in
    issuer: %[5]s
    client_id: telegate
    client_secret_file: %[6]s
    scopes: [openid, profile, email, groups]
`

// devRoles maps the development provider's groups to the demo's roles
// (it follows devOP).
const devRoles = `    roles:
      claim: groups
      map:
        clinicians: [clinician]
        patients: [patient]
`

// developmentProvider is the development provider telegate starts itself
// (development: true), for a node run without runWithDevOP.
const developmentProvider = `  - id: dev
    development: true
`

// clinicEcho is a route only clinicians may open, to the upstream at
// %[4]s (identityEcho) with the identity forwarded: for a node with
// developmentProvider, run without runWithDevOP, whose relay is off, so
// that %[4] is free for it.
const clinicEcho = `  - id: clinic
    path: /clinic/
    upstream: %[4]s
    identity_headers: true
    policy:
      allow:
        - roles: [clinician]
`

// publicRoute is a route anyone may open, to an upstream that answers
// nothing.
const publicRoute = `  - id: public
    path: /public/
    upstream: http://127.0.0.1:9
    policy:
      public: true
`

var runConfigTemplate = template.Must(template.New("run").Parse(`
data_dir: %[1]s
server:
  listen: {{.Host}}:%[2]d
  http_listen: {{printf "%q" .HTTPListen}}
  admin: {{.Host}}:%[3]d
{{.Server}}{{if .TLSSection}}{{.TLSSection}}{{else}}tls:
{{.TLS}}  hosts:
    - names: {{.Names}}
      mode: local
{{end}}{{.Sections}}providers:
{{.Providers}}routes:
{{.Routes}}{{if .Relay}}relay:
  enabled: true
  listen: {{.Host}}:%[4]d
  relay_addresses: [{{.Host}}]
  secrets_file: %[7]s
{{.RelayMore}}{{end}}{{if .Visits}}visits:
  enabled: true
  ice_host: {{.Host}}
{{.VisitsMore}}{{end}}log:
  format: text
`))

// String is c as a format for runWithDevOP, the defaults filled in.
func (c runConfig) String() string {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Names == "" {
		c.Names = "[localhost]"
	}
	if c.Providers == "" {
		c.Providers = devOP + devRoles
	}
	if c.Routes == "" {
		c.Routes = publicRoute
	}
	var b strings.Builder
	if err := runConfigTemplate.Execute(&b, c); err != nil {
		panic(err) // the template and its fields are the tests' own
	}
	return b.String()
}

// lineOf is the number (from 1) of the first line of cfg that contains
// text, where telegate names a field of cfg by file:line; 0 when none.
func lineOf(cfg, text string) int {
	for i, l := range strings.Split(cfg, "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	return 0
}
