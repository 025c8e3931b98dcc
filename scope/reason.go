package scope

import (
	"strconv"
	"strings"
)

// Reason is the short machine-readable reason of a Decision: why the
// request was allowed or refused. Its string is what the audit trail
// records ("reason") and, up to the first ':' (Kind), the label of the
// denial metric. Build reasons only from the constants below and
// RuleReason; compare them with ==.
type Reason string

// Reasons of policy evaluation (policies.Evaluate), in the order of its
// checks.
const (
	// ReasonNoPolicy: the route has no policy (deny by default).
	ReasonNoPolicy Reason = "no-policy"
	// ReasonPublic: a public route (allow).
	ReasonPublic Reason = "public"
	// ReasonUnauthenticated: the route needs an identity and there is none.
	ReasonUnauthenticated Reason = "unauthenticated"
	// ReasonRouteProvider: the identity was vouched for by a provider,
	// bearer issuer or client CA the route does not name (routes[].providers,
	// bearer, client_cert; policies.Bound). No criterion, break-glass
	// grant or second factor makes up for it.
	ReasonRouteProvider Reason = "provider:route"
	// ReasonMethod: the method is not in the policy's methods.
	ReasonMethod Reason = "method"
	// ReasonMFARequired: a rule admits the identity, but the policy needs
	// a second factor it did not use.
	ReasonMFARequired Reason = "mfa-required"
	// ReasonNoRules: the policy has no allow rules.
	ReasonNoRules Reason = "no-rules"
	// ReasonEmptyRule: the rules set no criterion (they admit nobody).
	ReasonEmptyRule Reason = "empty-rule"
	// ReasonNoMatch: the rules failed on different criteria.
	ReasonNoMatch Reason = "no-match"
)

// The criterion every allow rule failed on (policies' criterion_*.go).
const (
	ReasonAuthenticated Reason = "authenticated"
	ReasonProvider      Reason = "provider"
	ReasonIssuer        Reason = "issuer"
	ReasonSubject       Reason = "subject"
	ReasonDevice        Reason = "device"
	ReasonRole          Reason = "role"
	ReasonGroup         Reason = "group"
	ReasonClaim         Reason = "claim"
)

// Reasons of the gateway's authorisation around policy.
const (
	// ReasonBreakGlass: admitted by an emergency-access grant.
	ReasonBreakGlass Reason = "break-glass"
	// ReasonError: an allow without a reason, refused (fail closed).
	ReasonError Reason = "error"
)

// Refusals of a request whose framing the gateway does not accept, most
// of them found by the HTTP/1 head scanner before net/http parses the
// head (RFC 9112).
const (
	ReasonFramingBareLF         Reason = "framing:bare-lf"
	ReasonFramingRequestLine    Reason = "framing:request-line"
	ReasonFramingObsFold        Reason = "framing:obs-fold"
	ReasonFramingField          Reason = "framing:field"
	ReasonFramingDuplicateHost  Reason = "framing:duplicate-host"
	ReasonFramingHost           Reason = "framing:host"
	ReasonFramingCLTE           Reason = "framing:cl-te"
	ReasonFramingTE             Reason = "framing:transfer-encoding"
	ReasonFramingContentLength  Reason = "framing:content-length"
	ReasonFramingAsteriskForm   Reason = "framing:asterisk-form"
	ReasonFramingTargetForm     Reason = "framing:target-form"
	ReasonFramingAuthority      Reason = "framing:authority"
	ReasonFramingHeaderTooLarge Reason = "framing:header-too-large"
	// ReasonFramingUnscanned: a head after one the scanner could not
	// follow on the same connection.
	ReasonFramingUnscanned Reason = "framing:unscanned"
)

