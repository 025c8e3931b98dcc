package media

import (
	"bytes"
	"embed"
	"html"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// web holds the built-in client: pages, the call logic, styles and the
// embeddable module visit.js. No external CDN; no inline script or style.
//
//go:embed web
var web embed.FS

// cspFor is the Content-Security-Policy of telegate's visit pages. A host
// with characters outside a host[:port] is left out (connect-src 'self'
// still covers same-origin WebSockets in CSP 3).
func cspFor(host string) string {
	connect := "'self'"
	if host != "" && strings.Trim(strings.ToLower(host), "abcdefghijklmnopqrstuvwxyz0123456789.-:[]") == "" {
		connect += " wss://" + host
	}
	return "default-src 'self'; script-src 'self'; connect-src " + connect +
		"; img-src 'self' data:; media-src 'self' blob: mediastream:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
}

func setPageHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", cspFor(r.Host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// page serves an HTML page to a signed-in caller; without identity it
// redirects to sign-in and back here (the invite URL for the join page).
func (s *Service) page(name string) http.HandlerFunc { return s.servePage(name, true) }

// publicPage serves an HTML page to anyone: the guest page, which itself
// offers to sign in or, where allowed, to join without an account.
func (s *Service) publicPage(name string) http.HandlerFunc { return s.servePage(name, false) }

func (s *Service) servePage(name string, signedIn bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "" && !validID(r.PathValue("id")) {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
			return
		}
		if signedIn && !requireIdentityPage(w, r) {
			return
		}
		b, err := pageHTML(name)
		if err != nil {
			page.Error(w, r, http.StatusNotFound, "Not found.", "")
			return
		}
		if b, err = withAccount(b, page.AccountOf(r, page.Lang(r))); err != nil {
			page.Error(w, r, http.StatusInternalServerError, "Something went wrong.", "")
			return
		}
		setPageHeaders(w, r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(inLanguage(w, r, b))
	}
}

// inLanguage returns page b set in r's language (page.Lang: the one
// chosen with a language switch, else the browser's): its <html lang>
// names it, and says with data-lang-chosen when it was chosen with a
// switch. The page's script speaks the language <html lang> names.
func inLanguage(w http.ResponseWriter, r *http.Request, b []byte) []byte {
	lang := page.Lang(r)
	tag := `<html lang="` + lang + `">`
	if _, ok := page.Chosen(r); ok {
		tag = `<html lang="` + lang + `" data-lang-chosen="">`
	}
	w.Header().Set("Content-Language", lang)
	w.Header().Set("Vary", "Accept-Language, Cookie")
	return withWords(lang, bytes.Replace(b, []byte(`<html lang="en">`), []byte(tag), 1))
}

// textRE is an element whose text is the catalogue's word data-t names
// (its content written by withWords: plain text, no child elements).
var textRE = regexp.MustCompile(`(<[a-z][a-z0-9]*\s[^>]*\bdata-t="([a-zA-Z0-9.-]+)"[^>]*>)[^<]*(</)`)

// wordAttrs are the attributes withWords writes from the catalogue, each
// with the data- attribute naming its key: an element's aria-label
// (data-t-label="key") and a text field's placeholder
// (data-t-placeholder="key"). tagRE is an element with such a key.
var (
	wordAttrs = [][2]string{{"data-t-label", "aria-label"}, {"data-t-placeholder", "placeholder"}}
	tagRE     = func() map[string]*regexp.Regexp {
		m := map[string]*regexp.Regexp{}
		for _, a := range wordAttrs {
			m[a[0]] = regexp.MustCompile(`<[a-z][a-z0-9]*\s[^>]*\b` + a[0] + `="([a-zA-Z0-9.-]+)"[^>]*>`)
		}
		return m
	}()
)

// withWords returns page b with its own words written in lang from
// telegate's one catalogue (page.ClientText): the text of every element
// with data-t="key" and the attributes of wordAttrs. The files of web
// hold only the keys; the page's script says the same words again when
// the language is switched.
func withWords(lang string, b []byte) []byte {
	b = textRE.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := textRE.FindSubmatch(m)
		text, _ := page.ClientText(lang, string(sub[2]))
		return slices.Concat(sub[1], []byte(html.EscapeString(text)), sub[3])
	})
	for _, a := range wordAttrs {
		re := tagRE[a[0]]
		b = re.ReplaceAllFunc(b, func(m []byte) []byte {
			text, _ := page.ClientText(lang, string(re.FindSubmatch(m)[1]))
			end := len(m) - 1 // before '>' (or "/>")
			if bytes.HasSuffix(m, []byte("/>")) {
				end--
			}
			return slices.Concat(bytes.TrimRight(m[:end], " "), []byte(" "+a[1]+`="`+html.EscapeString(text)+`"`), m[end:])
		})
	}
	return b
}

