package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// cliCode runs one admin command on dataDir's registry, as cli does, and
// returns its exit code, stdout and stderr instead of failing on an error.
func cliCode(t *testing.T, dataDir string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = initArgs(t, dataDir, append(args, "--data-dir", dataDir))
	code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

// A device may not be enrolled under the pipeline's own MQTT client ids
// (--mqtt-client-id and every id starting with it and a dash): it would
// disconnect the pipeline's sessions. The refusal is a usage error that
// names the setting, and changes nothing; under another
// --mqtt-client-id the same id is a device's like any other.
func TestDevicesEnrollRefusesPipelineClientIDs(t *testing.T) {
	dir := t.TempDir()
	cli(t, dir, "patients", "add", "--id", "p-1", "--name", "Test Patient")

	for _, tc := range []struct {
		name   string
		device string
		flags  []string
	}{
		{"a session slot of the default", "patientpulse-s3", nil},
		{"the default itself", "patientpulse", nil},
		{"a feed's publisher", "patientpulse-feed-i1-pub", nil},
		{"a session slot of a configured id", "clinic-a-s0", []string{"--mqtt-client-id", "clinic-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"devices", "enroll", "--patient", "p-1", "--device", tc.device}, tc.flags...)
			code, stdout, stderr := cliCode(t, dir, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (a usage error); stderr %q", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing (no token)", stdout)
			}
			for _, want := range []string{"enroll device " + tc.device, "reserved by --mqtt-client-id", "another id"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not say %q", stderr, want)
				}
			}
		})
	}
	if list := cli(t, dir, "devices", "list"); strings.Contains(list, "patientpulse") || strings.Contains(list, "clinic-a") {
		t.Fatalf("a refused device is enrolled:\n%s", list)
	}

	// Under --mqtt-client-id clinic-a, patientpulse-s3 is no pipeline's.
	token := strings.TrimSpace(cli(t, dir, "devices", "enroll", "--patient", "p-1", "--device", "patientpulse-s3",
		"--mqtt-client-id", "clinic-a"))
	if !strings.HasPrefix(token, "ppd_") {
		t.Fatalf("enroll patientpulse-s3 with --mqtt-client-id clinic-a printed %q, want a token", token)
	}
	if list := cli(t, dir, "devices", "list"); !strings.Contains(list, "patientpulse-s3") {
		t.Fatalf("patientpulse-s3 is not listed after its enrolment:\n%s", list)
	}
}
