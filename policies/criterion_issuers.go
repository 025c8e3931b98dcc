package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// issuersCriterion (Rule.Issuers) admits identities whose issuer (OIDC Core
// §2 "iss", or "device:<ca id>" for devices) is listed, compared exactly.
var issuersCriterion = criterion{
	name: scope.ReasonIssuer,
	set:  func(r *config.Rule) bool { return len(r.Issuers) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return id.Issuer != "" && slices.Contains(r.Issuers, id.Issuer)
	},
}
