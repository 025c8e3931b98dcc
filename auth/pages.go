package auth

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"

	"github.com/telegate/telegate/scope"
)

// pageCSP allows the inline style of telegate's own pages and nothing else.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var pages = template.Must(template.New("layout").Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}} · telegate</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}a.btn,button{display:block;margin:.5rem 0;padding:.7rem 1rem;border:1px solid #0b5cad;border-radius:.4rem;background:#0b5cad;color:#fff;text-decoration:none;font-size:1rem;cursor:pointer;text-align:center;width:100%}
.rid{color:#57606a;font-size:.85rem}</style></head><body>{{end}}
{{define "foot"}}{{if .RequestID}}<p class="rid">Request id: <code>{{.RequestID}}</code></p>{{end}}</body></html>{{end}}
{{define "error"}}{{template "head" .}}<h1>{{.Title}}</h1><p>{{.Message}}</p><p>{{.Next}}</p>{{template "foot" .}}{{end}}
{{define "chooser"}}{{template "head" .}}<h1>Sign in</h1><p>Choose how to sign in:</p>
{{range .Choices}}<a class="btn" href="{{.URL}}">{{.Name}}</a>
{{end}}{{template "foot" .}}{{end}}
{{define "logout"}}{{template "head" .}}<h1>Sign out</h1><p>Sign out of this site?</p>
<form method="post" action="/.telegate/logout"><input type="hidden" name="rd" value="{{.ReturnTo}}"><button type="submit">Sign out</button></form>{{template "foot" .}}{{end}}
{{define "signedout"}}{{template "head" .}}<h1>You are signed out</h1><p><a href="{{.ReturnTo}}">Continue</a></p>{{template "foot" .}}{{end}}
`))

// pageData is what every page template reads.
type pageData struct {
	Title     string
	Message   string
	Next      string
	RequestID string
	ReturnTo  string
	Choices   []choice
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

// renderPage writes one of telegate's own HTML pages: no external assets,
// every value escaped by html/template, not cached, not framed.
func renderPage(w http.ResponseWriter, status int, name string, d pageData) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage answers status with a page that says what happened and what to
// do next, and carries the request id; never internals.
func (s *Service) errorPage(w http.ResponseWriter, r *http.Request, status int, msg, next string) {
	renderPage(w, status, "error", pageData{
		Title:     http.StatusText(status),
		Message:   msg,
		Next:      next,
		RequestID: requestID(r),
	})
}

// writeJSON answers status with v as JSON, not cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
