package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/registry"
)

// The staff tests work on the registry alone: no broker, no InfluxDB.

// staffRun runs `patientpulse ARGS --data-dir dataDir` with stdin and
// returns what it printed and its exit code. An empty dataDir adds no flag.
func staffRun(t *testing.T, dataDir string, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	if dataDir != "" {
		args = initArgs(t, dataDir, append(args, "--data-dir", dataDir))
	}
	code = run(context.Background(), args, stdin, &out, &errOut, func(string) string { return "" })
	return out.String(), errOut.String(), code
}

// mustStaff is staffRun that fails the test on a non-zero exit.
func mustStaff(t *testing.T, dataDir, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := staffRun(t, dataDir, strings.NewReader(stdin), args...)
	if code != 0 {
		t.Fatalf("patientpulse %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout, stderr
}

// staffRows returns `staff list` as its rows' fields, keyed by username.
func staffRows(t *testing.T, dataDir string) map[string][]string {
	t.Helper()
	out, _ := mustStaff(t, dataDir, "", "staff", "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "USERNAME ROLE ADDED STATUS PATIENTS" {
		t.Fatalf("staff list header = %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	return rows
}

func TestStaffCommands(t *testing.T) {
	dir := t.TempDir()
	cli(t, dir, "patients", "add", "--id", "p-1")
	cli(t, dir, "patients", "add", "--id", "p-2")

	out, errOut := mustStaff(t, dir, "her long password here\nsecond line is not read\n",
		"staff", "add", "--username", "alice", "--role", "clinician")
	if out != "" || !strings.Contains(errOut, "added staff alice (clinician)") {
		t.Errorf("staff add: stdout %q, stderr %q; want nothing on stdout, \"added staff alice (clinician)\" on stderr", out, errOut)
	}
	mustStaff(t, dir, "his password, no newline", "staff", "add", "--username", "bob", "--role", "oncall")
	mustStaff(t, dir, "her windows password\r\n", "staff", "add", "--username", "carol", "--role", "admin")
	for range 2 { // assigning twice is harmless
		mustStaff(t, dir, "", "staff", "assign", "--username", "alice", "--patient", "p-1")
	}
	mustStaff(t, dir, "", "staff", "assign", "--username", "alice", "--patient", "p-2")

	rows := staffRows(t, dir)
	for _, want := range []string{"alice clinician active 2", "bob oncall active 0", "carol admin active 0"} {
		w := strings.Fields(want)
		got := rows[w[0]]
		if len(got) != 5 || got[1] != w[1] || got[3] != w[2] || got[4] != w[3] {
			t.Errorf("staff list row of %s = %q, want role %s, status %s, %s patients", w[0], got, w[1], w[2], w[3])
		}
	}

	tok, errOut := mustStaff(t, dir, "", "staff", "token", "--username", "alice", "--label", "grafana")
	if !strings.HasPrefix(tok, "pps_") || strings.Count(tok, "\n") != 1 || !strings.HasSuffix(tok, "\n") {
		t.Fatalf("staff token stdout = %q, want the token alone on one line", tok)
	}
	if strings.Contains(errOut, strings.TrimSpace(tok)) {
		t.Errorf("staff token repeats the token on stderr: %q", errOut)
	}
	bobTok, _ := mustStaff(t, dir, "", "staff", "token", "--username", "bob")

	mustStaff(t, dir, "", "staff", "unassign", "--username", "alice", "--patient", "p-1")
	mustStaff(t, dir, "", "staff", "disable", "--username", "bob")
	rows = staffRows(t, dir)
	if got := rows["alice"]; len(got) != 5 || got[4] != "1" {
		t.Errorf("alice's row after unassign = %q, want 1 patient", got)
	}
	if got := rows["bob"]; len(got) != 6 || got[3] != "disabled" {
		t.Errorf("bob's row after disable = %q, want disabled <time>", got)
	}

	// What the commands stored is what a login and an API call will see.
	reg := openRegistry(t, dir)
	ctx := t.Context()
	for user, password := range map[string]string{"alice": "her long password here", "carol": "her windows password"} {
		if _, err := reg.Authenticate(ctx, user, password); err != nil {
			t.Errorf("Authenticate(%s) with the first line of stdin, line ending removed: %v", user, err)
		}
	}
	if _, err := reg.Authenticate(ctx, "bob", "his password, no newline"); !errors.Is(err, registry.ErrDisabled) {
		t.Errorf("Authenticate(bob) after staff disable = %v, want ErrDisabled", err)
	}
	if s, err := reg.StaffByToken(ctx, strings.TrimSpace(tok)); err != nil || s.Username != "alice" {
		t.Errorf("StaffByToken(alice's token) = %+v, %v", s, err)
	}
	if _, err := reg.StaffByToken(ctx, strings.TrimSpace(bobTok)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("StaffByToken(bob's token) after staff disable = %v, want ErrNotFound (revoked)", err)
	}
	if ids, err := reg.AssignedPatients(ctx, "alice"); err != nil || strings.Join(ids, " ") != "p-2" {
		t.Errorf("AssignedPatients(alice) = %q, %v; want p-2", ids, err)
	}

	// The passwords are nowhere in the files the commands wrote.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("her long password here")) || bytes.Contains(b, []byte("her windows password")) {
			t.Errorf("%s holds a password in clear", filepath.Base(f))
		}
	}
}

func TestStaffPasswdAndRevokeTokens(t *testing.T) {
	dir := t.TempDir()
	mustStaff(t, dir, "the first password\n", "staff", "add", "--username", "alice", "--role", "admin")
	tok, _ := mustStaff(t, dir, "", "staff", "token", "--username", "alice")
	mustStaff(t, dir, "the second password\n", "staff", "passwd", "--username", "alice")
	mustStaff(t, dir, "", "staff", "revoke-tokens", "--username", "alice")

	reg := openRegistry(t, dir)
	if _, err := reg.Authenticate(t.Context(), "alice", "the first password"); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("Authenticate with the old password = %v, want ErrBadCredentials", err)
	}
	if _, err := reg.Authenticate(t.Context(), "alice", "the second password"); err != nil {
		t.Errorf("Authenticate with the new password: %v", err)
	}
	if _, err := reg.StaffByToken(t.Context(), strings.TrimSpace(tok)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("StaffByToken after staff revoke-tokens = %v, want ErrNotFound", err)
	}
}

func TestStaffCommandErrors(t *testing.T) {
	dir := t.TempDir()
	cli(t, dir, "patients", "add", "--id", "p-1")
	mustStaff(t, dir, "her long password here\n", "staff", "add", "--username", "alice", "--role", "clinician")
	mustStaff(t, dir, "the on-call's long password\n", "staff", "add", "--username", "bob", "--role", "oncall")
	mustStaff(t, dir, "", "staff", "disable", "--username", "bob")

	tests := []struct {
		name       string
		args       []string
		stdin      io.Reader
		fresh      bool // run in an empty data directory, which must stay empty
		bare       bool // add no --data-dir: args are the whole command line
		wantCode   int
		wantStderr string
		secret     string // must not appear in the output
	}{
		{name: "no command", args: []string{"staff"}, bare: true, wantCode: 2, wantStderr: "staff: want add"},
		{name: "unknown command", args: []string{"staff", "promote"}, fresh: true, wantCode: 2, wantStderr: `unknown command "promote"`},
		{name: "add without role", args: []string{"staff", "add", "--username", "x"}, fresh: true, wantCode: 2, wantStderr: "--role required"},
		{name: "add without anything", args: []string{"staff", "add"}, fresh: true, wantCode: 2, wantStderr: "--username and --role required"},
		{name: "add with unknown role", args: []string{"staff", "add", "--username", "x", "--role", "root"}, fresh: true, wantCode: 2, wantStderr: "want admin, clinician or oncall"},
		{name: "password as an argument", args: []string{"staff", "add", "--username", "x", "--role", "admin", "hunter2hunter2"}, fresh: true, wantCode: 2, wantStderr: "unexpected argument"},
		{name: "assign without patient", args: []string{"staff", "assign", "--username", "alice"}, fresh: true, wantCode: 2, wantStderr: "--patient required"},
		{name: "list with an argument", args: []string{"staff", "list", "all"}, fresh: true, wantCode: 2, wantStderr: "unexpected argument"},
		{name: "short password", args: []string{"staff", "add", "--username", "x", "--role", "admin"}, stdin: strings.NewReader("tooshort1\n"), wantCode: 1, wantStderr: "at least 12 characters", secret: "tooshort1"},
		{name: "empty password", args: []string{"staff", "add", "--username", "x", "--role", "admin"}, stdin: strings.NewReader("\nlong enough password\n"), wantCode: 1, wantStderr: "no password on standard input"},
		{name: "nothing on stdin", args: []string{"staff", "add", "--username", "x", "--role", "admin"}, stdin: strings.NewReader(""), wantCode: 1, wantStderr: "no password on standard input"},
		{name: "no stdin", args: []string{"staff", "add", "--username", "x", "--role", "admin"}, wantCode: 1, wantStderr: "no password on standard input"},
		{name: "username taken", args: []string{"staff", "add", "--username", "alice", "--role", "admin"}, stdin: strings.NewReader("another long password\n"), wantCode: 1, wantStderr: "already exists"},
		{name: "invalid username", args: []string{"staff", "add", "--username", "a b", "--role", "admin"}, stdin: strings.NewReader("another long password\n"), wantCode: 1, wantStderr: "invalid id"},
		{name: "assign unknown patient", args: []string{"staff", "assign", "--username", "alice", "--patient", "p-404"}, wantCode: 1, wantStderr: "patient p-404: not found"},
		{name: "assign to unknown staff", args: []string{"staff", "assign", "--username", "nobody", "--patient", "p-1"}, wantCode: 1, wantStderr: "staff nobody: not found"},
		{name: "unassign not assigned", args: []string{"staff", "unassign", "--username", "alice", "--patient", "p-1"}, wantCode: 1, wantStderr: "not assigned"},
		{name: "token for disabled staff", args: []string{"staff", "token", "--username", "bob"}, wantCode: 1, wantStderr: "staff bob: disabled"},
		{name: "token for unknown staff", args: []string{"staff", "token", "--username", "nobody"}, wantCode: 1, wantStderr: "staff nobody: not found"},
		{name: "disable twice", args: []string{"staff", "disable", "--username", "bob"}, wantCode: 1, wantStderr: "disabled"},
		{name: "passwd of unknown staff", args: []string{"staff", "passwd", "--username", "nobody"}, stdin: strings.NewReader("a new long password\n"), wantCode: 1, wantStderr: "staff nobody: not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dir
			if tt.fresh {
				d = filepath.Join(t.TempDir(), "data")
			}
			if tt.bare {
				d = ""
			}
			stdout, stderr, code := staffRun(t, d, tt.stdin, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.wantCode, tt.wantStderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing on a failure", stdout)
			}
			if tt.secret != "" && strings.Contains(stderr, tt.secret) {
				t.Errorf("stderr %q repeats the password", stderr)
			}
			if _, err := os.Stat(d); tt.fresh && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error created the data directory (stat: %v)", err)
			}
		})
	}
	// None of the failures changed the staff.
	rows := staffRows(t, dir)
	if len(rows) != 2 || rows["alice"][1] != "clinician" || rows["alice"][4] != "0" {
		t.Errorf("staff after the failures = %q, want alice (clinician, no patients) and bob", rows)
	}
}

