package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestRegression_OptionalScalarsAreDecoded: a setting held as a pointer to
// a scalar (set / unset / null, such as routes[].inspect) takes the value
// the file gives. The decoder used to leave every such field nil, so a
// route written `inspect: true` was silently not inspected.
func TestRegression_OptionalScalarsAreDecoded(t *testing.T) {
	t.Parallel()
	base := string(readTestdata(t, "valid.yaml"))
	i := strings.Index(base, "    upstream:")
	if i < 0 {
		t.Fatal("valid.yaml has no route upstream")
	}
	for _, tc := range []struct {
		line string
		want *bool
	}{
		{"    inspect: true\n", ptr(true)},
		{"    inspect: false\n", ptr(false)},
		{"    inspect: yes\n", nil}, // refused below: not a YAML 1.2 boolean
		{"    inspect: null\n", nil},
		{"", nil},
	} {
		src := base[:i] + tc.line + base[i:]
		cfg, err := parseTest(src, "valid.yaml")
		if strings.Contains(tc.line, "yes") {
			if err == nil {
				t.Errorf("%q accepted", tc.line)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got := cfg.Routes[0].Inspect; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: inspect = %v, want %v", tc.line, deref(got), deref(tc.want))
		}
	}
	// Every pointer-to-scalar field of the schema goes through the same
	// decoder branch; list them so a new one is not forgotten here.
	var found []string
	var walk func(t reflect.Type, path string, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, path string, seen map[reflect.Type]bool) {
		for t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() != reflect.Struct {
				found = append(found, path+key)
				continue
			}
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			walk(ft, path+key+".", seen)
		}
	}
	walk(reflect.TypeOf(Config{}), "", map[reflect.Type]bool{})
	if !reflect.DeepEqual(found, []string{"routes.inspect"}) {
		t.Errorf("pointer-to-scalar settings %v: add each to this test", found)
	}
}

func ptr[T any](v T) *T { return &v }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// TestRegression_ListenersThatCollideAreRefused: check refuses the
// listener pairs that run could not bind together — the same port through
// "localhost" and 127.0.0.1, every interface and one of them, the
// unspecified and the loopback IPv6 address — not only the same string.
func TestRegression_ListenersThatCollideAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b    string
		overlap bool
	}{
		{"localhost:8443", "127.0.0.1:8443", true},
		{":8443", "127.0.0.1:8443", true},
		{"0.0.0.0:8443", "10.0.0.5:8443", true},
		{"[::]:9090", "[::1]:9090", true},
		{"[::1]:9090", "localhost:9090", true},
		{"127.0.0.1:9090", "127.0.0.1:9090", true},
		{"127.0.0.1:9090", "127.0.0.1:8443", false},
		{"10.0.0.5:8443", "10.0.0.6:8443", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		if got := ListenersOverlap(tc.a, tc.b); got != tc.overlap {
			t.Errorf("%s and %s: overlap %v, want %v", tc.a, tc.b, got, tc.overlap)
		}
	}
	base := string(readTestdata(t, "valid.yaml"))
	for _, tc := range []struct{ from, to, field string }{
		{"  listen: \":8443\"", "  listen: \"localhost:9090\"", "server.admin"},
		{"  http_listen: \"\"", "  http_listen: \"127.0.0.1:8443\"", "server.http_listen"},
		{"  http_listen: \"\"", "  http_listen: \"localhost:9090\"", "server.http_listen"},
	} {
		_, err := parseTest(strings.Replace(base, tc.from, tc.to, 1), "valid.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.field+": must differ") {
			t.Errorf("%s → %s: %v", tc.from, tc.to, err)
		}
	}
}
