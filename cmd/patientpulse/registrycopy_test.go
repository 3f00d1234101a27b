package main

import (
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestRegistryCopyCommand: registry copy moves what the admin commands
// wrote into a new Postgres database, prints the rows per table and no
// patient's name, and the admin commands then work on the copy.
func TestRegistryCopyCommand(t *testing.T) {
	dir := t.TempDir()
	keepSQLite(t, dir) // the copy's source is a SQLite file
	mustStaff(t, dir, "", "patients", "add", "--id", "p-1", "--name", "Pat Secret")
	mustStaff(t, dir, "", "devices", "enroll", "--patient", "p-1", "--device", "d-1")
	to := testservices.PostgresDB(t)

	out, stderr := mustStaff(t, "", "", "registry", "copy", "--from", dir+"/patientpulse.db", "--to", to)
	rows := map[string]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 2 {
			rows[f[0]] = f[1]
		}
	}
	for table, want := range map[string]string{"patients": "1", "devices": "1", "audit": "2", "alerts": "0", "total": "4"} {
		if rows[table] != want {
			t.Errorf("registry copy printed %s rows of %s, want %s:\n%s", rows[table], table, want, out)
		}
	}
	if strings.Contains(out+stderr, "Pat Secret") {
		t.Errorf("registry copy printed a patient's name: %q %q", out, stderr)
	}
	if !strings.Contains(stderr, registry.Location(to)) {
		t.Errorf("registry copy's stderr %q does not name the target %s", stderr, registry.Location(to))
	}

	list, _ := mustStaff(t, "", "", "patients", "list", "--db", to)
	if !strings.Contains(list, "p-1") || !strings.Contains(list, "Pat Secret") {
		t.Errorf("patients list on the copy: %q, want p-1 and its name", list)
	}
	_, stderr, code := staffRun(t, "", strings.NewReader(""), "registry", "copy", "--from", dir+"/patientpulse.db", "--to", to)
	if code != 1 || !strings.Contains(stderr, "not empty") {
		t.Errorf("a second copy: exit %d, stderr %q; want 1, the target is not empty", code, stderr)
	}
	if _, stderr, code := staffRun(t, "", strings.NewReader(""), "registry", "copy", "--from", dir+"/patientpulse.db"); code != 2 {
		t.Errorf("registry copy without --to: exit %d (%s), want 2", code, stderr)
	}
}
