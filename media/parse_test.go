package media

import (
	"os"
	"strings"
	"testing"
	"time"
)

func readAllFile(p string) ([]byte, error) { return os.ReadFile(p) }

var fuzzKey = []byte("0123456789abcdef0123456789abcdef")

func TestInviteRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	id := newID()
	for _, gen := range []int{0, 1, 7} {
		tok := signInvite(fuzzKey, id, gen, now.Add(time.Hour))
		got, err := parseInvite(fuzzKey, tok, now)
		if err != nil || got.Visit != id || got.Gen != gen || !got.Expires.Equal(now.Add(time.Hour)) {
			t.Fatalf("parse(sign) = %+v %v", got, err)
		}
		if _, err := parseInvite([]byte("another key, 32 bytes long......"), tok, now); err != errInviteSignature {
			t.Fatalf("other key: %v", err)
		}
		if _, err := parseInvite(fuzzKey, tok, now.Add(time.Hour)); err != errInviteExpired {
			t.Fatalf("at expiry: %v", err)
		}
		if _, err := parseInvite(fuzzKey, strings.ToUpper(tok), now); err == nil {
			t.Fatal("upper-cased token accepted")
		}
	}
	// A generation is covered by the MAC: another generation's number in
	// a token is a bad signature, not another link.
	tok := signInvite(fuzzKey, id, 2, now.Add(time.Hour))
	parts := strings.Split(tok, ".")
	parts[2] = "3"
	if _, err := parseInvite(fuzzKey, strings.Join(parts, "."), now); err != errInviteSignature {
		t.Fatalf("generation changed: %v", err)
	}
}

func FuzzParseInvite(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(signInvite(fuzzKey, newID(), 0, now.Add(time.Hour)))
	f.Add(signInvite(fuzzKey, newID(), 3, now.Add(time.Hour)))
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaa.1800003600.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Add("..")
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaa.01800003600.x")
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaa.-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		inv, err := parseInvite(fuzzKey, tok, now)
		if err != nil {
			return
		}
		// Whatever is accepted must be exactly what we would sign.
		if !validID(inv.Visit) || !inv.Expires.After(now) || signInvite(fuzzKey, inv.Visit, inv.Gen, inv.Expires) != tok {
			t.Fatalf("accepted %q as %+v", tok, inv)
		}
	})
}

func FuzzParseClientMessage(f *testing.F) {
	f.Add([]byte(`{"type":"offer","sdp":"` + strings.ReplaceAll(testSDP(fpOf(1), "u", "p"), "\r\n", `\r\n`) + `"}`))
	f.Add([]byte(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 1 typ relay","sdpMid":"0","sdpMLineIndex":0},"to":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}`))
	f.Add([]byte(`{"type":"candidate","candidate":{"candidate":""}}`))
	f.Add([]byte(`{"type":"ping"}`))
	f.Add([]byte(`{"type":"bye","from":"x"}`))
	f.Add([]byte(`{"type":"offer","sdp":"v=0\na=fingerprint:sha-256 AB\na=fingerprint:sha-256 CD\na=ice-ufrag:a\na=ice-pwd:b"}`))
	f.Add([]byte(`{"type":"ping"} {"type":"ping"}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMessage(b, 64<<10)
		if err != nil {
			return
		}
		switch m.Type {
		case "offer", "answer":
			if len(m.facts.FP) == 0 || len(m.facts.Ufrag) == 0 || len(m.facts.Pwd) == 0 {
				t.Fatalf("accepted an SDP without DTLS/ICE facts: %q", b)
			}
		case "candidate":
			if m.Candidate == nil {
				t.Fatal("candidate message without candidate")
			}
		case "ping", "bye":
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		if m.To != "" && !validID(m.To) {
			t.Fatalf("accepted recipient %q", m.To)
		}
	})
}

func TestParseSDPFacts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		sdp  string
		ok   bool
		fp   string
	}{
		{"chrome shape", testSDP(fpOf(1), "u", "p"), true, "sha-256 " + fpOf(1)},
		{"lower-case hex", testSDP(strings.ToLower(fpOf(1)), "u", "p"), true, "sha-256 " + fpOf(1)},
		{"no fingerprint", "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n", false, ""},
		{"no ice", "v=0\r\na=fingerprint:sha-256 AB:CD\r\n", false, ""},
		{"two fingerprints one alg", testSDP(fpOf(1), "u", "p") + "a=fingerprint:sha-256 " + fpOf(2) + "\r\n", false, ""},
		{"bad hex", testSDP("ZZ:11", "u", "p"), false, ""},
		{"not sdp", "hello", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseSDPFacts(c.sdp)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if c.ok && (len(f.FP) != 1 || f.FP[0] != c.fp) {
				t.Fatalf("fp = %v", f.FP)
			}
		})
	}
}

func TestSecurityCode(t *testing.T) {
	t.Parallel()
	a := "sha-256 " + fpOf(1)
	b := "sha-256 " + fpOf(100)
	ab, err := SecurityCode(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ba, _ := SecurityCode(strings.ToUpper(b), strings.ToLower(a))
	if ab != ba || len(ab) != 6 {
		t.Fatalf("not symmetric or not 6 digits: %q %q", ab, ba)
	}
	swapped, _ := SecurityCode(a, "sha-256 "+fpOf(101))
	if swapped == ab {
		t.Fatal("a swapped fingerprint gives the same code")
	}
	// Fixed vector shared with web/visit.js (securityCode).
	if want := securityCodeVector; ab != want {
		t.Fatalf("SecurityCode = %s, want %s", ab, want)
	}
	if _, err := SecurityCode("nonsense", b); err == nil {
		t.Fatal("malformed fingerprint accepted")
	}
}
