package page

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// tCall is a {{t "msgid" …}} call in a page template.
var tCall = regexp.MustCompile(`\{\{t "((?:[^"\\]|\\.)*)"`)

// msgids returns every English msgid telegate's Go code hands to its own
// pages: the literal messages and advice of page.Error, page.Problem and
// the gateway's refuseWith, strings assigned to a problem's Message or
// Next (or to msg / next beside them), and {{t "…"}} in page.Parse
// templates — and the visit pages' words (clientWords), with where each
// was found.
func msgids(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	fset := token.NewFileSet()
	add := func(e ast.Expr) {
		if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if s, err := strconv.Unquote(bl.Value); err == nil && s != "" {
				found[s] = fset.Position(bl.Pos()).String()
			}
		}
	}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".." || d.Name() == "demo") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					if x, ok := fn.X.(*ast.Ident); ok {
						name = x.Name + "." + fn.Sel.Name
					}
				case *ast.Ident:
					name = fn.Name
				}
				switch name {
				case "page.Error", "Error":
					if len(n.Args) == 5 {
						add(n.Args[3])
						add(n.Args[4])
					}
				case "refuseWith":
					if len(n.Args) == 5 {
						add(n.Args[4])
					}
				case "page.Parse", "Parse":
					if bl, ok := n.Args[0].(*ast.BasicLit); ok {
						text, _ := strconv.Unquote(bl.Value)
						for _, m := range tCall.FindAllStringSubmatch(text, -1) {
							s, _ := strconv.Unquote(`"` + m[1] + `"`)
							found[s] = fset.Position(bl.Pos()).String()
						}
					}
				case "page.T", "T":
					if len(n.Args) >= 2 {
						add(n.Args[1])
					}
				}
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Problem" && sel.Sel.Name != "Doc" {
					break
				}
				// A JSON-only answer is read by programs, in English.
				var keep []ast.Expr
				jsonOnly := false
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok {
							switch k.Name {
							case "Message", "Next", "Title":
								keep = append(keep, kv.Value)
							case "JSON":
								jsonOnly = true
							}
						}
					}
				}
				if !jsonOnly {
					for _, e := range keep {
						add(e)
					}
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if i >= len(n.Rhs) {
						break
					}
					switch l := l.(type) {
					case *ast.SelectorExpr:
						if l.Sel.Name == "Message" || l.Sel.Name == "Next" {
							add(n.Rhs[i])
						}
					case *ast.Ident:
						if l.Name == "next" || l.Name == "text" || l.Name == "msg" && len(n.Lhs) > 1 {
							add(n.Rhs[i])
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range tCall.FindAllStringSubmatch(layoutText+errorText, -1) {
		found[m[1]] = "page.layoutText"
	}
	for _, s := range titles {
		found[s] = "page.titles"
	}
	for k, s := range clientWords {
		found[s] = "page.clientWords " + k
	}
	for _, st := range []int{400, 401, 403, 404, 405, 413, 429, 500, 502, 503} {
		found[nextFor(st)], found[messageFor(st)], found[title(st)] = "page.nextFor", "page.messageFor", "page.title"
	}
	return found
}

// TestRegression_UntranslatedPageString holds every string telegate's Go
// code shows on its own pages to the catalogue: each msgid has its
// translation in every language. A message added without one fails here.
func TestRegression_UntranslatedPageString(t *testing.T) {
	ids := msgids(t)
	if len(ids) < 40 {
		t.Fatalf("found only %d msgids: the scan misses calls", len(ids))
	}
	for _, must := range []string{"Not found.", "Choose how to sign in:", "Sign-in with %s is not available right now.", "You are not allowed to open this page."} {
		if _, ok := ids[must]; !ok {
			t.Errorf("scan missed %q", must)
		}
	}
	var missing []string
	for _, lang := range Languages[1:] {
		for id, where := range ids {
			if !Translated(lang, id) {
				missing = append(missing, lang+": "+strconv.Quote(id)+" ("+where+")")
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Error("untranslated: " + m)
	}
}

// TestCatalogueHasNoStaleEntries: every entry is still used somewhere,
// and keeps the msgid's format verbs and {placeholders}.
func TestCatalogueHasNoStaleEntries(t *testing.T) {
	ids := msgids(t)
	verbs, holes := regexp.MustCompile(`%[a-z]`), regexp.MustCompile(`\{\w+\}`)
	for lang, m := range catalogue {
		for id, tr := range m {
			if _, ok := ids[id]; !ok {
				t.Errorf("%s: %q is not used", lang, id)
			}
			a, b := holes.FindAllString(id, -1), holes.FindAllString(tr, -1)
			sort.Strings(a)
			sort.Strings(b)
			if strings.Join(verbs.FindAllString(id, -1), "") != strings.Join(verbs.FindAllString(tr, -1), "") || strings.Join(a, "") != strings.Join(b, "") {
				t.Errorf("%s: %q and %q differ in format verbs or placeholders", lang, id, tr)
			}
		}
	}
	_ = http.StatusOK
}
