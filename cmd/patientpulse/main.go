// Command patientpulse runs the patientpulse pipeline (serve) and the
// operator's commands on its registry (patients, devices, staff, plans),
// the clinic simulation and the benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"
	_ "time/tzdata" // the clinic's time zone, on hosts and images without zoneinfo

	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

const usage = `patientpulse: remote monitoring for HRT clinics

Usage:
  patientpulse serve [flags]                              run the pipeline
  patientpulse patients add --id ID [--name NAME]         add a patient
  patientpulse patients list                              list patients
  patientpulse devices enroll --patient ID --device ID    enrol a device; prints its token
  patientpulse devices list                               list devices
  patientpulse devices revoke --device ID                 revoke a device
  patientpulse devices broker-add --device ID             give an enrolled device its broker account;
                                                          token on standard input (--broker-accounts)
  patientpulse staff add --username U --role admin|clinician|oncall
                                                          add staff; password on standard input
  patientpulse staff list                                 list staff
  patientpulse staff disable|passwd|revoke-tokens|signout --username U
  patientpulse staff assign|unassign --username U --patient ID
                                                          change a clinician's care team
  patientpulse staff token --username U [--label L]       prints an API token
  patientpulse staff contact --username U [--email ADDR] [--ntfy URL] [--pagerduty-key KEY]
                             [--digest-hour H|none] [--show]
                                                          where a member is paged: changes the channels
                                                          given, keeps the rest, prints it (not the key)
  patientpulse plans apply -f FILE                        store a plan file (YAML or JSON) as the patient's next version
  patientpulse plans apply --dry-run [--days 30] -f FILE  print what it would have raised over the patient's last days; save nothing
  patientpulse plans show --patient ID [--history]        print the plan in force (or every version)
  patientpulse summaries publish [--patient ID]           publish last week's summary to the patients' devices now
  patientpulse simulate [--patients N] [--backfill 30d] [--seed S] [--clinician U]
                                                          a virtual clinic: patients, plans, devices sending data
  patientpulse bench [--messages N] [--quick]             measure throughput, alert latency and memory (own services)
  patientpulse registry copy --from FILE.db --to postgres://USER@HOST/DB
                                                          copy a SQLite registry into an empty Postgres one

Every command but bench and registry copy takes --config FILE, --data-dir DIR and --db DSN;
settings come from the file, then PATIENTPULSE_* variables, then flags.
patients, devices, staff, plans, summaries and simulate name the registry they use on
standard error and never create one unless given --init (serve creates its
own on first start).
'patientpulse COMMAND -h' lists a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process's exit code: 0 on
// success, 2 for a usage or configuration error, 1 otherwise.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// The admin commands' changes are recorded in the audit log as made
	// by the operator's account on this host.
	ctx = registry.WithActor(ctx, registry.Actor{Name: "cli:" + osUser()})
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stderr, getenv)
	case "patients":
		err = patientsCommand(ctx, args[1:], stdout, stderr, getenv)
	case "devices":
		err = devicesCommand(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "staff":
		err = staffCommand(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "plans":
		err = plansCommand(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "summaries":
		err = summariesCommand(ctx, args[1:], stdout, stderr, getenv)
	case "simulate":
		err = simulateCommand(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		err = benchCommand(ctx, args[1:], stdout, stderr)
	case "registry":
		err = registryCommand(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	var uerr usageError
	var cerr server.ConfigError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr), errors.As(err, &cerr):
		fmt.Fprintf(stderr, "patientpulse: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "patientpulse: %v\n", err)
		return 1
	}
}

// serveCommand runs the pipeline with the settings of args, the
// environment and the config file until ctx ends.
func serveCommand(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	var c server.Config
	fs := server.NewFlagSet("serve", &c)
	fs.SetOutput(stderr)
	err := server.Load(fs, &c, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err := errors.Join(err, c.Validate()); err != nil {
		return usageError{err}
	}
	level, _ := c.Level()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return server.Run(ctx, &c, log)
}

// osUser is the name of the account running the command, as far as it
// can be told.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// usageError marks errors in how the command was called or configured.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