// includeRE is a page's include line: <!--#include NAME.html--> stands
// for the part web/NAME.html (the waiting room's pre-call check and chat,
// which the patient's and the guest's waiting pages both show).
var includeRE = regexp.MustCompile(`<!--#include ([a-z][a-z0-9-]*\.html)-->`)

// pageHTML returns page web/name with its include lines replaced by the
// parts they name (one level: a part includes nothing).
func pageHTML(name string) ([]byte, error) {
	b, err := web.ReadFile("web/" + name)
	if err != nil {
		return nil, err
	}
	var ferr error
	out := includeRE.ReplaceAllFunc(b, func(line []byte) []byte {
		part, err := web.ReadFile("web/" + string(includeRE.FindSubmatch(line)[1]))
		if err != nil {
			ferr = err
		}
		return part
	})
	return out, ferr
}

// withAccount puts the signed-in account into page b where it says
// <!--#account-->: web/account.html, naming a (page.AccountOf: the
// session's display name, never an id or a token) with Sign out and
// Switch account, as telegate's own pages do; nothing for no session (a
// guest without an account, a bearer token).
func withAccount(b []byte, a *page.Account) ([]byte, error) {
	marker := []byte("<!--#account-->")
	if !bytes.Contains(b, marker) {
		return b, nil
	}
	if a == nil {
		return bytes.Replace(b, marker, nil, 1), nil
	}
	part, err := web.ReadFile("web/account.html")
	if err != nil {
		return nil, err
	}
	part = bytes.Replace(bytes.TrimSpace(part), []byte("<!--#account-name-->"), []byte(html.EscapeString(a.Name)), 1)
	return bytes.Replace(b, marker, part, 1), nil
}

// lobby serves the clinician lobby to clinicians; anyone else signed in
// gets a 403 page (page.Write: their language, the request id, the
// decision in the request's audit record) that says how patients join (an
// invite link), instead of a create form the visits API would refuse.
func (s *Service) lobby(serve http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := identity(r); id != nil && id.Subject != "" && !id.HasRole("clinician") {
			if sc := scope.From(r.Context()); sc != nil {
				sc.Decision = scope.Decision{Allow: false, Reason: scope.ReasonRole}
			}
			page.Write(w, r, page.Problem{Status: http.StatusForbidden, Reason: "not-a-clinician",
				Message: "Video visits are started by clinicians.",
				Next:    "To join a visit, open the invite link your clinician sent you."})
			return
		}
		serve(w, r)
	}
}

// requireIdentityPage is requireIdentity for pages: any GET without identity
// is sent to sign in, whatever its Accept header.
func requireIdentityPage(w http.ResponseWriter, r *http.Request) bool {
	if id := identity(r); id != nil && id.Subject != "" {
		return true
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") || r.Header.Get("Accept") == "" {
		http.Redirect(w, r, "/.telegate/login?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return false
	}
	writeError(w, r, fail(http.StatusUnauthorized, "unauthenticated", "sign in first"))
	return false
}

var staticTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// generated are the files of /.telegate/visit/ that are no file of web
// but made from one Go source: catalogue.js, the visit pages' words from
// telegate's one catalogue (page.ClientJS, at page.ClientCataloguePath).
var generated = map[string]func() []byte{path.Base(page.ClientCataloguePath): page.ClientJS}

// static serves /.telegate/visit.js and /.telegate/visit/{file}: a file
// of web, or one of generated.
func (s *Service) static(w http.ResponseWriter, r *http.Request) {
	name := "visit.js"
	if f := r.PathValue("file"); f != "" {
		name = f
	}
	ct, ok := staticTypes[path.Ext(name)]
	if !ok || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		page.Error(w, r, http.StatusNotFound, "Not found.", "")
		return
	}
	b, err := web.ReadFile("web/" + name)
	if gen, ok := generated[name]; ok {
		b, err = gen(), nil
	}
	if err != nil {
		page.Error(w, r, http.StatusNotFound, "Not found.", "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	_, _ = w.Write(b)
}

func sortVisits(vs []visitJSON) {
	slices.SortFunc(vs, func(a, b visitJSON) int { return a.Created.Compare(b.Created) })
}
