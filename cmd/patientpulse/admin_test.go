package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminRun runs one command with the environment env and returns its exit
// code and stderr.
func adminRun(env map[string]string, args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, nil, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stderr.String()
}

// An admin command never makes a registry unless told to (--init), and
// always says which registry it used. It stays on SQLite whatever
// PP_TEST_REGISTRY says: it checks that no file, nor its directory, is
// made.
func TestAdminCommandsNeedARegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere", "data")
	path := filepath.Join(dir, "patientpulse.db")

	code, stderr := adminRun(nil, "patients", "list", "--data-dir", dir)
	if code != 2 || !strings.Contains(stderr, "no registry at "+path) || !strings.Contains(stderr, "--init") {
		t.Fatalf("patients list without a registry: exit %d, stderr %q; want 2, naming %s and --init", code, stderr, path)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("patients list without a registry made %s (stat: %v)", dir, err)
	}

	// --init only from the command line: a config file or the environment
	// that always says it would defeat the check.
	code, stderr = adminRun(map[string]string{"PATIENTPULSE_INIT": "true"}, "patients", "list", "--data-dir", dir)
	if code != 2 || !strings.Contains(stderr, "command line only") {
		t.Fatalf("PATIENTPULSE_INIT=true: exit %d, stderr %q; want 2, command line only", code, stderr)
	}

	code, stderr = adminRun(nil, "patients", "add", "--id", "p-1", "--data-dir", dir, "--init")
	if code != 0 || !strings.Contains(stderr, "registry: "+path+"\n") {
		t.Fatalf("patients add --init: exit %d, stderr %q; want 0 and \"registry: %s\"", code, stderr, path)
	}
	code, stderr = adminRun(nil, "patients", "list", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(stderr, "registry: "+path+"\n") {
		t.Fatalf("patients list on the new registry: exit %d, stderr %q; want 0 and \"registry: %s\"", code, stderr, path)
	}
	// Every admin command, not patients alone.
	for _, args := range [][]string{{"staff", "list"}, {"devices", "list"}} {
		empty := filepath.Join(t.TempDir(), "data")
		if code, stderr := adminRun(nil, append(args, "--data-dir", empty)...); code != 2 || !strings.Contains(stderr, "--init") {
			t.Errorf("%s without a registry: exit %d, stderr %q; want 2 and --init", strings.Join(args, " "), code, stderr)
		}
	}
}

// The registry line never carries a Postgres password.
func TestAdminRegistryLineHidesPassword(t *testing.T) {
	_, stderr := adminRun(nil, "patients", "list", "--db", "postgres://pp:s3cret-pw@db.clinic:5432/patientpulse?sslmode=require")
	if !strings.Contains(stderr, "registry: postgres://pp@db.clinic:5432/patientpulse\n") {
		t.Errorf("stderr %q does not name the Postgres registry", stderr)
	}
	if strings.Contains(stderr, "s3cret-pw") {
		t.Errorf("stderr %q carries the password", stderr)
	}
}
