package policies

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	ahocorasick "github.com/petar-dambovaliev/aho-corasick"
)

// rxPrefilter is a necessary condition of an expression: a set of ASCII
// strings one of which every match of the expression contains (compared
// without regard to ASCII case). For an ASCII input that contains none of
// them the expression cannot match, and @rx answers no without running
// it. Inputs with a byte of 128 or more always run the expression (Unicode
// case folding maps some non-ASCII characters onto ASCII letters, such as
// K, U+212A, onto k).
type rxPrefilter struct {
	lits []string // lower-case; checked one by one when few
	ac   *ahocorasick.AhoCorasick
}

// Limits of the analysis: a set of more than maxPrefilterLits strings
// gives no prefilter; sets of up to fewPrefilterLits strings are checked
// one string at a time (no allocation), larger ones with an Aho-Corasick
// automaton; a character class of fewPrefilterLits characters or more
// gives no set.
const (
	maxPrefilterLits = 512
	fewPrefilterLits = 24
)

// newRxPrefilter analyses pattern (parsed as regexp.Compile does) and
// returns its prefilter, or nil when no useful necessary condition is
// found.
func newRxPrefilter(pattern string) *rxPrefilter {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	lits := requiredLits(re)
	if len(lits) == 0 {
		return nil
	}
	p := &rxPrefilter{lits: lits}
	if len(lits) > fewPrefilterLits {
		b := ahocorasick.NewAhoCorasickBuilder(ahocorasick.Opts{AsciiCaseInsensitive: true, MatchKind: ahocorasick.LeftMostFirstMatch, DFA: true})
		ac := b.Build(lits)
		p.ac = &ac
	}
	return p
}

// mayMatch reports false only when value cannot match the expression.
func (p *rxPrefilter) mayMatch(value string) bool {
	for i := 0; i < len(value); i++ {
		if value[i] >= utf8.RuneSelf {
			return true
		}
	}
	if p.ac != nil {
		return p.ac.Iter(value).Next() != nil
	}
	for _, l := range p.lits {
		if containsFoldASCII(value, l) {
			return true
		}
	}
	return false
}

// containsFoldASCII reports whether s contains lit (lower-case ASCII)
// without regard to ASCII case.
func containsFoldASCII(s, lit string) bool {
	n := len(lit)
	if n == 0 {
		return true
	}
	first := lit[0]
	for i := 0; i+n <= len(s); i++ {
		if lowerASCII(s[i]) != first {
			continue
		}
		j := 1
		for j < n && lowerASCII(s[i+j]) == lit[j] {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// requiredLits returns a set of lower-case ASCII strings one of which is a
// substring of every match of re, or nil when it finds none. Each rule
// keeps the claim true:
//   - a literal's match is the literal (or, with case folding, the same
//     letters in any case: compared without regard to case, and literals
//     with non-ASCII characters give nil);
//   - a match of a concatenation contains a match of each part, so the
//     best set of any one part will do;
//   - a match of an alternation is a match of one branch: the union of
//     the branches' sets, nil if any branch has none;
//   - a capture, and a repetition of at least one, contain a match of
//     their sub-expression;
//   - a character class of a few ASCII characters matches one of them;
//   - everything else (optional parts, any character, anchors, empty
//     matches) gives nil.
func requiredLits(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil
		}
		var b strings.Builder
		for _, r := range re.Rune {
			if r >= utf8.RuneSelf {
				return nil
			}
			b.WriteByte(lowerASCII(byte(r)))
		}
		return []string{b.String()}
	case syntax.OpCharClass:
		var out []string
		for k := 0; k+1 < len(re.Rune); k += 2 {
			lo, hi := re.Rune[k], re.Rune[k+1]
			if hi >= utf8.RuneSelf || hi-lo >= fewPrefilterLits {
				return nil
			}
			for r := lo; r <= hi; r++ {
				out = append(out, string(rune(lowerASCII(byte(r)))))
			}
		}
		return dedupe(out)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLits(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLits(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		var best []string
		for _, sub := range re.Sub {
			if s := requiredLits(sub); s != nil && better(s, best) {
				best = s
			}
		}
		return best
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s := requiredLits(sub)
			if s == nil {
				return nil
			}
			out = append(out, s...)
			if len(out) > maxPrefilterLits {
				return nil
			}
		}
		return dedupe(out)
	}
	return nil
}

// better reports whether set a filters more than b: a longer shortest
// string, then fewer strings.
func better(a, b []string) bool {
	if b == nil {
		return true
	}
	ma, mb := minLen(a), minLen(b)
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func minLen(s []string) int {
	m := -1
	for _, x := range s {
		if m < 0 || len(x) < m {
			m = len(x)
		}
	}
	return m
}

func dedupe(s []string) []string {
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) == 0 || len(s) > maxPrefilterLits {
		return nil
	}
	return s
}