// TestStaffContactCommand: `staff contact` changes the channels given and
// keeps the rest, checks them as the API does, prints the contact without
// the key, and takes its channels from the command line only.
func TestStaffContactCommand(t *testing.T) {
	dir := t.TempDir()
	const key = "R0UT1NGkeyOfAliceS0wnService32c"
	mustStaff(t, dir, "her long password here\n", "staff", "add", "--username", "alice", "--role", "clinician")

	show := func(args ...string) string {
		t.Helper()
		out, _ := mustStaff(t, dir, "", append([]string{"staff", "contact", "--username", "alice"}, args...)...)
		if strings.Contains(out, key) {
			t.Errorf("staff contact %q prints the key: %q", args, out)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	if got, want := show("--show"), "username: alice email: none ntfy: none pagerduty key: none digest: none"; got != want {
		t.Errorf("--show of a blank contact = %q, want %q", got, want)
	}
	out, errOut := mustStaff(t, dir, "", "staff", "contact", "--username", "alice", "--email", "alice@clinic.example", "--pagerduty-key", key)
	if !strings.Contains(errOut, "changed the contact of alice") || strings.Contains(out+errOut, key) {
		t.Errorf("staff contact: stdout %q, stderr %q; want the change confirmed, the key nowhere", out, errOut)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"--ntfy", "https://ntfy.sh/alice-pages"}, "username: alice email: alice@clinic.example ntfy: https://ntfy.sh/alice-pages pagerduty key: set digest: none"},
		{[]string{"--digest-hour", "7"}, "username: alice email: alice@clinic.example ntfy: https://ntfy.sh/alice-pages pagerduty key: set digest: daily at 07:00"},
		{[]string{"--pagerduty-key", "", "--digest-hour", "none"}, "username: alice email: alice@clinic.example ntfy: https://ntfy.sh/alice-pages pagerduty key: none digest: none"},
		{nil, "username: alice email: alice@clinic.example ntfy: https://ntfy.sh/alice-pages pagerduty key: none digest: none"},
	}
	for _, s := range steps {
		if got := show(s.args...); got != s.want {
			t.Errorf("staff contact %q = %q, want %q", s.args, got, s.want)
		}
	}

	// A clinic-wide setting of the same name in the environment is not
	// taken as alice's.
	var stdout, stderr bytes.Buffer
	env := map[string]string{"PATIENTPULSE_PAGERDUTY_KEY": key, "PATIENTPULSE_EMAIL": "all@clinic.example"}
	code := run(t.Context(), []string{"staff", "contact", "--username", "alice", "--digest-hour", "6", "--data-dir", dir, "--db", registryDSN(t, dir)},
		nil, &stdout, &stderr, func(k string) string { return env[k] })
	if got := strings.Join(strings.Fields(stdout.String()), " "); code != 0 ||
		got != "username: alice email: alice@clinic.example ntfy: https://ntfy.sh/alice-pages pagerduty key: none digest: daily at 06:00" {
		t.Errorf("staff contact under PATIENTPULSE_PAGERDUTY_KEY and _EMAIL: exit %d, %q, stderr %q", code, got, stderr.String())
	}

	reg := openRegistry(t, dir)
	cs, err := reg.StaffContacts(t.Context(), "alice")
	if c := cs["alice"]; err != nil || c.Email != "alice@clinic.example" || c.NtfyURL != "https://ntfy.sh/alice-pages" || c.PagerDutyKey != "" || c.DigestHour != 6 {
		t.Errorf("stored contact = %+v, %v", c, err)
	}
	entries, err := reg.AuditEntries(t.Context(), registry.AuditFilter{Action: registry.ActionStaffContact})
	if err != nil || len(entries) != 5 || !strings.HasPrefix(entries[0].Actor, "cli:") ||
		entries[0].Target != "alice (email, ntfy, digest at 06:00)" || entries[4].Target != "alice (email, pagerduty)" {
		t.Errorf("staff.contact audit entries = %+v, %v; want 5 by cli:, the last alice (email, ntfy, digest at 06:00)", entries, err)
	}
}

