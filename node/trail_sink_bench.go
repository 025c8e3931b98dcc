//go:build telegate_bench_notrail

package node

import "github.com/telegate/telegate/audit"

// requestSink in this build — made only by e2e/edgebench -audit, to
// measure the trail's cost on the request path — drops request records.
// Never run it in front of patients.
func requestSink(*audit.Log) audit.Sink { return audit.Discard{} }
