package main

import (
	"database/sql"
	"strings"
	"testing"
)

// TestPatientNames: patients add refuses a name with a terminal escape,
// saying why; patients list prints a name stored before that check
// escaped, so that it cannot drive the operator's terminal.
func TestPatientNames(t *testing.T) {
	dir := t.TempDir()
	mustStaff(t, dir, "", "patients", "add", "--id", "p-ok", "--name", "Zoë Ångström")

	_, stderr, code := staffRun(t, dir, strings.NewReader(""), "patients", "add", "--id", "p-bad", "--name", "Eve\x1b]0;pwned\x07\x1b[2J")
	if code != 1 || !strings.Contains(stderr, "invalid name: character 4 is U+001B") || strings.Contains(stderr, "\x1b") {
		t.Fatalf("patients add with an escape: exit %d, stderr %q; want 1, saying character 4 is U+001B, with no escape", code, stderr)
	}
	_, stderr, code = staffRun(t, dir, strings.NewReader(""), "patients", "add", "--id", "p-long", "--name", strings.Repeat("a", 201))
	if code != 1 || !strings.Contains(stderr, "at most 200 characters") {
		t.Fatalf("patients add with 201 characters: exit %d, stderr %q; want 1, at most 200 characters", code, stderr)
	}

	// A row from before the check, written past the registry.
	driver, insert := "sqlite", `INSERT INTO patients (id, name, created_at) VALUES ('p-old', ?, '2026-01-01T00:00:00Z')`
	dsn := registryDSN(t, dir)
	if strings.HasPrefix(dsn, "postgres://") {
		driver, insert = "pgx", strings.Replace(insert, "?", "$1", 1)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(insert, "Mallory\x1b[2J\x1b[1;1Hp-fake\tforged")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := mustStaff(t, dir, "", "patients", "list")
	if strings.ContainsAny(out, "\x1b\x07") || strings.Count(out, "\t") > 0 {
		t.Errorf("patients list printed control characters: %q", out)
	}
	if !strings.Contains(out, `"Mallory\x1b[2J\x1b[1;1Hp-fake\tforged"`) {
		t.Errorf("patients list = %q, want the old row's name escaped", out)
	}
	if !strings.Contains(out, "Zoë Ångström") {
		t.Errorf("patients list = %q, want a printable name as it is", out)
	}
	if strings.Contains(out, "p-bad") || strings.Contains(out, "p-long") {
		t.Errorf("patients list = %q shows a refused patient", out)
	}
}
