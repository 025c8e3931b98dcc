package policies

import (
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// rolesCriterion (Rule.Roles) admits identities holding any one of the
// listed telegate roles.
var rolesCriterion = criterion{
	name: scope.ReasonRole,
	set:  func(r *config.Rule) bool { return len(r.Roles) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return anyOf(id.Roles, r.Roles)
	},
}
