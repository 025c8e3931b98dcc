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
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/telegate/telegate/scope"
)

// RequestIDHeader is the response header carrying the request id.
const RequestIDHeader = "X-Request-Id"

// CSP is the Content-Security-Policy of telegate's own pages: the shared
// stylesheet (StylePath) and nothing else loads, forms post only to this
// site, and no one may frame the page.
const CSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// layoutText is the layout of every own page: a header with the language
// switch (a form posting to LangPath, one button per language, the
// page's own pressed; not on English-only pages) and naming the signed-in
// account with sign-out and switch-account buttons (when a session
// exists), then main with the title as its h1, the content and
// the request id. It reads a layoutData.
const layoutText = `{{define "layout"}}<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">{{if .Refresh}}<meta http-equiv="refresh" content="0; url={{.Refresh}}">{{end}}
<title>{{.Title}} · telegate</title><link rel="stylesheet" href="` + StylePath + `"></head>
<body class="own"><header><p class="brand">telegate</p>{{with .Switch}}
<nav id="language-switch" class="language-switch" data-testid="language-switch" aria-label="{{t "Language"}}"><form method="post" action="` + LangPath + `"><input type="hidden" name="rd" value="{{$.Here}}">{{range .}}<button type="submit" class="secondary" name="lang" value="{{.Code}}" lang="{{.Code}}" data-lang="{{.Code}}" data-testid="lang-{{.Code}}" aria-pressed="{{.On}}">{{.Name}}</button>{{end}}</form></nav>{{end}}{{with .Account}}
<div class="account"><p class="who" data-testid="signed-in-as">{{t "Signed in as %s" .Name}}</p>
<form method="post" action="/.telegate/logout"><input type="hidden" name="rd" value="{{.ReturnTo}}"><button type="submit" class="secondary" data-testid="sign-out">{{t "Sign out"}}</button></form>
<form method="post" action="/.telegate/logout"><input type="hidden" name="rd" value="{{.ReturnTo}}"><input type="hidden" name="switch" value="1"><button type="submit" class="secondary" data-testid="switch-account">{{t "Switch account"}}</button></form>
</div>{{end}}</header>
<main><div class="card"><h1>{{.Title}}</h1>
{{.Body}}</div>
{{if .RequestID}}<p class="hint rid">{{t "Request id:"}} <code>{{.RequestID}}</code></p>{{end}}</main></body></html>
{{end}}`

// errorText is the content of an error page (errorData).
const errorText = `{{define "error"}}<p class="message"{{with .MessageLang}} lang="{{.}}"{{end}}>{{.Message}}</p><p class="next"{{with .NextLang}} lang="{{.}}"{{end}}>{{.Next}}</p>
<p class="actions"><a class="button" href="/">{{t "Go to the home page"}}</a></p>{{end}}`

// Set is a set of page templates in every language of Languages: each
// language's templates call {{t "English msgid" args…}} to write a
// string of the server-side catalogue in that language.
type Set struct {
	byLang  map[string]*template.Template
	english bool
}

// Parse returns the Set of text, which defines content templates (what
// goes inside a page's main, below its title) rendered by Render inside
// telegate's layout. Their words go through {{t "…"}}. It panics on a
// parse error, like template.Must: the texts are constants.
func Parse(text string) *Set {
	s := &Set{byLang: map[string]*template.Template{}}
	for _, lang := range Languages {
		s.byLang[lang] = template.Must(template.Must(template.New("layout").Funcs(funcs(lang)).Parse(layoutText)).Parse(text))
	}
	return s
}

// ParseEnglish is Parse for pages written only in English (operators'
// pages): they are shown in English, with lang="en", whatever the
// browser asks for.
func ParseEnglish(text string) *Set {
	s := Parse(text)
	s.english = true
	return s
}

func funcs(lang string) template.FuncMap {
	return template.FuncMap{"t": func(msgid string, args ...any) string { return T(lang, msgid, args...) }}
}

var errorSet = Parse(errorText)

