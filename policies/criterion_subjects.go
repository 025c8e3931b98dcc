package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// subjectsCriterion (Rule.Subjects) admits identities whose subject (OIDC
// Core §2 "sub") is listed, compared exactly. A subject is unique only per
// issuer: pair it with Issuers when several providers are trusted.
var subjectsCriterion = criterion{
	name: scope.ReasonSubject,
	set:  func(r *config.Rule) bool { return len(r.Subjects) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return id.Subject != "" && slices.Contains(r.Subjects, id.Subject)
	},
}
