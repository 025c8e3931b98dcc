package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// Markers a visit sends that must reach no log, audit record or export.
const (
	sdpMarker = "sdpmarker7q"
	iceMarker = "icemarker7q"
)

// runVisitWithRelay has b (a signed-in clinician) create a visit, fetch
// its relay credential, make a relay allocation with it and send an
// offer and an ICE candidate over the signaling socket. It returns what
// must never be written anywhere: the TURN credential and username, the
// SDP and the candidate.
func runVisitWithRelay(t *testing.T, d *demo, b *browser) map[string]string {
	t.Helper()
	base := d.Base()
	visit := createVisit(t, b, base)
	resp, body := b.do(b.noRedirect(), mustRequest(t, "GET", base+"/.telegate/visits/"+visit+"/ice", "application/json"))
	var ice struct {
		ICEServers []struct {
			Username   string `json:"username"`
			Credential string `json:"credential"`
		} `json:"iceServers"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ice) != nil || len(ice.ICEServers) == 0 || ice.ICEServers[0].Credential == "" {
		t.Fatalf("ice: %d %.300s", resp.StatusCode, body)
	}
	cred := ice.ICEServers[0]
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := turnwire.NewUDP(pc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.relay}, cred.Username, cred.Credential)
	c.Timeout = 2 * time.Second
	if _, err := c.Allocate(turnwire.UDP); err != nil {
		t.Fatalf("relay allocation: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "https:", "wss:", 1)+"/.telegate/visits/"+visit+"/signal", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rootPool(t, d), NextProtos: []string{"http/1.1"}}}},
		HTTPHeader: http.Header{"Origin": {base}, "Cookie": {sessionCookie + "=" + b.cookie(base, sessionCookie).Value}},
	})
	if err != nil {
		t.Fatalf("signaling socket: %v", err)
	}
	defer ws.CloseNow()
	if _, m, err := ws.Read(ctx); err != nil || !strings.Contains(string(m), `"welcome"`) {
		t.Fatalf("signaling socket: %q %v", m, err)
	}
	sdp := "v=0\r\no=- " + sdpMarker + " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:" + sdpMarker + "\r\n"
	cand := "candidate:" + iceMarker + " 1 udp 2122260223 192.0.2.55 54321 typ host"
	for _, m := range []any{
		map[string]any{"type": "offer", "to": "nobody", "sdp": sdp},
		map[string]any{"type": "candidate", "to": "nobody", "candidate": map[string]any{"candidate": cand, "sdpMid": "0", "sdpMLineIndex": 0}},
	} {
		raw, _ := json.Marshal(m)
		if err := ws.Write(ctx, websocket.MessageText, raw); err != nil {
			t.Fatalf("signal: %v", err)
		}
	}
	readCtx, readCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	for {
		if _, _, err := ws.Read(readCtx); err != nil {
			break
		}
	}
	readCancel()
	ws.Close(websocket.StatusNormalClosure, "")
	return map[string]string{"TURN credential": cred.Credential, "TURN username": cred.Username, "SDP": sdpMarker, "ICE candidate": iceMarker}
}

// auditOutputs is everything the audit trail of the stopped demo in
// dataDir gives out: the trail itself and its FHIR and JSON-lines
// exports, by name. It also checks that the trail holds the kinds of
// records the run must have written.
func auditOutputs(t *testing.T, dataDir string, kinds ...string) map[string]string {
	t.Helper()
	trail, err := os.ReadFile(filepath.Join(dataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{"audit trail": string(trail)}
	for _, format := range []string{"fhir", "jsonl"} {
		f := filepath.Join(t.TempDir(), "export."+format)
		if o, err := runBinary(t, "audit", "export", "--data-dir", dataDir, "--format", format, "--out", f); err != nil {
			t.Fatalf("audit export --format %s: %v\n%s", format, err, o)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[format+" export"] = string(b)
	}
	for _, k := range kinds {
		if !strings.Contains(string(trail), `"type":"`+k+`"`) {
			t.Errorf("the trail has no %q record: the run does not drive what the search looks for", k)
		}
	}
	if !strings.Contains(out["fhir export"], `"resourceType":"AuditEvent"`) {
		t.Error("the FHIR export holds no AuditEvent")
	}
	return out
}
