package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// NodeTrail is one node's trail and checkpoints, for VerifyNodes.
type NodeTrail struct {
	// Dir is the directory it was found in (FindNodeTrail).
	Dir string
	// File is the trail; CheckpointDir holds its checkpoints and
	// VerifierKeyFile.
	File, CheckpointDir string
}

// FindNodeTrail finds a node's trail and checkpoints in dir, which is
// either the node's data directory (dir/audit/audit.log and
// dir/audit-checkpoints, the defaults) or a directory the trail was
// collected into (dir/audit.log, and dir/checkpoints or dir itself
// holding checkpoint.vkey).
// Errors: no trail file, or no verifier key file, in any of those places.
func FindNodeTrail(dir string) (NodeTrail, error) {
	nt := NodeTrail{Dir: dir}
	for _, f := range []string{filepath.Join(dir, "audit", "audit.log"), filepath.Join(dir, "audit.log")} {
		if _, err := os.Stat(f); err == nil {
			nt.File = f
			break
		}
	}
	for _, d := range []string{filepath.Join(dir, "audit-checkpoints"), filepath.Join(dir, "checkpoints"), dir} {
		if _, err := os.Stat(filepath.Join(d, VerifierKeyFile)); err == nil {
			nt.CheckpointDir = d
			break
		}
	}
	if nt.CheckpointDir == "" {
		return nt, fmt.Errorf("audit: %s: no %s in %s, %s or itself: a node's trail is verified with its checkpoints", dir, VerifierKeyFile, "audit-checkpoints/", "checkpoints/")
	}
	if nt.File == "" {
		// Removed whole: its checkpoints still tell what it held.
		nt.File = filepath.Join(dir, "audit.log")
	}
	return nt, nil
}

// NodeResult is VerifyNodes' finding for one node.
type NodeResult struct {
	NodeTrail
	// Node is the node id (NodeID of its verifier key), "" when the key
	// could not be read.
	Node string
	// Report is VerifyTrail's.
	Report Report
	// Err is VerifyTrail's error, or why the node was not verified.
	Err error
	// First and Last are the earliest and latest record times of the
	// verified records (zero for none).
	First, Last time.Time
}

// MergeReport is what VerifyNodes found: each node, in the order given,
// and the merged view of their verified records.
type MergeReport struct {
	Nodes []NodeResult
	// Records is the number of verified records of all nodes: the length
	// of the merged, time-ordered view.
	Records int
	// First and Last bound the merged view's times.
	First, Last time.Time
	// Broken is the number of nodes whose trail did not verify.
	Broken int
}

// VerifyNodes verifies several nodes' trails, each as VerifyTrail does
// with its own checkpoints and verifier key (its own chain, segments and
// node id), and reports each node and the merged view. Two trails of one
// node id are an error for the second (a node given twice, or two nodes
// sharing a checkpoint key, whose checkpoints could then stand in for
// each other). It never stops at a broken node: every node is reported.
func VerifyNodes(trails []NodeTrail) MergeReport {
	var mr MergeReport
	seen := map[string]string{}
	for _, nt := range trails {
		r := NodeResult{NodeTrail: nt}
		v, err := ReadVerifierKey(filepath.Join(nt.CheckpointDir, VerifierKeyFile))
		if err == nil {
			r.Node = NodeID(v)
			if other, dup := seen[r.Node]; dup {
				err = fmt.Errorf("audit: node %s again: %s has the same checkpoint key as %s (one node given twice, or nodes sharing a key)", r.Node, nt.Dir, other)
			}
			seen[r.Node] = nt.Dir
		}
		if err == nil {
			r.Report, err = verifyNode(nt, v, &r)
		}
		r.Err = err
		if err != nil {
			mr.Broken++
		}
		mr.Records += r.Report.Records
		if !r.First.IsZero() && (mr.First.IsZero() || r.First.Before(mr.First)) {
			mr.First = r.First
		}
		if r.Last.After(mr.Last) {
			mr.Last = r.Last
		}
		mr.Nodes = append(mr.Nodes, r)
	}
	return mr
}

// verifyNode verifies one node's trail, noting its records' times in r.
func verifyNode(nt NodeTrail, v note.Verifier, r *NodeResult) (Report, error) {
	f, err := OpenForVerify(Trail{File: nt.File}, true)
	if err != nil {
		return Report{}, err
	}
	defer f.Close()
	rep, err := ReadTrail(f, VerifyOptions{Verifier: v, CheckpointDir: nt.CheckpointDir}, func(rec Record) error {
		t := rec.Event.Time
		if r.First.IsZero() || t.Before(r.First) {
			r.First = t
		}
		if t.After(r.Last) {
			r.Last = t
		}
		return nil
	})
	return rep, err
}
