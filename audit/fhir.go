package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/telegate/telegate/scope"
)

// FHIR R4 AuditEvent (hl7.org/fhir/R4/auditevent.html) following IHE
// Basic Audit Log Patterns (BALP). A record maps to one AuditEvent that
// carries only what the record holds, and of that only the fields listed
// here: never a body, query string, token, cookie, code, credential, SDP
// or ICE candidate, which the trail does not hold either; the free-form
// attributes of a record are not copied, only the named ones below.
//
//	type            request (and any record with a method): audit-event-type
//	                "rest"; signin, signout, session.end: DCM 110114 User
//	                Authentication; break-glass.*, inspect: DCM 110113
//	                Security Alert; everything else: DCM 110100 Application
//	                Activity
//	subtype         restful-interaction by method (read, create, update,
//	                patch, delete, capabilities); DCM 110122 Login, 110123
//	                Logout, 110127/110138 Emergency Override Started/Stopped,
//	                110129 Security Configuration, 110121 Application Stop,
//	                110134 Audit Recording Started
//	action          C POST/created, R GET/HEAD, U PUT/PATCH/config.apply,
//	                D DELETE, E otherwise
//	recorded        the record's time
//	outcome         0 success; 4 a denial or a 4xx status; 8 a 5xx status
//	outcomeDesc     the record's short reason
//	agent[0]        the person or client: who.identifier = {system: issuer,
//	                value: subject}, type DCM 110153 Source Role ID,
//	                requestor true, network.address = the client address
//	                (type 2, IP address)
//	agent[1]        telegate: who.identifier = {system urn:telegate:node,
//	                value: node id}, type DCM 110152 Destination Role ID
//	source          observer.identifier = the node id; type 4 Application
//	                Server; extension FHIRConfigExtension = the hash of the
//	                configuration the record was decided under
//	entity          the route (system urn:telegate:route; details path,
//	                request_id, status, waf_rule) and the visit (system
//	                urn:telegate:visit; detail participant)
//	purposeOfEvent  v3-ActReason BTG for a request let through by
//	                break-glass and the grant itself; TREAT for every other
//	                record of a person or client
//	extension       FHIRChainExtension: node, segment, seq and hash — the
//	                record's chain position, so that a copy is tied to the
//	                trail and a receiver can keep each record once.
const (
	// FHIRChainExtension is the URL of the AuditEvent extension holding
	// the record's chain position (sub-extensions node, segment, seq,
	// hash; seq and segment as decimals).
	FHIRChainExtension = "urn:telegate:audit:chain"
	// FHIRConfigExtension is the URL of the AuditEvent.source extension
	// holding the configuration hash (valueString).
	FHIRConfigExtension = "urn:telegate:audit:config"

	fhirEventType    = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	fhirDCM          = "http://dicom.nema.org/resources/ontology/DCM"
	fhirRestful      = "http://hl7.org/fhir/restful-interaction"
	fhirActReason    = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	fhirEntityType   = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	fhirSourceType   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	fhirNodeSystem   = "urn:telegate:node"
	fhirRouteSystem  = "urn:telegate:route"
	fhirVisitSystem  = "urn:telegate:visit"
	fhirInstantShape = "2006-01-02T15:04:05.000Z07:00"
)

// Coding is a FHIR Coding (system, code, display).
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding"`
}