// Other refusals by the gateway before or instead of policy:
// "kind:detail".
const (
	ReasonNoRoute             Reason = "no-route"
	ReasonClientGone          Reason = "client-gone"
	ReasonRateClient          Reason = "rate:client"
	ReasonRateSubject         Reason = "rate:subject"
	ReasonAssertionError      Reason = "assertion:error"
	ReasonHostDuplicate       Reason = "host:duplicate"
	ReasonHostMalformed       Reason = "host:malformed"
	ReasonHostConflict        Reason = "host:conflict"
	ReasonHostSNIMismatch     Reason = "host:sni-mismatch"
	ReasonTargetForm          Reason = "target:form"
	ReasonTargetAuthority     Reason = "target:authority"
	ReasonQueryTooMany        Reason = "query:too-many"
	ReasonQueryMalformed      Reason = "query:malformed"
	ReasonQueryAccessToken    Reason = "query:access-token"
	ReasonBodyTooLarge        Reason = "body:too-large"
	ReasonBodyMalformed       Reason = "body:malformed"
	ReasonUpstreamTimeout     Reason = "upstream:timeout"
	ReasonUpstreamUnavailable Reason = "upstream:unavailable"
	// ReasonResponseCut: the response had begun (status sent) and did not
	// end: the upstream's stream broke, or the client's connection did.
	ReasonResponseCut Reason = "response:cut"
	// ReasonShutdown: the node's drain deadline closed the connection
	// while the request was still being read or answered.
	ReasonShutdown Reason = "shutdown"
	// ReasonPlainHTTP: an HTTP request without TLS on the HTTPS listener
	// (answered 400, then the connection closes).
	ReasonPlainHTTP            Reason = "tls:plain-http"
	ReasonUpgradeNotAllowed    Reason = "upgrade:not-allowed"
	ReasonUpgradeOrigin        Reason = "upgrade:origin"
	ReasonPathFragment         Reason = "path:fragment"
	ReasonPathSemicolon        Reason = "path:semicolon"
	ReasonPathForm             Reason = "path:form"
	ReasonPathControl          Reason = "path:control"
	ReasonPathBackslash        Reason = "path:backslash"
	ReasonPathEncodedSeparator Reason = "path:encoded-separator"
	ReasonPathPercent          Reason = "path:percent"
	ReasonPathDotSegment       Reason = "path:dot-segment"
	ReasonPathEmptySegment     Reason = "path:empty-segment"
	ReasonPathMalformed        Reason = "path:malformed"
	// ReasonPathEncodedDelimiter: "%3B", "%3F" or "%23" in the path.
	ReasonPathEncodedDelimiter Reason = "path:encoded-delimiter"
	// ReasonPathDoubleEncoding: "%25" (an encoded '%') in the path.
	ReasonPathDoubleEncoding Reason = "path:double-encoding"
	// ReasonPathWhitespace: a space, raw or encoded, in the path.
	ReasonPathWhitespace Reason = "path:whitespace"
	// ReasonPathTrailingDot: a path segment ending in '.'.
	ReasonPathTrailingDot Reason = "path:trailing-dot"
	// ReasonPathStream: an NTFS stream name (":$", "::$DATA",
	// ":$I30:$INDEX_ALLOCATION") in the decoded path.
	ReasonPathStream Reason = "path:stream"
	// ReasonPathShortName: a segment in the form of a Windows 8.3 short
	// name ("ADMINI~1") that stands for a segment of another route's
	// prefix ("administration").
	ReasonPathShortName Reason = "path:short-name"
	// ReasonMethodCase: a request method with lower-case letters.
	ReasonMethodCase Reason = "method:case"
	// ReasonPathUTF8: the decoded path is not valid UTF-8.
	ReasonPathUTF8 Reason = "path:utf8"
	// ReasonPathInvisible: an invisible, format or space character
	// (Unicode Cc, Cf, Co, Cs, Z*) in the decoded path.
	ReasonPathInvisible Reason = "path:invisible"
	// ReasonPathUnicodeForm: the decoded path is not in NFKC and its
	// route does not normalise Unicode paths.
	ReasonPathUnicodeForm Reason = "path:unicode-form"
	// ReasonPathCase: with letter case ignored the path would fall under
	// another route than the one it names exactly.
	ReasonPathCase Reason = "path:case"
	// ReasonQueryMethodOverride: a "_method" query parameter.
	ReasonQueryMethodOverride Reason = "query:method-override"
	// ReasonBodyMethodOverride: a "_method" field in a form body.
	ReasonBodyMethodOverride Reason = "body:method-override"
	// ReasonBodyEncoding: a form, JSON or multipart body that telegate
	// cannot read as an upstream may: content-coded (Content-Encoding),
	// or in a charset that is not ASCII-compatible (UTF-16, UTF-32,
	// UTF-7).
	ReasonBodyEncoding Reason = "body:encoding"
	// ReasonBodyMultipart: a multipart body that parsers could read
	// differently (a stray delimiter, an extended part name, a nested
	// multipart part, no boundary, cut short).
	ReasonBodyMultipart Reason = "body:multipart"
)

