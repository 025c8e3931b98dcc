package policies

import (
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// authenticatedCriterion (Rule.Authenticated) admits any signed-in identity:
// one with an issuer and a subject.
var authenticatedCriterion = criterion{
	name: scope.ReasonAuthenticated,
	set:  func(r *config.Rule) bool { return r.Authenticated },
	match: func(_ *config.Rule, id *scope.Identity) bool {
		return id != nil && id.Issuer != "" && id.Subject != ""
	},
}
