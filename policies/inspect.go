package policies

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/page"
	"github.com/telegate/telegate/scope"
)

// Inspection limits. The paranoia level and anomaly threshold default in
// config (config.DefaultParanoiaLevel, config.DefaultAnomalyThreshold).
const (
	// DefaultInspectBodyBytes is the body limit for a request without a
	// route (telegate's own endpoints) or with MaxBodyBytes unset.
	DefaultInspectBodyBytes int64 = 10 << 20
	// maxCorazaBody is Coraza's hard request body limit (1 GiB).
	maxCorazaBody = 1 << 30
)

// AllowedMethods are the methods the Core Rule Set lets through
// (tx.allowed_methods, CRS rule 911100). Route policies narrow them.
const AllowedMethods = "GET HEAD POST OPTIONS PUT PATCH DELETE"

// AllowedContentTypes are the request body media types the Core Rule Set
// lets through (tx.allowed_request_content_type, CRS rule 920420): the CRS
// defaults plus the FHIR media types (HL7 FHIR R4 §3.1.0.1.8) and the plain
// upload types telehealth apps send. Types outside the list are refused.
const AllowedContentTypes = "|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| " +
	"|text/xml| |application/xml| |application/soap+xml| |application/json| " +
	"|application/fhir+json| |application/fhir+xml| |application/json-patch+json| |application/merge-patch+json| " +
	"|text/plain| |application/octet-stream| |application/pdf| |image/jpeg| |image/png| |image/heic| |image/webp|"

// Inspector is the WAF stage (gateway.Inspector): Coraza v3 with the
// embedded OWASP Core Rule Set v4, request phases only (headers, URI,
// arguments, body). The engine is built once by NewInspector and shared by
// every request. Safe for concurrent use.
type Inspector struct {
	waf coraza.WAF
	// routeWAF holds the rule sets of routes with inspect_exclusions, by
	// route id (routes with the same exclusions share one).
	routeWAF   map[string]coraza.WAF
	enabled    bool
	detectOnly bool
	sink       audit.Sink
	logger     *slog.Logger

	inspected atomic.Uint64
	blocked   atomic.Uint64
	detected  atomic.Uint64
}

// NewInspector builds the inspection engine for cfg: CRS at
// cfg.ParanoiaLevel (1..4) with the inbound anomaly threshold
// cfg.AnomalyThreshold (at least 1), both defaulted by config. Requests are inspected when
// cfg.Enabled, unless a route's Inspect says otherwise. With
// cfg.DetectOnly a request that would be blocked is logged and audited but
// passes. sink receives an "inspect" event for every request that matched
// (nil means audit.Discard); logger receives one line per such request
// (nil means slog.Default), never with bodies, query strings or matched
// data. Building the engine parses the whole rule set and takes about a
// second; do it once.
//
// Each route of routes with InspectExclusions gets its own rule set, the
// same with the exclusions compiled in (see exclusionDirectives); routes
// with the same exclusions share one. Each costs another such build.
//
// Errors: a paranoia level outside 1..4, a threshold below 1, or rules
// (or a route's exclusions) that fail to load.
func NewInspector(cfg config.Inspection, routes []config.Route, sink audit.Sink, logger *slog.Logger) (*Inspector, error) {
	pl := cfg.ParanoiaLevel
	if pl < 1 || pl > 4 {
		return nil, fmt.Errorf("inspection.paranoia_level %d: must be 1 to 4", cfg.ParanoiaLevel)
	}
	threshold := cfg.AnomalyThreshold
	if threshold < 1 {
		return nil, fmt.Errorf("inspection.anomaly_threshold %d: must be at least 1", cfg.AnomalyThreshold)
	}
	if sink == nil {
		sink = audit.Discard{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	base := directives(pl, threshold)
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(base))
	if err != nil {
		return nil, fmt.Errorf("inspection: load the Core Rule Set: %w", err)
	}
	in := &Inspector{waf: waf, enabled: cfg.Enabled, detectOnly: cfg.DetectOnly, sink: sink, logger: logger}
	built := map[string]coraza.WAF{}
	for _, rt := range routes {
		if len(rt.InspectExclusions) == 0 {
			continue
		}
		extra := exclusionDirectives(rt.InspectExclusions)
		w, ok := built[extra]
		if !ok {
			w, err = coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(base + extra))
			if err != nil {
				return nil, fmt.Errorf("inspection: route %q: inspect_exclusions: %w", rt.ID, err)
			}
			built[extra] = w
		}
		if in.routeWAF == nil {
			in.routeWAF = map[string]coraza.WAF{}
		}
		in.routeWAF[rt.ID] = w
	}
	return in, nil
}

