package auth

import (
	"net/http"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

var pages = page.Parse(`{{define "chooser"}}{{template "head" .}}<h1>Sign in</h1><p>Choose how to sign in:</p>
{{range .Choices}}<a class="btn" href="{{.URL}}">{{.Name}}</a>
{{end}}{{template "foot" .}}{{end}}
{{define "logout"}}{{template "head" .}}<h1>Sign out</h1><p>Sign out of this site?</p>
<form method="post" action="/.telegate/logout"><input type="hidden" name="rd" value="{{.ReturnTo}}"><button type="submit">Sign out</button></form>{{template "foot" .}}{{end}}
{{define "leaving"}}{{template "headstart" .}}<meta http-equiv="refresh" content="0; url={{.EndSession}}">{{template "headend" .}}<h1>Signing out</h1>
<p>You are signed out of this site. Your identity provider signs you out next.</p>
<p><a class="btn" id="continue" href="{{.EndSession}}">Continue</a></p>{{template "foot" .}}{{end}}
{{define "signedout"}}{{template "head" .}}<h1>You are signed out</h1><p><a href="{{.ReturnTo}}">Continue</a></p>{{template "foot" .}}{{end}}
`)

// pageData is what every page template reads.
type pageData struct {
	Title     string
	Message   string
	Next      string
	RequestID string
	ReturnTo  string
	// EndSession is the provider's end-session URL ("leaving" page).
	EndSession string
	Choices    []choice
}

type choice struct {
	Name string
	URL  string
}

func requestID(r *http.Request) string {
	if sc := scope.From(r.Context()); sc != nil {
		return sc.RequestID
	}
	return ""
}

// renderPage writes one of sign-in's own HTML pages (page.Render).
func renderPage(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	page.Render(w, r, status, pages, name, d)
}
