package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/telegate/telegate/audit"
	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/node"
)

const auditUsage = `Usage:
  telegate audit verify [-c FILE | --data-dir DIR] [--file PATH] [--checkpoints DIR] [--verifier-key KEY|PATH] [--key-file PATH] [--encryption-key-file PATH]
  telegate audit key [-c FILE | --data-dir DIR] [--checkpoints DIR]
  telegate audit new-segment [-c FILE | --data-dir DIR] --reason TEXT
`

// audit: telegate audit verify|key|new-segment
func (c cli) audit(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return c.auditVerify(args[1:])
		case "key":
			return c.auditKey(args[1:])
		case "new-segment":
			return c.auditNewSegment(args[1:])
		case "-h", "-help", "--help":
			fmt.Fprint(c.stdout, auditUsage)
			return exitOK
		}
	}
	fmt.Fprintf(c.stderr, "telegate audit: expected the subcommand \"verify\", \"key\" or \"new-segment\"\n\n%s", auditUsage)
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

// auditVerify: telegate audit verify. It needs only the trail (its
// segment files in order), the checkpoints and the public verifier key;
// the HMAC key adds the check of every line's mac; a sealed trail needs
// its encryption key file.
func (c cli) auditVerify(args []string) int {
	fs := c.flags("audit verify", "telegate audit verify [-c FILE | --data-dir DIR] [--file PATH] [--checkpoints DIR] [--verifier-key KEY|PATH] [--key-file PATH] [--encryption-key-file PATH]")
	place := c.placeFlags(fs)
	file := fs.String("file", "", "audit trail `PATH` (default: the configuration's audit.file, or DIR/audit/audit.log)")
	ckDir := fs.String("checkpoints", "", "checkpoint `DIR` (default: the configuration's audit.checkpoint_dir, or DIR/audit-checkpoints)")
	vkey := fs.String("verifier-key", "", "the checkpoints' verifier `KEY`, or a file holding it (default: checkpoint.vkey in the checkpoint directory; give the key you recorded to catch a replaced directory)")
	keyFile := fs.String("key-file", "", "also check every line's HMAC with the audit key in `PATH` (base64; a secret, not needed otherwise)")
	encFile := fs.String("encryption-key-file", "", "open sealed segment files with the key in `PATH` (default: the configuration's audit.encryption_key_file)")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "telegate audit verify: %v\n", err)
		return exitFail
	}
	cfg, err := place.settings()
	if err != nil {
		c.printErrors(err)
		return exitFail
	}
	path, dir := or(*file, cfg.Audit.File), or(*ckDir, cfg.Audit.CheckpointDir)
	o := audit.VerifyOptions{}
	if *keyFile != "" {
		k, err := config.ReadAuditKeyFile(*keyFile)
		if err != nil {
			return fail(err)
		}
		o.Key = k
	}
	switch {
	case *vkey != "":
		v, err := audit.ParseVerifierKey(*vkey)
		if err != nil {
			if v, err = audit.ReadVerifierKey(*vkey); err != nil {
				return fail(err)
			}
		}
		o.Verifier = v
	default:
		v, err := audit.ReadVerifierKey(filepath.Join(dir, audit.VerifierKeyFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(c.stderr, "telegate audit verify: warning: no verifier key in %s: checkpoints not checked, so records cut from the end cannot be seen\n", dir)
		case err != nil:
			return fail(err)
		default:
			o.Verifier = v
		}
	}
	if o.Verifier != nil {
		o.CheckpointDir = dir
	}
	tr := audit.Trail{File: path}
	if ef := or(*encFile, cfg.Audit.EncryptionKeyFile); ef != "" {
		if tr.EncryptionKey, err = config.ReadAuditEncryptionKeyFile(ef); err != nil {
			return fail(err)
		}
	}
	files, err := tr.Files()
	if err != nil {
		return fail(err)
	}
	if len(files) == 0 && o.Verifier == nil {
		return fail(fmt.Errorf("no trail at %s", path))
	} // a trail removed whole: the checkpoints still count
	r, err := tr.Open()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	rep, err := audit.VerifyTrail(r, o)
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
		fmt.Fprintf(c.stderr, "telegate audit new-segment: %v\n\nA new segment continues only a trail that is intact up to where it ends. Keep this one for investigation, move it (and its rotated segment files, FILE.NNNNNN) aside, and run new-segment again: the new trail file then starts with the record of the gap.\n", te.Err)
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
