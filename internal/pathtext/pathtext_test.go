package pathtext

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"/plain/ascii", nil},
		{"/café", nil},
		{"/日本", nil},
		{"/\xc0\xaf", ErrInvalidUTF8},
		{"/\xed\xa0\x80", ErrInvalidUTF8},
		{"/a\u200bb", ErrInvisible},
		{"/a\u00a0", ErrInvisible},
		{"/a\u202e", ErrInvisible},
		{"/a\u2066", ErrInvisible},
		{"/a\u00ad", ErrInvisible},
		{"/a\ufeff", ErrInvisible},
		{"/a\ue000", ErrInvisible}, // private use
		{"/ａdmin", ErrNotNormalised},
		{"/ﬁle", ErrNotNormalised},
		{"/x²", ErrNotNormalised},
		{"/cafe\u0301", ErrNotNormalised},
	} {
		if got := Check(tc.in); !errors.Is(got, tc.want) {
			t.Errorf("Check(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/Clinic/X":           "/clinic/x",
		"/clinic/":            "/clinic/",
		"/CAF%C3%89/%3C":      "/caf%c3%a9/%3c",
		"/stra%C3%9Fe":        "/strasse",
		"/%CE%A3%CE%AC%CF%82": "/%cf%83%ce%ac%cf%83", // final sigma folds to sigma
		"/adm%C4%B1n":         "/admin",              // dotless i: Java and .NET read it as i
		"/adm%C4%B0n":         "/admin",              // dotted capital I
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
	if FoldText("/CAFÉ/") != FoldText("/café/") || FoldText("/Straße/") != "/strasse/" {
		t.Errorf("FoldText does not fold")
	}
	if !EqualFoldPrefix("/CLINIC/x", "/clinic/") || EqualFoldPrefix("/clinix/", "/clinic/") || !EqualFold("/Api", "/api") {
		t.Errorf("EqualFoldPrefix/EqualFold")
	}
}

func TestNFKC(t *testing.T) {
	t.Parallel()
	if got, ok := NFKC("/ﬁle/ａ"); !ok || got != "/file/a" {
		t.Errorf("NFKC = %q, %v", got, ok)
	}
	for _, in := range []string{"/a／b", "/a．", "/a․", "/a﹕", "/a\u3000"} {
		if _, ok := NFKC(in); ok {
			t.Errorf("NFKC(%q) added a delimiter and was taken", in)
		}
	}
}
