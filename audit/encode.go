package audit

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendLine appends the canonical JSON of a line (seq, prev, then e's
// fields; no mac, no newline) to dst: the bytes json.Marshal(line{…})
// gives, without its reflection. Strings that need escaping and Attrs go
// through encoding/json, so the output is json.Marshal's in every case
// (TestAppendLineIsMarshal). prev is a string or the bytes of one (the
// writer keeps it in a buffer of its own, so it costs no allocation).
func appendLine[P string | []byte](dst []byte, seq uint64, prev P, e *Event) ([]byte, error) {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"prev":`...)
	dst = appendString(dst, prev)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":`...)
	dst = appendString(dst, e.Type)
	for _, f := range [...]struct {
		key string
		v   string
	}{{`,"request_id":`, e.RequestID}, {`,"route":`, e.RouteID}, {`,"method":`, e.Method}, {`,"path":`, e.Path}} {
		if f.v != "" {
			dst = appendString(append(dst, f.key...), f.v)
		}
	}
	if e.Status != 0 {
		dst = strconv.AppendInt(append(dst, `,"status":`...), int64(e.Status), 10)
	}
	for _, f := range [...]struct {
		key string
		v   string
	}{{`,"client":`, e.Client}, {`,"iss":`, e.Issuer}, {`,"sub":`, e.Subject}, {`,"decision":`, e.Decision}, {`,"reason":`, e.Reason}} {
		if f.v != "" {
			dst = appendString(append(dst, f.key...), f.v)
		}
	}
	if len(e.Attrs) > 0 {
		b, err := json.Marshal(e.Attrs)
		if err != nil {
			return dst, err
		}
		dst = append(append(dst, `,"attrs":`...), b...)
	}
	if e.Generation != 0 {
		dst = strconv.AppendUint(append(dst, `,"gen":`...), e.Generation, 10)
	}
	if e.Purpose != "" {
		dst = appendString(append(dst, `,"purpose":`...), e.Purpose)
	}
	return append(dst, '}'), nil
}

// appendString appends s as a JSON string the way encoding/json writes
// it: printable ASCII other than `"`, `\`, `<`, `>` and `&` as it is,
// anything else by json.Marshal.
func appendString[S string | []byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if !asIs[s[i]] {
			b, _ := json.Marshal(string(s)) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// asIs[c] reports whether encoding/json writes the byte c of a string as
// it is: printable ASCII other than `"`, `\`, `<`, `>` and `&`.
var asIs = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
