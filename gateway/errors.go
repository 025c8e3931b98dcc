package gateway

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"

	"github.com/telegate/telegate/scope"
)

// writeError answers with a small error page carrying the status and the
// request id and nothing internal (docs/architecture.md "Conventions"). API routes and
// clients that accept JSON but not HTML get
// {"error": text, "status": code, "request_id": id}.
func writeError(w http.ResponseWriter, r *http.Request, status int, text string) {
	s := scope.From(r.Context())
	id := ""
	api := false
	if s != nil {
		id = s.RequestID
		if s.Route != nil && s.Route.API {
			api = true
		}
	}
	if !api {
		accept := r.Header.Get("Accept")
		api = strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
	}
	h := w.Header()
	for _, k := range []string{"Content-Encoding", "Content-Length", "Etag", "Last-Modified", "Content-Disposition"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if api {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Error     string `json:"error"`
			Status    int    `json:"status"`
			RequestID string `json:"request_id"`
		}{text, status, id})
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	fmt.Fprintf(w, "<!doctype html><html lang=en><meta charset=utf-8><title>%s</title>"+
		"<h1>%s</h1><p>%s</p><p>Request id: <code>%s</code></p><p><a href=\"/\">Home</a></p></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text), html.EscapeString(id))
}
