package gateway

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"strings"
	"testing"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

// kindCase is one member of a fault kind: a raw HTTP/1.1 request (without
// Host, which kindGateway's send adds) and what the client and the upstream
// must see.
type kindCase struct {
	name   string
	req    string // request line and fields, each ending in "\r\n"; then "\r\n" and the body
	status int
	// upstream is the request target the upstream must receive; "" means
	// the upstream receives nothing.
	upstream string
}

// kindGateway serves the test configuration with a public root route,
// a route whose upstream folds case, and a route that normalises
// Unicode paths, on a real TLS listener.
func kindGateway(t *testing.T) *served {
	t.Helper()
	return kindGatewayInspected(t, false)
}

// kindGatewayInspected is kindGateway, with inspection (the Coraza WAF
// with the OWASP CRS, policies.NewInspector) on every route when
// inspected.
func kindGatewayInspected(t *testing.T, inspected bool) *served {
	t.Helper()
	return serveTestGateway(t, func(cfg *config.Config, o *Options) {
		if inspected {
			inspectEveryRoute(t, cfg, o)
		}
		up := cfg.Routes[0].Upstream
		pub := &config.Policy{Public: true}
		app := []string{appHost}
		cfg.Routes = append(cfg.Routes,
			config.Route{ID: "root", Hosts: app, Path: "/", Upstream: up, Policy: pub},
			config.Route{ID: "files", Hosts: app, Path: "/files/", Upstream: up, Policy: pub, UpstreamCaseInsensitive: true},
			config.Route{ID: "norm", Hosts: app, Path: "/norm/", Upstream: up, Policy: pub, NormalizeUnicodePaths: true},
			config.Route{ID: "records", Hosts: app, Path: "/patient-records/", Upstream: up,
				Policy: &config.Policy{Allow: []config.Rule{{Roles: []string{"admin"}}}}},
		)
	})
}

// inspectEveryRoute turns inspection on for every route, with the real
// inspector (Coraza with the OWASP CRS, policies.NewInspector), in
// detect-only mode: the inspector reads every request and passes it on,
// so that what telegate does after inspection is what is tested.
func inspectEveryRoute(t *testing.T, cfg *config.Config, o *Options) {
	t.Helper()
	cfg.Inspection = config.Inspection{Enabled: true, DetectOnly: true, ParanoiaLevel: config.DefaultParanoiaLevel, AnomalyThreshold: config.DefaultAnomalyThreshold}
	insp, err := policies.NewInspector(cfg.Inspection, cfg.Routes, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Inspector = insp
}

// sendKind sends every member and checks the status the client got and
// what the upstream received (nothing, for a refusal).
func sendKind(t *testing.T, s *served, cases []kindCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := t.Name() + "/" + strconv.Itoa(i)
			line, rest, _ := strings.Cut(tc.req, "\r\n")
			req := line + "\r\nHost: " + appHost + "\r\nX-Case: " + mark + "\r\n" + rest
			res := s.raw(t, req, false)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d (%.200q)", res.status, tc.status, res.body)
			}
			var seen []seenRequest
			for _, r := range s.rec.all() {
				if r.Header.Get("X-Case") == mark {
					seen = append(seen, r)
				}
			}
			switch {
			case tc.upstream == "" && len(seen) > 0:
				t.Errorf("upstream received %q", seen[0].RequestURI)
			case tc.upstream != "" && (len(seen) != 1 || seen[0].RequestURI != tc.upstream):
				t.Errorf("upstream received %v, want one request for %q", seen, tc.upstream)
			}
		})
	}
}

// gzipped is s compressed with gzip.
func gzipped(s string) string {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	_, _ = z.Write([]byte(s))
	_ = z.Close()
	return b.String()
}

