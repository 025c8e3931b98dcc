package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/node"
)

const auditUsage = `Usage:
  telegate audit verify [-c FILE | --data-dir DIR] [--file PATH] [--checkpoints DIR] [--verifier-key KEY|PATH] [--key-file PATH] [--encryption-key-file PATH] [--witnessed FILE]...
  telegate audit verify --merge DIR...
  telegate audit export [--format fhir|jsonl] [--since RFC3339] [--until RFC3339] [--out FILE] [flags of verify] [TRAIL]
  telegate audit key [-c FILE | --data-dir DIR] [--checkpoints DIR]
  telegate audit new-segment [-c FILE | --data-dir DIR] --reason TEXT
`

// audit: telegate audit verify|key|new-segment
func (c cli) audit(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return c.auditVerify(args[1:])
		case "export":
			return c.auditExport(args[1:])
		case "key":
			return c.auditKey(args[1:])
		case "new-segment":
			return c.auditNewSegment(args[1:])
		case "-h", "-help", "--help":
			fmt.Fprint(c.stdout, auditUsage)
			return exitOK
		}
	}
	fmt.Fprintf(c.stderr, "telegate audit: expected the subcommand \"verify\", \"export\", \"key\" or \"new-segment\"\n\n%s", auditUsage)
	return exitUsage
}

// auditPlace is where a node keeps its trail: from -c FILE (read without
// its secrets, config.LoadSettings) or from a data directory.
type auditPlace struct {
	cfgPath, dataDir *string
}

func (c cli) placeFlags(fs *flag.FlagSet) auditPlace {
	var p auditPlace
	p.cfgPath = new(string)
	fs.StringVar(p.cfgPath, "c", "", "configuration `FILE` naming the trail (its secrets are not read)")
	fs.StringVar(p.cfgPath, "config", "", "configuration `FILE` (same as -c)")
	p.dataDir = fs.String("data-dir", config.DefaultDataDir, "data `DIR` when no configuration is given")
	return p
}

// settings returns the configuration (defaults applied) the place names.
func (p auditPlace) settings() (*config.Config, error) {
	if *p.cfgPath != "" {
		return config.LoadSettings(*p.cfgPath)
	}
	cfg := &config.Config{DataDir: *p.dataDir}
	cfg.ApplyDefaults()
	return cfg, nil
}

// trailFlags name a trail and what verifies it: -c FILE or --data-dir,
// --file, --checkpoints, --verifier-key, --key-file.
type trailFlags struct {
	place                               auditPlace
	file, ckDir, vkey, keyFile, encFile *string
}

func (c cli) trailFlags(fs *flag.FlagSet) trailFlags {
	return trailFlags{
		place:   c.placeFlags(fs),
		file:    fs.String("file", "", "audit trail `PATH` (default: the configuration's audit.file, or DIR/audit/audit.log)"),
		ckDir:   fs.String("checkpoints", "", "checkpoint `DIR` (default: the configuration's audit.checkpoint_dir, or DIR/audit-checkpoints)"),
		vkey:    fs.String("verifier-key", "", "the checkpoints' verifier `KEY`, or a file holding it (default: checkpoint.vkey in the checkpoint directory; give the key you recorded to catch a replaced directory)"),
		keyFile: fs.String("key-file", "", "also check every line's HMAC with the audit key in `PATH` (base64; a secret, not needed otherwise)"),
		encFile: fs.String("encryption-key-file", "", "open sealed segment files with the key in `PATH` (default: the configuration's audit.encryption_key_file)"),
	}
}

