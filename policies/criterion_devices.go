package policies

import (
	"slices"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/scope"
)

// devicesCriterion (Rule.Devices) admits device identities (client
// certificates, Kind "device") whose subject is listed. A user identity
// never matches, whatever its subject.
var devicesCriterion = criterion{
	name: scope.ReasonDevice,
	set:  func(r *config.Rule) bool { return len(r.Devices) > 0 },
	match: func(r *config.Rule, id *scope.Identity) bool {
		return id.Kind == "device" && id.Subject != "" && slices.Contains(r.Devices, id.Subject)
	},
}