func TestStaffContactCommandErrors(t *testing.T) {
	dir := t.TempDir()
	mustStaff(t, dir, "her long password here\n", "staff", "add", "--username", "alice", "--role", "clinician")
	mustStaff(t, dir, "", "staff", "contact", "--username", "alice", "--email", "alice@clinic.example")
	const badKey = "not-a-pagerduty-key"
	contact := func(args ...string) []string { return append([]string{"staff", "contact"}, args...) }
	tests := []struct {
		name       string
		args       []string
		fresh      bool
		wantCode   int
		wantStderr []string
	}{
		{name: "no username", args: contact("--email", "a@clinic.example"), fresh: true, wantCode: 2, wantStderr: []string{"--username required"}},
		{name: "no registry", args: contact("--username", "alice", "--show"), fresh: true, wantCode: 2, wantStderr: []string{"no registry"}},
		{name: "hour not a number", args: contact("--username", "alice", "--digest-hour", "seven"), fresh: true, wantCode: 2,
			wantStderr: []string{"want an hour, 0 to 23, or none"}},
		{name: "show and change", args: contact("--username", "alice", "--show", "--email", "b@clinic.example"), wantCode: 2,
			wantStderr: []string{"--show changes nothing"}},
		{name: "unknown staff", args: contact("--username", "nobody", "--email", "n@clinic.example"), wantCode: 1, wantStderr: []string{"staff nobody: not found"}},
		{name: "every problem", args: contact("--username", "alice", "--email", "Alice <alice@clinic.example>", "--ntfy", "http://ntfy.example/t",
			"--pagerduty-key", badKey, "--digest-hour", "24"), wantCode: 1,
			wantStderr: []string{"email must be a bare address", "ntfy URL must be https://", "PagerDuty integration key must be", "digest hour must be 0 to 23"}},
		{name: "digest without mail", args: contact("--username", "alice", "--email", "", "--digest-hour", "8"), wantCode: 1,
			wantStderr: []string{"a daily digest needs an email address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dir
			if tt.fresh {
				d = filepath.Join(t.TempDir(), "data")
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append(append(tt.args, "--data-dir", d), registryArgs(t, d)...), nil, &stdout, &stderr, func(string) string { return "" })
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not say %q", stderr.String(), w)
				}
			}
			if code != tt.wantCode || stdout.Len() != 0 || strings.Contains(stderr.String(), badKey) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, nothing on stdout, the key nowhere", code, stdout.String(), stderr.String(), tt.wantCode)
			}
			if _, err := os.Stat(d); tt.fresh && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error created the data directory (stat: %v)", err)
			}
		})
	}
	reg := openRegistry(t, dir)
	if cs, err := reg.StaffContacts(t.Context(), "alice"); err != nil || cs["alice"].Email != "alice@clinic.example" || cs["alice"].DigestHour != -1 {
		t.Errorf("alice's contact after the failures = %+v, %v; want only her email", cs["alice"], err)
	}
}
