package page

import (
	_ "embed"
	"net/http"
)

// StylePath is where telegate serves its one stylesheet, on every host:
// the visit pages (media/web) and telegate's own pages (this package's
// layout) both link it.
const StylePath = "/.telegate/style.css"

// Style is telegate's one stylesheet (style.css).
//
//go:embed style.css
var Style []byte

// ServeStyle serves Style at StylePath (GET and HEAD): text/css, not
// sniffed, revalidated on each use (Cache-Control: no-cache), readable
// by this origin only (Cross-Origin-Resource-Policy: same-origin).
func ServeStyle(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		Error(w, r, http.StatusMethodNotAllowed, "Method not allowed.", "")
		return
	}
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(Style)
}