// Doc is what the layout needs to know of one page besides its content.
type Doc struct {
	// Status is the HTTP status of the answer.
	Status int
	// Title is the page's title (and h1), an English msgid translated
	// through the catalogue.
	Title string
	// Refresh, when set, is a URL the page navigates to at once (meta
	// refresh), for a page that goes on by itself.
	Refresh string
	// Anonymous leaves the signed-in account out of the header (the pages
	// of signing out, whose session is ending).
	Anonymous bool
	// Return is where the language switch comes back to: a same-origin
	// path with the query that says what the page shows (the sign-in
	// chooser's rd), SafeReturnPath. "" is the request's path without its
	// query, which may hold what the page must not repeat (a sign-in
	// code).
	Return string
}

// langChoice is one button of the language switch.
type langChoice struct {
	Code, Name string
	On         bool
}

// Account is the signed-in person as an own page's header names them.
type Account struct {
	// Name is the session's display name, else its email, else its
	// preferred_username (ID token / UserInfo claims); never a token or
	// an id.
	Name string
	// ReturnTo is the path the sign-out forms come back to.
	ReturnTo string
}

// AccountOf returns the account r's pages name: the identity of a
// sign-in session (scope.Identity, Kind "session"), or nil for anyone
// else (anonymous, a bearer token, a device).
func AccountOf(r *http.Request, lang string) *Account {
	if r == nil {
		return nil
	}
	s := scope.From(r.Context())
	if s == nil || s.Identity == nil || s.Identity.Kind != "session" {
		return nil
	}
	a := &Account{Name: T(lang, "your account"), ReturnTo: "/"}
	for _, k := range []string{"name", "email", "preferred_username"} {
		if v, ok := s.Identity.Claims[k].(string); ok && strings.TrimSpace(v) != "" {
			a.Name = strings.TrimSpace(v)
			break
		}
	}
	if strings.HasPrefix(s.Path, "/") && !strings.HasPrefix(s.Path, "//") && !strings.HasPrefix(s.Path, "/.telegate/") {
		a.ReturnTo = s.Path
	}
	return a
}

type layoutData struct {
	Lang, Title, Refresh, RequestID string
	Account                         *Account
	Body                            template.HTML
	// Switch is the language switch (nil: none); Here is where it comes
	// back to.
	Switch []langChoice
	Here   string
}

// hereOf is where the language switch of r's page comes back to.
func hereOf(r *http.Request, d Doc) string {
	if d.Return != "" {
		return SafeReturnPath(d.Return)
	}
	if r == nil {
		return "/"
	}
	p := r.URL.Path
	if s := scope.From(r.Context()); s != nil && s.Path != "" {
		p = s.Path
	}
	return SafeReturnPath(p)
}

// Render writes template name of set with data, inside telegate's layout,
// as an HTML page in the language of r (Lang, with the language switch): not cached, not sniffed,
// not framed, no referrer, the CSP above. A template that fails to
// execute answers a bare 500 page instead.
func Render(w http.ResponseWriter, r *http.Request, d Doc, set *Set, name string, data any) {
	render(w, r, Lang(r), d, set, name, data)
}