// resolve returns the trail (its file, and the key of sealed segment
// files) and the options that verify it. No secret of the configuration is
// read: only the trail, the checkpoints, the public verifier key and, when
// given, --key-file and the encryption key file (--encryption-key-file or
// audit.encryption_key_file). A missing verifier key file is a warning on
// stderr (checkpoints not checked).
func (c cli) resolve(cmd string, tf trailFlags) (audit.Trail, audit.VerifyOptions, error) {
	cfg, err := tf.place.settings()
	if err != nil {
		return audit.Trail{}, audit.VerifyOptions{}, err
	}
	path, dir := or(*tf.file, cfg.Audit.File), or(*tf.ckDir, cfg.Audit.CheckpointDir)
	tr := audit.Trail{File: path}
	o := audit.VerifyOptions{}
	if *tf.keyFile != "" {
		if o.Key, err = config.ReadAuditKeyFile(*tf.keyFile); err != nil {
			return tr, o, err
		}
	}
	if ef := or(*tf.encFile, cfg.Audit.EncryptionKeyFile); ef != "" {
		if tr.EncryptionKey, err = config.ReadAuditEncryptionKeyFile(ef); err != nil {
			return tr, o, err
		}
	}
	switch {
	case *tf.vkey != "":
		v, err := audit.ParseVerifierKey(*tf.vkey)
		if err != nil {
			if v, err = audit.ReadVerifierKey(*tf.vkey); err != nil {
				return tr, o, err
			}
		}
		o.Verifier = v
	default:
		v, err := audit.ReadVerifierKey(filepath.Join(dir, audit.VerifierKeyFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(c.stderr, "telegate audit %s: warning: no verifier key in %s: checkpoints not checked, so records cut from the end cannot be seen\n", cmd, dir)
		case err != nil:
			return tr, o, err
		default:
			o.Verifier = v
		}
	}
	if o.Verifier != nil {
		o.CheckpointDir = dir
	}
	return tr, o, nil
}

// auditVerify: telegate audit verify. It needs only the trail (its
// segment files in order), the checkpoints and the public verifier key;
// the HMAC key adds the check of every line's mac; a sealed trail needs
// its encryption key file.
func (c cli) auditVerify(args []string) int {
	fs := c.flags("audit verify", "telegate audit verify [-c FILE | --data-dir DIR] [--file PATH] [--checkpoints DIR] [--verifier-key KEY|PATH] [--key-file PATH] [--encryption-key-file PATH] [--witnessed FILE]... | --merge DIR...")
	tf := c.trailFlags(fs)
	merge := fs.Bool("merge", false, "verify the trails of several nodes together: each argument DIR is a node's data directory, or a directory holding its audit.log and its checkpoints")
	var witnessed []string
	fs.Func("witnessed", "also check the trail against the checkpoint in `FILE`, as a witness kept it (audit.witness: the note, or the webhook's JSON body); repeatable", func(s string) error {
		witnessed = append(witnessed, s)
		return nil
	})
	if st := c.parseArgs(fs, args, -1); st >= 0 {
		return st
	}
	if *merge && len(witnessed) > 0 {
		return c.usageError(fs, "--witnessed checks one trail; verify each node's with its own")
	}
	if !*merge && fs.NArg() > 0 {
		return c.usageError(fs, fmt.Sprintf("unexpected argument %q (several trails: --merge DIR...)", fs.Arg(0)))
	}
	if *merge {
		return c.auditVerifyMerge(fs.Args(), tf)
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "telegate audit verify: %v\n", err)
		return exitFail
	}
	tr, o, err := c.resolve("verify", tf)
	path := tr.File
	var cerrs config.Errors
	if errors.As(err, &cerrs) {
		c.printErrors(err)
		return exitFail
	}
	if err != nil {
		return fail(err)
	}
	for _, w := range witnessed {
		if o.Verifier == nil {
			return fail(errors.New("--witnessed needs the verifier key (--verifier-key, or checkpoint.vkey in the checkpoint directory)"))
		}
		cp, err := audit.ReadCheckpointFile(w, o.Verifier)
		if err != nil {
			return fail(err)
		}
		o.Witnessed = append(o.Witnessed, cp)
	}
	files, err := tr.Files()
	if err != nil {
		return fail(err)
	}
	f, err := audit.OpenForVerify(tr, o.Verifier != nil)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	rep, err := audit.VerifyTrail(f, o)
	for _, g := range rep.Gaps {
		if g.Missing > 0 {
			fmt.Fprintf(c.stdout, "%s: GAP recorded at line %d (%s): segment %d lost records %d..%d (%d records) of its checkpoint at %d; reason: %q\n",
				path, g.Line, g.Time.Format("2006-01-02T15:04:05Z07:00"), g.Segment, g.Present+1, g.CheckpointSize, g.Missing, g.CheckpointSize, g.Reason)
		} else {
			fmt.Fprintf(c.stdout, "%s: new segment %d at line %d (%s), nothing missing; reason: %q\n", path, g.Segment+1, g.Line, g.Time.Format("2006-01-02T15:04:05Z07:00"), g.Reason)
		}
	}
	if err != nil {
		fmt.Fprintf(c.stdout, "%s: BROKEN after %d intact records: %v\n", path, rep.Records, err)
		return exitFail
	}
	var checked []string
	checked = append(checked, "chain")
	if o.Key != nil {
		checked = append(checked, "HMAC")
	}
	if o.Verifier != nil {
		s := fmt.Sprintf("%d checkpoints signed by %s", rep.Checkpoints, o.Verifier.Name())
		if rep.Latest != nil {
			s += fmt.Sprintf(", latest segment %d at %d records, %s", rep.Latest.Segment, rep.Latest.Size, rep.Latest.Time.Format("2006-01-02T15:04:05Z07:00"))
		}
		checked = append(checked, s)
	}
	if len(files) > 1 {
		checked = append(checked, fmt.Sprintf("%d segment files", len(files)))
	}
	fmt.Fprintf(c.stdout, "%s: ok, %d records verified (%s)\n", path, rep.Records, strings.Join(checked, "; "))
	return exitOK
}

