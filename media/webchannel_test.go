package media

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRegression_DataChannelLimits: the receiving side of the call's data
// channel (web/visit.js, Call.onChannel) enforces the chat and file
// limits itself, whatever the sender does: each case feeds one peer's
// messages to a Call and lists the events the page would see.
func TestRegression_DataChannelLimits(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	abs, err := filepath.Abs("web/visit.js")
	if err != nil {
		t.Fatal(err)
	}
	script := "import { Call, CHAT_MAX_CHARS, FILE_MAX_BYTES } from " + jsString("file://"+abs) + ";\n" + `
const head = (size, name = 'a.txt') => JSON.stringify({ t: 'file', name, size, type: 'text/plain' });
const end = JSON.stringify({ t: 'file-end' });
const chat = text => JSON.stringify({ t: 'chat', text });
const cases = {
  'chat': [chat('hi')],
  'chat at the limit': [chat('x'.repeat(CHAT_MAX_CHARS))],
  'chat over the limit': [chat('x'.repeat(CHAT_MAX_CHARS + 1))],
  'empty chat': [chat('')],
  'chat not text': [JSON.stringify({ t: 'chat', text: 42 })],
  'not JSON': ['{"t":"chat",'],
  'file': [head(3), new ArrayBuffer(2), new ArrayBuffer(1), end],
  'file announced over the limit': [head(FILE_MAX_BYTES + 1), new ArrayBuffer(10), end],
  'file size not a number': [head('lots'), new ArrayBuffer(10), end],
  'file longer than announced': [head(3), new ArrayBuffer(4)], // refused at once, not at its end
  'file longer, then more': [head(3), new ArrayBuffer(4), new ArrayBuffer(4), end],
  'file shorter than announced': [head(3), new ArrayBuffer(2), end],
  'bytes with no file': [new ArrayBuffer(8), end],
  'long file name': [head(1, 'n'.repeat(5000)), new ArrayBuffer(1), end],
};
const out = {};
for (const [name, msgs] of Object.entries(cases)) {
  const c = new Call('visit');
  c.nego.set('peer', { streams: new Map(), incoming: null });
  const seen = [];
  c.addEventListener('chat', e => seen.push('chat ' + e.detail.text.length));
  c.addEventListener('file', e => seen.push('file ' + e.detail.size + ' ' + e.detail.name.length));
  c.addEventListener('fileerror', e => seen.push('fileerror ' + e.detail.why));
  for (const m of msgs) c.onChannel('peer', m);
  out[name] = seen;
}
console.log(JSON.stringify(out));`
	b, err := exec.Command(node, "--input-type=module", "-e", script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, b)
	}
	var got map[string][]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	want := map[string][]string{
		"chat":                          {"chat 2"},
		"chat at the limit":             {"chat 2000"},
		"chat over the limit":           {},
		"empty chat":                    {},
		"chat not text":                 {},
		"not JSON":                      {},
		"file":                          {"file 3 5"},
		"file announced over the limit": {"fileerror too-big"},
		"file size not a number":        {"fileerror too-big"},
		"file longer than announced":    {"fileerror broken"},
		"file longer, then more":        {"fileerror broken"},
		"file shorter than announced":   {"fileerror broken"},
		"bytes with no file":            {},
		"long file name":                {"file 1 200"},
	}
	for name, w := range want {
		if g := got[name]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: events %q, want %q", name, g, w)
		}
	}
}
