package gateway

import (
	"net/http"

	"github.com/telegate/telegate/page"
)

// ownErrors makes the bare error answers of net/http's ServeMux and
// http.Error/http.NotFound inside telegate's own endpoints ("404 page not
// found", "Method Not Allowed" as text/plain) into telegate's error page
// with the request id (docs/architecture.md "Conventions"). Answers the endpoints
// write themselves (JSON, HTML pages) pass through untouched.
func ownErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&plainErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

// plainErrorWriter replaces a 404 or 405 whose Content-Type is
// http.Error's "text/plain; charset=utf-8" and drops the plain body.
type plainErrorWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
	wrote    bool
}

func (p *plainErrorWriter) WriteHeader(code int) {
	if p.wrote {
		return
	}
	p.wrote = true
	h := p.ResponseWriter.Header()
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && h.Get("Content-Type") == "text/plain; charset=utf-8" {
		p.replaced = true
		text := "Not found."
		if code == http.StatusMethodNotAllowed {
			text = "Method not allowed."
		}
		page.Error(p.ResponseWriter, p.r, code, text, "")
		return
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *plainErrorWriter) Write(b []byte) (int, error) {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	if p.replaced {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (hijacking for WebSockets, flushing)
// reach the underlying writer.
func (p *plainErrorWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
