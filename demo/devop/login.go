package devop

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// pageCSP allows the page's own <style> block and nothing else: no script,
// no external asset, no framing. form-action is left out on purpose: after
// the sign-in POST the browser follows redirects to the relying party.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"

var pages = template.Must(template.New("layout").Parse(`{{define "top"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · DEMO identity provider</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f6;color:#222}
.demo{background:#b00020;color:#fff;padding:.8em 1em;font-weight:bold;text-align:center;letter-spacing:.02em}
main{max-width:28em;margin:2em auto;background:#fff;padding:1.5em 2em;border:1px solid #ddd;border-radius:6px}
label{display:block;margin-top:1em;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5em;font-size:1em;margin-top:.3em}
button{margin-top:1.5em;padding:.6em 1.5em;font-size:1em}
.error{background:#fde7ea;border:1px solid #b00020;color:#7a0016;padding:.6em}
table{border-collapse:collapse;margin-top:.5em}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #eee}
small{color:#555}
</style>
</head>
<body>
<div class="demo" role="note">DEMO IDENTITY PROVIDER · development sign-in — not for patients. For development and testing only: never use real accounts or patient data.</div>
<main>
{{end}}
{{define "bottom"}}</main>
</body>
</html>
{{end}}
{{define "login"}}{{template "top" "Sign in"}}<h1>Sign in</h1>
<p><small>This is telegate's built-in demo OpenID Provider.</small></p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" value="{{.Username}}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{if .Accounts}}<h2>Demo accounts</h2>
<table><tr><th>Username</th><th>Groups</th></tr>
{{range .Accounts}}<tr><td>{{.Username}}</td><td>{{range $i, $g := .Groups}}{{if $i}}, {{end}}{{$g}}{{end}}</td></tr>
{{end}}</table>
<p><small>The password of every demo account is <code>demo</code>.</small></p>{{end}}
{{template "bottom"}}{{end}}
{{define "message"}}{{template "top" .Title}}<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{template "bottom"}}{{end}}
`))

type loginData struct {
	ID       string
	Username string
	Error    string
	Accounts []User
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, d loginData) {
	if s.demoUsers {
		d.Accounts = DemoUsers()
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "login", d); err != nil {
		s.log.Error("demo identity provider: render login page", "error", err)
	}
}

func (s *Server) renderMessage(w http.ResponseWriter, status int, title, text string) {
	setPageHeaders(w)
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "message", struct{ Title, Text string }{title, text}); err != nil {
		s.log.Error("demo identity provider: render page", "error", err)
	}
}

const goneText = "This sign-in request is unknown, has expired or has been used. Go back to the application and sign in again."

// loginPage shows the sign-in form for the pending auth request named by
// the authRequestID query parameter.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if !s.st.pendingRequest(id) {
		s.renderMessage(w, http.StatusBadRequest, "Sign-in request expired", goneText)
		return
	}
	s.renderLogin(w, http.StatusOK, loginData{ID: id})
}

// loginSubmit checks the posted username and password. A wrong password
// and an unknown user get the same answer (401, the form again with one
// message); five failures end the auth request. On success the browser is
// sent to the OP's authorization callback, which redirects to the client
// with the code.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, http.StatusBadRequest, "Bad request", "The sign-in form could not be read.")
		return
	}
	id := r.PostForm.Get("id")
	username := r.PostForm.Get("username")
	err := s.st.checkLogin(id, username, r.PostForm.Get("password"))
	switch {
	case errors.Is(err, errLogin):
		s.log.Info("demo identity provider: sign-in failed")
		s.renderLogin(w, http.StatusUnauthorized, loginData{ID: id, Username: username, Error: "Wrong username or password. Try again."})
		return
	case err != nil:
		s.renderMessage(w, http.StatusBadRequest, "Sign-in request expired", goneText)
		return
	}
	s.log.Info("demo identity provider: signed in")
	http.Redirect(w, r, op.AuthCallbackURL(s.provider)(r.Context(), id), http.StatusFound)
}

func (s *Server) loggedOutPage(w http.ResponseWriter, _ *http.Request) {
	s.renderMessage(w, http.StatusOK, "Signed out", "You have signed out of the demo identity provider. You can close this window.")
}

func (s *Server) homePage(w http.ResponseWriter, _ *http.Request) {
	s.renderMessage(w, http.StatusOK, "Demo identity provider", "This is telegate's development OpenID Provider. Its configuration is at "+s.issuer+"/.well-known/openid-configuration. Sign in through an application that uses it.")
}
