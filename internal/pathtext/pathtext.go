// Package pathtext holds the rules for the text of a URL path that the
// request canonicaliser (gateway.CanonicalPath) and the route path check
// (config.CheckRoutePath) share: which Unicode text a path may carry, how
// it is normalised, and how letter case is folded for comparing paths.
//
// All functions take decoded text (percent-encoding undone), except Fold,
// which takes a canonical path.
package pathtext

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Errors returned by Check.
var (
	// ErrInvalidUTF8: the text is not valid UTF-8 (RFC 3629 §3), which
	// includes overlong forms ("\xc0\xaf") and encoded surrogates
	// ("\xed\xa0\x80").
	ErrInvalidUTF8 = errors.New("path is not valid UTF-8")
	// ErrInvisible: a non-ASCII control, format (Cf: zero-width
	// characters, bidi controls, soft hyphen, byte order mark), private-use
	// (Co) or separator character (Zs, Zl, Zp: no-break and other spaces).
	ErrInvisible = errors.New("invisible, format or space character in path")
	// ErrNotNormalised: the text is not in Unicode Normalization Form
	// KC (UAX #15), so compatibility normalisation would change it
	// (fullwidth letters, ligatures, superscripts, decomposed accents).
	ErrNotNormalised = errors.New("path is not in Unicode normalization form NFKC")
)

// Check reports whether decoded, the text of a path with its
// percent-encoding undone, is text every server reads the same way:
// valid UTF-8 (ErrInvalidUTF8), without a non-ASCII character of category
// Cc, Cf, Co, Cs, Zs, Zl or Zp (ErrInvisible), and unchanged by NFKC
// (ErrNotNormalised; text in NFKC is also in NFC). ASCII text always
// passes: the ASCII rules are the callers'.
func Check(decoded string) error {
	ascii := true
	for i := 0; i < len(decoded); i++ {
		if decoded[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(decoded) {
		return ErrInvalidUTF8
	}
	for _, r := range decoded {
		if r >= utf8.RuneSelf && Invisible(r) {
			return ErrInvisible
		}
	}
	if !norm.NFKC.IsNormalString(decoded) || !norm.NFC.IsNormalString(decoded) {
		return ErrNotNormalised
	}
	return nil
}

// Invisible reports whether r is of a category whose characters render
// as nothing or as blank space, or that servers strip: Cc, Cf, Co, Cs,
// Zs, Zl, Zp.
func Invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zs, unicode.Zl, unicode.Zp)
}

// Delimiters are the ASCII bytes with a meaning in a path's syntax or
// that servers trim: NFKC must not produce one from other characters
// (fullwidth solidus "／" → "/", one dot leader "․" → ".").
const Delimiters = "/\\.%;?#: \t"

// NFKC returns decoded in Normalization Form KC, and false when the
// normalisation would add a delimiter (Delimiters) that decoded did not
// have: such text is refused rather than normalised.
func NFKC(decoded string) (string, bool) {
	n := norm.NFKC.String(decoded)
	for i := 0; i < len(Delimiters); i++ {
		if strings.Count(n, Delimiters[i:i+1]) != strings.Count(decoded, Delimiters[i:i+1]) {
			return "", false
		}
	}
	return n, true
}

// Fold returns the case-folded form of a canonical path (percent-encoded
// as gateway.CanonicalPath leaves it): ASCII letters in lower case, and
// when the path carries non-ASCII text (percent-encoded bytes 0x80 and
// above), that text folded by Unicode full case folding (Unicode §3.13,
// golang.org/x/text/cases.Fold: "É" → "é", "ß" → "ss") and encoded again
// with upper-case hex. Before folding, each character is mapped to the
// lower case of its upper case (foldUnicode), the way Java's
// equalsIgnoreCase and .NET's OrdinalIgnoreCase compare: dotless "ı" and
// dotted "İ" fold to "i" there, where Unicode folding alone keeps them
// apart. Two paths that a case-insensitive server treats as one have the
// same Fold.
func Fold(canonical string) string {
	if !HasEncodedNonASCII(canonical) {
		return lowerASCII(canonical)
	}
	var dec strings.Builder
	for i := 0; i < len(canonical); i++ {
		c := canonical[i]
		if c == '%' && i+2 < len(canonical) {
			if v := unhex(canonical[i+1])<<4 | unhex(canonical[i+2]); v >= utf8.RuneSelf {
				dec.WriteByte(v)
				i += 2
				continue
			}
		}
		dec.WriteByte(c)
	}
	folded := foldUnicode(dec.String())
	var out strings.Builder
	for i := 0; i < len(folded); i++ {
		c := folded[i]
		if c >= utf8.RuneSelf {
			out.WriteByte('%')
			out.WriteByte(upperhex[c>>4])
			out.WriteByte(upperhex[c&15])
			continue
		}
		out.WriteByte(c)
	}
	return lowerASCII(out.String())
}

// foldUnicode is Unicode full case folding (cases.Fold) of s after each
// character is mapped to the lower case of its upper case
// (unicode.ToLower(unicode.ToUpper(r))): a character that a
// char-by-char case-insensitive comparison (Java, .NET) takes for an
// ASCII letter ("ı" U+0131 and "İ" U+0130 for "i") folds to that letter.
func foldUnicode(s string) string {
	mapped := strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			return r
		}
		if l := unicode.ToLower(r); l < utf8.RuneSelf {
			return l
		}
		return unicode.ToLower(unicode.ToUpper(r))
	}, s)
	return cases.Fold().String(mapped)
}

// FoldText folds decoded text the way Fold folds a canonical path: ASCII
// letters to lower case, and non-ASCII text by Unicode full case folding.
func FoldText(decoded string) string {
	for i := 0; i < len(decoded); i++ {
		if decoded[i] >= utf8.RuneSelf {
			return lowerASCII(foldUnicode(decoded))
		}
	}
	return lowerASCII(decoded)
}

// HasEncodedNonASCII reports whether a canonical path has a
// percent-encoded byte 0x80 or above (non-ASCII text).
func HasEncodedNonASCII(canonical string) bool {
	for i := strings.IndexByte(canonical, '%'); i >= 0 && i+1 < len(canonical); {
		if h := canonical[i+1]; h >= '8' && h <= '9' || h >= 'A' && h <= 'F' || h >= 'a' && h <= 'f' {
			return true
		}
		j := strings.IndexByte(canonical[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// EqualFoldPrefix reports whether s starts with folded, a string already
// folded by Fold, when s's ASCII letters are folded to lower case. It is
// Fold(s) starting with folded for an s without non-ASCII text, without
// allocating.
func EqualFoldPrefix(s, folded string) bool {
	if len(s) < len(folded) {
		return false
	}
	for i := 0; i < len(folded); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// EqualFold reports whether s folds to folded (see EqualFoldPrefix).
func EqualFold(s, folded string) bool {
	return len(s) == len(folded) && EqualFoldPrefix(s, folded)
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

const upperhex = "0123456789ABCDEF"

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}
