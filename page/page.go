// Package page is telegate's one writer of its own pages and error
// answers, for every plane (gateway, sign-in, visits, inspection, the
// plain-HTTP redirector). An error answers HTML (html/template, telegate's
// layout) to browsers and one JSON shape to API clients:
//
//	{"status": 403, "error": "You are not allowed to open this page.", "reason": "forbidden", "request_id": "…"}
//
// always with the request id (also in X-Request-Id), Cache-Control:
// no-store and X-Content-Type-Options: nosniff, and never internals: the
// message is a sentence written for the user by the caller.
package page

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"

	"github.com/telegate/telegate/scope"
)

// RequestIDHeader is the response header carrying the request id.
const RequestIDHeader = "X-Request-Id"

// CSP is the Content-Security-Policy of telegate's own pages: the layout's
// inline style and nothing else loads, forms post only to this site, and
// no one may frame the page.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// layout holds the "head" and "foot" templates every page uses, and the
// error page. head reads .Title; foot reads .RequestID. A page that needs
// more in its <head> writes {{template "headstart" .}}, its elements,
// then {{template "headend" .}} instead of head.
var layout = template.Must(template.New("layout").Parse(layoutText))

const layoutText = `{{define "head"}}{{template "headstart" .}}{{template "headend" .}}{{end}}
{{define "headstart"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}} · telegate</title>{{end}}
{{define "headend"}}<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}a.btn,button{display:block;margin:.5rem 0;padding:.7rem 1rem;border:1px solid #0b5cad;border-radius:.4rem;background:#0b5cad;color:#fff;text-decoration:none;font-size:1rem;cursor:pointer;text-align:center;width:100%}
select{font-size:1rem;padding:.4rem;width:100%}.rid{color:#57606a;font-size:.85rem}</style></head><body>{{end}}
{{define "foot"}}{{if .RequestID}}<p class="rid">Request id: <code>{{.RequestID}}</code></p>{{end}}</body></html>
{{end}}
{{define "error"}}{{template "head" .}}<h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Next}}<p>{{.Next}}</p>{{end}}<p><a href="/">Home</a></p>{{template "foot" .}}{{end}}
`

// Parse returns a template set with telegate's layout and text, whose
// templates may use {{template "head" .}} (reads .Title) and
// {{template "foot" .}} (reads .RequestID). It panics on a parse error,
// like template.Must: the texts are constants.
func Parse(text string) *template.Template {
	return template.Must(template.Must(template.New("layout").Parse(layoutText)).Parse(text))
}

// Render writes template name of t with data as an HTML page with status:
// not cached, not sniffed, not framed, no referrer, the CSP above. A
// template that fails to execute answers a bare 500 page instead.
func Render(w http.ResponseWriter, r *http.Request, status int, t *template.Template, name string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		buf.Reset()
		status = http.StatusInternalServerError
		_ = layout.ExecuteTemplate(&buf, "error", errorData{
			Title: title(status), Message: "Something went wrong.", RequestID: RequestID(w, r),
		})
	}
	h := w.Header()
	clearEntityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// Problem is one error answer.
type Problem struct {
	// Status is the HTTP status (4xx or 5xx).
	Status int
	// Message says what happened, in one sentence for the user. Never
	// internals (no error strings, rule ids, addresses).
	Message string
	// Next says what to do next; shown on the HTML page only.
	Next string
	// Reason is a short machine-readable reason for API clients
	// ("unknown-visit", "csrf", …); "" means one derived from the status
	// ("not-found", "forbidden", …).
	Reason string
	// JSON answers JSON whatever the client accepts: for endpoints that
	// only speak JSON (the visits API, bearer-token refusals).
	JSON bool
}

// Body is the one JSON shape of an error answer.
type Body struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

// Error answers status with message and next (what to do next): an HTML
// page for browsers, Body as JSON for API clients (see WantsJSON).
func Error(w http.ResponseWriter, r *http.Request, status int, message, next string) {
	Write(w, r, Problem{Status: status, Message: message, Next: next})
}

// Refuse records a refusal for the request's audit record and metrics
// (scope.Scope.Decision: deny with reason) and answers status with the
// generic "The request was refused." message: the writer every stage uses
// to turn a request away.
func Refuse(w http.ResponseWriter, r *http.Request, status int, reason scope.Reason) {
	if s := scope.From(r.Context()); s != nil {
		s.Decision = scope.Decision{Allow: false, Reason: reason}
	}
	Error(w, r, status, "The request was refused.", "")
}

// Write answers p: Body as JSON when p.JSON or WantsJSON(r), else the error
// page. The answer replaces any entity headers already set (an upstream's
// Content-Encoding, Content-Length, ETag, …) and carries the request id in
// the body and in X-Request-Id. A HEAD request gets the headers only.
func Write(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Status < 400 || p.Status > 599 {
		p.Status = http.StatusInternalServerError
	}
	if p.Message == "" {
		p.Message = http.StatusText(p.Status) + "."
	}
	if p.Reason == "" {
		p.Reason = statusReason(p.Status)
	}
	id := RequestID(w, r)
	if !p.JSON && !WantsJSON(r) {
		Render(w, r, p.Status, layout, "error", errorData{
			Title: title(p.Status), Message: p.Message, Next: p.Next, RequestID: id,
		})
		return
	}
	b, _ := json.Marshal(Body{Status: p.Status, Error: p.Message, Reason: p.Reason, RequestID: id})
	h := w.Header()
	clearEntityHeaders(h)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

// WantsJSON reports whether an error for r is answered as JSON: on an API
// route (Route.API), or when the client accepts application/json but not
// text/html.
func WantsJSON(r *http.Request) bool {
	if r == nil {
		return false
	}
	if s := scope.From(r.Context()); s != nil && s.Route != nil && s.Route.API {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// RequestID returns the request's id: the scope's, else the X-Request-Id
// response header already set, else a fresh one (16 random bytes, hex),
// which it sets in X-Request-Id. The header always carries the id it
// returns.
func RequestID(w http.ResponseWriter, r *http.Request) string {
	id := ""
	if r != nil {
		if s := scope.From(r.Context()); s != nil {
			id = s.RequestID
		}
	}
	h := w.Header()
	if id == "" {
		id = h.Get(RequestIDHeader)
	}
	if id == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	h.Set(RequestIDHeader, id)
	return id
}

type errorData struct {
	Title, Message, Next, RequestID string
}

func title(status int) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Error"
}

// statusReason is the reason derived from a status: "Not Found" →
// "not-found".
func statusReason(status int) string {
	t := http.StatusText(status)
	if t == "" {
		return "error"
	}
	return strings.ToLower(strings.NewReplacer(" ", "-", "'", "").Replace(t))
}

func clearEntityHeaders(h http.Header) {
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified", "Content-Disposition", "Content-Language"} {
		h.Del(k)
	}
}