// render is Render in lang.
func render(w http.ResponseWriter, r *http.Request, lang string, d Doc, set *Set, name string, data any) {
	if set.english {
		lang = Languages[0]
	}
	t := set.byLang[lang]
	var body bytes.Buffer
	err := t.ExecuteTemplate(&body, name, data)
	if err != nil {
		body.Reset()
		d = Doc{Status: http.StatusInternalServerError, Title: title(http.StatusInternalServerError)}
		t = errorSet.byLang[lang]
		_ = t.ExecuteTemplate(&body, "error", errorData{Message: T(lang, "Something went wrong."), Next: T(lang, nextFor(d.Status))})
	}
	ld := layoutData{Lang: lang, Title: T(lang, d.Title), Refresh: d.Refresh, RequestID: RequestID(w, r), Body: template.HTML(body.String())}
	if !set.english {
		ld.Here = hereOf(r, d)
		for _, l := range Languages {
			ld.Switch = append(ld.Switch, langChoice{Code: l, Name: LanguageNames[l], On: l == lang})
		}
	}
	if !d.Anonymous {
		ld.Account = AccountOf(r, lang)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", ld); err != nil {
		buf.Reset()
		d.Status = http.StatusInternalServerError
		buf.WriteString("<!doctype html><title>Error</title><p>Something went wrong.</p>")
	}
	h := w.Header()
	clearEntityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Set("Vary", "Accept-Language, Cookie")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(d.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// Problem is one error answer.
type Problem struct {
	// Status is the HTTP status (4xx or 5xx).
	Status int
	// Message says what happened, in one sentence for the user: an
	// English msgid of the server-side catalogue (catalogue.go), shown in
	// the page's language; a fmt format when Args are set. Never
	// internals (no error strings, rule ids, addresses).
	Message string
	// Args fill Message's format verbs (a provider's display name, say).
	Args []any
	// Next says what to do next, a msgid like Message; shown on the HTML
	// page only. "" is the plain advice for the status (what to do on a
	// 404, a 429, a 503 …).
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

// Error answers status with message and next (what to do next; "" the
// plain advice for the status), both English msgids of the catalogue: an
// HTML page for browsers in their language, Body as JSON (in English) for
// API clients (see WantsJSON).
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
		p.Message = messageFor(p.Status)
	}
	if p.Reason == "" {
		p.Reason = statusReason(p.Status)
	}
	id := RequestID(w, r)
	if !p.JSON && !WantsJSON(r) {
		lang := Lang(r)
		next := p.Next
		if next == "" {
			next = nextFor(p.Status)
		}
		render(w, r, lang, Doc{Status: p.Status, Title: title(p.Status)}, errorSet, "error", errorData{
			Message: T(lang, p.Message, p.Args...), Next: T(lang, next),
			MessageLang: untranslated(lang, p.Message), NextLang: untranslated(lang, next),
		})
		return
	}
	msg := p.Message
	if len(p.Args) > 0 {
		msg = fmt.Sprintf(msg, p.Args...)
	}
	b, _ := json.Marshal(Body{Status: p.Status, Error: msg, Reason: p.Reason, RequestID: id})
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

// errorData is an error page's content; MessageLang and NextLang are
// "en" for a text the catalogue has no translation of (shown in English
// on a page in another language).
type errorData struct {
	Message, Next         string
	MessageLang, NextLang string
}

// untranslated is "en" when msgid has no translation in lang.
func untranslated(lang, msgid string) string {
	if Translated(lang, msgid) {
		return ""
	}
	return Languages[0]
}

// title is the title of an error page of status, in plain words.
func title(status int) string {
	if t, ok := titles[status]; ok {
		return t
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return "This request was not served"
}

var titles = map[int]string{
	400: "This request could not be read",
	401: "Please sign in",
	403: "You cannot open this page",
	404: "Page not found",
	405: "This action is not possible here",
	409: "This could not be done now",
	413: "Too much was sent",
	421: "This address is not served here",
	429: "Too many requests",
	500: "Something went wrong",
	501: "This could not be done",
	502: "The service cannot be reached",
	503: "The service is not available right now",
	504: "The service did not answer in time",
}

// messageFor is the message of an error of status whose caller gave none.
func messageFor(status int) string {
	if status >= 500 {
		return "The service could not answer this request."
	}
	return "The request was refused."
}

// nextFor is the plain advice for an error of status whose caller said
// nothing of what to do next.
func nextFor(status int) string {
	switch {
	case status == 401:
		return "Sign in, then open the page again."
	case status == 403:
		return "If you need this page, ask your administrator for access and give them the request id below. If you are signed in with the wrong account, switch account."
	case status == 404:
		return "Check the address for typing mistakes, or go to the home page."
	case status == 429:
		return "Wait a minute, then try again."
	case status == 413:
		return "Send a smaller file or less text, then try again."
	case status >= 500:
		return "Wait a minute, then try again. If it keeps happening, contact support and give them the request id below."
	}
	return "Go back, check what you entered, and try again. If it keeps happening, contact support and give them the request id below."
}

// statusReason is the reason derived from a status: "Not Found" →
// "not-found".
func statusReason(status int) string {
	t := http.StatusText(status)
	if t == "" {
		return "error"
	}
	return strings.ToLower(reasonReplacer.Replace(t))
}

var reasonReplacer = strings.NewReplacer(" ", "-", "'", "")

func clearEntityHeaders(h http.Header) {
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Range", "Etag", "Last-Modified", "Content-Disposition", "Content-Language"} {
		h.Del(k)
	}
}
