// Package audit is telegate's tamper-evident audit trail: an append-only
// file of JSON lines, each carrying the HMAC-SHA256 of the previous line so
// that any edit, deletion or reordering is found by `telegate audit verify`.
// Records hold no tokens, cookies, bodies, query strings or SDP, but they
// do hold the client address and the signed-in subject (iss, sub) of each
// request, so the trail is access-controlled (docs/security-model.md,
// "Audit and logs").
package audit

import (
	"context"
	"time"
)

// Event is one audit record. It carries the client address and subject,
// and nothing more about the person: no names, e-mail, tokens, cookies,
// SDP, query strings or bodies.
type Event struct {
	Time time.Time `json:"time"`
	// Type: "request", "signin", "signout", "session.end", "relay.allocation",
	// "visit.create", "visit.admit", …
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	RouteID   string `json:"route,omitempty"`
	Method    string `json:"method,omitempty"`
	// Path is the canonical path without the query.
	Path    string `json:"path,omitempty"`
	Status  int    `json:"status,omitempty"`
	Client  string `json:"client,omitempty"`
	Issuer  string `json:"iss,omitempty"`
	Subject string `json:"sub,omitempty"`
	// Decision "allow" or "deny"; Reason the short reason.
	Decision string            `json:"decision,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Attrs    map[string]string `json:"attrs,omitempty"`
	// Generation is the configuration generation the event was decided
	// under (1 at start, one more per reload); with the configuration
	// hash of that generation's "config.apply" record it shows which
	// policy a node applied. 0: stamped by the trail with the current one.
	Generation uint64 `json:"gen,omitempty"`
	// Purpose is the purpose of use the event served, a code of the HL7
	// v3 PurposeOfUse value set (FHIR AuditEvent.purposeOfEvent): PurposeBTG
	// on every event of a break-glass grant and on every request it let
	// through; "" when the event names none.
	Purpose string `json:"purpose,omitempty"`
}

// PurposeBTG is the HL7 v3 PurposeOfUse code "BTG" (break the glass):
// emergency access outside the usual rules (45 CFR 164.312(a)(2)(ii)).
const PurposeBTG = "BTG"

// Sink receives audit events. Implementations must be safe for concurrent
// use and must not block the request path for long.
type Sink interface {
	Record(ctx context.Context, e Event)
}

// Discard is a Sink that drops every event (tests that do not look at it).
type Discard struct{}

// Record implements Sink.
func (Discard) Record(context.Context, Event) {}
