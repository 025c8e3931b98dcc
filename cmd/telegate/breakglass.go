package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/policies"
)

const breakglassUsage = `Usage:
  telegate breakglass list [-c FILE | --admin ADDR] [--json]
  telegate breakglass review ID --outcome justified|unjustified|needs-follow-up [--note TEXT] [--reviewer NAME] [-c FILE | --admin ADDR]

Both talk to a running node's admin listener (server.admin), which reads
and writes the grants where every node keeps them (the session store).
`

// adminTimeout bounds one call to the admin listener.
const adminTimeout = 10 * time.Second

// breakglass: telegate breakglass list|review
func (c cli) breakglass(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return c.breakglassList(args[1:])
		case "review":
			return c.breakglassReview(args[1:])
		case "-h", "-help", "--help":
			fmt.Fprint(c.stdout, breakglassUsage)
			return exitOK
		}
	}
	fmt.Fprintf(c.stderr, "telegate breakglass: expected the subcommand \"list\" or \"review\"\n\n%s", breakglassUsage)
	return exitUsage
}

// adminPlace is the admin listener to call: --admin ADDR, or server.admin
// of -c FILE (read without its secrets), or config.DefaultAdmin.
type adminPlace struct{ cfgPath, addr *string }

func adminFlags(fs *flag.FlagSet) adminPlace {
	var p adminPlace
	p.cfgPath = new(string)
	fs.StringVar(p.cfgPath, "c", "", "configuration `FILE` naming the admin listener (server.admin; its secrets are not read)")
	fs.StringVar(p.cfgPath, "config", "", "configuration `FILE` (same as -c)")
	p.addr = fs.String("admin", "", "admin listener `ADDR` (host:port); default server.admin of -c FILE, else "+config.DefaultAdmin)
	return p
}

// base is the admin listener's base URL. A listener on every interface
// (":9090", "0.0.0.0:9090") is called on loopback.
func (p adminPlace) base() (string, error) {
	addr := *p.addr
	if addr == "" && *p.cfgPath != "" {
		cfg, err := config.LoadSettings(*p.cfgPath)
		if err != nil {
			return "", err
		}
		addr = cfg.Server.Admin
	}
	if addr == "" {
		addr = config.DefaultAdmin
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin listener %q: %v", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// call sends req to the admin listener and decodes its JSON answer into
// out; a refusal comes back as the listener's sentence.
func call(req *http.Request, out any) error {
	resp, err := (&http.Client{Timeout: adminTimeout}).Do(req)
	if err != nil {
		return fmt.Errorf("the admin listener did not answer (is telegate running?): %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("the admin listener answered HTTP %d", resp.StatusCode)
	}
	return json.Unmarshal(b, out)
}

// breakglass list: every use, newest first, with its state and review.
func (c cli) breakglassList(args []string) int {
	fs := c.flags("breakglass list", "telegate breakglass list [-c FILE | --admin ADDR] [--json]")
	place := adminFlags(fs)
	asJSON := fs.Bool("json", false, "print the uses as JSON")
	if st := c.parse(fs, args); st >= 0 {
		return st
	}
	base, err := place.base()
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate breakglass list: %v\n", err)
		return exitFail
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/break-glass", nil)
	var out struct {
		Uses []policies.UseView `json:"uses"`
	}
	if err := call(req, &out); err != nil {
		fmt.Fprintf(c.stderr, "telegate breakglass list: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tISSUER\tSUBJECT\tREASON\tGRANTED\tEXPIRES\tSTATE\tREVIEW")
	for _, u := range out.Uses {
		review := u.Reviewed()
		if u.Review != nil {
			review += " by " + u.Review.Subject + " (" + u.Review.Via + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.GrantID, u.Route, u.Issuer, u.Subject, u.Reason,
			u.Granted.Format(time.RFC3339), u.Expires.Format(time.RFC3339), u.State, review)
	}
	_ = tw.Flush()
	return exitOK
}

// breakglass review ID: records the operator's outcome for one use.
func (c cli) breakglassReview(args []string) int {
	fs := c.flags("breakglass review", "telegate breakglass review ID --outcome OUTCOME [--note TEXT] [--reviewer NAME] [-c FILE | --admin ADDR]")
	place := adminFlags(fs)
	outcome := fs.String("outcome", "", "the review's `OUTCOME`: "+strings.Join(policies.BreakGlassOutcomes, ", "))
	note := fs.String("note", "", "a note kept with the review (never written to the audit trail)")
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	reviewer := fs.String("reviewer", who, "the reviewer's `NAME`, recorded with the review and in the audit trail (default the login name)")
	// The ID comes first, or after the flags ("--" before it there when it
	// starts with "-", as base64url IDs may): a first argument is a flag
	// only if it names one.
	var id string
	if len(args) > 0 && !namesFlag(fs, args[0]) {
		id, args = args[0], args[1:]
	}
	if st := c.parseArgs(fs, args, 1); st >= 0 {
		return st
	}
	if fs.NArg() == 1 {
		if id != "" {
			return c.usageError(fs, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
		}
		id = fs.Arg(0)
	}
	if id == "" {
		return c.usageError(fs, "the use's ID is required (see telegate breakglass list)")
	}
	if *outcome == "" {
		return c.usageError(fs, "--outcome is required")
	}
	base, err := place.base()
	if err != nil {
		fmt.Fprintf(c.stderr, "telegate breakglass review: %v\n", err)
		return exitFail
	}
	form := url.Values{"outcome": {*outcome}, "note": {*note}, "reviewer": {*reviewer}}
	req, _ := http.NewRequest(http.MethodPost, base+"/break-glass/"+url.PathEscape(id)+"/review", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var u policies.UseView
	if err := call(req, &u); err != nil {
		fmt.Fprintf(c.stderr, "telegate breakglass review: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(c.stdout, "use %s (%s on %s) reviewed: %s by %s\n", u.GrantID, u.Subject, u.Route, u.Review.Outcome, u.Review.Subject)
	return exitOK
}

// namesFlag reports whether arg is a flag of fs (-name, --name, -name=v),
// -h or --help, or the "--" that ends the flags.
func namesFlag(fs *flag.FlagSet, arg string) bool {
	if !strings.HasPrefix(arg, "-") {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
	return name == "" || name == "h" || name == "help" || fs.Lookup(name) != nil
}
