// Package policies is telegate's control-plane "may they pass" and "how
// fast" and "is the request clean" stages: route policy evaluation (deny by
// default, docs/architecture.md principle 2), token-bucket rate limits per client
// address and per subject, and request inspection with Coraza and the OWASP
// Core Rule Set.
//
// Policy evaluation follows the route id the router chose; it never matches
// URLs again. Each allow-rule criterion lives in its own file
// (criterion_*.go) with its own test table in criteria_test.go.
package policies
