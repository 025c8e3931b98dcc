package config

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/config.md")

const (
	docsPath   = "../docs/config.md"
	beginMark  = "<!-- BEGIN GENERATED REFERENCE: go test ./config -run TestConfigDocs -update -->"
	endMarker  = "<!-- END GENERATED REFERENCE -->"
	staleHint  = "docs/config.md is out of date with config/*.go; run: go test ./config -run TestConfigDocs -update"
	missingDoc = "(undocumented)"
)

// docField is one YAML key of a struct, as written in the Go source.
type docField struct {
	name, key, goType, doc string
	expr                   ast.Expr
}

// typeDocs are the doc comments of the package's types, by name.
var typeDocs = map[string]string{}

// packageStructs reads the non-test Go files of this package and returns
// every struct type's YAML fields with their doc comments. A field of a
// struct type without a comment of its own takes its type's.
func packageStructs(t *testing.T) map[string][]docField {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]docField{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				td := ts.Doc
				if td == nil {
					td = gd.Doc
				}
				if td != nil {
					typeDocs[ts.Name.Name] = strings.Join(strings.Fields(td.Text()), " ")
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				var fields []docField
				for _, fl := range st.Fields.List {
					if fl.Tag == nil {
						continue
					}
					tag := reflect.StructTag(strings.Trim(fl.Tag.Value, "`")).Get("yaml")
					key := strings.Split(tag, ",")[0]
					if key == "" || key == "-" {
						continue
					}
					doc := ""
					if fl.Doc != nil {
						doc = fl.Doc.Text()
					}
					if fl.Comment != nil {
						doc = strings.TrimSpace(doc + " " + fl.Comment.Text())
					}
					doc = strings.Join(strings.Fields(doc), " ")
					name := ""
					if len(fl.Names) > 0 {
						name = fl.Names[0].Name
					}
					// A comment over a group ("CertFile and KeyFile …")
					// documents the fields it names.
					if n := len(fields); doc == "" && n > 0 && name != "" && regexp.MustCompile(`\b`+name+`\b`).MatchString(fields[n-1].doc) {
						doc = fields[n-1].doc
					}
					fields = append(fields, docField{name: name, key: key, goType: exprString(fl.Type), doc: doc, expr: fl.Type})
				}
				out[ts.Name.Name] = fields
			}
		}
	}
	return out
}

