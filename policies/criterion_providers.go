package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// providersCriterion (Rule.Providers) admits identities vouched for by one
// of the listed provider, bearer or client-CA ids.
var providersCriterion = criterion{
	name: scope.ReasonProvider,
	set:  func(r *config.Rule) bool { return len(r.Providers) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return id.Provider != "" && slices.Contains(r.Providers, id.Provider)
	},
}
