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
)

// adminFlags parses an admin command's flags over the shared settings,
// checks that the command's own flags are given (required names them),
// and only then opens the registry.
func adminFlags(ctx context.Context, name string, args []string, stderr io.Writer, getenv func(string) string,
	define func(fs *flag.FlagSet), required ...string) (*registry.Registry, error) {
	var c config
	fs := newFlagSet(name, &c)
	fs.SetOutput(stderr)
	define(fs)
	if err := load(fs, &c, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var missing []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return nil, usageError{fmt.Errorf("%s: %s required", name, strings.Join(missing, " and "))}
	}
	return registry.Open(ctx, c.dsn())
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
			fs.StringVar(&name, "name", "", "display name for clinicians")
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
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.Name, p.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usageError{fmt.Errorf("patients: unknown command %q (want add or list)", args[0])}
}

func devicesCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{errors.New("devices: want enroll, list or revoke")}
	}
	var patient, device string
	deviceFlag := func(fs *flag.FlagSet) { fs.StringVar(&device, "device", "", "device id (its MQTT username)") }
	switch args[0] {
	case "enroll":
		reg, err := adminFlags(ctx, "devices enroll", args[1:], stderr, getenv, func(fs *flag.FlagSet) {
			fs.StringVar(&patient, "patient", "", "id of the patient the device belongs to")
			deviceFlag(fs)
		}, "patient", "device")
		if err != nil {
			return err
		}
		defer reg.Close()
		token, err := reg.EnrollDevice(ctx, device, patient)
		if err != nil {
			return err
		}
		// The token alone on stdout, so that a script can capture it.
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "enrolled device %s; its token above is shown only once\n", device)
		return nil
	case "list":
		reg, err := adminFlags(ctx, "devices list", args[1:], stderr, getenv, func(*flag.FlagSet) {})
		if err != nil {
			return err
		}
		defer reg.Close()
		return listDevices(ctx, reg, stdout)
	case "revoke":
		reg, err := adminFlags(ctx, "devices revoke", args[1:], stderr, getenv, deviceFlag, "device")
		if err != nil {
			return err
		}
		defer reg.Close()
		if err := reg.RevokeDevice(ctx, device); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked device %s\n", device)
		return nil
	}
	return usageError{fmt.Errorf("devices: unknown command %q (want enroll, list or revoke)", args[0])}
}

func listDevices(ctx context.Context, reg *registry.Registry, stdout io.Writer) error {
	ds, err := reg.ListDevices(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tPATIENT\tENROLLED\tSTATUS")
	for _, d := range ds {
		status := "active"
		if !d.Active() {
			status = "revoked " + d.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, d.PatientID, d.EnrolledAt.Format(time.RFC3339), status)
	}
	return tw.Flush()
}