func exprString(e ast.Expr) string {
	switch v := e.(type) {
	case *ast.Ident:
		return v.Name
	case *ast.StarExpr:
		return "*" + exprString(v.X)
	case *ast.ArrayType:
		return "[]" + exprString(v.Elt)
	case *ast.MapType:
		return "map[" + exprString(v.Key) + "]" + exprString(v.Value)
	case *ast.SelectorExpr:
		return exprString(v.X) + "." + v.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

// yamlType names a Go type the way a configuration author thinks of it.
func yamlType(goType string, structs map[string][]docField) string {
	switch goType {
	case "string":
		return "string"
	case "bool", "*bool":
		return "bool"
	case "int", "int64", "uint16", "uint32":
		return "integer"
	case "float64":
		return "number"
	case "time.Duration":
		return "duration"
	case "netip.Prefix":
		return "CIDR prefix"
	case "netip.Addr":
		return "IP address"
	}
	if s, ok := strings.CutPrefix(goType, "[]"); ok {
		return "list of " + yamlType(s, structs)
	}
	if s, ok := strings.CutPrefix(goType, "*"); ok {
		return yamlType(s, structs)
	}
	if strings.HasPrefix(goType, "map[string]") {
		return "map of " + yamlType(strings.TrimPrefix(goType, "map[string]"), structs)
	}
	if _, ok := structs[goType]; ok {
		return "mapping"
	}
	return goType
}

// generateReference renders the key reference, walking from Config. A
// type used in several places (RateLimit, RoleMapping) is described once,
// at its first path; later uses point there.
func generateReference(structs map[string][]docField) string {
	var b strings.Builder
	first := map[string]string{} // struct type → path where it is described
	var walk func(typeName, path string)
	walk = func(typeName, path string) {
		fields := structs[typeName]
		title := path
		if title == "" {
			title = "top level"
		}
		fmt.Fprintf(&b, "\n### `%s`\n\n", title)
		if d := typeDocs[typeName]; d != "" {
			b.WriteString(d + "\n\n")
		}
		b.WriteString("| key | type | meaning and default |\n|---|---|---|\n")
		var nested [][2]string
		for _, f := range fields {
			doc := f.doc
			if elem := strings.TrimPrefix(strings.TrimPrefix(f.goType, "[]"), "*"); doc == "" {
				doc = typeDocs[elem]
			}
			if doc == "" {
				doc = missingDoc
			}
			doc = strings.ReplaceAll(doc, "|", `\|`)
			fp := f.key
			if path != "" {
				fp = path + "." + f.key
			}
			typ := yamlType(f.goType, structs)
			elem := strings.TrimPrefix(strings.TrimPrefix(f.goType, "[]"), "*")
			if _, ok := structs[elem]; ok {
				if strings.HasPrefix(f.goType, "[]") {
					fp += "[]"
				}
				if at, done := first[elem]; done {
					typ += fmt.Sprintf(" (keys as in `%s`)", at)
				} else {
					first[elem] = fp
					typ += fmt.Sprintf(" (see `%s`)", fp)
					nested = append(nested, [2]string{elem, fp})
				}
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.key, typ, doc)
		}
		for _, n := range nested {
			walk(n[0], n[1])
		}
	}
	walk("Config", "")
	return b.String()
}

// reservedBegin and reservedEnd mark the list of reserved request
// headers in docs/config.md, made from ReservedRequestHeaders.
const (
	reservedBegin = "<!-- BEGIN GENERATED RESERVED HEADERS: go test ./config -run TestConfigDocs -update -->"
	reservedEnd   = "<!-- END GENERATED RESERVED HEADERS -->"
)

// reservedHeadersDoc renders ReservedRequestHeaders for docs/config.md.
func reservedHeadersDoc() string {
	var b strings.Builder
	b.WriteString("\n")
	for _, h := range ReservedRequestHeaders {
		if p, ok := strings.CutSuffix(h, "*"); ok {
			fmt.Fprintf(&b, "- `%s*` (every name that starts so)\n", p)
		} else {
			fmt.Fprintf(&b, "- `%s`\n", h)
		}
	}
	return b.String()
}

// replaceGenerated replaces what lies between begin and end in doc.
func replaceGenerated(t *testing.T, doc []byte, begin, end, content string) []byte {
	t.Helper()
	start := bytes.Index(doc, []byte(begin))
	stop := bytes.Index(doc, []byte(end))
	if start < 0 || stop < start {
		t.Fatalf("docs/config.md lacks the markers %q … %q", begin, end)
	}
	var out bytes.Buffer
	out.Write(doc[:start+len(begin)])
	out.WriteString("\n" + content + "\n")
	out.Write(doc[stop:])
	return out.Bytes()
}

// TestConfigDocs keeps the generated parts of docs/config.md in step with
// the code: the key reference with the Go types (their yaml tags and doc
// comments), and the reserved request headers with
// ReservedRequestHeaders.
func TestConfigDocs(t *testing.T) {
	structs := packageStructs(t)
	ref := generateReference(structs)
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	want := replaceGenerated(t, doc, beginMark, endMarker, ref)
	want = replaceGenerated(t, want, reservedBegin, reservedEnd, reservedHeadersDoc())
	if bytes.Equal(want, doc) {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error(staleHint)
}

// TestDocsNameEveryKey: every yaml key of every type reachable from Config
// is in docs/config.md (checked by reflection, independently of the
// generator).
func TestDocsNameEveryKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || isLeaf(rt) || seen[rt] {
			return
		}
		seen[rt] = true
		_, names := yamlFields(rt)
		fields, _ := yamlFields(rt)
		for _, k := range names {
			keys = append(keys, k)
			walk(rt.Field(fields[k]).Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
	sort.Strings(keys)
	for _, k := range keys {
		if !bytes.Contains(doc, []byte("`"+k+"`")) {
			t.Errorf("docs/config.md does not document the key %q (%s)", k, staleHint)
		}
	}
}

// withPlaceholders validates src as the file name in a fresh directory,
// once every ${NAME} it uses has a value (32 bytes in base64 for a *_KEY,
// a dummy secret otherwise) and every *_file it names outside comments
// exists, private, relative to that directory.
func withPlaceholders(t *testing.T, src []byte, name string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(src), -1) {
		switch {
		case strings.HasSuffix(m[1], "_KEY"):
			env[m[1]] = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" // 32 bytes
		default:
			env[m[1]] = "example-secret-" + strings.ToLower(m[1])
		}
	}
	fileRE := regexp.MustCompile(`(?m)^[^#\n]*?\b[a-z_]+_file:\s*([^\s#]+)`)
	for _, m := range fileRE.FindAllStringSubmatch(string(src), -1) {
		p := m[1]
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		content := "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n" // 32 bytes in base64
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return parse(src, filepath.Join(dir, name), lookup(env))
}

// TestExampleLoads: config.example.yaml is a valid configuration once the
// environment variables and files it names exist.
func TestExampleLoads(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := withPlaceholders(t, src, "config.yaml")
	if err != nil {
		t.Fatalf("config.example.yaml:\n%v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("config.example.yaml warnings: %v", cfg.Warnings)
	}
	if len(cfg.Routes) < 4 || len(cfg.Providers) != 2 {
		t.Errorf("example decoded %d routes, %d providers", len(cfg.Routes), len(cfg.Providers))
	}
}

// yamlBlocks returns the ```yaml fenced blocks of a Markdown document
// with the line each starts on.
func yamlBlocks(doc string) (blocks []string, lines []int) {
	var cur *strings.Builder
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```yaml":
			cur = &strings.Builder{}
			lines = append(lines, i+2)
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks, lines
}

// TestDeploymentSnippetsLoad: every YAML block in docs/deployment.md and
// README.md is a whole configuration that `telegate check` accepts once
// the environment variables it names are set, with no warning but the
// development provider's label; the identity provider set-ups cover
// Keycloak, Microsoft Entra ID and Okta, and README shows the development
// provider.
func TestDeploymentSnippetsLoad(t *testing.T) {
	t.Parallel()
	ids := map[string]bool{}
	for _, file := range []string{"../docs/deployment.md", "../README.md"} {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks, lines := yamlBlocks(string(doc))
		for i, b := range blocks {
			where := fmt.Sprintf("%s:%d", strings.TrimPrefix(file, "../"), lines[i])
			cfg, err := withPlaceholders(t, []byte(b), "telegate.yaml")
			if err != nil {
				t.Errorf("%s: the snippet is refused:\n%v", where, err)
				continue
			}
			for _, w := range cfg.Warnings {
				if !strings.HasSuffix(w.Field, ".development") {
					t.Errorf("%s: warning: %v", where, w)
				}
			}
			for _, p := range cfg.Providers {
				ids[file+" "+p.ID] = true
			}
		}
	}
	for _, want := range []string{"../docs/deployment.md keycloak", "../docs/deployment.md entra", "../docs/deployment.md okta", "../docs/deployment.md dev", "../README.md dev"} {
		if !ids[want] {
			t.Errorf("no snippet with the provider %q", want)
		}
	}
}

// FuzzParse: no input makes the loader panic, and every answer is either a
// valid configuration or a list of problems each naming the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../config.example.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("routes: [{id: a, path: /, upstream: 'http://x', policy: {public: true}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("<<: {x: 1}\n"))
	f.Add([]byte("--- \n...\n---\n"))
	f.Add([]byte("server: !!map {listen: ${X}}\n"))
	env := lookup(map[string]string{"STAFF_SECRET": "s", "X": ":1"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(data, "testdata/fuzz.yaml", env)
		if err != nil {
			fes, ok := err.(Errors)
			if !ok || len(fes) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, fe := range fes {
				if fe.File != "testdata/fuzz.yaml" || fe.Message == "" {
					t.Fatalf("problem without file or message: %+v", fe)
				}
			}
			if cfg != nil {
				t.Fatal("a configuration returned with errors")
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil configuration without error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted what Validate refuses: %v", err)
		}
	})
}
