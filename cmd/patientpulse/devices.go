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

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

const devicesCommands = "enroll, list, revoke or broker-add"

// devicesCommand runs `patientpulse devices ...`. With --broker-accounts,
// enroll and revoke change the device's broker account together with its
// registry entry, so that the two never disagree silently.
func devicesCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("devices: want %s", devicesCommands)}
	}
	var patient, device string
	deviceFlag := func(fs *flag.FlagSet) { fs.StringVar(&device, "device", "", "device id (its MQTT username)") }
	define, required := deviceFlag, []string{"device"}
	switch args[0] {
	case "enroll":
		define = func(fs *flag.FlagSet) {
			fs.StringVar(&patient, "patient", "", "id of the patient the device belongs to")
			deviceFlag(fs)
		}
		required = []string{"patient", "device"}
	case "list":
		define, required = func(*flag.FlagSet) {}, nil
	case "revoke", "broker-add":
	default:
		return usageError{fmt.Errorf("devices: unknown command %q (want %s)", args[0], devicesCommands)}
	}
	reg, c, err := adminSetup(ctx, "devices "+args[0], args[1:], stderr, getenv, define, required...)
	if err != nil {
		return err
	}
	defer reg.Close()
	if args[0] == "list" {
		return listDevices(ctx, reg, stdout)
	}
	if err := c.ValidateBrokerAdmin(); err != nil {
		return usageError{err}
	}
	switch args[0] {
	case "enroll":
		return enrollDevice(ctx, reg, c, patient, device, stdout, stderr)
	case "revoke":
		return revokeDevice(ctx, reg, c, device, stderr)
	default: // "broker-add"
		return brokerAddDevice(ctx, reg, c, device, stdin, stderr)
	}
}

// enrollDevice enrols the device in the registry and, with
// --broker-accounts, gives it its broker account (server.Devices). The
// token goes to stdout only once both are done.
func enrollDevice(ctx context.Context, reg *registry.Registry, c *server.Config, patient, device string, stdout, stderr io.Writer) error {
	token, err := server.Devices{Reg: reg, Config: c}.Enroll(ctx, patient, device)
	if errors.Is(err, server.ErrReservedDeviceID) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	// The token alone on stdout, so that a script can capture it.
	fmt.Fprintln(stdout, token)
	if c.BrokerAccounts {
		fmt.Fprintf(stderr, "enrolled device %s with its broker account (username %s); its token above is shown only once\n", device, device)
	} else {
		fmt.Fprintf(stderr, "enrolled device %s; its token above is shown only once\n", device)
	}
	return nil
}

// revokeDevice revokes the device in the registry and, with
// --broker-accounts, removes its broker account (server.Devices).
func revokeDevice(ctx context.Context, reg *registry.Registry, c *server.Config, device string, stderr io.Writer) error {
	already, err := server.Devices{Reg: reg, Config: c}.Revoke(ctx, device)
	switch {
	case err != nil:
		return err
	case !c.BrokerAccounts:
		fmt.Fprintf(stderr, "revoked device %s\n", device)
	case already:
		fmt.Fprintf(stderr, "device %s was already revoked; its broker account is removed\n", device)
	default:
		fmt.Fprintf(stderr, "revoked device %s; its broker account is removed and its connections closed\n", device)
	}
	return nil
}

// brokerAddDevice gives an enrolled device its broker account from its
// token, read from stdin: for devices enrolled before --broker-accounts
// was switched on, or whose account was lost with the broker's data.
// The token must be the device's, and the device active.
func brokerAddDevice(ctx context.Context, reg *registry.Registry, c *server.Config, device string, stdin io.Reader, stderr io.Writer) error {
	if !c.BrokerAccounts {
		return usageError{errors.New("devices broker-add: needs --broker-accounts")}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	line, err := readLine(stdin)
	if err != nil {
		return fmt.Errorf("read token: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return usageError{errors.New("devices broker-add: give the device's token on standard input")}
	}
	d, err := reg.DeviceByToken(ctx, token)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	if err != nil || d.ID != device {
		return fmt.Errorf("devices broker-add: the token on standard input is not device %s's", device)
	}
	if !d.Active() {
		return fmt.Errorf("devices broker-add: device %s is revoked", device)
	}
	accounts, err := ingest.DialBrokerAccounts(ctx, c.BrokerAdminConfig())
	if err != nil {
		return fmt.Errorf("devices broker-add %s: %w", device, err)
	}
	defer accounts.Close()
	if err := accounts.AddDevice(ctx, device, token); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "device %s has its broker account (username %s)\n", device, device)
	return nil
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
