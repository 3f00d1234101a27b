package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

const staffCommands = "add, passwd, list, disable, assign, unassign, token, revoke-tokens, signout or contact"

// staffCommand runs `patientpulse staff ...`. Passwords come from the first
// line of stdin, never from flags, which other users can read in the
// process list and which shells keep in their history.
func staffCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("staff: want %s", staffCommands)}
	}
	var a staffArgs
	define, required, ok := a.flags(args[0])
	if !ok {
		return usageError{fmt.Errorf("staff: unknown command %q (want %s)", args[0], staffCommands)}
	}
	reg, err := adminFlags(ctx, "staff "+args[0], args[1:], stderr, getenv, define, required...)
	if err != nil {
		return err
	}
	defer reg.Close()

	switch args[0] {
	case "add":
		return staffAdd(ctx, reg, a.username, registry.Role(a.role), stdin, stderr)
	case "passwd":
		return staffPasswd(ctx, reg, a.username, stdin, stderr)
	case "list":
		return listStaff(ctx, reg, stdout)
	case "disable":
		err = reg.DisableStaff(ctx, a.username)
		return confirm(err, stderr, "disabled staff %s; their API tokens are revoked and their sessions ended\n", a.username)
	case "revoke-tokens":
		err = reg.RevokeStaffTokens(ctx, a.username)
		return confirm(err, stderr, "revoked every API token of %s\n", a.username)
	case "signout":
		err = reg.EndSessions(ctx, a.username)
		return confirm(err, stderr, "signed %s out of every browser\n", a.username)
	case "assign":
		err = reg.AssignPatient(ctx, a.username, a.patient)
		return confirm(err, stderr, "assigned patient %s to %s\n", a.patient, a.username)
	case "unassign":
		err = reg.UnassignPatient(ctx, a.username, a.patient)
		return confirm(err, stderr, "unassigned patient %s from %s\n", a.patient, a.username)
	case "contact":
		return staffContact(ctx, reg, a.username, a.changes(args[1:]), stdout, stderr)
	default: // "token"
		token, err := reg.IssueStaffToken(ctx, a.username, a.label)
		if err != nil {
			return err
		}
		// The token alone on stdout, so that a script can capture it.
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "issued an API token for %s; it is shown only once\n", a.username)
		return nil
	}
}

// staffArgs are the flags of the staff commands.
type staffArgs struct {
	username, patient, label string
	role                     roleValue
	// contact's
	email, ntfy, pagerDutyKey string
	digestHour                digestHourValue
	show                      bool
	fs                        *flag.FlagSet // contact's, to tell which flags its command line gives
}

// flags returns how to define the flags of the staff command cmd and
// which of them it requires; ok is false for an unknown command.
func (a *staffArgs) flags(cmd string) (define func(*flag.FlagSet), required []string, ok bool) {
	user := func(fs *flag.FlagSet) { fs.StringVar(&a.username, "username", "", "staff member's username") }
	switch cmd {
	case "add":
		return func(fs *flag.FlagSet) {
			user(fs)
			fs.Var(&a.role, "role", "admin, clinician or oncall")
		}, []string{"username", "role"}, true
	case "passwd", "disable", "revoke-tokens", "signout":
		return user, []string{"username"}, true
	case "list":
		return func(*flag.FlagSet) {}, nil, true
	case "assign", "unassign":
		return func(fs *flag.FlagSet) {
			user(fs)
			fs.StringVar(&a.patient, "patient", "", "patient id")
		}, []string{"username", "patient"}, true
	case "token":
		return func(fs *flag.FlagSet) {
			user(fs)
			fs.StringVar(&a.label, "label", "", "where the token is used, as a reminder (e.g. \"grafana\")")
		}, []string{"username"}, true
	case "contact":
		return func(fs *flag.FlagSet) {
			a.fs = fs
			user(fs)
			fs.StringVar(&a.email, "email", "", "the address pages and the digest are mailed to (\"\": none)")
			fs.StringVar(&a.ntfy, "ntfy", "", "an ntfy topic URL pages are published to, https://ntfy.sh/TOPIC (\"\": none)")
			fs.StringVar(&a.pagerDutyKey, "pagerduty-key", "", "the PagerDuty Events v2 integration key of the member's own service (\"\": none)")
			fs.Var(&a.digestHour, "digest-hour", "the clinic's hour (0-23) of a daily mail of the care team's warnings, or none")
			fs.BoolVar(&a.show, "show", false, "print the contact and change nothing")
		}, []string{"username"}, true
	}
	return nil, nil, false
}

// confirm returns err, or prints the message on stderr when it is nil.
func confirm(err error, stderr io.Writer, format string, args ...any) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, format, args...)
	return nil
}

func staffAdd(ctx context.Context, reg *registry.Registry, username string, role registry.Role, stdin io.Reader, stderr io.Writer) error {
	password, err := readPassword(stdin, stderr, username)
	if err != nil {
		return fmt.Errorf("staff add: %w", err)
	}
	if err := reg.AddStaff(ctx, username, role, password); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "added staff %s (%s)\n", username, role)
	return nil
}

