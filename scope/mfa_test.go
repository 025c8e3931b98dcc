package scope

import "testing"

// TestRegression_MFAMeansTwoKindsOfFactor: require_mfa and break-glass
// admit a sign-in only when its amr (RFC 8176) names "mfa" or factors of
// two different kinds. Two knowledge factors (a password and security
// questions) used to count as multi-factor.
func TestRegression_MFAMeansTwoKindsOfFactor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amr []string
		mfa bool
	}{
		{[]string{"mfa"}, true},
		{[]string{"pwd", "otp"}, true},
		{[]string{"pin", "hwk"}, true},
		{[]string{"hwk", "fpt"}, true},
		{[]string{"pwd", "face"}, true},
		{[]string{"pwd", "kba"}, false},
		{[]string{"pwd", "pin"}, false},
		{[]string{"otp", "sms"}, false},
		{[]string{"pwd", "geo"}, false},
		{[]string{"pwd", "rba", "wia", "user"}, false},
		{[]string{"hwk"}, false},
		{[]string{"pwd"}, false},
		{nil, false},
	} {
		id := &Identity{Kind: "session", AMR: tc.amr}
		if got := id.HasMFA(); got != tc.mfa {
			t.Errorf("amr %v: MFA %v, want %v", tc.amr, got, tc.mfa)
		}
	}
	if (&Identity{Kind: "device", AMR: []string{"mfa"}}).HasMFA() {
		t.Error("a device certificate counted as MFA")
	}
	var none *Identity
	if none.HasMFA() {
		t.Error("no identity counted as MFA")
	}
}