// auditVerifyMerge: telegate audit verify --merge DIR... verifies each
// node's trail with its own checkpoints and key, and reports each node
// and the merged view.
func (c cli) auditVerifyMerge(dirs []string, tf trailFlags) int {
	if len(dirs) == 0 {
		fmt.Fprintf(c.stderr, "telegate audit verify: --merge needs one DIR per node\n")
		return exitUsage
	}
	if *tf.file != "" || *tf.ckDir != "" || *tf.vkey != "" || *tf.keyFile != "" {
		fmt.Fprintf(c.stderr, "telegate audit verify: --merge takes each node's trail and checkpoints from its DIR, not from --file, --checkpoints, --verifier-key or --key-file\n")
		return exitUsage
	}
	var trails []audit.NodeTrail
	for _, d := range dirs {
		nt, err := audit.FindNodeTrail(d)
		if err != nil {
			fmt.Fprintf(c.stderr, "telegate audit verify: %v\n", err)
			return exitFail
		}
		trails = append(trails, nt)
	}
	mr := audit.VerifyNodes(trails)
	const ts = "2006-01-02T15:04:05Z07:00"
	for _, r := range mr.Nodes {
		name := or(r.Node, "?")
		if r.Err != nil {
			fmt.Fprintf(c.stdout, "node %s (%s): BROKEN after %d intact records: %v\n", name, r.File, r.Report.Records, r.Err)
			continue
		}
		s := fmt.Sprintf("node %s (%s): ok, %d records verified (chain; %d checkpoints", name, r.File, r.Report.Records, r.Report.Checkpoints)
		if r.Report.Latest != nil {
			s += fmt.Sprintf(", latest segment %d at %d records", r.Report.Latest.Segment, r.Report.Latest.Size)
		}
		s += ")"
		if !r.First.IsZero() {
			s += fmt.Sprintf(", %s .. %s", r.First.Format(ts), r.Last.Format(ts))
		}
		for _, g := range r.Report.Gaps {
			if g.Missing > 0 {
				s += fmt.Sprintf("; GAP recorded at line %d: segment %d lost %d records", g.Line, g.Segment, g.Missing)
			}
		}
		fmt.Fprintln(c.stdout, s)
	}
	nodes := "nodes"
	if len(mr.Nodes) == 1 {
		nodes = "node"
	}
	s := fmt.Sprintf("merged: %d records of %d %s in time order", mr.Records, len(mr.Nodes), nodes)
	if !mr.First.IsZero() {
		s += fmt.Sprintf(", %s .. %s", mr.First.Format(ts), mr.Last.Format(ts))
	}
	if mr.Broken > 0 {
		fmt.Fprintf(c.stdout, "%s; %d of %d nodes BROKEN\n", s, mr.Broken, len(mr.Nodes))
		return exitFail
	}
	fmt.Fprintf(c.stdout, "%s; all verified\n", s)
	return exitOK
}