// exclusionDirectives compiles a route's inspect_exclusions into rule
// set updates, one SecRuleUpdateTargetById per rule group and exclusion,
// removing the named arguments from the group's targets: "!ARGS:note",
// or for a name with "*" the regular expression "!ARGS:/^json\.note\.[^.]+\.text$/".
// Names are lower-cased (the engine's argument names are matched without
// regard to case). config validates groups and names.
func exclusionDirectives(exs []config.InspectExclusion) string {
	var b strings.Builder
	for _, ex := range exs {
		targets := make([]string, len(ex.Args))
		for k, a := range ex.Args {
			a = strings.ToLower(a)
			if strings.Contains(a, "*") {
				parts := strings.Split(a, "*")
				for p := range parts {
					parts[p] = regexp.QuoteMeta(parts[p])
				}
				a = "/^" + strings.Join(parts, "[^.]+") + "$/"
			}
			targets[k] = "!ARGS:" + a
		}
		for _, g := range ex.Groups {
			r := config.InspectRuleGroups[g]
			fmt.Fprintf(&b, "SecRuleUpdateTargetById %d-%d \"%s\"\n", r[0], r[1], strings.Join(targets, "|"))
		}
	}
	return b.String()
}

// wafFor is the rule set of the request's route.
func (i *Inspector) wafFor(s *scope.Scope) coraza.WAF {
	if s != nil {
		if w, ok := i.routeWAF[s.RouteID]; ok {
			return w
		}
	}
	return i.waf
}

// MaxInspectedArguments is the most arguments (query, form and JSON leaves
// together) the engine inspects in one request. A request with more is
// refused (403): arguments past the cap would otherwise go uninspected.
const MaxInspectedArguments = 5000

// Directives is the engine configuration NewInspector loads for the
// paranoia level (1..4) and inbound anomaly threshold, as Coraza
// directives to be read with the embedded Core Rule Set
// (coreruleset.FS) as root. Benchmarks load it into stock Coraza to
// compare engines on the same rules.
func Directives(paranoia, threshold int) string { return directives(paranoia, threshold) }

// directives is the engine configuration: Coraza's recommended settings,
// the CRS setup, telegate's choices, then the request rules. Binary upload
// types (images, PDF, octet-stream) get the RAW body processor: CRS would
// otherwise parse them as a form (rule 901340) and refuse their NUL bytes.
func directives(paranoia, threshold int) string {
	return fmt.Sprintf(`Include @coraza.conf-recommended
Include @crs-setup.conf.example
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecRequestBodyLimit %[3]d
SecRequestBodyInMemoryLimit %[3]d
SecRequestBodyLimitAction Reject
SecAuditEngine Off
SecArgumentsLimit %[6]d
SecRule ARGUMENTS_LIMIT_REACHED "@eq 1" "id:200110,phase:2,t:none,deny,status:403,log,msg:'More arguments than can be inspected'"
SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:image/(?:jpeg|png|heic|webp)|application/(?:octet-stream|pdf))(?:$|[;\s])" "id:200100,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=RAW"
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%[1]d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%[2]d,setvar:tx.outbound_anomaly_score_threshold=4"
SecAction "id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=%[4]s'"
SecAction "id:900220,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=%[5]s'"
Include @owasp_crs/REQUEST-*.conf
`, paranoia, threshold, maxCorazaBody, AllowedMethods, AllowedContentTypes, MaxInspectedArguments)
}

// Stats returns how many requests were inspected, blocked, and matched in
// detect-only mode since NewInspector (export as
// telegate_control_inspected_requests_total and
// telegate_control_inspection_blocked_requests_total).
func (i *Inspector) Stats() (inspected, blocked, detected uint64) {
	return i.inspected.Load(), i.blocked.Load(), i.detected.Load()
}

// enabledFor reports whether the request's route is inspected: the route's
// Inspect when set, else inspection.enabled.
func (i *Inspector) enabledFor(s *scope.Scope) bool {
	if s != nil && s.Route != nil && s.Route.Inspect != nil {
		return *s.Route.Inspect
	}
	return i.enabled
}

