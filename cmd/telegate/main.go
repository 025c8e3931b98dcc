// Command telegate is the secure edge gateway for telemedicine.
//
// Usage:
//
//	telegate [run] -c FILE        run the gateway with a configuration file
//	telegate demo [flags]         run the whole product on localhost (not for patients)
//	telegate check -c FILE        validate a configuration file and exit
//	telegate audit verify [flags] verify the hash chain of an audit trail
//	telegate audit export [flags] write a time window of the trail as FHIR or JSON lines
//	telegate breakglass list|review list break-glass uses, record a review
//	telegate version              print the version
//
// Exit status: 0 on success, 1 on failure (an invalid configuration, a
// broken audit chain, a gateway that stopped with an error), 2 for a usage
// error (unknown subcommand or flag).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(cli{stdout: os.Stdout, stderr: os.Stderr}.main(context.Background(), os.Args[1:]))
}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// cli is the command line with its output streams (tests swap them).
type cli struct {
	stdout, stderr io.Writer
}

const topUsage = `telegate — secure edge gateway for telemedicine

Usage:
  telegate [run] -c FILE            run the gateway with a configuration file
  telegate demo [flags]             run the whole product on localhost (DEMO, not for patients)
  telegate check -c FILE            validate a configuration file without starting
  telegate audit verify [flags]     verify an audit trail against its checkpoints (no secret needed)
  telegate audit verify --merge DIR...
                                    verify several nodes' trails together
  telegate audit export [flags]     write a time window of the trail as a FHIR Bundle or JSON lines
  telegate audit key [flags]        print the public key that verifies the trail's checkpoints
  telegate audit new-segment [flags] --reason TEXT
                                    continue a cut trail in a new segment that records the gap
  telegate breakglass list [flags]  list the break-glass uses, active and past, with their reviews
  telegate breakglass review ID --outcome OUTCOME [--note TEXT]
                                    record the review of one break-glass use
  telegate version                  print the version

Run "telegate COMMAND --help" for the flags of a command.
`

// main dispatches args (without the program name) and returns the exit
// status.
func (c cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		return c.run(ctx, args)
	}
	switch args[0] {
	case "run":
		return c.run(ctx, args[1:])
	case "demo":
		return c.demo(ctx, args[1:])
	case "check":
		return c.check(args[1:])
	case "audit":
		return c.audit(args[1:])
	case "breakglass":
		return c.breakglass(args[1:])
	case "version":
		return c.version(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, topUsage)
		return exitOK
	}
	if strings.HasPrefix(args[0], "-") {
		return c.run(ctx, args)
	}
	fmt.Fprintf(c.stderr, "telegate: unknown command %q\n\n%s", args[0], topUsage)
	return exitUsage
}

// flags returns a flag set for a subcommand whose --help prints usage and
// every flag to stdout, and whose errors print usage to stderr.
func (c cli) flags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", usage)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. It returns -1 to go on, or the exit status:
// 0 after --help (usage on stdout), 2 after a usage error (message and
// usage on stderr). Positional arguments are a usage error.
func (c cli) parse(fs *flag.FlagSet, args []string) int { return c.parseArgs(fs, args, 0) }

// parseArgs is parse allowing up to maxArgs positional arguments after
// the flags (-1: any number).
func (c cli) parseArgs(fs *flag.FlagSet, args []string, maxArgs int) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(c.stdout)
		fs.Usage()
		return exitOK
	case err != nil:
		fmt.Fprintf(c.stderr, "telegate %s: %v\n", fs.Name(), err)
		fs.SetOutput(c.stderr)
		fs.Usage()
		return exitUsage
	case maxArgs >= 0 && fs.NArg() > maxArgs:
		fmt.Fprintf(c.stderr, "telegate %s: unexpected argument %q\n", fs.Name(), fs.Arg(maxArgs))
		fs.SetOutput(c.stderr)
		fs.Usage()
		return exitUsage
	}
	return -1
}

// usageError prints msg and the usage of fs to stderr and returns 2.
func (c cli) usageError(fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(c.stderr, "telegate %s: %s\n", fs.Name(), msg)
	fs.SetOutput(c.stderr)
	fs.Usage()
	return exitUsage
}
