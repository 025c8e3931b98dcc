package media

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// sdpFacts are what signaling checks in an SDP offer or answer (RFC 8866):
// the DTLS certificate fingerprints (a=fingerprint, RFC 8122 §5) and the
// ICE credentials (a=ice-ufrag, a=ice-pwd, RFC 8839 §5.4). Each list is
// sorted and free of duplicates; fingerprints are "<hash-func> <HEX:..>"
// with the hash function in lower case and the hex in upper case.
type sdpFacts struct {
	FP    []string
	Ufrag []string
	Pwd   []string
}

var errSDP = errors.New("not a WebRTC session description")

// parseSDPFacts extracts the fingerprints and ICE credentials from sdp. It
// fails when the SDP does not begin with "v=0", carries no fingerprint or
// ICE credentials (no DTLS means no end-to-end encryption), or names two
// different fingerprints for one hash function.
func parseSDPFacts(sdp string) (sdpFacts, error) {
	var f sdpFacts
	if !strings.HasPrefix(sdp, "v=0\r\n") && !strings.HasPrefix(sdp, "v=0\n") {
		return f, errSDP
	}
	byAlg := map[string]string{}
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "a=fingerprint:"):
			alg, val, ok := strings.Cut(strings.TrimPrefix(line, "a=fingerprint:"), " ")
			if !ok {
				return f, fmt.Errorf("%w: malformed fingerprint", errSDP)
			}
			fp, err := canonicalFingerprint(alg, val)
			if err != nil {
				return f, err
			}
			alg = strings.ToLower(alg)
			if prev, seen := byAlg[alg]; seen && prev != fp {
				return f, fmt.Errorf("%w: two %s fingerprints", errSDP, alg)
			}
			byAlg[alg] = fp
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			v := strings.TrimPrefix(line, "a=ice-ufrag:")
			if v == "" || len(v) > 256 {
				return f, fmt.Errorf("%w: malformed ice-ufrag", errSDP)
			}
			f.Ufrag = append(f.Ufrag, v)
		case strings.HasPrefix(line, "a=ice-pwd:"):
			v := strings.TrimPrefix(line, "a=ice-pwd:")
			if v == "" || len(v) > 256 {
				return f, fmt.Errorf("%w: malformed ice-pwd", errSDP)
			}
			f.Pwd = append(f.Pwd, v)
		}
	}
	for _, fp := range byAlg {
		f.FP = append(f.FP, fp)
	}
	if len(f.FP) == 0 || len(f.Ufrag) == 0 || len(f.Pwd) == 0 {
		return f, fmt.Errorf("%w: a fingerprint and ICE credentials are required", errSDP)
	}
	slices.Sort(f.FP)
	slices.Sort(f.Ufrag)
	slices.Sort(f.Pwd)
	f.Ufrag = slices.Compact(f.Ufrag)
	f.Pwd = slices.Compact(f.Pwd)
	return f, nil
}

// canonicalFingerprint returns "<alg> <HEX:HEX:…>" (RFC 8122 §5: hash-func
// token, then upper-case hex pairs separated by colons).
func canonicalFingerprint(alg, val string) (string, error) {
	alg = strings.ToLower(strings.TrimSpace(alg))
	val = strings.ToUpper(strings.TrimSpace(val))
	if alg == "" || len(alg) > 16 {
		return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
	}
	for i := 0; i < len(alg); i++ {
		c := alg[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
		}
	}
	// 1 to 64 bytes, "XX" or "XX:XX…".
	if len(val) < 2 || len(val) > 64*3-1 || (len(val)+1)%3 != 0 {
		return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
	}
	for i := 0; i < len(val); i++ {
		c := val[i]
		if i%3 == 2 {
			if c != ':' {
				return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
			}
			continue
		}
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
		}
	}
	return alg + " " + val, nil
}

// disjoint reports whether a and b share no element.
func disjoint(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// SecurityCode returns the six-digit code two participants compare aloud to
// confirm that no one sits between them (docs/architecture.md principle 4). a and b
// are the two DTLS certificate fingerprints as RFC 8122 §5 writes them
// ("sha-256 AB:CD:…"; the hash function's case and the hex case do not
// matter). The code is the first four bytes of SHA-256 over the two
// canonical fingerprints sorted and joined by "\n", as a big-endian integer
// modulo 10^6, zero-padded. It is symmetric in a and b. The built-in client
// (web/visit.js, securityCode) computes the same value from getStats()
// certificate stats (W3C webrtc-stats §8.20).
func SecurityCode(a, b string) (string, error) {
	ca, err := canonicalFromString(a)
	if err != nil {
		return "", err
	}
	cb, err := canonicalFromString(b)
	if err != nil {
		return "", err
	}
	fps := []string{ca, cb}
	slices.Sort(fps)
	sum := sha256.Sum256([]byte(fps[0] + "\n" + fps[1]))
	return fmt.Sprintf("%06d", binary.BigEndian.Uint32(sum[:4])%1000000), nil
}

func canonicalFromString(s string) (string, error) {
	alg, val, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return "", fmt.Errorf("%w: malformed fingerprint", errSDP)
	}
	return canonicalFingerprint(alg, val)
}
