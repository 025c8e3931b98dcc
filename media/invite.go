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
//	<visit id>.<expiry, Unix seconds>.<base64url(HMAC-SHA256(key, "telegate-invite-v1\x00" + visit id + "." + expiry))>
//
// They name one visit and expire; they admit nobody by themselves: whoever
// presents one (signed in) only reaches that visit's waiting room. The token
// is carried in the invite URL's query, so it is never logged.

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
)

func inviteMAC(key []byte, visitID string, exp int64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(invitePrefix))
	m.Write([]byte(visitID))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

// signInvite returns an invite token for visitID valid until exp.
func signInvite(key []byte, visitID string, exp time.Time) string {
	e := exp.Unix()
	return visitID + "." + strconv.FormatInt(e, 10) + "." +
		base64.RawURLEncoding.EncodeToString(inviteMAC(key, visitID, e))
}

// parseInvite checks tok's shape, signature and expiry (against now) and
// returns the visit id and the expiry.
func parseInvite(key []byte, tok string, now time.Time) (string, time.Time, error) {
	if len(tok) > 128 {
		return "", time.Time{}, errInviteMalformed
	}
	id, rest, ok := strings.Cut(tok, ".")
	if !ok || !validID(id) {
		return "", time.Time{}, errInviteMalformed
	}
	es, sig, ok := strings.Cut(rest, ".")
	if !ok || len(es) == 0 || len(es) > 12 || len(sig) != 43 {
		return "", time.Time{}, errInviteMalformed
	}
	for i := 0; i < len(es); i++ {
		if es[i] < '0' || es[i] > '9' {
			return "", time.Time{}, errInviteMalformed
		}
	}
	if es[0] == '0' {
		return "", time.Time{}, errInviteMalformed
	}
	e, err := strconv.ParseInt(es, 10, 64)
	if err != nil {
		return "", time.Time{}, errInviteMalformed
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return "", time.Time{}, errInviteMalformed
	}
	if !hmac.Equal(mac, inviteMAC(key, id, e)) {
		return "", time.Time{}, errInviteSignature
	}
	exp := time.Unix(e, 0)
	if !now.Before(exp) {
		return "", time.Time{}, errInviteExpired
	}
	return id, exp, nil
}
