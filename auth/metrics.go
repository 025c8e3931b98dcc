package auth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the control plane's sign-in metrics (names
// telegate_control_*). Labels carry only configured ids and short reasons,
// never a subject, token or address.
type metrics struct {
	signins *prometheus.CounterVec
	ends    *prometheus.CounterVec
	bearer  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_control_signins_total",
			Help: "OpenID Connect sign-ins by provider, result (allow, deny) and reason (ok, no_preauth, state_mismatch, nonce_mismatch, id_token_invalid, sub_missing, iat_missing, iat_future, azp_missing, azp_mismatch, at_hash_mismatch, userinfo_failed, userinfo_sub_mismatch, token_exchange, idp_error, ...).",
		}, []string{"provider", "result", "reason"}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_control_session_ends_total",
			Help: "Sessions ended by reason: signout, backchannel, idle, absolute, refresh_failed, evicted, replaced.",
		}, []string{"reason"}),
		bearer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegate_control_bearer_refusals_total",
			Help: "Bearer tokens refused on API routes by reason: malformed, issuer, signature, expired, audience, sub_missing, iat.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.signins, m.ends, m.bearer} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue // a reload re-creates the service on the same registry
			}
			return nil, err
		}
	}
	return m, nil
}
