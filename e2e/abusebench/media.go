package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/telegate/telegate/e2e/webclient"
	"github.com/telegate/telegate/media/relay/turnwire"
)

// Loopback sources of the relayed media's two participants.
var (
	clinicianSource = net.IPv4(127, 0, 0, 61)
	patientSource   = net.IPv4(127, 0, 0, 62)
)

// openMediaPair signs a clinician and a patient in through the
// development provider, creates a visit as the clinician, lets the
// patient in and allocates on the relay with the ICE configuration each
// is handed, as a browser would: the clinician over UDP (the turn: URL),
// the patient over TURN over TLS on the HTTPS port (the turns: URL). Each
// binds mediaChannel to the other's relayed address.
func openMediaPair(base, rootFile string, pool *x509.CertPool) (*mediaPair, error) {
	clin, err := signedIn(base, rootFile, clinicianSource, "clinician@demo.test")
	if err != nil {
		return nil, err
	}
	pat, err := signedIn(base, rootFile, patientSource, "patient@demo.test")
	if err != nil {
		return nil, err
	}
	var created struct {
		ID     string `json:"id"`
		Invite struct {
			URL string `json:"url"`
		} `json:"invite"`
	}
	if err := clin.PostJSON(base, "/.telegate/visits", map[string]any{"title": "bench", "participants": 2}, &created); err != nil {
		return nil, err
	}
	inv, err := url.Parse(created.Invite.URL)
	if err != nil {
		return nil, err
	}
	var joined struct {
		Self struct {
			ID string `json:"id"`
		} `json:"self"`
	}
	if err := pat.PostJSON(base, "/.telegate/visits/join", map[string]any{"invite": inv.Query().Get("invite")}, &joined); err != nil {
		return nil, err
	}
	if err := clin.PostJSON(base, "/.telegate/visits/"+created.ID+"/admit", map[string]any{"participant": joined.Self.ID}, nil); err != nil {
		return nil, err
	}
	c, rc, err := allocate(clin, base, created.ID, "turn:", clinicianSource, pool)
	if err != nil {
		return nil, fmt.Errorf("clinician: %w", err)
	}
	p, rp, err := allocate(pat, base, created.ID, "turns:", patientSource, pool)
	if err != nil {
		return nil, fmt.Errorf("patient: %w", err)
	}
	m := &mediaPair{clinician: c, patient: p, relayedC: rc, relayedP: rp}
	return m, m.refresh()
}

// mediaPair is the two participants' allocations.
type mediaPair struct {
	clinician, patient *turnwire.Client
	relayedC, relayedP netip.AddrPort
}

// refresh refreshes both allocations and (re)binds the channel both ways,
// which refreshes the permissions too (RFC 8656 §7.3, §9, §12).
func (m *mediaPair) refresh() error {
	for _, x := range []struct {
		c    *turnwire.Client
		peer netip.AddrPort
	}{{m.clinician, m.relayedP}, {m.patient, m.relayedC}} {
		if err := x.c.Refresh(10 * time.Minute); err != nil {
			return err
		}
		if err := x.c.ChannelBind(mediaChannel, x.peer); err != nil {
			return err
		}
	}
	return nil
}

// mediaChannel is the channel number both participants bind;
// mediaInterval the pace of each one's packets (500 a second).
const (
	mediaChannel  = 0x4000
	mediaInterval = 2 * time.Millisecond
)

func signedIn(base, rootFile string, src net.IP, user string) (*webclient.Client, error) {
	wc, err := webclient.NewFrom(rootFile, src)
	if err != nil {
		return nil, err
	}
	wc.HTTP.Timeout = 10 * time.Second
	resp, body, err := wc.SignIn(base+"/app/", user, "demo")
	if err != nil {
		return nil, fmt.Errorf("sign-in as %s: %w", user, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign-in as %s: %d %.200s", user, resp.StatusCode, body)
	}
	return wc, nil
}

// allocate fetches wc's ICE configuration for visit id and allocates over
// its first URL with the scheme scheme ("turn:" over UDP, "turns:" over
// TLS) from src. It returns the client and its relayed address.
func allocate(wc *webclient.Client, base, id, scheme string, src net.IP, pool *x509.CertPool) (*turnwire.Client, netip.AddrPort, error) {
	servers, err := wc.ICE(base, id)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	for _, s := range servers {
		for _, raw := range s.URLs {
			if !strings.HasPrefix(raw, scheme) {
				continue
			}
			name, addr, err := webclient.TURNAddr(raw)
			if err != nil {
				return nil, netip.AddrPort{}, err
			}
			var c *turnwire.Client
			if scheme == "turns:" {
				d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
				conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: pool})
				if err != nil {
					return nil, netip.AddrPort{}, err
				}
				c = turnwire.NewStream(conn, s.Username, s.Credential)
			} else {
				pc, err := net.ListenPacket("udp4", net.JoinHostPort(src.String(), "0"))
				if err != nil {
					return nil, netip.AddrPort{}, err
				}
				ua, err := net.ResolveUDPAddr("udp4", addr)
				if err != nil {
					return nil, netip.AddrPort{}, err
				}
				c = turnwire.NewUDP(pc, ua, s.Username, s.Credential)
			}
			relayed, err := c.Allocate(turnwire.UDP)
			return c, relayed, err
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("no %s URL among %v", scheme, servers)
}
