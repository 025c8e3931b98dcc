package auth

import (
	"net/http"
	"testing"
)

// TestRegression_MFAIsWhatTheProviderSays: what makes a sign-in
// multi-factor (require_mfa, break-glass) is explicit per provider. A
// provider's mfa_acr or mfa_amr values replace the default rule (amr
// "mfa", or factors of two kinds): a listed acr passes with a password
// alone, a configured list without the sign-in's values refuses even
// "pwd otp", and without configuration a password with security questions
// is still one factor.
func TestRegression_MFAIsWhatTheProviderSays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		mfaAMR, mfaACR []string
		amr            []string
		acr            string
		mfa            bool
	}{
		{"configured acr passes", nil, []string{"urn:telegate:loa:2"}, []string{"pwd"}, "urn:telegate:loa:2", true},
		{"configured acr missing refuses two factors", nil, []string{"urn:telegate:loa:3"}, []string{"pwd", "otp"}, "urn:telegate:loa:2", false},
		{"configured amr passes", []string{"hwk"}, nil, []string{"pwd", "hwk"}, "", true},
		{"configured amr missing refuses", []string{"hwk"}, nil, []string{"pwd", "otp"}, "", false},
		{"default: pwd and kba is one factor", nil, nil, []string{"pwd", "kba"}, "", false},
		{"default: pwd and otp", nil, nil, []string{"pwd", "otp"}, "", true},
		{"default: acr alone is nothing", nil, nil, []string{"pwd"}, "urn:telegate:loa:2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(h *harness) {
				h.cfg.Providers[0].MFAAMR = tc.mfaAMR
				h.cfg.Providers[0].MFAACR = tc.mfaACR
			})
			h.op.set(claims(func(m map[string]any) {
				m["amr"] = tc.amr
				if tc.acr == "" {
					delete(m, "acr")
				} else {
					m["acr"] = tc.acr
				}
			}))
			resp := h.signIn("/app/")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("sign-in: %d", resp.StatusCode)
			}
			if got := resp.Header.Get("X-MFA"); got != map[bool]string{true: "true", false: "false"}[tc.mfa] {
				t.Errorf("amr %v acr %q with mfa_amr %v mfa_acr %v: MFA %s, want %v", tc.amr, tc.acr, tc.mfaAMR, tc.mfaACR, got, tc.mfa)
			}
		})
	}
}
