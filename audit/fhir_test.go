package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// The HL7 FHIR validator (a Java jar) is not served by the package
// registries this project builds from, so the export is checked by a
// small validator of the R4 elements telegate uses: every element's
// cardinality and primitive shape as the R4 AuditEvent and Bundle
// StructureDefinitions give them (hl7.org/fhir/R4/auditevent.html,
// bundle.html), no element outside them, and the codes of the required
// and extensible bindings drawn from the value sets BALP uses.

// elem is an element's definition: cardinality, and either a primitive
// check or the child elements.
type elem struct {
	min, max int // max -1: *
	prim     func(any) string
	kids     map[string]elem
}

var (
	instantRE = regexp.MustCompile(`^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
	idRE      = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)
	uriRE     = regexp.MustCompile(`^\S+:\S*$`)
)

func str(re *regexp.Regexp) func(any) string {
	return func(v any) string {
		s, ok := v.(string)
		switch {
		case !ok:
			return "not a string"
		case strings.TrimSpace(s) == "":
			return "empty string"
		case re != nil && !re.MatchString(s):
			return fmt.Sprintf("%q does not match %s", s, re)
		}
		return ""
	}
}

func code(allowed ...string) func(any) string {
	return func(v any) string {
		s, _ := v.(string)
		if !slices.Contains(allowed, s) {
			return fmt.Sprintf("code %q not in %v", s, allowed)
		}
		return ""
	}
}

func boolean(v any) string {
	if _, ok := v.(bool); !ok {
		return "not a boolean"
	}
	return ""
}

func decimal(v any) string {
	if _, ok := v.(float64); !ok {
		return "not a number"
	}
	return ""
}

func p(min, max int, f func(any) string) elem { return elem{min: min, max: max, prim: f} }
func c(min, max int, kids map[string]elem) elem {
	return elem{min: min, max: max, kids: kids}
}

// coding is a Coding; codes maps a system to the codes allowed from it
// (nil: any system and code).
func coding(min, max int, codes map[string][]string) elem {
	e := c(min, max, map[string]elem{"system": p(0, 1, str(uriRE)), "code": p(0, 1, str(nil)), "display": p(0, 1, str(nil))})
	if codes != nil {
		e.prim = func(v any) string {
			m, _ := v.(map[string]any)
			sys, _ := m["system"].(string)
			cd, _ := m["code"].(string)
			if !slices.Contains(codes[sys], cd) {
				return fmt.Sprintf("%s#%s is not from the value set", sys, cd)
			}
			return ""
		}
	}
	return e
}

func concept(min, max int, codes map[string][]string) elem {
	return c(min, max, map[string]elem{"coding": coding(1, -1, codes), "text": p(0, 1, str(nil))})
}

var (
	identifier = c(0, 1, map[string]elem{"system": p(0, 1, str(uriRE)), "value": p(1, 1, str(nil))})
	reference  = map[string]elem{"identifier": identifier, "display": p(0, 1, str(nil)), "reference": p(0, 1, str(nil))}
	extension  = func() elem {
		e := c(0, -1, map[string]elem{"url": p(1, 1, str(uriRE)), "valueString": p(0, 1, str(nil)), "valueDecimal": p(0, 1, decimal)})
		e.kids["extension"] = c(0, -1, map[string]elem{"url": p(1, 1, str(nil)), "valueString": p(0, 1, str(nil)), "valueDecimal": p(0, 1, decimal)})
		return e
	}()
	dcm = "http://dicom.nema.org/resources/ontology/DCM"
	// auditEventDef: R4 AuditEvent, the elements telegate fills, with the
	// codes of BALP's value sets (AuditEventID, AuditEventSubType,
	// AuditEventAction, AuditEventOutcome, ParticipationRoleType,
	// AuditEventAgentNetworkType, AuditEventSourceType, AuditEventEntityType,
	// v3 PurposeOfUse).
	auditEventDef = c(1, 1, map[string]elem{
		"resourceType": p(1, 1, code("AuditEvent")),
		"id":           p(0, 1, str(idRE)),
		"extension":    extension,
		"type": coding(1, 1, map[string][]string{
			"http://terminology.hl7.org/CodeSystem/audit-event-type": {"rest"},
			dcm: {"110100", "110101", "110102", "110103", "110104", "110105", "110106", "110107", "110108", "110109", "110110", "110111", "110112", "110113", "110114"},
		}),
		"subtype": coding(0, -1, map[string][]string{
			"http://hl7.org/fhir/restful-interaction": {"read", "vread", "update", "patch", "delete", "history", "history-instance", "history-type", "history-system", "create", "search", "search-type", "search-system", "capabilities", "transaction", "batch", "operation"},
			dcm: {"110120", "110121", "110122", "110123", "110124", "110125", "110126", "110127", "110128", "110129", "110130", "110131", "110132", "110133", "110134", "110135", "110136", "110137", "110138", "110139", "110140", "110141", "110142"},
		}),
		"action":      p(0, 1, code("C", "R", "U", "D", "E")),
		"recorded":    p(1, 1, str(instantRE)),
		"outcome":     p(0, 1, code("0", "4", "8", "12")),
		"outcomeDesc": p(0, 1, str(nil)),
		"purposeOfEvent": concept(0, -1, map[string][]string{
			"http://terminology.hl7.org/CodeSystem/v3-ActReason": {"TREAT", "ETREAT", "BTG", "HOPERAT", "HSYSADMIN", "PATADMIN", "HOPERAT"},
		}),
		"agent": c(1, -1, map[string]elem{
			"type":      concept(0, 1, map[string][]string{dcm: {"110150", "110151", "110152", "110153", "110154", "110155"}}),
			"role":      concept(0, -1, nil),
			"who":       c(0, 1, reference),
			"requestor": p(1, 1, boolean),
			"network":   c(0, 1, map[string]elem{"address": p(0, 1, str(nil)), "type": p(0, 1, code("1", "2", "3", "4", "5"))}),
		}),
		"source": c(1, 1, map[string]elem{
			"extension": extension,
			"site":      p(0, 1, str(nil)),
			"observer":  c(1, 1, reference),
			"type":      coding(0, -1, map[string][]string{"http://terminology.hl7.org/CodeSystem/security-source-type": {"1", "2", "3", "4", "5", "6", "7", "8", "9"}}),
		}),
		"entity": c(0, -1, map[string]elem{
			"what": c(0, 1, reference),
			"type": coding(0, 1, map[string][]string{"http://terminology.hl7.org/CodeSystem/audit-entity-type": {"1", "2", "3", "4"}}),
			"detail": c(0, -1, map[string]elem{
				"type":        p(1, 1, str(nil)),
				"valueString": p(1, 1, str(nil)),
			}),
		}),
	})
)

func bundleDef(typ string) elem {
	entry := map[string]elem{"fullUrl": p(0, 1, str(uriRE)), "resource": auditEventDef}
	if typ == BundleBatch {
		entry["request"] = c(1, 1, map[string]elem{"method": p(1, 1, code("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")), "url": p(1, 1, str(nil))})
	}
	return c(1, 1, map[string]elem{
		"resourceType": p(1, 1, code("Bundle")),
		"type":         p(1, 1, code(typ)),
		"timestamp":    p(0, 1, str(instantRE)),
		"entry":        c(0, -1, entry),
	})
}

// validate checks v against def at path and returns the problems.
func validate(path string, def elem, v any) []string {
	var probs []string
	check := func(path string, v any) {
		if def.kids != nil {
			m, ok := v.(map[string]any)
			if !ok {
				probs = append(probs, path+": not an object")
				return
			}
			for k := range m {
				if _, ok := def.kids[k]; !ok {
					probs = append(probs, fmt.Sprintf("%s.%s: not an element of R4", path, k))
				}
			}
			for k, kd := range def.kids {
				kv, ok := m[k]
				if !ok {
					if kd.min > 0 {
						probs = append(probs, fmt.Sprintf("%s.%s: required (min %d), missing", path, k, kd.min))
					}
					continue
				}
				probs = append(probs, validate(path+"."+k, kd, kv)...)
			}
		}
		if def.prim != nil {
			if pr := def.prim(v); pr != "" {
				probs = append(probs, path+": "+pr)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if def.max == 1 {
			return []string{path + ": an array, but max 1"}
		}
		if len(arr) < def.min {
			probs = append(probs, fmt.Sprintf("%s: %d items, min %d", path, len(arr), def.min))
		}
		if len(arr) == 0 {
			probs = append(probs, path+": empty array (FHIR JSON omits empty elements)")
		}
		for i, x := range arr {
			check(fmt.Sprintf("%s[%d]", path, i), x)
		}
		return probs
	}
	if def.max != 1 {
		return []string{path + ": must be an array (max *)"}
	}
	check(path, v)
	return probs
}

// writeVarietyTrail writes one record of each kind telegate writes,
// holding secrets in places the mapping must not copy.
func writeVarietyTrail(t *testing.T) (file, ckDir string, v note.Verifier, secrets []string) {
	t.Helper()
	dir := t.TempDir()
	file, ckDir = filepath.Join(dir, "audit.log"), filepath.Join(dir, "ck")
	skey, vkey := newSignerKey(t, "telegate-audit/node-a")
	l, err := OpenTrail(Options{File: file, Key: bytes.Repeat([]byte("k"), 32), CheckpointDir: ckDir, CheckpointKey: skey, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	l.SetGeneration(1)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	secrets = []string{"sdp-v=0-o=secret", "a=candidate:secret", "tok-eyJsecret", "cookie-secret", "pw-secret", "q=needle"}
	attrs := map[string]string{"sdp": secrets[0], "candidate": secrets[1], "token": secrets[2], "cookie": secrets[3], "password": secrets[4], "query": secrets[5]}
	evs := []Event{
		{Type: "config.apply", Decision: "allow", Reason: "start", Generation: 1, Attrs: map[string]string{"hash": "cfg-hash-1"}},
		{Type: "signin", Issuer: "https://idp.example", Subject: "u1", Client: "192.0.2.7", Decision: "allow", Attrs: attrs},
		{Type: "request", RequestID: "r1", RouteID: "clinic", Method: "GET", Path: "/clinic/", Status: 200, Client: "192.0.2.7", Issuer: "https://idp.example", Subject: "u1", Decision: "allow", Reason: "rule:0", Attrs: attrs},
		{Type: "request", RequestID: "r2", RouteID: "admin", Method: "POST", Path: "/admin/", Status: 403, Client: "2001:db8::7", Decision: "deny", Reason: "role"},
		{Type: "request", RequestID: "r3", RouteID: "clinic", Method: "DELETE", Path: "/clinic/x", Status: 502, Client: "192.0.2.7", Decision: "allow"},
		{Type: "request", RequestID: "r4", RouteID: "clinic", Method: "PUT", Path: "/clinic/y", Status: 200, Client: "192.0.2.7", Issuer: "https://idp.example", Subject: "u1", Decision: "allow", Reason: "rule:0", Purpose: PurposeBTG},
		{Type: "inspect", RequestID: "r5", RouteID: "public", Method: "GET", Path: "/public/", Status: 403, Client: "192.0.2.9", Decision: "deny", Reason: "inspect", Attrs: map[string]string{"rule_id": "942100", "matched_rules": "942100"}},
		{Type: "break-glass.grant", RouteID: "clinic", Issuer: "https://idp.example", Subject: "u1", Decision: "allow", Reason: "emergency", Attrs: map[string]string{"expires": "x"}},
		{Type: "break-glass.revoke", RouteID: "clinic", Issuer: "https://idp.example", Subject: "u1"},
		{Type: "visit.create", Method: "POST", Path: "/.telegate/visits", RouteID: "clinic", Client: "192.0.2.7", Issuer: "https://idp.example", Subject: "u1", Decision: "allow", Attrs: map[string]string{"visit": "v1"}},
		{Type: "relay.allocation", Client: "192.0.2.7", Decision: "allow", Reason: "created", Attrs: map[string]string{"event": "created", "visit": "v1", "participant": "p1", "transport": "udp", "relay": "127.0.0.1:3478"}},
		{Type: "signout", Issuer: "https://idp.example", Subject: "u1", Client: "192.0.2.7"},
		{Type: "session.end", Issuer: "https://idp.example", Subject: "u1", Reason: "idle"},
		{Type: "config.refused", Decision: "deny", Generation: 1},
		{Type: "node.stop", Reason: "signal"},
	}
	for i, e := range evs {
		e.Time = t0.Add(time.Duration(i) * time.Minute)
		if err := l.Commit(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	v, err = note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return file, ckDir, v, secrets
}

func export(t *testing.T, file string, vo VerifyOptions, xo ExportOptions) ([]byte, ExportReport) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	rep, err := Export(&out, f, vo, xo)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return out.Bytes(), rep
}

// TestFHIRExportValidates: the export of a trail holding every kind of
// record is a Bundle whose AuditEvents are valid R4 AuditEvents with BALP
// codes, in both bundle types, and maps each record as documented.
func TestFHIRExportValidates(t *testing.T) {
	file, ckDir, v, secrets := writeVarietyTrail(t)
	vo := VerifyOptions{Verifier: v, CheckpointDir: ckDir}
	for _, typ := range []string{BundleCollection, BundleBatch} {
		out, rep := export(t, file, vo, ExportOptions{Format: FormatFHIR, Node: NodeID(v), BundleType: typ})
		if rep.Exported != 15 || rep.Records != 15 || rep.Checkpoints == 0 {
			t.Fatalf("%s: exported %d of %d records, %d checkpoints", typ, rep.Exported, rep.Records, rep.Checkpoints)
		}
		var doc any
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%s: not JSON: %v", typ, err)
		}
		if probs := validate("Bundle", bundleDef(typ), doc); len(probs) > 0 {
			t.Errorf("%s: the export is not a valid R4 Bundle of AuditEvents:\n%s", typ, strings.Join(probs, "\n"))
		}
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: the export holds %q", typ, s)
			}
		}
	}

	out, _ := export(t, file, vo, ExportOptions{Format: FormatFHIR, Node: NodeID(v)})
	var b struct {
		Entry []struct{ Resource AuditEvent }
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	type want struct{ typ, sub, action, outcome, purpose string }
	wants := []want{
		{"110100", "110129", "U", "0", ""},
		{"110114", "110122", "E", "0", "TREAT"},
		{"rest", "read", "R", "0", "TREAT"},
		{"rest", "create", "C", "4", "TREAT"},
		{"rest", "delete", "D", "8", "TREAT"},
		{"rest", "update", "U", "0", "BTG"},
		{"110113", "", "R", "4", "TREAT"},
		{"110113", "110127", "E", "0", "BTG"},
		{"110113", "110138", "E", "0", "TREAT"},
		{"rest", "create", "C", "0", "TREAT"},
		{"110100", "", "C", "0", "TREAT"},
		{"110114", "110123", "E", "0", "TREAT"},
		{"110114", "110123", "E", "0", "TREAT"},
		{"110100", "110129", "E", "4", ""},
		{"110100", "110121", "E", "0", ""},
	}
	for i, w := range wants {
		ae := b.Entry[i].Resource
		var sub, purpose string
		if len(ae.Subtype) > 0 {
			sub = ae.Subtype[0].Code
		}
		if len(ae.PurposeOfEvent) > 0 {
			purpose = ae.PurposeOfEvent[0].Coding[0].Code
		}
		got := want{ae.Type.Code, sub, ae.Action, ae.Outcome, purpose}
		if got != w {
			t.Errorf("record %d: %+v, want %+v", i+1, got, w)
		}
		if ae.Source.Observer.Identifier.Value != "node-a" {
			t.Errorf("record %d: source %+v, want node-a", i+1, ae.Source.Observer)
		}
		if len(ae.Source.Extension) != 1 || ae.Source.Extension[0].ValueString != "cfg-hash-1" {
			t.Errorf("record %d: no configuration hash in source: %+v", i+1, ae.Source.Extension)
		}
		if s := ae.Extension[0].Extension[2].ValueDecimal; s == nil || *s != uint64(i+1) {
			t.Errorf("record %d: chain position %v", i+1, s)
		}
	}
	// The request: who = issuer + subject, network address, route entity.
	ae := b.Entry[2].Resource
	if a := ae.Agent[0]; a.Who.Identifier.System != "https://idp.example" || a.Who.Identifier.Value != "u1" || a.Network.Address != "192.0.2.7" || !a.Requestor {
		t.Errorf("request agent %+v", a)
	}
	if e := ae.Entity[0]; e.What.Identifier.Value != "clinic" || e.Detail[0].ValueString != "/clinic/" {
		t.Errorf("request entity %+v", e)
	}
	if e := b.Entry[10].Resource.Entity; len(e) != 1 || e[0].What.Identifier.Value != "v1" || e[0].What.Identifier.System != "urn:telegate:visit" {
		t.Errorf("relay allocation entity %+v", e)
	}
}

// TestExportWindowAndJSONL: --since/--until select records by time
// (since inclusive, until exclusive) in both formats; the JSON lines are
// the trail's lines as written.
func TestExportWindowAndJSONL(t *testing.T) {
	file, ckDir, v, _ := writeVarietyTrail(t)
	vo := VerifyOptions{Verifier: v, CheckpointDir: ckDir}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	since, until := t0.Add(2*time.Minute), t0.Add(5*time.Minute)
	out, rep := export(t, file, vo, ExportOptions{Format: FormatJSONL, Since: since, Until: until})
	raw, _ := os.ReadFile(file)
	lines := strings.SplitAfter(string(raw), "\n")
	if want := strings.Join(lines[2:5], ""); string(out) != want || rep.Exported != 3 {
		t.Errorf("jsonl window: %d records\n%s\nwant\n%s", rep.Exported, out, want)
	}
	out, rep = export(t, file, vo, ExportOptions{Format: FormatFHIR, Since: since, Until: until, Node: "n"})
	if rep.Exported != 3 || bytes.Count(out, []byte(`"resourceType":"AuditEvent"`)) != 3 {
		t.Errorf("fhir window: %d records", rep.Exported)
	}
}

// TestExportRefusesBrokenTrail: an edited trail is not exported.
func TestExportRefusesBrokenTrail(t *testing.T) {
	file, ckDir, v, _ := writeVarietyTrail(t)
	raw, _ := os.ReadFile(file)
	if err := os.WriteFile(file, bytes.Replace(raw, []byte(`"status":403`), []byte(`"status":200`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(file)
	defer f.Close()
	var out bytes.Buffer
	_, err := Export(&out, f, VerifyOptions{Verifier: v, CheckpointDir: ckDir}, ExportOptions{Format: FormatFHIR, Node: "n"})
	if err == nil {
		t.Fatal("an edited trail was exported")
	}
}

// TestFHIRValidatorFindsFaults: the validator refuses AuditEvents that
// break R4 in the ways the mapping could.
func TestFHIRValidatorFindsFaults(t *testing.T) {
	good := `{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114"},"action":"E","recorded":"2026-03-01T10:00:00.000Z","outcome":"0","agent":[{"requestor":true}],"source":{"observer":{"display":"n"}}}`
	var doc any
	if err := json.Unmarshal([]byte(good), &doc); err != nil {
		t.Fatal(err)
	}
	if probs := validate("AuditEvent", auditEventDef, doc); len(probs) > 0 {
		t.Fatalf("a valid AuditEvent refused: %v", probs)
	}
	for name, edit := range map[string][2]string{
		"no recorded":        {`"recorded":"2026-03-01T10:00:00.000Z",`, ``},
		"recorded no zone":   {`10:00:00.000Z`, `10:00:00.000`},
		"action code":        {`"action":"E"`, `"action":"X"`},
		"outcome code":       {`"outcome":"0"`, `"outcome":"1"`},
		"type not in set":    {`"code":"110114"`, `"code":"999999"`},
		"no requestor":       {`{"requestor":true}`, `{}`},
		"no agent":           {`"agent":[{"requestor":true}],`, ``},
		"agent not an array": {`[{"requestor":true}]`, `{"requestor":true}`},
		"no observer":        {`{"observer":{"display":"n"}}`, `{}`},
		"unknown element":    {`"action":"E"`, `"action":"E","query":"x"`},
	} {
		var d any
		bad := strings.Replace(good, edit[0], edit[1], 1)
		if bad == good {
			t.Fatalf("%s: edit does not apply", name)
		}
		if err := json.Unmarshal([]byte(bad), &d); err != nil {
			t.Fatal(err)
		}
		if probs := validate("AuditEvent", auditEventDef, d); len(probs) == 0 {
			t.Errorf("%s: not found by the validator", name)
		}
	}
}

// BenchmarkExportFHIR: exporting a verified trail of request records as
// a FHIR Bundle, per record.
func BenchmarkExportFHIR(b *testing.B) {
	fx := writeTrail(b, 10000, 1000)
	v, err := note.NewVerifier(fx.vkey)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(fx.file)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Export(io.Discard, f, VerifyOptions{Verifier: v, CheckpointDir: fx.ckDir}, ExportOptions{Format: FormatFHIR, Node: "n"}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10000), "ns/record")
}