// Identifier is a FHIR Identifier (system URI, value).
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Reference is a FHIR Reference by identifier.
type Reference struct {
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Extension is a FHIR Extension with a string or decimal value or
// sub-extensions.
type Extension struct {
	URL          string      `json:"url"`
	ValueString  string      `json:"valueString,omitempty"`
	ValueDecimal *uint64     `json:"valueDecimal,omitempty"`
	Extension    []Extension `json:"extension,omitempty"`
}

// AuditEvent is the FHIR R4 AuditEvent resource, the elements telegate
// fills (see FHIRChainExtension for the mapping).
type AuditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id"`
	Extension      []Extension       `json:"extension"`
	Type           Coding            `json:"type"`
	Subtype        []Coding          `json:"subtype,omitempty"`
	Action         string            `json:"action"`
	Recorded       string            `json:"recorded"`
	Outcome        string            `json:"outcome"`
	OutcomeDesc    string            `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []CodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []AuditAgent      `json:"agent"`
	Source         AuditSource       `json:"source"`
	Entity         []AuditEntity     `json:"entity,omitempty"`
}

// AuditAgent is AuditEvent.agent.
type AuditAgent struct {
	Type      *CodeableConcept `json:"type,omitempty"`
	Who       *Reference       `json:"who,omitempty"`
	Requestor bool             `json:"requestor"`
	Network   *AuditNetwork    `json:"network,omitempty"`
}

// AuditNetwork is AuditEvent.agent.network: address and type ("2": IP
// address).
type AuditNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

// AuditSource is AuditEvent.source.
type AuditSource struct {
	Extension []Extension `json:"extension,omitempty"`
	Observer  Reference   `json:"observer"`
	Type      []Coding    `json:"type,omitempty"`
}

// AuditEntity is AuditEvent.entity.
type AuditEntity struct {
	What   *Reference    `json:"what,omitempty"`
	Type   *Coding       `json:"type,omitempty"`
	Detail []AuditDetail `json:"detail,omitempty"`
}

// AuditDetail is AuditEvent.entity.detail (type, valueString).
type AuditDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// FHIRMapper maps a trail's records, read in order, to AuditEvents. It
// learns the configuration hash of each generation from the trail's
// "config.apply" records, so it must see every record from the first
// (Observe), also those it does not map. Not safe for concurrent use.
type FHIRMapper struct {
	// Node is the node id (the checkpoints' origin, NodeID).
	Node   string
	hashes map[uint64]string
}

// maxGenerations bounds the generations whose hash a FHIRMapper keeps.
const maxGenerations = 256

// Observe learns from rec (a "config.apply" record names its
// generation's hash).
func (m *FHIRMapper) Observe(rec Record) {
	e := rec.Event
	if e.Type != "config.apply" || e.Attrs["hash"] == "" {
		return
	}
	if m.hashes == nil {
		m.hashes = map[uint64]string{}
	}
	m.hashes[e.Generation] = e.Attrs["hash"]
	for g := range m.hashes {
		if g+maxGenerations < e.Generation {
			delete(m.hashes, g)
		}
	}
}

// AuditEvent returns the AuditEvent of rec (Observe it first).
func (m *FHIRMapper) AuditEvent(rec Record) AuditEvent {
	e := rec.Event
	seq, seg := rec.Seq, rec.Segment
	ae := AuditEvent{
		ResourceType: "AuditEvent",
		ID:           FHIRID(m.Node, rec.Seq),
		Extension: []Extension{{URL: FHIRChainExtension, Extension: []Extension{
			{URL: "node", ValueString: m.Node},
			{URL: "segment", ValueDecimal: &seg},
			{URL: "seq", ValueDecimal: &seq},
			{URL: "hash", ValueString: rec.Hash},
		}}},
		Recorded:    e.Time.UTC().Format(fhirInstantShape),
		Action:      fhirAction(e),
		Outcome:     fhirOutcome(e),
		OutcomeDesc: e.Reason,
	}
	ae.Type, ae.Subtype = fhirType(e)
	person := e.Subject != "" || e.Client != ""
	switch {
	case e.Purpose == PurposeBTG || e.Reason == string(scope.ReasonBreakGlass) || e.Type == "break-glass.grant":
		ae.PurposeOfEvent = []CodeableConcept{{Coding: []Coding{{System: fhirActReason, Code: "BTG", Display: "break the glass"}}}}
	case person:
		ae.PurposeOfEvent = []CodeableConcept{{Coding: []Coding{{System: fhirActReason, Code: "TREAT", Display: "treatment"}}}}
	}
	if person {
		a := AuditAgent{Type: &CodeableConcept{Coding: []Coding{{System: fhirDCM, Code: "110153", Display: "Source Role ID"}}}, Requestor: true}
		if e.Subject != "" {
			a.Who = &Reference{Identifier: &Identifier{System: e.Issuer, Value: e.Subject}}
		}
		if e.Client != "" {
			a.Network = &AuditNetwork{Address: e.Client, Type: "2"}
		}
		ae.Agent = append(ae.Agent, a)
	}
	node := &Reference{Identifier: &Identifier{System: fhirNodeSystem, Value: m.Node}, Display: "telegate " + m.Node}
	ae.Agent = append(ae.Agent, AuditAgent{Type: &CodeableConcept{Coding: []Coding{{System: fhirDCM, Code: "110152", Display: "Destination Role ID"}}},
		Who: node, Requestor: !person})
	ae.Source = AuditSource{Observer: *node, Type: []Coding{{System: fhirSourceType, Code: "4", Display: "Application Server"}}}
	if h := m.hashes[e.Generation]; h != "" {
		ae.Source.Extension = []Extension{{URL: FHIRConfigExtension, ValueString: h}}
	}
	system := &Coding{System: fhirEntityType, Code: "2", Display: "System Object"}
	if e.RouteID != "" {
		ent := AuditEntity{What: &Reference{Identifier: &Identifier{System: fhirRouteSystem, Value: e.RouteID}}, Type: system}
		add := func(k, v string) {
			if v != "" {
				ent.Detail = append(ent.Detail, AuditDetail{Type: k, ValueString: v})
			}
		}
		add("path", e.Path)
		add("request_id", e.RequestID)
		if e.Status != 0 {
			add("status", strconv.Itoa(e.Status))
		}
		add("waf_rule", e.Attrs["rule_id"])
		ae.Entity = append(ae.Entity, ent)
	}
	if v := e.Attrs["visit"]; v != "" {
		ent := AuditEntity{What: &Reference{Identifier: &Identifier{System: fhirVisitSystem, Value: v}}, Type: system}
		if p := e.Attrs["participant"]; p != "" {
			ent.Detail = []AuditDetail{{Type: "participant", ValueString: p}}
		}
		ae.Entity = append(ae.Entity, ent)
	}
	return ae
}

// FHIRID is the AuditEvent id of record seq of node: a UUID (RFC 9562
// §5.8 layout, version 8) made from SHA-256 of node and seq, the same at
// every export, so a receiver that keeps resources by id keeps each
// record once.
func FHIRID(node string, seq uint64) string {
	sum := sha256.Sum256([]byte(node + "\x00" + strconv.FormatUint(seq, 10)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fhirType is the AuditEvent type and subtype of e.
func fhirType(e Event) (Coding, []Coding) {
	dcm := func(code, display string) Coding { return Coding{System: fhirDCM, Code: code, Display: display} }
	switch {
	case e.Type == "signin":
		return dcm("110114", "User Authentication"), []Coding{dcm("110122", "Login")}
	case e.Type == "signout" || e.Type == "session.end":
		return dcm("110114", "User Authentication"), []Coding{dcm("110123", "Logout")}
	case e.Type == "break-glass.revoke":
		return dcm("110113", "Security Alert"), []Coding{dcm("110138", "Emergency Override Stopped")}
	case strings.HasPrefix(e.Type, "break-glass."):
		return dcm("110113", "Security Alert"), []Coding{dcm("110127", "Emergency Override Started")}
	case e.Type == "inspect":
		return dcm("110113", "Security Alert"), nil
	case e.Method != "":
		rest := Coding{System: fhirEventType, Code: "rest", Display: "RESTful Operation"}
		if code := restInteraction(e.Method); code != "" {
			return rest, []Coding{{System: fhirRestful, Code: code}}
		}
		return rest, nil
	case strings.HasPrefix(e.Type, "config."):
		return dcm("110100", "Application Activity"), []Coding{dcm("110129", "Security Configuration")}
	case e.Type == "node.stop":
		return dcm("110100", "Application Activity"), []Coding{dcm("110121", "Application Stop")}
	case e.Type == SegmentEventType:
		return dcm("110100", "Application Activity"), []Coding{dcm("110134", "Audit Recording Started")}
	}
	return dcm("110100", "Application Activity"), nil
}

// restInteraction is the FHIR restful-interaction code of an HTTP
// method, "" for none.
func restInteraction(method string) string {
	switch method {
	case "GET", "HEAD":
		return "read"
	case "POST":
		return "create"
	case "PUT":
		return "update"
	case "PATCH":
		return "patch"
	case "DELETE":
		return "delete"
	case "OPTIONS":
		return "capabilities"
	}
	return ""
}

// fhirAction is the AuditEvent action code (C, R, U, D, E) of e.
func fhirAction(e Event) string {
	switch e.Method {
	case "POST":
		return "C"
	case "GET", "HEAD":
		return "R"
	case "PUT", "PATCH":
		return "U"
	case "DELETE":
		return "D"
	}
	switch {
	case e.Type == "config.apply":
		return "U"
	case e.Type == "relay.allocation" && e.Attrs["event"] == "created":
		return "C"
	}
	return "E"
}

// fhirOutcome is the AuditEvent outcome code (0, 4, 8, 12) of e.
func fhirOutcome(e Event) string {
	switch {
	case e.Status >= 500:
		return "8"
	case e.Decision == "deny" || e.Status >= 400:
		return "4"
	}
	return "0"
}

// BundleEntry is one entry of a FHIR Bundle; Request is set in a batch.
type BundleEntry struct {
	FullURL  string         `json:"fullUrl"`
	Resource AuditEvent     `json:"resource"`
	Request  *BundleRequest `json:"request,omitempty"`
}

// BundleRequest is Bundle.entry.request of a batch entry.
type BundleRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// Bundle types.
const (
	// BundleCollection is a Bundle that is just a set of resources (an
	// export).
	BundleCollection = "collection"
	// BundleBatch is a Bundle a FHIR server processes entry by entry: each
	// AuditEvent is PUT at AuditEvent/<id>, which a server keeps once
	// however often it is sent.
	BundleBatch = "batch"
)

// Entry is the Bundle entry of ae in a Bundle of type typ.
func Entry(ae AuditEvent, typ string) BundleEntry {
	be := BundleEntry{FullURL: "urn:uuid:" + ae.ID, Resource: ae}
	if typ == BundleBatch {
		be.Request = &BundleRequest{Method: "PUT", URL: "AuditEvent/" + ae.ID}
	}
	return be
}

// MarshalBundle is the JSON of a FHIR Bundle of type typ
// (BundleCollection or BundleBatch) holding events, stamped with now.
func MarshalBundle(typ string, events []AuditEvent, now time.Time) ([]byte, error) {
	b := struct {
		ResourceType string        `json:"resourceType"`
		Type         string        `json:"type"`
		Timestamp    string        `json:"timestamp"`
		Entry        []BundleEntry `json:"entry"`
	}{ResourceType: "Bundle", Type: typ, Timestamp: now.UTC().Format(fhirInstantShape), Entry: make([]BundleEntry, 0, len(events))}
	for _, ae := range events {
		b.Entry = append(b.Entry, Entry(ae, typ))
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("audit: fhir bundle: %w", err)
	}
	return out, nil
}
