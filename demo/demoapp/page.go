package demoapp

import (
	"html/template"
	"net/http"
)

// pageCSP: the page's own <style> block only; no script, no external asset,
// no framing, forms post to this origin only (the sign-out button posts to
// the gateway, which goes on to the identity provider by a page of its
// own, not a redirect that form-action would hold back).
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func setHTMLHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
}

type link struct{ Href, Label string }

var links = []link{{"/", "Home"}, {"/clinic/", "Clinic"}, {"/admin/", "Admin"}, {"/public/", "Public"}}

type pageData struct {
	View  View
	Links []link
}

var pageTmpl = template.Must(template.New("demoapp").Parse(`{{define "top"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · telegate demo app</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f7f9;color:#1d2b36}
header{background:#0b5563;color:#fff;padding:.8em 1.2em}
header strong{letter-spacing:.03em}
nav a{color:#fff;margin-right:1em}
nav a.here{font-weight:bold;text-decoration:none;border-bottom:2px solid #fff}
main{max-width:44em;margin:1.5em auto;background:#fff;padding:1.2em 2em;border:1px solid #d6e0e6;border-radius:6px}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.4em 1em}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
@media (max-width:32em){main{margin:.5em;padding:1em}}
.bad{color:#8a1020}.ok{color:#0b6b2e}
button{padding:.5em 1.2em;font-size:1em}
small{color:#556}
</style>
</head>
<body>
{{end}}
{{define "page"}}{{template "top" .View.Section}}<header><strong>telegate demo app</strong> — an upstream behind the gateway
<nav>{{$here := .View.Section}}{{range .Links}}<a href="{{.Href}}"{{if eq .Href $here}} class="here" aria-current="page"{{end}}>{{.Label}}</a>{{end}}</nav>
</header>
<main>
<h1>Section {{.View.Section}}</h1>
{{with .View}}{{if .Authenticated}}<p>The gateway vouched for you with a signed assertion, and it verified.</p>
<dl>
<dt>Name</dt><dd>{{if .Name}}{{.Name}}{{else}}<small>(not shared with this route)</small>{{end}}</dd>
<dt>Subject</dt><dd id="subject">{{.Subject}}</dd>
<dt>Issuer</dt><dd>{{.Issuer}}</dd>
<dt>Roles</dt><dd id="roles">{{range $i, $r := .Roles}}{{if $i}}, {{end}}{{$r}}{{else}}<small>(none)</small>{{end}}</dd>
<dt>MFA</dt><dd id="mfa">{{if .MFA}}<span class="ok">yes, more than one factor</span>{{else}}<span class="bad">no</span>{{end}}</dd>
<dt>Route</dt><dd id="route">{{.Route}}</dd>
<dt>Path</dt><dd>{{.Path}}</dd>
</dl>
{{if .HasRole "clinician"}}<p><a id="visits" href="/.telegate/visits/lobby">Start a video visit</a> — create a visit, copy the patient's invite link, and admit the patient from the waiting room.</p>
{{else if .HasRole "patient"}}<p><small>Joining a video visit? Open the invite link your clinician sent you.</small></p>{{end}}
<form method="post" action="/.telegate/logout"><button type="submit">Sign out</button></form>
{{else}}<p id="anonymous">No identity assertion came with this request: this is a public route and the app does not know who you are.</p>
<dl><dt>Path</dt><dd>{{.Path}}</dd></dl>
{{end}}{{end}}</main>
</body>
</html>
{{end}}
{{define "denied"}}{{template "top" "Not verified"}}<header><strong>telegate demo app</strong></header>
<main>
<h1>401: the gateway's assertion did not verify</h1>
<p class="bad">This app refuses the request: the identity assertion that came with it is not one the gateway signed for this app, or it has expired.</p>
<p><small>The app checks the assertion's signature (ES256, keys from the gateway's JWKS), issuer, audience and expiry itself.</small></p>
</main>
</body>
</html>
{{end}}
`))
