package relay

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/telegate/telegate/media/relay/turnwire"
)

// markerAttr is an attribute of a comprehension-required type
// (0x0000–0x7FFF, RFC 8489 §14) that no one knows, holding a marker.
type markerAttr string

func (a markerAttr) AddTo(m *stun.Message) error {
	m.Add(stun.AttrType(0x7f31), []byte(a))
	return nil
}

// TestRegression_ClientBytesInLibraryLogs (pion): a client from
// 127.0.0.77 sends an authenticated Allocate with an unknown
// comprehension-required attribute, and malformed and unauthenticated
// STUN, each carrying a marker; pion logs about them, and no line names
// the client's address or carries the marker.
func TestRegression_ClientBytesInLibraryLogs(t *testing.T) {
	const marker = "zq7marker"
	f := newFixture(t, nil)
	pc, err := net.ListenPacket("udp4", "127.0.0.77:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	f.s.Admit("visit-1", "alice")
	cred := f.s.Credential("visit-1", "alice")
	c := turnwire.NewUDP(pc, f.addr, cred.Username, cred.Password)
	c.Timeout = time.Second
	_, _ = c.Do(stun.MethodAllocate, turnwire.UDP, markerAttr(marker))
	_, _ = c.Do(stun.MethodRefresh, markerAttr(marker))
	_, _ = c.Raw(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), stun.NewUsername(marker), stun.NewSoftware(marker))
	_, _ = pc.WriteTo(append([]byte{0x00, 0x03, 0x00, 0x40, 0x21, 0x12, 0xA4, 0x42}, marker+marker...), f.addr)

	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(f.logs.String(), "turn:") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "turn:") {
		t.Fatalf("pion logged nothing: the test drives nothing\n%s", logs)
	}
	t.Logf("pion's lines:\n%s", logs)
	for _, leak := range []string{"127.0.0.77", marker} {
		if strings.Contains(logs, leak) {
			t.Errorf("a log line carries %q:\n%s", leak, logs)
		}
	}
}
