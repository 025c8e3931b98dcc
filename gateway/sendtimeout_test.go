package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/telegate/telegate/config"
)

// TestRegression_SlowReaderEndedBySendTimeout: a client that stops
// reading a response — an HTTP/2 client whose flow-control window is zero
// from the start or is never reopened, an HTTP/1.1 client that stops
// reading its socket — holds its stream or connection only for
// server.send_timeout: the HTTP/2 stream is reset, the HTTP/1.1
// connection closed, the rest of the response never sent. A response
// whose upstream pauses longer than the send timeout between writes is
// delivered whole on both protocols, since idle time does not count.
func TestRegression_SlowReaderEndedBySendTimeout(t *testing.T) {
	t.Parallel()
	const sendTimeout = time.Second
	const bigSize = 8 << 20
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public/big":
			w.Header().Set("Content-Length", fmt.Sprint(bigSize))
			chunk := bytes.Repeat([]byte{'b'}, 32<<10)
			for n := 0; n < bigSize; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/public/small":
			_, _ = w.Write(bytes.Repeat([]byte{'s'}, 1<<10))
		case "/public/pause":
			for _, part := range []string{"a", "b", "c"} {
				_, _ = io.WriteString(w, part)
				w.(http.Flusher).Flush()
				if part != "c" {
					time.Sleep(sendTimeout + 500*time.Millisecond)
				}
			}
		}
	}))
	t.Cleanup(up.Close)
	s := serveTestGateway(t, func(c *config.Config, _ *Options) {
		c.Server.SendTimeout = sendTimeout
		c.Routes[0].Upstream = up.URL
	})
	get := func(path string) []byte {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", appHost}, {":path", path}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return b.Bytes()
	}
	// h2Stalled opens an HTTP/2 connection with the given SETTINGS, asks
	// for path and reads frames without ever sending
	// WINDOW_UPDATE: stream 1 must be reset within the send timeout (and
	// a margin) after its last DATA frame.
	h2Stalled := func(t *testing.T, path string, settings ...http2.Setting) {
		c := s.dialTLS(t, appHost, "h2")
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(settings...); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: get(path), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		received, lastData := 0, time.Now()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no RST_STREAM for stream 1 after %d bytes: %v", received, err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.DataFrame:
				received += len(f.Data())
				lastData = time.Now()
			case *http2.RSTStreamFrame:
				if f.StreamID != 1 {
					continue
				}
				if took := time.Since(lastData); took > sendTimeout+2*time.Second {
					t.Errorf("reset %v after the last DATA frame, send timeout %v", took, sendTimeout)
				}
				if path == "/public/big" && received >= bigSize || received >= 1<<10 && path == "/public/small" {
					t.Errorf("received the whole response (%d bytes) before the reset", received)
				}
				t.Logf("stream 1 reset (%v) after %d bytes", f.ErrCode, received)
				return
			case *http2.GoAwayFrame:
				t.Fatalf("GOAWAY %v, want the stream reset", f.ErrCode)
			}
		}
	}
	t.Run("members", func(t *testing.T) {
		t.Run("HTTP/2, window zero from the start", func(t *testing.T) {
			t.Parallel()
			h2Stalled(t, "/public/big", http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		})
		t.Run("HTTP/2, window zero from the start, small response", func(t *testing.T) {
			t.Parallel()
			h2Stalled(t, "/public/small", http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		})
		t.Run("HTTP/2, window never reopened", func(t *testing.T) {
			t.Parallel()
			h2Stalled(t, "/public/big")
		})
		t.Run("HTTP/2, small window never reopened", func(t *testing.T) {
			t.Parallel()
			h2Stalled(t, "/public/big", http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		})
		t.Run("HTTP/1.1, socket not read", func(t *testing.T) {
			t.Parallel()
			c := s.dialTLS(t, appHost, "http/1.1")
			if _, err := io.WriteString(c, "GET /public/big HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(sendTimeout + 2*time.Second)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			if isTimeout(err) {
				t.Fatalf("the connection is still open after %d bytes", n)
			}
			if n >= bigSize {
				t.Errorf("read %d bytes: the whole response, want it cut", n)
			}
			t.Logf("connection closed after %d bytes (%v)", n, err)
		})
		for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
			t.Run(proto+", upstream pausing between writes", func(t *testing.T) {
				t.Parallel()
				tr := &http.Transport{TLSClientConfig: s.client(s.addr).Transport.(*http.Transport).TLSClientConfig.Clone()}
				tr.Protocols = new(http.Protocols)
				if proto == "HTTP/2" {
					tr.Protocols.SetHTTP2(true)
				} else {
					tr.Protocols.SetHTTP1(true)
				}
				tr.DialContext = s.client(s.addr).Transport.(*http.Transport).DialContext
				t.Cleanup(tr.CloseIdleConnections)
				resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + appHost + "/public/pause")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != "abc" || resp.ProtoMajor != map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto] {
					t.Errorf("%s: %q, %v; want %s and \"abc\"", resp.Proto, body, err, proto)
				}
			})
		}
	})
	// Another client is served.
	h2Served(t, s, "/public/pause")
}