func staffPasswd(ctx context.Context, reg *registry.Registry, username string, stdin io.Reader, stderr io.Writer) error {
	if _, err := reg.StaffMember(ctx, username); err != nil {
		return err // before asking for a password for nobody
	}
	password, err := readPassword(stdin, stderr, username)
	if err != nil {
		return fmt.Errorf("staff passwd: %w", err)
	}
	if err := reg.SetPassword(ctx, username, password); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "changed the password of %s\n", username)
	return nil
}

// readPassword returns the first line of stdin without its line ending.
// On a terminal it prompts and does not echo what is typed.
func readPassword(stdin io.Reader, stderr io.Writer, username string) (string, error) {
	errNone := fmt.Errorf("no password on standard input: give it as the first line, at least %d characters", registry.MinPasswordLen)
	if stdin == nil {
		return "", errNone
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "password for %s (at least %d characters): ", username, registry.MinPasswordLen)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(pw) == 0 {
			return "", errNone
		}
		return string(pw), nil
	}
	line, err := readLine(stdin)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if line == "" {
		return "", errNone
	}
	return line, nil
}

// readLine returns the first line of r without its line ending, reading
// no further than a password or token could reach, whatever is piped in.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

func listStaff(ctx context.Context, reg *registry.Registry, stdout io.Writer) error {
	ss, err := reg.ListStaff(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tADDED\tSTATUS\tPATIENTS")
	for _, s := range ss {
		ids, err := reg.AssignedPatients(ctx, s.Username)
		if err != nil {
			return err
		}
		status := "active"
		if !s.Active() {
			status = "disabled " + s.DisabledAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Username, s.Role, s.CreatedAt.Format(time.RFC3339), status, strconv.Itoa(len(ids)))
	}
	return tw.Flush()
}

// roleValue is the --role flag: it refuses anything but a role, so that a
// typo is a usage error before the registry is opened.
type roleValue registry.Role

func (v *roleValue) String() string { return string(*v) }

func (v *roleValue) Set(s string) error {
	if !registry.Role(s).Valid() {
		return errors.New("want admin, clinician or oncall")
	}
	*v = roleValue(s)
	return nil
}

// contactChange is what `staff contact` changes: each channel whose flag
// is on the command line; nothing with --show. Only the command line
// counts: a setting of that name in the environment or the config file
// (a clinic-wide key, say) must not end up as one member's contact.
type contactChange struct {
	email, ntfy, pagerDutyKey *string
	digestHour                *int
	show                      bool
}

// changes reads args, which a.fs parsed, for what `staff contact` changes.
func (a *staffArgs) changes(args []string) contactChange {
	given := func(name string) bool { return onCommandLine(a.fs, args, name) }
	ch := contactChange{show: a.show && given("show")}
	for _, f := range []struct {
		name string
		v    *string
		dst  **string
	}{{"email", &a.email, &ch.email}, {"ntfy", &a.ntfy, &ch.ntfy}, {"pagerduty-key", &a.pagerDutyKey, &ch.pagerDutyKey}} {
		if given(f.name) {
			*f.dst = f.v
		}
	}
	if given("digest-hour") {
		h := int(a.digestHour)
		ch.digestHour = &h
	}
	return ch
}

// staffContact changes what ch names of a staff member's contact, keeping
// the rest, checked as the API checks it, and prints the contact on
// stdout, of the PagerDuty key only whether there is one.
func staffContact(ctx context.Context, reg *registry.Registry, username string, ch contactChange, stdout, stderr io.Writer) error {
	changing := ch.email != nil || ch.ntfy != nil || ch.pagerDutyKey != nil || ch.digestHour != nil
	if ch.show && changing {
		return usageError{errors.New("staff contact: --show changes nothing: give it alone, or leave it out to change the contact")}
	}
	c, err := notify.LoadContact(ctx, reg, username)
	if err != nil {
		return err
	}
	if changing {
		for _, f := range []struct{ v, dst *string }{{ch.email, &c.Email}, {ch.ntfy, &c.NtfyURL}, {ch.pagerDutyKey, &c.PagerDutyKey}} {
			if f.v != nil {
				*f.dst = *f.v
			}
		}
		if ch.digestHour != nil {
			c.DigestHour = *ch.digestHour
		}
		if err := notify.CheckContact(c); err != nil {
			return fmt.Errorf("staff contact: %w", err)
		}
		if err := reg.SetStaffContact(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "changed the contact of %s\n", username)
	}
	none := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	key, digest := "none", "none"
	if c.PagerDutyKey != "" {
		key = "set"
	}
	if c.DigestHour >= 0 {
		digest = fmt.Sprintf("daily at %02d:00", c.DigestHour)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "username:\t%s\nemail:\t%s\nntfy:\t%s\npagerduty key:\t%s\ndigest:\t%s\n",
		c.Username, none(c.Email), none(c.NtfyURL), key, digest)
	return tw.Flush()
}

// digestHourValue is the --digest-hour flag: an hour, or none (-1).
// Whether the hour is 0 to 23 is notify.CheckContact's to say, as for
// the API.
type digestHourValue int

func (v *digestHourValue) String() string {
	if v == nil || *v < 0 {
		return "none"
	}
	return strconv.Itoa(int(*v))
}

func (v *digestHourValue) Set(s string) error {
	if s == "none" {
		*v = -1
		return nil
	}
	h, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want an hour, 0 to 23, or none")
	}
	*v = digestHourValue(h)
	return nil
}
