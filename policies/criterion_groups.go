package policies

import (
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// groupsCriterion (Rule.Groups) admits identities in any one of the listed
// groups.
var groupsCriterion = criterion{
	name: scope.ReasonGroup,
	set:  func(r *config.Rule) bool { return len(r.Groups) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return anyOf(id.Groups, r.Groups)
	},
}
