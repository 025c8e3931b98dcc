package audit

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// tree is the RFC 6962 Merkle tree (§2.1) over one segment's records, each
// leaf being a record line without its newline (tlog.RecordHash). It keeps
// only the frontier — the roots of the complete subtrees that make up the
// tree, at most 64 hashes — which is all that tlog.StoredHashes needs to
// add a record and tlog.TreeHash needs for the root.
type tree struct {
	n        int64
	frontier []storedHash
}

type storedHash struct {
	index int64
	hash  tlog.Hash
}

// ReadHashes implements tlog.HashReader for the frontier's hashes.
func (t *tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
next:
	for i, x := range indexes {
		for _, s := range t.frontier {
			if s.index == x {
				out[i] = s.hash
				continue next
			}
		}
		return nil, fmt.Errorf("audit: tree hash %d is not on the frontier of a tree of %d records", x, t.n)
	}
	return out, nil
}

// add appends one record (its line without the newline).
func (t *tree) add(line []byte) {
	hs, err := tlog.StoredHashes(t.n, line, t)
	if err != nil {
		panic(err) // the frontier always holds what StoredHashes reads
	}
	base := tlog.StoredHashIndex(0, t.n)
	t.n++
	keep := frontierIndexes(t.n)
	next := make([]storedHash, 0, len(keep))
	for _, x := range keep {
		if x >= base {
			next = append(next, storedHash{x, hs[x-base]})
			continue
		}
		for _, s := range t.frontier {
			if s.index == x {
				next = append(next, s)
			}
		}
	}
	t.frontier = next
}

// root is the tree head (RFC 6962 §2.1), the hash of the empty string for
// no records.
func (t *tree) root() tlog.Hash {
	h, err := tlog.TreeHash(t.n, t)
	if err != nil {
		panic(err)
	}
	return h
}

// frontierIndexes are the stored-hash indexes of the complete subtrees
// that a tree of n records splits into, largest (leftmost) first.
func frontierIndexes(n int64) []int64 {
	var out []int64
	var lo int64
	for rest := uint64(n); rest != 0; {
		level := 63 - bits.LeadingZeros64(rest)
		out = append(out, tlog.StoredHashIndex(level, lo>>level))
		lo += 1 << level
		rest &^= 1 << level
	}
	return out
}