// utf16le is ASCII text s in UTF-16LE.
func utf16le(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

func get1(path string, fields ...string) string {
	return "GET " + path + " HTTP/1.1\r\n" + strings.Join(fields, "") + "\r\n"
}

// TestRegression_PathCase: a path that would fall under another route
// if letter case were ignored is refused — a request for a guarded
// route's prefix in other case must not reach the public route's upstream,
// which may fold case — unless the route's upstream is declared
// case-insensitive, whose prefix then matches in any case.
func TestRegression_PathCase(t *testing.T) {
	t.Parallel()
	s := kindGateway(t)
	const root = "Cookie: tg-test=root\r\n"
	sendKind(t, s, []kindCase{
		{"upper case prefix of a guarded route", get1("/ADMIN/x"), 400, ""},
		{"mixed case prefix", get1("/Admin/x", root), 400, ""},
		{"one letter", get1("/clinIc/notes"), 400, ""},
		{"without slash", get1("/ADMIN"), 400, ""},
		{"public in other case", get1("/PUBLIC/a"), 400, ""},
		{"telegate's endpoints in other case", get1("/.TELEGATE/login"), 400, ""},
		// Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase read these
		// as "i", which Unicode case folding alone does not.
		{"dotless i", get1("/adm%C4%B1n/x"), 400, ""},
		{"raw dotless i", get1("/clin\xc4\xb1c/x"), 400, ""},
		{"dotted capital I", get1("/adm%C4%B0n/x"), 400, ""},
		{"dotted capital I without slash", get1("/adm%C4%B0n"), 400, ""},
		{"dotless i on a case-insensitive upstream", get1("/f%C4%B1les/a"), 200, "/f%C4%B1les/a"},
		{"case-insensitive upstream takes any case", get1("/FILES/Report.pdf"), 200, "/FILES/Report.pdf"},
		{"case-insensitive upstream, exact case", get1("/files/a"), 200, "/files/a"},
		{"no other route in any case", get1("/elsewhere/X"), 200, "/elsewhere/X"},
		{"exact case still routes", get1("/admin/x", root), 200, "/admin/x"},
	})
}

// TestRegression_TrimmedSegments: what servers trim from a segment or
// decode before parsing — a trailing '.', whitespace raw or encoded,
// encoded delimiters, an encoded '%', encoded controls, empty segments —
// is refused, and nothing reaches the upstream.
func TestRegression_TrimmedSegments(t *testing.T) {
	t.Parallel()
	s := kindGateway(t)
	sendKind(t, s, []kindCase{
		{"trailing dot", get1("/admin./x"), 400, ""},
		{"trailing dots", get1("/public/a.../b"), 400, ""},
		{"trailing dot at the end", get1("/public/a."), 400, ""},
		{"encoded space at a segment's end", get1("/admin%20/x"), 400, ""},
		{"encoded space inside", get1("/public/a%20b"), 400, ""},
		{"encoded tab", get1("/admin%09/x"), 400, ""},
		{"encoded vertical tab", get1("/public/a%0B"), 400, ""},
		{"encoded semicolon", get1("/admin%3Bx/"), 400, ""},
		{"encoded question mark", get1("/public/a%3F/admin/"), 400, ""},
		{"encoded hash", get1("/public/a%23b"), 400, ""},
		{"encoded slash", get1("/public%2Fadmin/x"), 400, ""},
		{"encoded backslash", get1("/public/a%5Cb"), 400, ""},
		{"double encoding", get1("/public/%252e%252e/admin/"), 400, ""},
		{"encoded percent", get1("/public/a%25"), 400, ""},
		{"empty segment", get1("/public//a"), 400, ""},
		{"empty first segment", get1("//public/a"), 400, ""},
		// Servers that drop a segment's parameters (";…", Tomcat, Jetty)
		// read what comes before them: the rules hold there too, on a
		// route that allows ';'.
		{"dot-dot before parameters", get1("/matrix/..;/admin/x"), 400, ""},
		{"dot-dot before parameters, encoded dots", get1("/matrix/%2E%2E;x/admin/"), 400, ""},
		{"dot before parameters", get1("/matrix/.;x/a"), 400, ""},
		{"trailing dot before parameters", get1("/matrix/admin.;x/y"), 400, ""},
		{"empty segment with parameters", get1("/matrix/;x/a"), 400, ""},
		{"parameters on a segment are fine", get1("/matrix/a;jsessionid=1/b"), 200, "/matrix/a;jsessionid=1/b"},
		{"parameters on an empty last segment are fine", get1("/matrix/a/;jsessionid=1"), 200, "/matrix/a/;jsessionid=1"},
		// NTFS stream names: IIS reads "/admin::$INDEX_ALLOCATION/x"
		// as "/admin/x".
		{"directory stream", get1("/admin::$INDEX_ALLOCATION/x"), 400, ""},
		{"named directory stream", get1("/admin:$i30:$INDEX_ALLOCATION/x"), 400, ""},
		{"data stream", get1("/public/web.config::$DATA"), 400, ""},
		{"encoded stream marker", get1("/admin%3A%3A%24INDEX_ALLOCATION/x"), 400, ""},
		{"colon and dollar apart are fine", get1("/public/a:b$c"), 200, "/public/a:b$c"},
		// Windows 8.3 short names: IIS reads "/PATIEN~1/x" as
		// "/patient-records/x".
		{"short name of a guarded prefix", get1("/PATIEN~1/x"), 400, ""},
		{"short name in lower case", get1("/patien~1/x"), 400, ""},
		{"short name, another number, no slash", get1("/PATIEN~2"), 400, ""},
		{"short name with an extension", get1("/PATIEN~1.REC/x"), 400, ""},
		{"a tilde in another segment is fine", get1("/public/PATIEN~1"), 200, "/public/PATIEN~1"},
		{"the form of a short name of an 8.3 name is fine", get1("/files~1/x"), 200, "/files~1/x"},
		{"a leading tilde is fine", get1("/~alice/x"), 200, "/~alice/x"},
		{"trailing slash is fine", get1("/public/a/"), 200, "/public/a/"},
		{"dot inside a segment is fine", get1("/public/a.b"), 200, "/public/a.b"},
	})
}

// TestRegression_UnicodePaths: decoded text that is not valid UTF-8,
// that compatibility normalisation would change, or that carries
// invisible and format characters is refused; text already in NFKC is
// accepted everywhere, and a route that normalises Unicode paths gets the
// NFKC form — which must then be a route that normalises too.
func TestRegression_UnicodePaths(t *testing.T) {
	t.Parallel()
	s := kindGateway(t)
	sendKind(t, s, []kindCase{
		{"overlong slash", get1("/public/%C0%AFadmin"), 400, ""},
		{"surrogate", get1("/public/%ED%A0%80"), 400, ""},
		{"raw invalid byte", get1("/public/a\xff"), 400, ""},
		{"truncated sequence", get1("/public/%E6%97"), 400, ""},
		{"fullwidth solidus", get1("/public%EF%BC%8Fadmin/x"), 400, ""},
		{"fullwidth admin", get1("/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/x"), 400, ""},
		{"ligature", get1("/public/%EF%AC%81le"), 400, ""},
		{"superscript", get1("/public/x%C2%B2"), 400, ""},
		{"decomposed accent", get1("/public/cafe%CC%81"), 400, ""},
		{"zero-width space", get1("/admin%E2%80%8B/x"), 400, ""},
		{"zero-width non-joiner", get1("/public/a%E2%80%8Cb"), 400, ""},
		{"zero-width joiner", get1("/public/a%E2%80%8Db"), 400, ""},
		{"byte order mark", get1("/%EF%BB%BFadmin/x"), 400, ""},
		{"no-break space", get1("/admin%C2%A0/x"), 400, ""},
		{"bidi override", get1("/public/%E2%80%AEfdp.exe"), 400, ""},
		{"bidi isolate", get1("/public/%E2%81%A6x%E2%81%A9"), 400, ""},
		{"soft hyphen", get1("/ad%C2%ADmin/x"), 400, ""},
		{"ideographic space", get1("/public/a%E3%80%80"), 400, ""},
		{"raw zero-width space", get1("/public/a\xe2\x80\x8bb"), 400, ""},
		{"NFKC text is accepted", get1("/public/caf%C3%A9"), 200, "/public/caf%C3%A9"},
		{"raw NFKC text is encoded", get1("/public/caf\xc3\xa9"), 200, "/public/caf%C3%A9"},
		{"normalised on a normalising route", get1("/norm/%EF%AC%81le"), 200, "/norm/file"},
		{"normalised to NFC on a normalising route", get1("/norm/cafe%CC%81"), 200, "/norm/caf%C3%A9"},
		{"fullwidth route name normalises into another route", get1("/%EF%BD%8Eorm/x"), 200, "/norm/x"},
		{"normalised path under a route that does not normalise", get1("/%EF%BD%81dmin/x"), 400, ""},
		{"normalisation that would add a separator", get1("/norm/a%EF%BC%8F..%EF%BC%8Fadmin"), 400, ""},
		{"invisible stays refused on a normalising route", get1("/norm/a%E2%80%8B"), 400, ""},
		{"normalised path under telegate's endpoints", get1("/.telegate/%EF%BD%8Cogin"), 400, ""},
	})
}

// TestRegression_MethodOverride: a "_method" query parameter or form
// field — in the spellings frameworks fold together — is refused, so that
// an upstream that honours it cannot run another method than the one the
// route's methods rule admitted; the upstream receives nothing when the
// body fits the read-ahead, and never a complete body when it does not.
// The same with inspection off and on.
func TestRegression_MethodOverride(t *testing.T) {
	t.Parallel()
	for _, inspected := range []bool{false, true} {
		t.Run(map[bool]string{false: "inspection off", true: "inspection on"}[inspected], func(t *testing.T) {
			t.Parallel()
			testMethodOverride(t, kindGatewayInspected(t, inspected))
		})
	}
}

func testMethodOverride(t *testing.T, s *served) {
	form := func(ctype, body string) string {
		h := "POST /public/a HTTP/1.1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		if ctype != "" {
			h += "Content-Type: " + ctype + "\r\n"
		}
		return h + "\r\n" + body
	}
	encoded := func(ctype, coding, body string) string {
		return "POST /public/a HTTP/1.1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nContent-Type: " + ctype +
			"\r\nContent-Encoding: " + coding + "\r\n\r\n" + body
	}
	const urlenc = "application/x-www-form-urlencoded"
	const mpBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
	const mpB = "multipart/form-data; boundary=" + mpBoundary
	part := func(disposition, value string) string {
		return "--" + mpBoundary + "\r\nContent-Disposition: " + disposition + "\r\n\r\n" + value + "\r\n"
	}
	mpParts := func(parts ...string) string { return strings.Join(parts, "") + "--" + mpBoundary + "--\r\n" }
	mp := func(disposition, value string) string { return mpParts(part(disposition, value)) }
	chunked := "POST /public/a HTTP/1.1\r\nContent-Type: " + urlenc + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\na=1&_\r\n6\r\nmethod\r\n7\r\n=DELETE\r\n0\r\n\r\n"
	sendKind(t, s, []kindCase{
		{"query", get1("/public/a?_method=DELETE"), 400, ""},
		// A method in lower case: servers that fold it run "post" as
		// the POST the route's methods rule never saw.
		{"method in lower case", "delete /public/a HTTP/1.1\r\n\r\n", 400, ""},
		{"method in mixed case", "Post /public/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, ""},
		{"query upper case", get1("/public/a?x=1&_METHOD=put"), 400, ""},
		{"query encoded name", get1("/public/a?%5Fmethod=DELETE"), 400, ""},
		{"query array name", get1("/public/a?_method[]=DELETE"), 400, ""},
		{"query dotted name (PHP reads '.' as '_')", get1("/public/a?.method=DELETE"), 400, ""},
		{"query name cut by NUL (PHP reads a C string)", get1("/public/a?_method%00x=DELETE"), 400, ""},
		{"body", form(urlenc, "_method=DELETE"), 400, ""},
		{"body after other fields", form(urlenc, "a=1&b=2&_method=DELETE"), 400, ""},
		{"body encoded name", form(urlenc, "a=1&%5Fmethod=DELETE"), 400, ""},
		{"body encoded letters", form(urlenc, "_%6D%45thod=PUT"), 400, ""},
		{"body upper case", form(urlenc, "_METHOD=PUT"), 400, ""},
		{"body leading space", form(urlenc, "+_method=PUT"), 400, ""},
		{"body name without value", form(urlenc, "a=1&_method"), 400, ""},
		{"body name cut by NUL", form(urlenc, "a=1&_method%00=PUT"), 400, ""},
		{"body semicolon separator", form(urlenc, "a=1;_method=PUT"), 400, ""},
		{"body with charset", form("Application/X-WWW-Form-URLEncoded; charset=utf-8", "_method=PUT"), 400, ""},
		// PHP and Rack end the media type at ',' and at a space too.
		{"form type before a comma", form("application/x-www-form-urlencoded,text/plain", "_method=PUT"), 400, ""},
		{"form type before a space", form("application/x-www-form-urlencoded text/plain", "_method=PUT"), 400, ""},
		{"multipart type before a comma", form("multipart/form-data, boundary="+mpBoundary, mp(`form-data; name="_method"`, "PUT")), 400, ""},
		{"body without content type", form("", "_method=PUT"), 400, ""},
		{"body in chunks split inside the name", chunked, 400, ""},
		// multipart/form-data (and the other multipart types Rack reads
		// as forms): part names, part headers, delimiters.
		{"multipart field", form(mpB, mp(`form-data; name="_method"`, "DELETE")), 400, ""},
		{"multipart field after others", form(mpB, mpParts(part(`form-data; name="a"`, "1"), part(`form-data; name="_method"`, "PUT"))), 400, ""},
		{"multipart upper case name", form(mpB, mp(`form-data; name="_METHOD"`, "PUT")), 400, ""},
		{"multipart unquoted name", form(mpB, mp(`form-data; name=_Method`, "PUT")), 400, ""},
		{"multipart array name", form(mpB, mp(`form-data; name="_method[]"`, "PUT")), 400, ""},
		{"multipart dotted name", form(mpB, mp(`form-data; name=".method"`, "PUT")), 400, ""},
		{"multipart percent-encoded name", form(mpB, mp(`form-data; name="%5Fmethod"`, "PUT")), 400, ""},
		{"multipart backslash in quoted name", form(mpB, mp(`form-data; name="_me\thod"`, "PUT")), 400, ""},
		{"multipart filename-bearing part", form(mpB, mp(`form-data; name="_method"; filename="m.txt"`, "PUT")), 400, ""},
		{"multipart disposition not form-data", form(mpB, mp(`attachment; name="_method"`, "PUT")), 400, ""},
		{"multipart disposition in upper case", form(mpB, mp(`FORM-DATA; NAME="_method"`, "PUT")), 400, ""},
		{"multipart part header in lower case", form(mpB, "--"+mpBoundary+"\r\ncontent-disposition: form-data; name=_method\r\n\r\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart part header in upper case", form(mpB, "--"+mpBoundary+"\r\nCONTENT-DISPOSITION: form-data; name=_method\r\n\r\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart part header with underscore", form(mpB, "--"+mpBoundary+"\r\nContent_Disposition: form-data; name=_method\r\n\r\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart second disposition field", form(mpB, "--"+mpBoundary+"\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart extended name beside a plain one", form(mpB, mp(`form-data; name="_method"; name*=UTF-8''a`, "PUT")), 400, ""},
		{"multipart continued name", form(mpB, mp(`form-data; name*0="_me"; name*1="thod"`, "PUT")), 400, ""},
		{"multipart duplicate name parameter", form(mpB, mp(`form-data; name="a"; name="_method"`, "PUT")), 400, ""},
		{"multipart unparsable disposition", form(mpB, mp(`form-data; name="_method`, "PUT")), 400, ""},
		{"multipart nested multipart part", form(mpB, "--"+mpBoundary+"\r\nContent-Disposition: form-data; name=files\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--inner--\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart delimiter after a bare LF inside a part", form(mpB, "--"+mpBoundary+"\r\nContent-Disposition: form-data; name=a\r\n\r\n1\n--"+mpBoundary+"\nContent-Disposition: form-data; name=_method\n\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart delimiter in the preamble", form(mpB, "x--"+mpBoundary+"\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n"+mp(`form-data; name="a"`, "1")), 400, ""},
		{"multipart part after the close delimiter", form(mpB, mp(`form-data; name="a"`, "1")+"--"+mpBoundary+"\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--"+mpBoundary+"--\r\n"), 400, ""},
		{"multipart without close delimiter", form(mpB, "--"+mpBoundary+"\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"), 400, ""},
		{"multipart without boundary", form("multipart/form-data", mp(`form-data; name="_method"`, "PUT")), 400, ""},
		{"multipart duplicate boundary parameter", form("multipart/form-data; boundary=x; boundary="+mpBoundary, mp(`form-data; name="_method"`, "PUT")), 400, ""},
		{"multipart beside another content type", "POST /public/a HTTP/1.1\r\nContent-Type: " + mpB + "\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc", 400, ""},
		{"multipart type in upper case", form("Multipart/Form-Data; boundary="+mpBoundary, mp(`form-data; name="_method"`, "PUT")), 400, ""},
		{"multipart/mixed", form("multipart/mixed; boundary="+mpBoundary, mp(`form-data; name="_method"`, "PUT")), 400, ""},
		{"multipart delimiter followed by text inside a part", form(mpB, mpParts(part(`form-data; name="a"`, "--"+mpBoundary+"x"))), 400, ""},
		{"multipart other names pass", form(mpB, mpParts(part(`form-data; name="method"`, "PUT"), part(`form-data; name="a_method"; filename="_method.txt"`, "_method"), part(`form-data; name="x"; filename*=UTF-8''a.txt`, "-- "+mpBoundary[2:]))), 200, "/public/a"},
		{"other names pass", form(urlenc, "method=PUT&a_method=x&_methods=y&x=_method"), 200, "/public/a"},
		// JSON: Laravel reads a JSON body's top-level members as form
		// fields, Express's method-override is told to read req.body._method.
		{"JSON top-level name", form("application/json", `{"_method":"PUT"}`), 400, ""},
		{"JSON escaped name", form("application/json; charset=utf-8", `{"a":1,"\u005Fmethod":"PUT"}`), 400, ""},
		{"JSON name in upper case", form("text/json", `{"_METHOD":"DELETE"}`), 400, ""},
		{"JSON suffix type", form("application/vnd.api+json", ` {"data":{},"_method":"PATCH"}`), 400, ""},
		{"JSON type in upper case", form("Application/JSON", `{"_method":"PUT"}`), 400, ""},
		{"JSON nested names and values pass", form("application/json", `{"a":{"_method":"PUT"},"b":"_method","c":["_method"]}`), 200, "/public/a"},
		{"JSON top-level array passes", form("application/json", `[{"_method":"PUT"}]`), 200, "/public/a"},
		// A body telegate cannot read as the upstream may: content-coded
		// (Jetty's GzipHandler and ASP.NET Core's request decompression
		// inflate it), or in a charset that is not ASCII-compatible
		// (body-parser and servlet containers decode UTF-16).
		{"gzip form body", encoded(urlenc, "gzip", gzipped("_method=DELETE")), 400, ""},
		{"deflate JSON body", encoded("application/json", "deflate", gzipped(`{"_method":"PUT"}`)), 400, ""},
		{"coded multipart body", encoded(mpB, "br", mp(`form-data; name="a"`, "1")), 400, ""},
		{"two codings, identity first", "POST /public/a HTTP/1.1\r\nContent-Type: " + urlenc + "\r\nContent-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\na=1", 400, ""},
		{"UTF-16 form body", form(urlenc+"; charset=UTF-16LE", utf16le("_method=DELETE")), 400, ""},
		{"UTF-16 JSON body", form("application/json; charset=utf-16", utf16le(`{"_method":"PUT"}`)), 400, ""},
		{"UTF-32 JSON without charset", form("application/json", "{\x00\x00\x00\"\x00\x00\x00"), 400, ""},
		{"UTF-16 JSON with a byte order mark", form("application/json", "\xff\xfe"+utf16le(`{"_method":"PUT"}`)), 400, ""},
		{"UTF-7 form body", form(urlenc+"; charset=utf-7", "+AF8-method=PUT"), 400, ""},
		{"identity coding passes", encoded(urlenc, "identity", "a=1"), 200, "/public/a"},
		{"ASCII-compatible charsets pass", form(urlenc+"; charset=ISO-8859-1", "a=1"), 200, "/public/a"},
		{"UTF-8 JSON passes", form(`application/json; charset="UTF-8"`, `{"a":1}`), 200, "/public/a"},
		{"query value is not a name", get1("/public/a?x=_method"), 200, "/public/a?x=_method"},
	})

	// A body past the read-ahead is scanned as it streams, and cut before
	// its end.
	big := strings.Repeat("a=1&", formReadAhead/4+100)
	bigJSON := "{" + strings.Repeat(`"a":1,`, formReadAhead/6+100)
	bigPart := part(`form-data; name="file"; filename="scan.bin"`, strings.Repeat("x", formReadAhead+1000))
	for _, tc := range []struct {
		name, ctype, body string
		status            int
	}{
		{"long body, override at the end", urlenc, big + "_method=DELETE", 400},
		{"long body, override split at the read-ahead", urlenc, big[:formReadAhead-3] + "&_method=PUT", 400},
		{"long body without override", urlenc, big + "b=2", 200},
		{"long JSON body, override at the end", "application/json", bigJSON + `"_method":"DELETE"}`, 400},
		{"long JSON body without override", "application/json", bigJSON + `"b":"_method"}`, 200},
		{"long multipart body, override at the end", mpB, mpParts(bigPart, part(`form-data; name="_method"`, "DELETE")), 400},
		{"long multipart body, stray delimiter at the end", mpB, mpParts(bigPart) + "--" + mpBoundary + "\r\n", 400},
		{"long multipart body cut short", mpB, bigPart, 400},
		{"long multipart body without override", mpB, mpParts(bigPart, part(`form-data; name="a"`, "1")), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := "big-" + tc.name
			req := "POST /public/a HTTP/1.1\r\nHost: " + appHost + "\r\nX-Case: " + mark + "\r\nContent-Type: " + tc.ctype +
				"\r\nContent-Length: " + strconv.Itoa(len(tc.body)) + "\r\n\r\n" + tc.body
			res := s.raw(t, req, false)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d", res.status, tc.status)
			}
			seen := 0
			for _, r := range s.rec.all() {
				if r.Header.Get("X-Case") != mark {
					continue
				}
				seen++
				if tc.status == 200 && r.Body != tc.body {
					t.Errorf("upstream received %d body bytes, want the %d sent", len(r.Body), len(tc.body))
				}
				if tc.status != 200 && (len(r.Body) >= len(tc.body) || strings.Contains(r.Body, "_method")) {
					t.Errorf("upstream received the whole body (%d bytes)", len(r.Body))
				}
			}
			if tc.status == 200 && seen != 1 {
				t.Errorf("upstream received %d requests, want 1", seen)
			}
		})
	}
}
