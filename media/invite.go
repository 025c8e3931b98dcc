package media

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Invite tokens have the form
//
//	<visit id>.<expiry, Unix seconds>.<generation>.<base64url(HMAC-SHA256(key, "telegate-invite-v1\x00" + visit id + "." + expiry + "." + generation))>
//
// They name one visit and one generation of its invite link, and expire;
// they admit nobody by themselves: whoever presents one (signed in) only
// reaches that visit's waiting room. "New invite link" starts the next
// generation, so every earlier link stops working (visit.InviteGen). A token
// of generation 0 has no generation field (<visit id>.<expiry>.<mac>, the
// MAC over visit id + "." + expiry): links made before generations existed.
// The token is carried in the invite URL's query, so it is never logged.

const invitePrefix = "telegate-invite-v1\x00"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 128 random bits as 26 lower-case base32 characters.
func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("media: no randomness: " + err.Error())
	}
	return idEncoding.EncodeToString(b)
}

// validID reports whether s has the shape newID produces.
func validID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// inviteError is a refusal of an invite link, worded for the patient who
// sees it on the waiting-room page.
type inviteError string

func (e inviteError) Error() string { return string(e) }

// Invite errors.
var (
	errInviteMalformed error = inviteError("This invite link is incomplete or damaged. Open the link exactly as your clinician sent it, or ask for a new one.")
	errInviteSignature error = inviteError("This invite link is not valid. Ask your clinician to send you a new one.")
	errInviteExpired   error = inviteError("This invite link has expired. Ask your clinician to send you a new one.")
	errInviteReplaced  error = inviteError("This invite link was replaced by a newer one. Use the link your clinician sent last, or ask for a new one.")
)

// inviteBody is what an invite's MAC covers: visit id "." expiry, then
// "." generation unless the generation is 0.
func inviteBody(visitID string, exp int64, gen int) string {
	b := visitID + "." + strconv.FormatInt(exp, 10)
	if gen > 0 {
		b += "." + strconv.Itoa(gen)
	}
	return b
}

func inviteMAC(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(invitePrefix))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// invite is a checked invite token.
type invite struct {
	Visit   string
	Gen     int // the link's generation (visit.InviteGen when it was made)
	Expires time.Time
}

// signInvite returns an invite token for generation gen of visitID's link,
// valid until exp.
func signInvite(key []byte, visitID string, gen int, exp time.Time) string {
	body := inviteBody(visitID, exp.Unix(), gen)
	return body + "." + base64.RawURLEncoding.EncodeToString(inviteMAC(key, body))
}

// decimal parses a positive decimal without sign or leading zero, of at
// most 12 digits.
func decimal(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseInvite checks tok's shape, signature and expiry (against now). The
// generation is the visit's to check (Service.join).
func parseInvite(key []byte, tok string, now time.Time) (invite, error) {
	if len(tok) > 128 {
		return invite{}, errInviteMalformed
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 && len(parts) != 4 || !validID(parts[0]) {
		return invite{}, errInviteMalformed
	}
	e, ok := decimal(parts[1])
	if !ok {
		return invite{}, errInviteMalformed
	}
	gen := int64(0)
	if len(parts) == 4 {
		if gen, ok = decimal(parts[2]); !ok || gen > 1<<31 {
			return invite{}, errInviteMalformed
		}
	}
	sig := parts[len(parts)-1]
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if len(sig) != 43 || err != nil || len(mac) != sha256.Size {
		return invite{}, errInviteMalformed
	}
	if !hmac.Equal(mac, inviteMAC(key, inviteBody(parts[0], e, int(gen)))) {
		return invite{}, errInviteSignature
	}
	exp := time.Unix(e, 0)
	if !now.Before(exp) {
		return invite{}, errInviteExpired
	}
	return invite{Visit: parts[0], Gen: int(gen), Expires: exp}, nil
}
