package audit

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestTreeMatchesFullTree checks the frontier tree against tlog's own
// computation over every stored hash.
func TestTreeMatchesFullTree(t *testing.T) {
	t.Parallel()
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = all[x]
		}
		return out, nil
	})
	var tr tree
	for n := int64(0); n < 300; n++ {
		want, _ := tlog.TreeHash(n, r)
		if got := tr.root(); got != want {
			t.Fatalf("size %d: root %v, want %v", n, got, want)
		}
		line := []byte(fmt.Sprintf("record %d", n))
		hs, err := tlog.StoredHashes(n, line, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
		tr.add(line)
	}
}