// Inspect implements gateway.Inspector. For an inspected route it runs the
// request phases of the rule set over the request line, headers, query and
// body. The body is read up to the route's MaxBodyBytes (413 past it; 400
// when it cannot be read; 500 when the engine fails on it, in every mode:
// inspection fails closed), kept in memory and handed on unchanged to next
// with ContentLength set. A request the rules block gets 403 (or Coraza's
// 400/413 for an unparsable or oversized body) carrying the request id, an
// "inspect" audit event with the rule ids, and one log line; next is not
// called. In detect-only mode the same is recorded and the request passes.
// Reads scope.From for the request id, route, client address and identity.
func (i *Inspector) Inspect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := scope.From(r.Context())
		if !i.enabledFor(s) {
			next.ServeHTTP(w, r)
			return
		}
		i.inspected.Add(1)
		var tx types.Transaction
		waf := i.wafFor(s)
		if s != nil && s.RequestID != "" {
			tx = waf.NewTransactionWithID(s.RequestID)
		} else {
			tx = waf.NewTransaction()
		}
		defer func() {
			tx.ProcessLogging()
			_ = tx.Close()
		}()

		it, status, err := i.process(tx, r, s)
		if err != nil {
			i.logger.Warn("inspection could not read the request", "request_id", requestID(s), "route", routeID(s), "status", status, "err", errKind(err))
			writeBlocked(w, r, status)
			return
		}
		if it == nil {
			i.logPassed(r, s, tx)
			next.ServeHTTP(w, r)
			return
		}
		st := it.Status
		if st != http.StatusBadRequest && st != http.StatusRequestEntityTooLarge {
			st = http.StatusForbidden
		}
		rules := matchedRuleIDs(tx.MatchedRules(), maxLoggedRules)
		i.record(r, s, it.RuleID, rules, st)
		if i.detectOnly {
			i.detected.Add(1)
			next.ServeHTTP(w, r)
			return
		}
		i.blocked.Add(1)
		writeBlocked(w, r, st)
	})
}

// errTooLarge is returned by process for a body past the route's limit;
// errEngine when the engine itself failed on a readable request.
var (
	errTooLarge = errors.New("request body too large")
	errEngine   = errors.New("inspection engine failed")
)

