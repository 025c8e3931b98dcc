package relay

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST convention and coturn's use-auth-secret specify.
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credential is a short-lived relay credential in the TURN REST form
// (draft-uberti-behave-turn-rest-00 §2.2, coturn use-auth-secret):
// Username is "expiry:visit:participant" with expiry in Unix seconds, and
// Password is base64(HMAC-SHA1(secret, Username)). It admits new
// allocations until Expires.
type Credential struct {
	Username string
	Password string
	Expires  time.Time
}

// Username is a parsed relay username.
type Username struct {
	// Expires is the expiry time (whole seconds, UTC).
	Expires     time.Time
	Visit       string
	Participant string
}

// ErrBadUsername is returned by ParseUsername for anything that is not a
// well-formed "expiry:visit:participant".
var ErrBadUsername = errors.New("relay: malformed username")

const maxIDLen = 64

// ValidID reports whether id is a visit or participant id the relay
// accepts: 1 to 64 characters from [A-Za-z0-9_-].
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseUsername parses u strictly as "expiry:visit:participant": expiry is
// a decimal Unix time in seconds without sign or leading zeros (at most 12
// digits), visit and participant are ValidID. Anything else is
// ErrBadUsername.
func ParseUsername(u string) (Username, error) {
	exp, rest, ok := strings.Cut(u, ":")
	if !ok {
		return Username{}, ErrBadUsername
	}
	visit, part, ok := strings.Cut(rest, ":")
	if !ok || !ValidID(visit) || !ValidID(part) {
		return Username{}, ErrBadUsername
	}
	if len(exp) == 0 || len(exp) > 12 || (exp[0] == '0' && len(exp) > 1) {
		return Username{}, ErrBadUsername
	}
	for i := 0; i < len(exp); i++ {
		if exp[i] < '0' || exp[i] > '9' {
			return Username{}, ErrBadUsername
		}
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return Username{}, ErrBadUsername
	}
	return Username{Expires: time.Unix(sec, 0).UTC(), Visit: visit, Participant: part}, nil
}

// FormatUsername is the inverse of ParseUsername.
func FormatUsername(expires time.Time, visit, participant string) string {
	return fmt.Sprintf("%d:%s:%s", expires.Unix(), visit, participant)
}

// Password returns base64(HMAC-SHA1(secret, username)), the TURN REST
// password for username.
func Password(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
