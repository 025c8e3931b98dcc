package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// tokenUse is what a JWT is presented as. A token made for one use is
// never accepted as another: an ID token is not a logout token, and a
// logout or access token is not an ID token.
type tokenUse int

const (
	// useIDToken: an ID token (OIDC Core §2), at sign-in and refresh.
	useIDToken tokenUse = iota
	// useLogout: a logout token (OIDC Back-Channel Logout 1.0 §2.4).
	useLogout
	// useAccess: a bearer access token (RFC 9068).
	useAccess
)

// numericDates are the claims whose value is a NumericDate (RFC 7519 §2:
// a JSON number of seconds since the epoch) in the tokens telegate reads:
// exp, iat, nbf (RFC 7519 §4.1.4–6) and auth_time (OIDC Core §2).
var numericDates = []string{"exp", "iat", "nbf", "auth_time"}

// tokenRules are the checks every JWT telegate accepts gets beyond what
// go-oidc verifies (signature with a pinned algorithm, iss, aud, exp): one
// checker for ID tokens, logout tokens and bearer access tokens, so that
// a rule holds for all three. check runs before the signature is
// verified (it reads only the compact serialisation and its JOSE header),
// checkClaims on the verified payload.
type tokenRules struct {
	use tokenUse
	// maxBytes caps the compact serialisation (bytes); 0: no cap.
	maxBytes int
	// maxAge refuses a token whose iat is further in the past; 0: no
	// maximum.
	maxAge time.Duration
	// rfc9068 requires the JOSE header typ "at+jwt" of an access token
	// (RFC 9068 §2.1, §4).
	rfc9068 bool
	now     func() time.Time
}

// check returns why raw is refused before its signature is verified, or
// "": "token_too_large" past maxBytes; "claim_duplicate" when the JOSE
// header or the claims set names a member twice, in any letter case (RFC
// 7519 §4 lets a parser take the last duplicate; telegate's claims and
// go-oidc's struct fields, which match names case-insensitively, would
// then read different subjects); "token_typ" when the header has a cty
// (a nested JWT, RFC 7519 §5.2, which telegate never unwraps) or its
// typ (RFC 7515 §4.1.9: a media type, compared case-insensitively, the
// "application/" prefix optional) is not one of the use's: absent or "JWT"
// for an ID token; absent, "JWT" or "logout+jwt" for a logout token;
// absent, "JWT" or "at+jwt" for an access token, and exactly "at+jwt" when
// rfc9068. A header that cannot be read is left to the verifier, which
// refuses it.
func (r tokenRules) check(raw string) string {
	if r.maxBytes > 0 && len(raw) > r.maxBytes {
		return "token_too_large"
	}
	head, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h map[string]json.RawMessage
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	if duplicateMember(b) {
		return "claim_duplicate"
	}
	if payload, _, ok := strings.Cut(rest, "."); ok {
		if p, err := base64.RawURLEncoding.DecodeString(payload); err == nil && duplicateMember(p) {
			return "claim_duplicate"
		}
	}
	if _, nested := h["cty"]; nested {
		return "token_typ"
	}
	typ := ""
	if v, present := h["typ"]; present {
		if json.Unmarshal(v, &typ) != nil {
			return "token_typ"
		}
		typ = strings.TrimPrefix(strings.ToLower(typ), "application/")
		if typ == "" {
			return "token_typ"
		}
	}
	var allowed []string
	switch r.use {
	case useIDToken:
		allowed = []string{"", "jwt"}
	case useLogout:
		allowed = []string{"", "jwt", "logout+jwt"}
	case useAccess:
		allowed = []string{"", "jwt", "at+jwt"}
		if r.rfc9068 {
			allowed = []string{"at+jwt"}
		}
	}
	for _, a := range allowed {
		if typ == a {
			return ""
		}
	}
	return "token_typ"
}

// checkClaims returns why a token with the verified claims all is
// refused, or "":
//   - "claim_type": exp, iat, nbf or auth_time present and not a JSON
//     number (a string "1700000000", a boolean, an array, null);
//   - "iat_missing"; "iat_future" more than iatSkew ahead of the clock;
//     "iat_too_old" further back than maxAge;
//   - "nbf_future": nbf more than iatSkew ahead (RFC 7519 §4.1.5);
//   - "token_use": an ID token with a logout token's events claim, or a
//     logout token with a nonce (Back-Channel Logout 1.0 §2.4);
//     "event_missing": a logout token without the back-channel logout
//     event.
func (r tokenRules) checkClaims(all map[string]json.RawMessage) string {
	dates := map[string]float64{}
	for _, name := range numericDates {
		v, present := all[name]
		if !present {
			continue
		}
		f, ok := numericDate(v)
		if !ok {
			return "claim_type"
		}
		dates[name] = f
	}
	now := r.now()
	iat, ok := dates["iat"]
	switch {
	case !ok:
		return "iat_missing"
	case iat > float64(now.Add(iatSkew).Unix()):
		return "iat_future"
	case r.maxAge > 0 && iat < float64(now.Add(-r.maxAge).Unix()):
		return "iat_too_old"
	}
	if nbf, ok := dates["nbf"]; ok && nbf > float64(now.Add(iatSkew).Unix()) {
		return "nbf_future"
	}
	switch r.use {
	case useIDToken:
		if _, ok := all["events"]; ok {
			return "token_use"
		}
	case useLogout:
		if _, ok := all["nonce"]; ok {
			return "token_use"
		}
		var events map[string]json.RawMessage
		if json.Unmarshal(all["events"], &events) != nil {
			return "event_missing"
		}
		if _, ok := events[backchannelEvent]; !ok {
			return "event_missing"
		}
	}
	return ""
}

// duplicateMember reports whether the JSON object b names a member twice
// at its top level, letter case ignored. Text that is not an object is
// left to the parsers after, which refuse it.
func duplicateMember(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := t.(string)
		k := strings.ToLower(name)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// numericDate reads a NumericDate (RFC 7519 §2): a finite JSON number,
// never a string that holds one.
func numericDate(v json.RawMessage) (float64, bool) {
	if len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
		return 0, false
	}
	var f float64
	if json.Unmarshal(v, &f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
