package page

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

func TestError(t *testing.T) {
	const hostile = `<script>alert("x")</script>&'`
	api := &config.Route{ID: "api", API: true}
	cases := []struct {
		name     string
		method   string
		accept   string
		route    *config.Route
		rid      string // "" : no scope
		problem  Problem
		wantJSON bool
		reason   string
	}{
		{name: "browser", method: "GET", accept: "text/html,application/xhtml+xml,*/*", rid: "rid-1",
			problem: Problem{Status: 403, Message: hostile, Next: hostile}, reason: "forbidden"},
		{name: "no accept is a page", method: "GET", rid: "rid-2",
			problem: Problem{Status: 404, Message: "Not found."}, reason: "not-found"},
		{name: "json client", method: "GET", accept: "application/json", rid: "rid-3",
			problem: Problem{Status: 404, Message: hostile}, wantJSON: true, reason: "not-found"},
		{name: "json and html prefers the page", method: "POST", accept: "application/json, text/html", rid: "rid-4",
			problem: Problem{Status: 400, Message: "Bad."}, reason: "bad-request"},
		{name: "api route", method: "GET", accept: "text/html", route: api, rid: "rid-5",
			problem: Problem{Status: 401, Message: "Sign in.", Reason: "unauthenticated"}, wantJSON: true, reason: "unauthenticated"},
		{name: "json forced", method: "POST", accept: "text/html", rid: "rid-6",
			problem: Problem{Status: 409, Message: "Full.", Reason: "full", JSON: true}, wantJSON: true, reason: "full"},
		{name: "no scope gets a fresh id", method: "GET", accept: "application/json",
			problem: Problem{Status: 404, Message: "Not found."}, wantJSON: true, reason: "not-found"},
		{name: "not an error status is a 500", method: "GET", accept: "application/json", rid: "rid-7",
			problem: Problem{Status: 200, Message: "ok?"}, wantJSON: true, reason: "internal-server-error"},
		{name: "HEAD page", method: "HEAD", accept: "text/html", rid: "rid-8",
			problem: Problem{Status: 404, Message: "Not found."}, reason: "not-found"},
		{name: "HEAD json", method: "HEAD", accept: "application/json", rid: "rid-9",
			problem: Problem{Status: 405, Message: "No."}, wantJSON: true, reason: "method-not-allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x", nil)
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			if tc.rid != "" {
				r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: tc.rid, Route: tc.route}))
			}
			w := httptest.NewRecorder()
			// Entity headers of an answer already begun (an upstream's) go.
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Etag", `"abc"`)
			Write(w, r, tc.problem)
			res := w.Result()
			wantStatus := tc.problem.Status
			if wantStatus < 400 {
				wantStatus = 500
			}
			if res.StatusCode != wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, wantStatus)
			}
			h := res.Header
			for k, v := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Encoding": "", "Etag": ""} {
				if h.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, h.Get(k), v)
				}
			}
			rid := h.Get(RequestIDHeader)
			if tc.rid != "" && rid != tc.rid {
				t.Errorf("X-Request-Id %q, want %q", rid, tc.rid)
			}
			if !regexp.MustCompile(`^[0-9a-z-]+$`).MatchString(rid) {
				t.Errorf("X-Request-Id %q", rid)
			}
			body := w.Body.String()
			if tc.method == "HEAD" {
				if body != "" {
					t.Errorf("HEAD body %q", body)
				}
			}
			if tc.wantJSON {
				if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if tc.method == "HEAD" {
					return
				}
				var got map[string]any
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				if len(got) != 4 {
					t.Errorf("fields %v, want status, error, reason, request_id", got)
				}
				var b Body
				dec := json.NewDecoder(strings.NewReader(body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&b); err != nil {
					t.Fatal(err)
				}
				want := Body{Status: wantStatus, Error: tc.problem.Message, Reason: tc.reason, RequestID: rid}
				if b != want {
					t.Errorf("body %+v, want %+v", b, want)
				}
				return
			}
			if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if h.Get("Content-Security-Policy") != CSP || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("page headers %v", h)
			}
			if tc.method == "HEAD" {
				return
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, `"x"`) {
				t.Errorf("hostile message not escaped: %s", body)
			}
			if tc.problem.Message == hostile && !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;") {
				t.Errorf("message missing or escaped oddly: %s", body)
			}
			if !strings.Contains(body, "<code>"+rid+"</code>") {
				t.Errorf("page without the request id %q: %s", rid, body)
			}
			if !strings.Contains(body, "<title>"+title(wantStatus)) {
				t.Errorf("page without its title: %s", body)
			}
		})
	}
}

func TestRenderKeepsLayoutAndEscapes(t *testing.T) {
	tmpl := Parse(`{{define "p"}}<a href="{{.URL}}">{{.Name}}</a>{{end}}`)
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(scope.With(r.Context(), &scope.Scope{RequestID: "rid"}))
	w := httptest.NewRecorder()
	Render(w, r, Doc{Status: http.StatusOK, Title: "<T>"}, tmpl, "p", struct{ URL, Name string }{"javascript:alert(1)", "<b>"})
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "#ZgotmplZ") || !strings.Contains(body, "&lt;b&gt;") || !strings.Contains(body, "<code>rid</code>") ||
		!strings.Contains(body, "<h1>&lt;T&gt;</h1>") {
		t.Errorf("%d %s", w.Code, body)
	}
	// A template that fails answers a 500 page, not half a page.
	w = httptest.NewRecorder()
	Render(w, r, Doc{Status: http.StatusOK, Title: "T"}, tmpl, "p", struct{ Title string }{"T"})
	if w.Code != 500 || strings.Contains(w.Body.String(), "ZgotmplZ") || w.Header().Get(RequestIDHeader) == "" {
		t.Errorf("failed template: %d %s", w.Code, w.Body.String())
	}
}
