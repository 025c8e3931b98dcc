package audit

import "golang.org/x/mod/sumdb/tlog"

// tree is the RFC 6962 Merkle tree (§2.1) over one segment's records, each
// leaf being a record line without its newline (tlog.RecordHash). It keeps
// only the frontier — the roots of the complete subtrees that make up the
// tree, largest (leftmost) first, one per bit set in n, at most 64 hashes
// — which is all that adding a record and computing the root need. add
// changes the frontier in place (the writer copies it, in place too, for
// the syncer: Log.head).
type tree struct {
	n        int64
	frontier []tlog.Hash
}

// add appends one record (its line without the newline): its leaf hash
// merges with the subtrees of equal size at the frontier's end.
func (t *tree) add(line []byte) {
	h := tlog.RecordHash(line)
	for n := t.n; n&1 == 1; n >>= 1 {
		last := len(t.frontier) - 1
		h = tlog.NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
	}
	t.frontier = append(t.frontier, h)
	t.n++
}

// root is the tree head (RFC 6962 §2.1), the hash of the empty string for
// no records: MTH(D[0:n]) = H(1 || MTH(D[0:k]) || MTH(D[k:n])), k the
// largest power of two below n, folded from the frontier's right end.
func (t *tree) root() tlog.Hash {
	if len(t.frontier) == 0 {
		h, _ := tlog.TreeHash(0, nil) // SHA-256 of the empty string
		return h
	}
	h := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.frontier[i], h)
	}
	return h
}
