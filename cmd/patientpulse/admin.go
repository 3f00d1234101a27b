package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

// adminFlags parses an admin command's flags over the shared settings,
// checks that the command's own flags are given (required names them),
// and only then opens the registry.
func adminFlags(ctx context.Context, name string, args []string, stderr io.Writer, getenv func(string) string,
	define func(fs *flag.FlagSet), required ...string) (*registry.Registry, error) {
	reg, _, err := adminSetup(ctx, name, args, stderr, getenv, define, required...)
	return reg, err
}

// adminSetup is adminFlags that also returns the settings, for commands
// that use more than the registry.
func adminSetup(ctx context.Context, name string, args []string, stderr io.Writer, getenv func(string) string,
	define func(fs *flag.FlagSet), required ...string) (*registry.Registry, *server.Config, error) {
	var c server.Config
	var create bool
	fs := server.NewFlagSet(name, &c)
	fs.SetOutput(stderr)
	fs.BoolVar(&create, "init", false, "create the registry if there is none yet; without it the command refuses to, "+
		"so that one run without the deployment's --config cannot work on a new, empty registry (command line only)")
	define(fs)
	if err := server.Load(fs, &c, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var missing []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return nil, nil, usageError{fmt.Errorf("%s: %s required", name, strings.Join(missing, " and "))}
	}
	if create && !onCommandLine(fs, args, "init") {
		return nil, nil, usageError{errors.New("init is taken from the command line only, not from a config file or the environment")}
	}
	reg, err := adminRegistry(ctx, c.DSN(), create, stderr)
	return reg, &c, err
}

// adminRegistry opens an admin command's registry, first naming it on
// stderr (a Postgres one without its password). Unless create, it refuses
// to make a new one: the registry must exist already.
func adminRegistry(ctx context.Context, dsn string, create bool, stderr io.Writer) (*registry.Registry, error) {
	where := registry.Location(dsn)
	fmt.Fprintf(stderr, "registry: %s\n", where)
	var opts []registry.OpenOption
	if !create {
		opts = append(opts, registry.MustExist())
	}
	reg, err := registry.Open(ctx, dsn, opts...)
	if errors.Is(err, registry.ErrNoRegistry) {
		return nil, usageError{fmt.Errorf("no registry at %s: name the deployment's settings with --config FILE "+
			"(make services' and make demo's: .local/patientpulse.yaml in the project), --data-dir or --db; "+
			"or pass --init to create a new, empty registry there", where)}
	}
	return reg, err
}

// onCommandLine tells whether args, parsed by fs, set the flag name: the
// flag package's own reading, with the values of fs's non-boolean flags
// skipped, up to the first argument that is not a flag.
func onCommandLine(fs *flag.FlagSet, args []string, name string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return false
		}
		n, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if n == name {
			return true
		}
		if f := fs.Lookup(n); f != nil && !hasValue && !isBoolFlag(f) {
			i++ // its value
		}
	}
	return false
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func patientsCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{errors.New("patients: want add or list")}
	}
	switch args[0] {
	case "add":
		var id, name string
		reg, err := adminFlags(ctx, "patients add", args[1:], stderr, getenv, func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "patient id (letters, digits, '.', '_', '-')")
			fs.StringVar(&name, "name", "", "display name for clinicians (printable characters, at most 200)")
		}, "id")
		if err != nil {
			return err
		}
		defer reg.Close()
		if err := reg.AddPatient(ctx, registry.Patient{ID: id, Name: name}); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "added patient %s\n", id)
		return nil
	case "list":
		reg, err := adminFlags(ctx, "patients list", args[1:], stderr, getenv, func(*flag.FlagSet) {})
		if err != nil {
			return err
		}
		defer reg.Close()
		ps, err := reg.ListPatients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tADDED")
		for _, p := range ps {
			// Escaped: a row stored before names were checked may hold a
			// terminal's escape sequences.
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, registry.PrintableName(p.Name), p.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usageError{fmt.Errorf("patients: unknown command %q (want add or list)", args[0])}
}

// registryCommand runs `registry copy`: registry.CopyToPostgres, then the
// rows copied per table on stdout (counts only: no patient data).
func registryCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "copy" {
		return usageError{errors.New("registry: want copy")}
	}
	var from, to string
	fs := flag.NewFlagSet("registry copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&from, "from", "", "the SQLite registry file to copy (stop serve first)")
	fs.StringVar(&to, "to", "", "the Postgres registry to copy into, postgres://user@host:port/db: its database must exist and hold no registry rows")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if from == "" || to == "" {
		return usageError{errors.New("registry copy: --from and --to required")}
	}
	fmt.Fprintf(stderr, "registry: copying %s to %s\n", registry.Location(from), registry.Location(to))
	copied, err := registry.CopyToPostgres(ctx, from, to)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	var total int64
	for _, c := range copied {
		fmt.Fprintf(tw, "%s\t%d\n", c.Table, c.Rows)
		total += c.Rows
	}
	fmt.Fprintf(tw, "total\t%d\n", total)
	return tw.Flush()
}
