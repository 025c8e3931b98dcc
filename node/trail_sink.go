//go:build !telegate_bench_notrail

package node

import "github.com/telegate/telegate/audit"

// requestSink is where the gateway's request records go: the trail.
// (e2e/edgebench builds telegate with the tag telegate_bench_notrail,
// where they go nowhere, to measure what the trail costs a request.)
func requestSink(trail *audit.Log) audit.Sink { return trail }