// readErr passes reads through and keeps the first error other than
// io.EOF: it tells a client's unreadable body from an engine failure.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// process feeds the request to tx and returns Coraza's interruption, or an
// error with the status to answer.
func (i *Inspector) process(tx types.Transaction, r *http.Request, s *scope.Scope) (*types.Interruption, int, error) {
	client, cport := clientOf(r, s)
	server, sport := "", 0
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			server, sport = ap.Addr().String(), int(ap.Port())
		}
	}
	tx.ProcessConnection(client, cport, server, sport)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(hostOnly(r.Host))
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return it, 0, nil
	}
	if r.Body != nil && r.Body != http.NoBody && tx.IsRequestBodyAccessible() {
		limit := DefaultInspectBodyBytes
		if s != nil && s.Route != nil && s.Route.MaxBodyBytes > 0 {
			limit = s.Route.MaxBodyBytes
		}
		if r.ContentLength > limit {
			return nil, http.StatusRequestEntityTooLarge, errTooLarge
		}
		src := &readErr{r: &io.LimitedReader{R: r.Body, N: limit + 1}}
		it, n, err := tx.ReadRequestBodyFrom(src)
		if err != nil {
			if src.err == nil {
				// The engine failed, not the client's body (its buffer
				// could not take the body): refused, never forwarded.
				return nil, http.StatusInternalServerError, errEngine
			}
			return nil, http.StatusBadRequest, err
		}
		if it != nil || int64(n) > limit {
			// Coraza's own limit (1 GiB) or the route's: the body was only
			// partly read, so it can be neither inspected nor forwarded.
			return nil, http.StatusRequestEntityTooLarge, errTooLarge
		}
		body, err := tx.RequestBodyReader()
		if err != nil {
			return nil, http.StatusInternalServerError, errEngine
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
		r.ContentLength = int64(n)
		r.TransferEncoding = nil
		r.GetBody = nil
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	return it, 0, nil
}

// record writes the audit event and the log line for a matched request:
// rule ids only, never matched data, the query or the body.
func (i *Inspector) record(r *http.Request, s *scope.Scope, ruleID int, rules []string, status int) {
	e := audit.Event{
		Type:     "inspect",
		Method:   r.Method,
		Status:   status,
		Decision: "deny",
		Reason:   "inspect",
		Attrs:    map[string]string{"rule_id": strconv.Itoa(ruleID), "matched_rules": strings.Join(rules, ",")},
	}
	if i.detectOnly {
		e.Decision, e.Reason, e.Status = "allow", "inspect-detect-only", 0
	}
	if s != nil {
		e.RequestID, e.RouteID, e.Path = s.RequestID, s.RouteID, s.Path
		if s.ClientAddr.IsValid() {
			e.Client = s.ClientAddr.String()
		}
		if s.Identity != nil {
			e.Issuer, e.Subject = s.Identity.Issuer, s.Identity.Subject
		}
	}
	i.sink.Record(r.Context(), e)
	msg := "request blocked by inspection"
	if i.detectOnly {
		msg = "request would be blocked by inspection (detect only)"
	}
	i.logger.Warn(msg, "request_id", requestID(s), "route", routeID(s), "rule_id", ruleID, "matched_rules", e.Attrs["matched_rules"], "status", status)
}

// maxLoggedRules bounds the rule ids of one log line or audit event.
const maxLoggedRules = 64

// logPassed writes the inspection log's Debug line for a request the rules
// let through: its request id, route and the detection rules that matched
// below the anomaly threshold (matched_rules, "" for none). Nothing is
// computed unless the logger takes Debug records.
func (i *Inspector) logPassed(r *http.Request, s *scope.Scope, tx types.Transaction) {
	if !i.logger.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	rules := matchedRuleIDs(tx.MatchedRules(), maxLoggedRules)
	i.logger.Debug("request passed inspection", "request_id", requestID(s), "route", routeID(s), "matched_rules", strings.Join(rules, ","))
}

// matchedRuleIDs lists the ids of the CRS detection rules that matched and
// carry a message (911000 to 948999: not the paranoia-level markers, not
// the blocking evaluation 949xxx), at most max, in ascending order.
func matchedRuleIDs(mrs []types.MatchedRule, max int) []string {
	var ids []int
	for _, mr := range mrs {
		id := mr.Rule().ID()
		if id >= 911000 && id < 949000 && mr.Message() != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > max {
		ids = ids[:max]
	}
	out := make([]string, len(ids))
	for k, id := range ids {
		out[k] = strconv.Itoa(id)
	}
	return out
}

// writeBlocked answers a refused request with telegate's error answer
// (page.Write): the request id and nothing about the rule.
func writeBlocked(w http.ResponseWriter, r *http.Request, status int) {
	p := page.Problem{Status: status, Reason: "blocked",
		Message: "The request was blocked by the gateway's security inspection.",
		Next:    "If this is an error, contact support with the request id."}
	switch status {
	case http.StatusRequestEntityTooLarge:
		p.Reason, p.Message, p.Next = "too-large", "The request body is too large for this service.", ""
	case http.StatusBadRequest:
		p.Reason, p.Message, p.Next = "unreadable", "The request could not be read.", "Check the form or file and try again."
	case http.StatusInternalServerError:
		p.Reason, p.Message, p.Next = "not-inspected", "The request could not be inspected.", "Try again in a minute."
	}
	page.Write(w, r, p)
}

func requestID(s *scope.Scope) string {
	if s == nil {
		return ""
	}
	return s.RequestID
}

func routeID(s *scope.Scope) string {
	if s == nil {
		return ""
	}
	return s.RouteID
}

// errKind names an error for logs without its text (which may quote input).
func errKind(err error) string {
	switch {
	case errors.Is(err, errTooLarge):
		return "body-too-large"
	case errors.Is(err, errEngine):
		return "engine-error"
	default:
		return "read-error"
	}
}

// clientOf returns the client address and port for the rule set: the
// scope's client address (trusted-proxy aware) or the TCP peer.
func clientOf(r *http.Request, s *scope.Scope) (string, int) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	port := 0
	if err == nil {
		port = int(ap.Port())
	}
	if s != nil && s.ClientAddr.IsValid() {
		return s.ClientAddr.String(), port
	}
	if err == nil {
		return ap.Addr().Unmap().String(), port
	}
	return "", 0
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
