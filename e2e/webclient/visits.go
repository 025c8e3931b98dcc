package webclient

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// PostJSONResponse posts body as JSON to base+path the way the visit
// pages do (same Origin, X-Telegate-CSRF: 1, Accept: application/json),
// without following redirects, and returns the answer whatever its
// status.
func (c *Client) PostJSONResponse(base, path string, body any) (*http.Response, []byte, error) {
	var rd *strings.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = strings.NewReader(string(j))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(http.MethodPost, base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", base)
	req.Header.Set("X-Telegate-CSRF", "1")
	resp, b, err := c.Do(c.NoRedirect(), req)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w", path, err)
	}
	return resp, b, nil
}

// PostJSON posts body (JSON; nil for none) to base+path as a page's
// script calls telegate's visits API (Origin base, X-Telegate-CSRF, no
// redirects followed) and decodes a 2xx answer into out (nil: ignored).
// Any other answer is an error naming its status and the start of its
// body.
func (c *Client) PostJSON(base, path string, body, out any) error {
	resp, b, err := c.PostJSONResponse(base, path, body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %.300s", path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// ICEServer is one entry of the ICE configuration telegate hands an
// admitted participant (W3C WebRTC RTCIceServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// ICE fetches the ICE configuration of visit id at base.
func (c *Client) ICE(base, id string) ([]ICEServer, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/.telegate/visits/"+id+"/ice", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, b, err := c.Do(c.NoRedirect(), req)
	if err != nil {
		return nil, fmt.Errorf("ice: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ice: %d %.300s", resp.StatusCode, b)
	}
	var ice struct {
		ICEServers []ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal(b, &ice); err != nil {
		return nil, fmt.Errorf("ice: %w", err)
	}
	return ice.ICEServers, nil
}

// TURNAddr reads a turn: or turns: URL (RFC 7065) as a browser dials it:
// the server name (the URL's host; TLS sends it as SNI unless it is an IP
// literal) and the address to dial. The URL must name loopback: the name
// localhost (dialled at 127.0.0.1) or a loopback literal.
func TURNAddr(raw string) (serverName, addr string, err error) {
	rest, ok := strings.CutPrefix(raw, "turns:")
	if !ok {
		if rest, ok = strings.CutPrefix(raw, "turn:"); !ok {
			return "", "", fmt.Errorf("%s: not a turn: or turns: URL", raw)
		}
	}
	hostport, _, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", raw, err)
	}
	ip := host
	if host == "localhost" {
		ip = "127.0.0.1"
	} else if p := net.ParseIP(host); p == nil || !p.IsLoopback() {
		return "", "", fmt.Errorf("%s: names neither localhost nor a loopback address", raw)
	}
	return host, net.JoinHostPort(ip, port), nil
}
