package scope

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestReasonConstantsDeclared: every Reason constant in reason.go is in
// the declared set (so Declared cannot fall behind a new constant), and no
// two constants share a value.
func TestReasonConstantsDeclared(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Reason]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: not a string literal", name.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				r := Reason(v)
				if !r.Declared() {
					t.Errorf("%s (%q) is not declared", name.Name, v)
				}
				if other, dup := seen[r]; dup {
					t.Errorf("%s and %s are both %q", name.Name, other, v)
				}
				seen[r] = name.Name
			}
		}
	}
	if len(seen) != len(declared) {
		t.Errorf("%d constants, %d declared", len(seen), len(declared))
	}
}

func TestRuleReason(t *testing.T) {
	for _, i := range []int{0, 1, 63, 64, 1000} {
		r := RuleReason(i)
		if got, ok := r.Rule(); !ok || got != i || r.String() != "rule:"+strconv.Itoa(i) || r.Kind() != "rule" || !r.Declared() {
			t.Errorf("RuleReason(%d) = %q: Rule %d %v, Kind %q", i, r, got, ok, r.Kind())
		}
	}
	for _, r := range []Reason{"rule:", "rule:x", "rule:-1", "rule:01", "rules:1", ReasonRole} {
		if _, ok := r.Rule(); ok {
			t.Errorf("%q.Rule() reports a rule", r)
		}
	}
	if r := Reason("rule:x"); r.Declared() {
		t.Errorf("%q declared", r)
	}
	if k := ReasonPathDotSegment.Kind(); k != "path" {
		t.Errorf("Kind = %q", k)
	}
	if k := ReasonNoPolicy.Kind(); k != "no-policy" {
		t.Errorf("Kind = %q", k)
	}
	if k := ReasonFramingBareLF.Kind(); k != "framing" {
		t.Errorf("Kind = %q", k)
	}
}
