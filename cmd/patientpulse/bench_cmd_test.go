package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// TestBenchCommand runs `patientpulse bench --quick` in process (it starts
// its own Mosquitto and influxd for each phase) and checks the table: every
// row with its figures, (c) without and with --quick's 20 clinicians'
// consoles, each watching 5 of the 100 patients (which must have received
// sample messages, and none of which serve may have disconnected), (f)'s
// cold start of 100 patients (some with a rule holding), the ratio lines
// and the targets. It judges no figure: bench never fails on a
// time.
func TestBenchCommand(t *testing.T) {
	needServices(t) // the same binaries as TestMain's; bench starts its own
	// A guard against a hang only: under CI's load, with the other
	// packages' tests on the other core, --quick has taken over 3 minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	args, registryLine := []string{"bench", "--quick"}, "serve's registry: SQLite"
	if os.Getenv(testservices.RegistryEnv) == "postgres" {
		args = append(args, "--postgres", testservices.PostgresServerURL())
		registryLine = "serve's registry in (c) and (d): Postgres"
	}
	code := run(ctx, args, nil, &stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("bench --quick: exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	t.Logf("bench --quick took %s:\n%s", time.Since(start).Round(time.Second), stdout.String())
	out := stdout.String()
	if !strings.Contains(out, registryLine) {
		t.Errorf("bench does not say %q", registryLine)
	}

	rows := map[string][]string{}
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "| (") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 5 {
			t.Errorf("row with %d cells, want 5: %s", len(cells), line)
			continue
		}
		rows[cells[0]] = cells
	}
	positive := func(row, cell string) {
		t.Helper()
		if v, err := strconv.ParseFloat(cell, 64); err != nil || !(v > 0) {
			t.Errorf("row %s: %q is not a positive number", row, cell)
		}
	}
	for _, row := range []string{"(a)", "(b)", "(c)", "(c+ws)", "(c)/(a)", "(c)/(b)", "(c+ws)/(c)"} {
		cells, ok := rows[row]
		if !ok {
			t.Errorf("no row %s in:\n%s", row, out)
			continue
		}
		positive(row, cells[2]) // msgs/s
		positive(row, cells[3]) // points/s
	}
	for row, want := range map[string]*regexp.Regexp{
		"(d)": regexp.MustCompile(`^[0-9]+\.[0-9] / [0-9]+\.[0-9] / [0-9]+\.[0-9] ms \(20 alerts; load 200 msgs/s`),
		"(e)": regexp.MustCompile(`^[0-9]+\.[0-9]{2} MiB \(500 patients, 90 days`),
		"(f)": regexp.MustCompile(`^every patient judged [0-9.]+ s after the evaluator's start \([0-9]+ patients/s; [1-9][0-9]* with a rule holding\); ` +
			`per-patient path, measured on 100 of them: [0-9.]+ ms a patient, [0-9]+ s for 100 \([0-9]+ patients/s\); ` +
			`history: [0-9]+ points written in [0-9]+ s, influxd settled [0-9]+ s later$`),
		"(c+ws)": regexp.MustCompile(`^40000 points counted \(serve wrote [0-9]+\), [0-9.]+ s; PUBACKs at [0-9]+ msgs/s; ` +
			`consoles received [0-9]+ of their care teams' 40000 sample messages \([0-9]+ of 20 consoles every one\); ` +
			`disconnected for falling behind: 0 of 20; serve's live feed dropped the samples of [0-9]+ messages; ` +
			`the last sample reached those left [0-9.]+ s after the window$`),
	} {
		if cells, ok := rows[row]; !ok {
			t.Errorf("no row %s in:\n%s", row, out)
		} else if !want.MatchString(cells[4]) {
			t.Errorf("row %s: %q does not match %s", row, cells[4], want)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  pipeline/broker: +[0-9]+\.[0-9]{2} \(msgs/s [0-9]+ / [0-9]+; points/s [0-9]+ / [0-9]+\)$`),
		regexp.MustCompile(`(?m)^  pipeline/InfluxDB: +[0-9]+\.[0-9]{2} \(msgs/s [0-9]+ / [0-9]+; points/s [0-9]+ / [0-9]+\)$`),
		regexp.MustCompile(`(?m)^  pipeline >= 70% of the lower of \(a\) and \(b\): [0-9]+% of (broker|InfluxDB)'s .*: (met|not met)$`),
		// --quick loads 200 msgs/s, so the 1,000 msgs/s target is not judged.
		regexp.MustCompile(`(?m)^  alert p99 <= 250 ms at 1000 msgs/s: p99 [0-9]+\.[0-9] ms at 200 msgs/s: not judged`),
		regexp.MustCompile(`(?m)^  analysis <= 50 MiB per 10,000 patients: [0-9]+\.[0-9]{2} MiB: (met|not met)$`),
		// Both rates of (c), side by side.
		regexp.MustCompile(`(?m)^consoles: \(c\) end to end with and without 20 clinicians' consoles, each subscribed to its care team of 5 of the 100 patients `),
		regexp.MustCompile(`(?m)^  with 20 consoles: [0-9]+ msgs/s \([0-9]+ points/s\); without: [0-9]+ msgs/s \([0-9]+ points/s\); with/without: [0-9]+\.[0-9]{2}$`),
		regexp.MustCompile(`(?m)^  sample messages received: [0-9]+ of their care teams' 40000; every one by [0-9]+ of 20 consoles; disconnected for falling behind: 0 of 20$`),
		regexp.MustCompile(`(?m)^  serve's live feed dropped the samples of [0-9]+ device messages \(patientpulse_ws_samples_dropped_total\)$`),
		regexp.MustCompile(`(?m)^  in \(c\) the devices publish for 100 wearables of 100 patients, each device for its share of them in turn`),
		// Where the CPU time went, and the ceiling it puts on (c).
		regexp.MustCompile(`(?m)^\| broker \(a\) \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ µs \| [0-9]+% \|$`),
		regexp.MustCompile(`(?m)^\| InfluxDB \(b\) \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ µs \| [0-9]+% \|$`),
		regexp.MustCompile(`(?m)^\| pipeline \(c\) \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ µs \| [0-9]+% \|$`),
		regexp.MustCompile(`(?m)^\| pipeline, 20 consoles \(c\+ws\) \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ s \| [0-9.]+ µs \| [0-9]+% \|$`),
		regexp.MustCompile(`(?m)^ceiling for \(c\) from CPU: [0-9]+ CPUs / \([0-9.]+ µs of \(a\) \+ [0-9.]+ µs of \(b\) per message\) = [0-9]+ msgs/s = [0-9]+% of the lower`),
	} {
		if !want.MatchString(out) {
			t.Errorf("no line matching %s in:\n%s", want, out)
		}
	}
	// The consoles received samples: a count, not only a figure that parses;
	// all of their care teams' unless serve's live feed dropped some.
	if cells := rows["(c+ws)"]; cells == nil {
		t.Errorf("no row (c+ws) to count the consoles' sample messages in")
	} else if m := regexp.MustCompile(`consoles received ([0-9]+) of .*\(([0-9]+) of 20 consoles every one\).* dropped the samples of ([0-9]+) messages`).
		FindStringSubmatch(cells[4]); m == nil {
		t.Errorf("no count of the consoles' sample messages in row (c+ws): %q", cells[4])
	} else if n, _ := strconv.Atoi(m[1]); n <= 0 {
		t.Errorf("the consoles received %d sample messages, want some:\n%s", n, out)
	} else if complete, dropped := m[2], m[3]; dropped == "0" && (n < 40000 || complete != "20") {
		t.Errorf("serve's live feed dropped nothing, yet the consoles received %d sample messages of 40000, %s of 20 every one of theirs", n, complete)
	}
	if regexp.MustCompile(`(NaN|Inf)\b`).MatchString(out) {
		t.Errorf("a figure is not a number:\n%s", out)
	}
}

// TestBenchCommandFlags: bad sizes are usage errors, found before any
// service starts.
func TestBenchCommandFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--messages", "0"},
		{"bench", "--devices", "0"},
		{"bench", "--load", "-1"},
		{"bench", "--alerts", "0"},
		{"bench", "--patients", "0"},
		{"bench", "--cold-patients", "0"},
		{"bench", "--consoles", "-1"},
		{"bench", "--consoles", "1001"},
		{"bench", "--console-patients", "0"},
		{"bench", "--consoles", "101", "--console-patients", "100"}, // more than 10,000 patients
		{"bench", "--messages", "100"},                              // fewer than the 250 patients of 50 consoles × 5
		{"bench", "extra"},
		{"bench", "--postgres", "/var/lib/pp.db"}, // a server's URL, not a SQLite file
		{"bench", "--serve-args", "--write-concurrency=0"},
		{"bench", "--serve-args", "--no-such-flag"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" }); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr: %s", args, code, stderr.String())
		}
	}
}
