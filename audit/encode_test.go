package audit

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestAppendLineIsMarshal: the hand-written encoder writes exactly what
// encoding/json writes for a line, escapes and empty fields included.
func TestAppendLineIsMarshal(t *testing.T) {
	t.Parallel()
	events := []Event{
		{},
		benchEvent,
		{Time: time.Date(2026, 12, 3, 12, 0, 0, 123400000, time.UTC), Type: "request", Path: `/a"b\c<d>&e`, Reason: "ünïcode\u2028\x01\xff", Status: -3},
		{Time: time.Unix(0, 1).UTC(), Type: "audit.segment", Attrs: map[string]string{"b": "2", "a": "<1>"}, Generation: 7, Subject: "s", Issuer: "i", Client: "::1", Decision: "deny"},
	}
	// Every field of Event set, by reflection, so that a field added to
	// Event and forgotten by the encoder fails here.
	var full Event
	v := reflect.ValueOf(&full).Elem()
	for i := 0; i < v.NumField(); i++ {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "<&>")
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"k": "v"}))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 3, 12, 0, 0, 1, time.UTC)))
		default:
			t.Fatalf("Event.%s: a field of kind %s the test does not fill", v.Type().Field(i).Name, f.Kind())
		}
	}
	events = append(events, full)
	for _, e := range events {
		want, err := json.Marshal(line{header{Seq: 42, Prev: "ab\"c"}, e})
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendLine([]byte("x"), 42, "ab\"c", &e)
		if err != nil || string(got[1:]) != string(want) {
			t.Fatalf("appendLine = %s, %v\nwant          %s", got[1:], err, want)
		}
	}
}

// FuzzAppendLine compares the encoder with encoding/json on any strings.
func FuzzAppendLine(f *testing.F) {
	f.Add("GET", "/p", "r\n", 200)
	f.Fuzz(func(t *testing.T, method, path, reason string, status int) {
		e := Event{Time: time.Unix(1, 0).UTC(), Type: "request", Method: method, Path: path, Reason: reason, Status: status}
		want, _ := json.Marshal(line{header{Seq: 1}, e})
		got, _ := appendLine(nil, 1, "", &e)
		if string(got) != string(want) {
			t.Fatalf("%s\n%s", got, want)
		}
	})
}
