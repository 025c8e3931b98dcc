package policies

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"rsc.io/binaryregexp"
)

// registerOperators replaces the engine's @rx operator with rxOperator,
// once per process, before the first rule set is parsed (the engine looks
// operators up when it parses a rule, so rule sets parsed before keep
// the stock operator).
var registerOperators = sync.OnceFunc(func() { plugins.RegisterOperator("rx", newRxOperator) })

// rxOperator is the Core Rule Set's @rx with Coraza's semantics — the
// expression compiled as "(?sm)" + pattern with Go's regexp (RE2 syntax),
// or with rsc.io/binaryregexp when the pattern matches bytes that are not
// UTF-8, capture groups 0 to 8 for the rule's actions — evaluated more
// cheaply. Nearly every evaluation on ordinary traffic is a non-match: the
// expression's prefilter (rxPrefilter: literals one of which every match
// contains) answers most of them without running the expression, and for
// the rest rxOperator asks only whether the expression matches and
// computes the submatch positions a capturing rule needs for the inputs
// that do.
type rxOperator struct {
	re    *regexp.Regexp
	binRe *binaryregexp.Regexp
	pf    *rxPrefilter // nil: none
}

// rxCompiled is what one pattern compiles to, shared by the rules (and
// the route rule sets) that use it.
type rxCompiled struct {
	re *regexp.Regexp
	pf *rxPrefilter
}

func newRxOperator(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	data := "(?sm)" + o.Arguments
	if matchesArbitraryBytes(data) {
		re, err := memoize(o.Memoizer, "telegate-binrx:"+o.Arguments, func() (any, error) { return binaryregexp.Compile(o.Arguments) })
		if err != nil {
			return nil, err
		}
		return &rxOperator{binRe: re.(*binaryregexp.Regexp)}, nil
	}
	c, err := memoize(o.Memoizer, "telegate-rx:"+data, func() (any, error) {
		re, err := regexp.Compile(data)
		if err != nil {
			return nil, err
		}
		return &rxCompiled{re: re, pf: newRxPrefilter(data)}, nil
	})
	if err != nil {
		return nil, err
	}
	rc := c.(*rxCompiled)
	return &rxOperator{re: rc.re, pf: rc.pf}, nil
}

func memoize(m plugintypes.Memoizer, key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	return m.Do(key, fn)
}

// Evaluate implements plugintypes.Operator: whether value matches, and
// for a capturing rule the submatches 0..8 into the transaction.
func (o *rxOperator) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if o.binRe != nil {
		if !o.binRe.MatchString(value) {
			return false
		}
		if tx.Capturing() {
			for i, c := range o.binRe.FindStringSubmatch(value) {
				if i == 9 {
					break
				}
				tx.CaptureField(i, c)
			}
		}
		return true
	}
	if o.pf != nil && !o.pf.mayMatch(value) {
		return false
	}
	if !o.re.MatchString(value) {
		return false
	}
	if tx.Capturing() {
		m := o.re.FindStringSubmatchIndex(value)
		for i := 0; i < len(m)/2 && i < 9; i++ {
			if m[2*i] >= 0 {
				tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
			} else {
				tx.CaptureField(i, "")
			}
		}
	}
	return true
}

// matchesArbitraryBytes reports whether expr has \xNN (or \x{NN}) escapes
// that together are not valid UTF-8: such an expression is compiled with
// binaryregexp, as Coraza's @rx does (the same test as its
// matchesArbitraryBytes, Apache-2.0, the OWASP Coraza contributors).
func matchesArbitraryBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' {
			decoded = append(decoded, c)
			continue
		}
		if i+3 >= len(expr) {
			decoded = append(decoded, expr[i:]...)
			break
		}
		if expr[i+1] != 'x' {
			decoded = append(decoded, expr[i])
			continue
		}
		sub := expr[i:]
		advance := 3
		if len(sub) >= 6 && sub[2] == '{' {
			if end := strings.IndexByte(sub, '}'); end != -1 {
				sub = `\x` + sub[3:end]
				advance = end
			}
		}
		v, mb, _, err := strconv.UnquoteChar(sub, 0)
		if err != nil || mb {
			decoded = append(decoded, expr[i])
			continue
		}
		decoded = append(decoded, byte(v))
		i += advance
	}
	return !utf8.Valid(decoded)
}
