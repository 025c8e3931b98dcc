package auth

import (
	"net/http"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

var pages = page.Parse(`{{define "chooser"}}<p>{{t "Choose how to sign in:"}}</p>
<p class="choices">{{range .Choices}}<a class="button" href="{{.URL}}">{{.Name}}</a>
{{end}}</p>{{end}}
{{define "logout"}}<p>{{t "Sign out of this site?"}}</p>
<form method="post" action="/.telegate/logout"><input type="hidden" name="rd" value="{{.ReturnTo}}"><button type="submit" data-testid="confirm-sign-out">{{t "Sign out"}}</button></form>{{end}}
{{define "leaving"}}<p>{{t "You are signed out of this site. Your identity provider signs you out next."}}</p>
<p class="actions"><a class="button" id="continue" href="{{.EndSession}}">{{t "Continue"}}</a></p>{{end}}
{{define "signedout"}}<p>{{t "You are signed out. To protect patient information, close this window if others use this device."}}</p>
<p class="actions">{{if .Switch}}<a class="button" data-testid="sign-in-other" href="{{.SwitchURL}}">{{t "Sign in with another account"}}</a>
<a class="button secondary" href="{{.ReturnTo}}">{{t "Continue"}}</a>{{else}}<a class="button" href="{{.ReturnTo}}">{{t "Continue"}}</a>
<a class="button secondary" data-testid="sign-in-other" href="{{.SwitchURL}}">{{t "Sign in with another account"}}</a>{{end}}</p>{{end}}
`)

// pageData is what every page template reads.
type pageData struct {
	ReturnTo string
	// Switch is set on the signed-out page of "switch account": signing
	// in with another account is its first choice.
	Switch bool
	// SwitchURL starts a sign-in that asks which account
	// (prompt=select_account) and comes back to ReturnTo.
	SwitchURL string
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
func renderPage(w http.ResponseWriter, r *http.Request, doc page.Doc, name string, d pageData) {
	page.Render(w, r, doc, pages, name, d)
}