// declared are the constants above.
var declared = map[Reason]bool{
	ReasonNoPolicy: true, ReasonPublic: true, ReasonUnauthenticated: true, ReasonRouteProvider: true, ReasonMethod: true,
	ReasonMFARequired: true, ReasonNoRules: true, ReasonEmptyRule: true, ReasonNoMatch: true,
	ReasonAuthenticated: true, ReasonProvider: true, ReasonIssuer: true, ReasonSubject: true,
	ReasonDevice: true, ReasonRole: true, ReasonGroup: true, ReasonClaim: true,
	ReasonBreakGlass: true, ReasonError: true,
	ReasonNoRoute: true, ReasonClientGone: true, ReasonRateClient: true, ReasonRateSubject: true,
	ReasonAssertionError: true,
	ReasonFramingBareLF:  true, ReasonFramingRequestLine: true, ReasonFramingObsFold: true, ReasonFramingField: true,
	ReasonFramingDuplicateHost: true, ReasonFramingHost: true, ReasonFramingCLTE: true, ReasonFramingTE: true,
	ReasonFramingContentLength: true, ReasonFramingAsteriskForm: true, ReasonFramingTargetForm: true,
	ReasonFramingAuthority: true, ReasonFramingHeaderTooLarge: true, ReasonFramingUnscanned: true,
	ReasonHostDuplicate: true, ReasonHostMalformed: true, ReasonHostConflict: true, ReasonHostSNIMismatch: true,
	ReasonTargetForm: true, ReasonTargetAuthority: true,
	ReasonQueryTooMany: true, ReasonQueryMalformed: true, ReasonQueryAccessToken: true,
	ReasonBodyTooLarge: true, ReasonBodyMalformed: true,
	ReasonUpstreamTimeout: true, ReasonUpstreamUnavailable: true, ReasonResponseCut: true, ReasonShutdown: true,
	ReasonPlainHTTP: true, ReasonUpgradeNotAllowed: true, ReasonUpgradeOrigin: true,
	ReasonPathFragment: true, ReasonPathSemicolon: true, ReasonPathForm: true, ReasonPathControl: true,
	ReasonPathBackslash: true, ReasonPathEncodedSeparator: true, ReasonPathPercent: true,
	ReasonPathDotSegment: true, ReasonPathEmptySegment: true, ReasonPathMalformed: true,
	ReasonPathEncodedDelimiter: true, ReasonPathDoubleEncoding: true, ReasonPathWhitespace: true,
	ReasonPathTrailingDot: true, ReasonPathUTF8: true, ReasonPathInvisible: true, ReasonPathUnicodeForm: true,
	ReasonPathCase: true, ReasonQueryMethodOverride: true, ReasonBodyMethodOverride: true,
	ReasonBodyMultipart: true, ReasonPathStream: true, ReasonMethodCase: true, ReasonBodyEncoding: true,
	ReasonPathShortName: true,
}

// Declared reports whether r is one of the Reason constants or a
// RuleReason.
func (r Reason) Declared() bool {
	if declared[r] {
		return true
	}
	_, ok := r.Rule()
	return ok
}

// ruleReasons caches "rule:N" for the first rules.
var ruleReasons = func() [64]Reason {
	var r [64]Reason
	for i := range r {
		r[i] = Reason("rule:" + strconv.Itoa(i))
	}
	return r
}()

// RuleReason is the reason of an allow by the policy's allow rule i
// (zero-based): "rule:i".
func RuleReason(i int) Reason {
	if i >= 0 && i < len(ruleReasons) {
		return ruleReasons[i]
	}
	return Reason("rule:" + strconv.Itoa(i))
}

// Rule returns i for RuleReason(i), and false for every other reason.
func (r Reason) Rule() (int, bool) {
	s, ok := strings.CutPrefix(string(r), "rule:")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// Kind is the reason up to its first ':' ("path:dot-segment" → "path",
// "rule:3" → "rule"), the reason itself when it has none: the label of
// the denial metric, whose set stays small.
func (r Reason) Kind() string {
	k, _, _ := strings.Cut(string(r), ":")
	return k
}

// String returns the reason as recorded.
func (r Reason) String() string { return string(r) }
