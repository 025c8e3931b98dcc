package e2e

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logMarker is what the hostile client sends; it must never reach a log.
const logMarker = "zq7marker"

// hostileSource is the loopback address the hostile client sends from; it
// must never appear in a log either (only its pseudonym).
var hostileSource = net.IPv4(127, 0, 0, 77)

// stunWith is a STUN message of type typ whose one attribute (type attr)
// holds value, with a length field that lies by lie bytes (RFC 8489 §5,
// §14).
func stunWith(typ, attr uint16, value string, lie int) []byte {
	body := make([]byte, 4, 4+len(value)+3)
	binary.BigEndian.PutUint16(body[0:], attr)
	binary.BigEndian.PutUint16(body[2:], uint16(len(value)+lie))
	body = append(body, value...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	m := make([]byte, 20, 20+len(body))
	binary.BigEndian.PutUint16(m[0:], typ)
	binary.BigEndian.PutUint16(m[2:], uint16(len(body)))
	binary.BigEndian.PutUint32(m[4:], 0x2112A442)
	copy(m[8:20], logMarker[:9]+"abc")
	return append(m, body...)
}

// TestRegression_ClientBytesInLibraryLogs: a client drives the libraries
// under telegate into logging — a bad HTTP/2 preface (x/net/http2 through
// net/http's ErrorLog), a record that is no TLS handshake, plain HTTP on
// the HTTPS port, malformed and unauthenticated STUN over UDP and over TLS
// (pion), a bad request to the admin listener — each carrying a marker;
// no log line names the client's address or carries the marker.
func TestRegression_ClientBytesInLibraryLogs(t *testing.T) {
	d := startDemo(t, filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t))
	public := fmt.Sprintf("127.0.0.1:%d", d.port)
	dial := func(network, addr string) net.Conn {
		t.Helper()
		var local net.Addr = &net.TCPAddr{IP: hostileSource}
		if network == "udp" {
			local = &net.UDPAddr{IP: hostileSource}
		}
		c, err := (&net.Dialer{Timeout: 3 * time.Second, LocalAddr: local}).Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		return c
	}
	drain := func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }
	tlsTo := func(proto string) *tls.Conn {
		t.Helper()
		tc := tls.Client(dial("tcp", public), &tls.Config{ServerName: "localhost", RootCAs: rootPool(t, d), NextProtos: []string{proto}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}

	t.Run("bad HTTP/2 preface", func(t *testing.T) {
		c := tlsTo("h2")
		_, _ = io.WriteString(c, "GET /"+logMarker+" HTTP/1.1\r\nHost: "+logMarker+"\r\n\r\n")
		drain(c)
	})
	t.Run("no TLS handshake", func(t *testing.T) {
		c := dial("tcp", public)
		_, _ = c.Write(append([]byte{0x16, 0x03, 0x01, 0x00, 0x10}, logMarker+"\x00\x01\x02\x03\x04\x05\x06"...))
		drain(c)
		c = dial("tcp", public)
		_, _ = io.WriteString(c, "\x15\x03\x03\x00\x09"+logMarker)
		drain(c)
	})
	t.Run("plain HTTP on the HTTPS port", func(t *testing.T) {
		c := dial("tcp", public)
		_, _ = io.WriteString(c, "GET /"+logMarker+" HTTP/1.1\r\nHost: "+logMarker+"\r\n\r\n")
		drain(c)
	})
	t.Run("bad request head over TLS", func(t *testing.T) {
		c := tlsTo("http/1.1")
		_, _ = io.WriteString(c, "GET /"+logMarker+" HTTP/1.1\r\nHost: localhost\r\n"+logMarker+"\r\n\r\n")
		drain(c)
	})
	msgs := [][]byte{
		stunWith(0x0003, 0x0006, logMarker, 0),                            // Allocate with USERNAME only
		stunWith(0x0003, 0x0006, logMarker, 40),                           // attribute longer than the message
		stunWith(0x0001, 0x8022, logMarker, 0),                            // Binding with SOFTWARE
		stunWith(0x0004, 0x0008, logMarker, 0),                            // Refresh, MESSAGE-INTEGRITY of the wrong size
		stunWith(0x0009, 0x0006, logMarker, -3),                           // unknown method
		append(stunWith(0x0003, 0x0006, logMarker, 0)[:20], logMarker...), // truncated
	}
	t.Run("bad STUN over UDP", func(t *testing.T) {
		c := dial("udp", fmt.Sprintf("127.0.0.1:%d", d.relay))
		for _, m := range msgs {
			_, _ = c.Write(m)
		}
		buf := make([]byte, 1500)
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	})
	t.Run("bad STUN over TLS", func(t *testing.T) {
		for _, m := range msgs {
			c := tlsTo("stun.turn")
			_, _ = c.Write(m)
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			drain(c)
		}
	})
	t.Run("bad request to the admin listener", func(t *testing.T) {
		c := dial("tcp", fmt.Sprintf("127.0.0.1:%d", d.admin))
		_, _ = io.WriteString(c, "GET /"+logMarker+" HTTP/1.1\r\nHost: "+logMarker+"\r\n"+logMarker+"\r\n\r\n")
		drain(c)
	})

	time.Sleep(300 * time.Millisecond)
	logs := logLines(d)
	if !strings.Contains(logs, "error reading preface") {
		t.Errorf("the HTTP/2 server logged nothing about the bad preface: the test drives nothing\n%s", logs)
	}
	if strings.Contains(logs, hostileSource.String()) {
		t.Errorf("a log line names the client's address %s:\n%s", hostileSource, logs)
	}
	// telegate's own request line records the canonical path by design
	// (docs/architecture.md, Conventions); every other line must not
	// carry what the client sent.
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, logMarker) && !strings.Contains(l, "msg=request ") {
			t.Errorf("a log line carries what the client sent: %s", l)
		}
	}
	t.Logf("library lines:\n%s", grepLines(logs, "http2:", "turn:", "http:", "certmagic"))
}

// grepLines are the lines of s that contain any of subs.
func grepLines(s string, subs ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}
