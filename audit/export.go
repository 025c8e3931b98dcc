package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Export formats.
const (
	// FormatFHIR is a FHIR R4 Bundle of AuditEvents (FHIRMapper).
	FormatFHIR = "fhir"
	// FormatJSONL is the trail's own records, one per line, as written
	// (seq, prev and mac included, so the copy still verifies as a chain).
	FormatJSONL = "jsonl"
)

// ExportOptions say what Export writes.
type ExportOptions struct {
	// Format is FormatFHIR or FormatJSONL.
	Format string
	// Since and Until bound the records' times: Since <= time < Until;
	// zero is no bound.
	Since, Until time.Time
	// Node is the node id written into AuditEvents (NodeID).
	Node string
	// BundleType is BundleCollection (default) or BundleBatch.
	BundleType string
	// Now stamps the Bundle; zero: time.Now().
	Now time.Time
}

// ExportReport is what Export did: the verification Report of the trail
// and the number of records written.
type ExportReport struct {
	Report
	Exported int
}

// Export reads the trail r, verifying it as it goes (ReadTrail with vo),
// and writes the records of the time window to w in the format of xo.
// Every record of the trail, also outside the window, is read (the FHIR
// mapping learns the configuration hashes from them). The output is
// complete only when the error is nil: a trail that does not verify ends
// the export at its first bad record with ReadTrail's error, and the
// caller must not hand on what was written (the command writes to a
// temporary file, renamed only on success).
// Errors: an unknown format or bundle type; ReadTrail's; w's.
func Export(w io.Writer, r io.Reader, vo VerifyOptions, xo ExportOptions) (ExportReport, error) {
	if xo.BundleType == "" {
		xo.BundleType = BundleCollection
	}
	if xo.Format != FormatFHIR && xo.Format != FormatJSONL {
		return ExportReport{}, fmt.Errorf("audit: export format %q: want %q or %q", xo.Format, FormatFHIR, FormatJSONL)
	}
	if xo.BundleType != BundleCollection && xo.BundleType != BundleBatch {
		return ExportReport{}, fmt.Errorf("audit: bundle type %q: want %q or %q", xo.BundleType, BundleCollection, BundleBatch)
	}
	if xo.Now.IsZero() {
		xo.Now = time.Now()
	}
	bw := bufio.NewWriter(w)
	m := &FHIRMapper{Node: xo.Node}
	var rep ExportReport
	if xo.Format == FormatFHIR {
		fmt.Fprintf(bw, `{"resourceType":"Bundle","type":%q,"timestamp":%q,"entry":[`, xo.BundleType, xo.Now.UTC().Format(fhirInstantShape))
	}
	var werr error
	r0, err := ReadTrail(r, vo, func(rec Record) error {
		m.Observe(rec)
		t := rec.Event.Time
		if (!xo.Since.IsZero() && t.Before(xo.Since)) || (!xo.Until.IsZero() && !t.Before(xo.Until)) {
			return nil
		}
		if xo.Format == FormatJSONL {
			bw.Write(rec.Raw)
			werr = bw.WriteByte('\n')
		} else {
			b, err := json.Marshal(Entry(m.AuditEvent(rec), xo.BundleType))
			if err != nil {
				return err
			}
			if rep.Exported > 0 {
				bw.WriteByte(',')
			}
			_, werr = bw.Write(b)
		}
		rep.Exported++
		return werr
	})
	rep.Report = r0
	if err != nil {
		return rep, err
	}
	if xo.Format == FormatFHIR {
		bw.WriteString("]}\n")
	}
	return rep, bw.Flush()
}

// NodeID is the node id of a trail whose checkpoints v verifies: the
// name of its checkpoint signer without the "telegate-audit/" prefix
// (the host name the node had when its key was made).
func NodeID(v note.Verifier) string {
	return strings.TrimPrefix(v.Name(), originPrefix)
}

// SignerNodeID is the node id of the trail whose checkpoints the signer
// key skey ("PRIVATE+KEY+<name>+…", CheckpointSigningKey) signs: the
// name without the "telegate-audit/" prefix; LocalNodeID for a key
// without a name.
func SignerNodeID(skey string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+")
	if name == "" {
		return LocalNodeID()
	}
	return strings.TrimPrefix(name, originPrefix)
}

// LocalNodeID is the node id this host's new checkpoint key would get:
// its host name.
func LocalNodeID() string {
	return strings.TrimPrefix(nodeName(), originPrefix)
}

// OpenForVerify opens trail t (its segment files in order, Trail.Open)
// for VerifyTrail, ReadTrail or Export; a trail removed whole reads as
// empty when there are checkpoints to tell what it held
// (haveCheckpoints), so that its verification reports every record
// missing rather than failing to open. Without checkpoints a missing
// trail is an error wrapping fs.ErrNotExist.
func OpenForVerify(t Trail, haveCheckpoints bool) (*Reader, error) {
	files, err := t.Files()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 && !haveCheckpoints {
		return nil, fmt.Errorf("audit: no trail at %s: %w", t.File, fs.ErrNotExist)
	}
	return t.Open()
}