// auditExport: telegate audit export writes the records of a time window
// as a FHIR Bundle of AuditEvents or as JSON lines, from a trail that
// verifies (no secret needed).
func (c cli) auditExport(args []string) int {
	fs := c.flags("audit export", exportUsage)
	tf := c.trailFlags(fs)
	format := fs.String("format", audit.FormatFHIR, "`FORMAT`: fhir (a FHIR R4 Bundle of AuditEvents) or jsonl (the trail's records as written, one a line)")
	bundle := fs.String("bundle", audit.BundleCollection, "FHIR Bundle `TYPE`: collection, or batch (each AuditEvent PUT at AuditEvent/<id>)")
	since := fs.String("since", "", "first record `TIME` (RFC 3339, inclusive; default: the first record)")
	until := fs.String("until", "", "end `TIME` (RFC 3339, exclusive; default: after the last record)")
	out := fs.String("out", "", "write to `FILE` (replaced only when the whole trail verified); default standard output")
	node := fs.String("node", "", "node id in the AuditEvents (default: the name of the checkpoints' key, else this host's name)")
	if st := c.parseArgs(fs, args, 1); st >= 0 {
		return st
	}
	if fs.NArg() == 1 {
		*tf.file = fs.Arg(0)
	}
	var xo audit.ExportOptions
	xo.Format, xo.BundleType = *format, *bundle
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--since", *since, &xo.Since}, {"--until", *until, &xo.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			return c.usageError(fs, fmt.Sprintf("%s %q: not an RFC 3339 time such as 2026-03-01T00:00:00Z", t.flag, t.v))
		}
		*t.dst = v
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "telegate audit export: %v\n", err)
		return exitFail
	}
	tr, o, err := c.resolve("export", tf)
	path := tr.File
	if err != nil {
		c.printErrors(err)
		return exitFail
	}
	xo.Node = *node
	switch {
	case xo.Node != "":
	case o.Verifier != nil:
		xo.Node = audit.NodeID(o.Verifier)
	default:
		xo.Node = audit.LocalNodeID()
	}
	f, err := audit.OpenForVerify(tr, o.Verifier != nil)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	w, commit := io.Writer(c.stdout), func() error { return nil }
	if *out != "" {
		tmp, err := os.CreateTemp(filepath.Dir(*out), ".export-*")
		if err != nil {
			return fail(err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		w = tmp
		commit = func() error {
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			return os.Rename(tmp.Name(), *out)
		}
	}
	rep, err := audit.Export(w, f, o, xo)
	if err == nil {
		err = commit()
	}
	if err != nil {
		var ve *audit.VerifyError
		if errors.As(err, &ve) {
			fmt.Fprintf(c.stderr, "telegate audit export: %s does not verify after %d records, nothing exported: %v\n", path, rep.Records, err)
			return exitFail
		}
		return fail(err)
	}
	fmt.Fprintf(c.stderr, "telegate audit export: %d of %d records exported from %s\n", rep.Exported, rep.Records, path)
	return exitOK
}

const exportUsage = "telegate audit export [--format fhir|jsonl] [--bundle collection|batch] [--since RFC3339] [--until RFC3339] [--out FILE] [-c FILE | --data-dir DIR] [--checkpoints DIR] [--verifier-key KEY|PATH] [--node NAME] [TRAIL]"

// auditKey: telegate audit key prints the checkpoints' verifier key.
func (c cli) auditKey(args []string) int {
	fs := c.flags("audit key", "telegate audit key [-c FILE | --data-dir DIR] [--checkpoints DIR]")
	place := c.placeFlags(fs)
	ckDir := fs.String("checkpoints", "", "checkpoint `DIR` (default: the configuration's audit.checkpoint_dir, or DIR/audit-checkpoints)")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	cfg, err := place.settings()
	if err != nil {
		c.printErrors(err)
		return exitFail
	}
	dir := or(*ckDir, cfg.Audit.CheckpointDir)
	b, err := os.ReadFile(filepath.Join(dir, audit.VerifierKeyFile))
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate audit key: %v (telegate writes it at its first start)\n", err)
		return exitFail
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(string(b)))
	return exitOK
}

// auditNewSegment: telegate audit new-segment starts a new segment of a
// trail, recording the gap below its latest checkpoint, so that telegate
// starts again. It writes a record, so it needs the audit key.
func (c cli) auditNewSegment(args []string) int {
	fs := c.flags("audit new-segment", "telegate audit new-segment [-c FILE | --data-dir DIR] --reason TEXT")
	var cfgPath string
	fs.StringVar(&cfgPath, "c", "", "configuration `FILE` of the node (telegate must not be running)")
	fs.StringVar(&cfgPath, "config", "", "configuration `FILE` (same as -c)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data `DIR` when no configuration is given")
	reason := fs.String("reason", "", "why the trail continues after a gap (kept in the new segment's first record; no patient data)")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	if strings.TrimSpace(*reason) == "" {
		return c.usageError(fs, "--reason TEXT is required")
	}
	var cfg *config.Config
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			c.printErrors(err)
			return exitFail
		}
	} else {
		cfg = &config.Config{DataDir: *dataDir}
		cfg.ApplyDefaults()
	}
	o, err := node.AuditOptions(cfg)
	if err == nil {
		o.NewSegmentReason = *reason
		var l *audit.Log
		if l, err = audit.OpenTrail(o); err == nil {
			err = l.Close()
		}
	}
	if te := (*audit.TrailError)(nil); errors.As(err, &te) {
		fmt.Fprintf(c.stderr, "telegate audit new-segment: %v\n\nA new segment continues only a trail that is intact up to where it ends. Keep this one for investigation, move it aside, and run new-segment again: the new trail file then starts with the record of the gap.\n", te.Err)
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate audit new-segment: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(c.stdout, "%s: new segment started; `telegate audit verify` reports the gap it records\n", cfg.Audit.File)
	return exitOK
}

// or is a, or b when a is "".
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
