package policies

import (
	"io/fs"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// crsRxPatterns are the @rx expressions of the Core Rule Set's request
// rules, as the engine compiles them ("(?sm)" + pattern).
func crsRxPatterns(t *testing.T) []string {
	t.Helper()
	rx := regexp.MustCompile(`"@rx ((?:[^"\\]|\\.)*)"`)
	var out []string
	err := fs.WalkDir(coreruleset.FS, "@owasp_crs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".conf") || !strings.Contains(p, "REQUEST-") {
			return err
		}
		b, err := fs.ReadFile(coreruleset.FS, p)
		if err != nil {
			return err
		}
		for _, m := range rx.FindAllStringSubmatch(string(b), -1) {
			out = append(out, "(?sm)"+strings.ReplaceAll(m[1], `\"`, `"`))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 200 {
		t.Fatalf("found %d @rx patterns in the Core Rule Set, expected more than 200", len(out))
	}
	return out
}

// sample writes a random string the expression re may match: literals
// (in random case where the expression ignores case, sometimes with
// Unicode's other folds such as K, U+212A, for k), characters of classes,
// repetitions of random length, one alternative.
func sample(b *strings.Builder, re *syntax.Regexp, rnd *rand.Rand) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				switch rnd.IntN(4) {
				case 0:
					r = unicode.SimpleFold(r)
				case 1:
					r = unicode.SimpleFold(unicode.SimpleFold(r))
				}
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		k := 2 * rnd.IntN(len(re.Rune)/2)
		lo, hi := re.Rune[k], re.Rune[k+1]
		if hi-lo > 200 {
			hi = lo + 200
		}
		b.WriteRune(lo + rnd.Int32N(hi-lo+1))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte(byte('a' + rnd.IntN(26)))
	case syntax.OpCapture:
		sample(b, re.Sub[0], rnd)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			sample(b, s, rnd)
		}
	case syntax.OpAlternate:
		sample(b, re.Sub[rnd.IntN(len(re.Sub))], rnd)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
		}
		for range lo + rnd.IntN(hi-lo+1) {
			sample(b, re.Sub[0], rnd)
		}
	}
}

// TestRegression_PrefilterNeverSkipsAMatch: the @rx prefilter may only
// skip an expression for inputs it cannot match. For every @rx expression
// of the Core Rule Set's request rules, inputs that the expression
// matches — random matching strings in random case, with non-ASCII
// case folds, embedded in other text, upper-cased whole — all pass the
// prefilter. A prefilter that skipped any of them would let an attack
// through uninspected.
func TestRegression_PrefilterNeverSkipsAMatch(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	withFilter, checked := 0, 0
	for _, pat := range crsRxPatterns(t) {
		re, err := regexp.Compile(pat)
		if err != nil {
			continue // binary expressions (rsc.io/binaryregexp) get no prefilter
		}
		pf := newRxPrefilter(pat)
		if pf == nil {
			continue
		}
		withFilter++
		tree, err := syntax.Parse(pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			var b strings.Builder
			sample(&b, tree, rnd)
			s := b.String()
			for _, in := range []string{s, "x=1&q=" + s + "&z=2", strings.ToUpper(s), "\n" + s + "\n"} {
				if !re.MatchString(in) {
					continue
				}
				checked++
				if !pf.mayMatch(in) {
					t.Fatalf("prefilter %q skips %q, which %s matches", pf.lits, in, pat)
				}
			}
		}
	}
	if withFilter < 150 || checked < 10000 {
		t.Fatalf("%d expressions with a prefilter, %d matching inputs checked: the test checks too little", withFilter, checked)
	}
	t.Logf("%d expressions with a prefilter, %d matching inputs checked", withFilter, checked)
}

// TestRegression_PrefilterSkipsOnlyOnAbsentLiterals: inputs without any
// of a prefilter's strings are refused by it, inputs with one (in any
// ASCII case) or with a byte of 128 or more are not.
func TestRegression_PrefilterSkipsOnlyOnAbsentLiterals(t *testing.T) {
	for _, c := range []struct {
		pat, in string
		want    bool
	}{
		{`(?i)union\s+select`, "page=2&sort=last_name", false},
		{`(?i)union\s+select`, "x UNION  SeLeCt y", true},
		{`(?i)union\s+select`, "x UNION  SeLeCt y ünïcode", true},
		{`(?i)<script`, "a \u212aelvin", true}, // non-ASCII: the expression decides
		{`(?:foo|bar)baz`, "qux", false},
		{`(?:foo|bar)baz`, "xBAZ", true},
		{`[;|&]`, "a=b", false},
		{`[;|&]`, "a|b", true},
	} {
		pf := newRxPrefilter("(?sm)" + c.pat)
		if pf == nil {
			t.Fatalf("%s: no prefilter", c.pat)
		}
		if got := pf.mayMatch(c.in); got != c.want {
			t.Errorf("%s on %q: mayMatch %v, want %v (strings %q)", c.pat, c.in, got, c.want, pf.lits)
		}
	}
	for _, pat := range []string{`a*`, `.`, `(?:foo|)`, `\w+`, `^$`} {
		if pf := newRxPrefilter("(?sm)" + pat); pf != nil {
			t.Errorf("%s: a prefilter %q for an expression that matches without fixed text", pat, pf.lits)
		}
	}
}
