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
// --broker-accounts, gives it its broker account. The token goes to stdout
// only once both are done; when the broker step fails, the enrolment is
// undone.
func enrollDevice(ctx context.Context, reg *registry.Registry, c *server.Config, patient, device string, stdout, stderr io.Writer) error {
	token, err := enrollWithAccount(ctx, reg, c, patient, device)
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

// enrollWithAccount enrols the device and, with --broker-accounts, gives
// it its broker account, and returns its token; when the broker step
// fails, the enrolment is undone. A device id in the pipeline's own MQTT
// client ids is refused (a usage error) before anything changes.
func enrollWithAccount(ctx context.Context, reg *registry.Registry, c *server.Config, patient, device string) (string, error) {
	if err := checkDeviceID(c, device); err != nil {
		return "", err
	}
	var accounts *ingest.BrokerAccounts
	if c.BrokerAccounts {
		// Reach the broker before the registry changes: an unreachable
		// broker or a refused admin account then leaves nothing to undo.
		var err error
		if accounts, err = ingest.DialBrokerAccounts(ctx, c.BrokerAdminConfig()); err != nil {
			return "", fmt.Errorf("enroll device %s: nothing changed: %w", device, err)
		}
		defer accounts.Close()
	}
	token, err := reg.EnrollDevice(ctx, device, patient)
	if err != nil {
		return "", err
	}
	if accounts != nil {
		if err := accounts.AddDevice(ctx, device, token); err != nil {
			return "", undoEnroll(ctx, reg, accounts, device, token, err)
		}
	}
	return token, nil
}

// checkDeviceID refuses a device id that is, or could become, one of the
// pipeline's MQTT client ids under --mqtt-client-id: a device connects
// with its id as client id, and would disconnect the pipeline's session.
func checkDeviceID(c *server.Config, device string) error {
	base := c.MQTT.ClientID
	if !ingest.ReservedClientID(base, device) {
		return nil
	}
	return usageError{fmt.Errorf("enroll device %s: nothing changed: the id is reserved by --mqtt-client-id %q "+
		"(the pipeline connects to the broker as %s and as %s-<anything>, and a device connects with its id as client id, "+
		"so it would disconnect the pipeline's session): enrol the device under another id", device, base, base, base)}
}

// undoEnroll takes back an enrolment whose broker account could not be
// made. The token was shown to no one, so the device cannot have used
// it: the registry entry is deleted and the id is free again. The broker
// may have carried out a command whose answer was lost, so the device's
// account is removed first, where there is one.
func undoEnroll(ctx context.Context, reg *registry.Registry, accounts *ingest.BrokerAccounts, device, token string, cause error) error {
	// Undo even when the operator pressed Ctrl-C during the broker step.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	note := ""
	if err := accounts.RemoveDevice(ctx, device); err != nil && !errors.Is(err, ingest.ErrForeignAccount) {
		note = fmt.Sprintf(" (the broker may keep an account for %s that no one has the password of: %v)", device, err)
	}
	if err := reg.UndoEnrollment(ctx, device, token); err != nil {
		return fmt.Errorf("enroll device %s: %w; the device is enrolled without a broker account and undoing that failed (%v): "+
			"run `patientpulse devices revoke --device %s` and enrol the device under another id", device, cause, err, device)
	}
	return fmt.Errorf("enroll device %s: nothing changed, the registry entry is undone: %w%s", device, cause, note)
}

// revokeDevice revokes the device in the registry and, with
// --broker-accounts, removes its broker account, which disconnects it. A
// device already revoked in the registry still has its broker account
// removed, so that running the command again finishes a revocation whose
// broker step failed.
func revokeDevice(ctx context.Context, reg *registry.Registry, c *server.Config, device string, stderr io.Writer) error {
	err := reg.RevokeDevice(ctx, device)
	already := errors.Is(err, registry.ErrRevoked)
	if err != nil && !(already && c.BrokerAccounts) {
		return err
	}
	if !c.BrokerAccounts {
		fmt.Fprintf(stderr, "revoked device %s\n", device)
		return nil
	}
	accounts, err := ingest.DialBrokerAccounts(ctx, c.BrokerAdminConfig())
	if err == nil {
		err = accounts.RemoveDevice(ctx, device)
		accounts.Close()
	}
	if err != nil {
		return fmt.Errorf("device %s is revoked in the registry, so patientpulse refuses its data, but its broker account is not removed: %w; "+
			"run `patientpulse devices revoke --device %s` again to remove it", device, err, device)
	}
	if already {
		fmt.Fprintf(stderr, "device %s was already revoked; its broker account is removed\n", device)
	} else {
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
