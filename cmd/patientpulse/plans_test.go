package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlansCommands applies a template, shows it back as YAML that apply
// takes again (a second version), refuses a file with problems naming
// every one, and refuses a version that would take effect before the
// current one.
func TestPlansCommands(t *testing.T) {
	dir := t.TempDir()
	cli(t, dir, "patients", "add", "--id", "p-001")
	template := filepath.Join("..", "..", "examples", "plans", "menopause-estradiol-progesterone.yaml")
	_, errOut := mustStaff(t, dir, "", "plans", "apply", "-f", template)
	if !strings.Contains(errOut, "applied plan v1 for p-001, in force from 2026-11-01T00:00:00Z") {
		t.Errorf("plans apply said %q", errOut)
	}

	shown, _ := mustStaff(t, dir, "", "plans", "show", "--patient", "p-001")
	for _, want := range []string{"patient: p-001", "version: 1", "schedule: twice_weekly", "over: 1w", "id: estradiol-adherence"} {
		if !strings.Contains(shown, want) {
			t.Errorf("plans show lacks %q:\n%s", want, shown)
		}
	}
	// What show prints, apply takes back: a second version.
	_, errOut = mustStaff(t, dir, shown, "plans", "apply", "-f", "-")
	if !strings.Contains(errOut, "applied plan v2") {
		t.Errorf("re-applying what show printed: %q", errOut)
	}
	history, _ := mustStaff(t, dir, "", "plans", "show", "--patient", "p-001", "--history")
	if strings.Count(history, "patient: p-001") != 2 || !strings.Contains(history, "version: 2") {
		t.Errorf("plans show --history:\n%s", history)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`patient: p-001
effective: 2026-11-05T00:00:00Z
rules:
  - {id: a, kind: threshold, metric: sleep.nap_min, over: 7days, aggregate: mean, below: 1, severity: warning}
  - {id: a, kind: silence, metric: heart_rate, severity: warning}
`), 0o600)
	_, errOut, code := staffRun(t, dir, strings.NewReader(""), "plans", "apply", "-f", bad)
	for _, want := range []string{`line 4: "7days" is not a duration`, `unknown metric "sleep.nap_min"`, "duplicate rule id a", "for: required"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("plans apply of a bad file: exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}

	// Clinical nonsense: every problem is printed, each naming its rule.
	nonsense := filepath.Join(t.TempDir(), "nonsense.yaml")
	os.WriteFile(nonsense, []byte(`patient: p-001
effective: 2026-11-05T00:00:00Z
rules:
  - {id: sleep-short, kind: threshold, metric: sleep.total_min, per_day: sum,
     over: 7d, aggregate: mean, below: -30, severity: warning}
  - {id: flushes-high, kind: threshold, metric: symptoms.hot_flushes, instrument: mrs,
     over: 120d, aggregate: mean, above: 99, severity: warning}
`), 0o600)
	_, errOut, code = staffRun(t, dir, strings.NewReader(""), "plans", "apply", "-f", nonsense)
	for _, want := range []string{
		"plan has 3 problem(s):",
		"\n  rules[0] (sleep-short).below: -30 is outside the range of a day's sum of total_min, 0–1440\n",
		"\n  rules[1] (flushes-high).over: 120d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w\n",
		"\n  rules[1] (flushes-high).above: 99 is outside hot_flushes' range 0–4\n",
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("plans apply of a plan that makes no clinical sense: exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	// The admin commands read serve's settings: with a longer backfill
	// horizon, the 120-day window is one.
	_, errOut, _ = staffRun(t, dir, strings.NewReader(""), "plans", "apply", "-f", nonsense, "--backfill-horizon", "3000h")
	if strings.Contains(errOut, "120d") || !strings.Contains(errOut, "plan has 2 problem(s):") {
		t.Errorf("plans apply --backfill-horizon 3000h: stderr %q, want the two range problems only", errOut)
	}

	early := strings.Replace(shown, "effective: 2026-11-01T00:00:00Z", "effective: 2026-10-01T00:00:00Z", 1)
	if _, errOut, code := staffRun(t, dir, strings.NewReader(early), "plans", "apply", "-f", "-"); code != 1 ||
		!strings.Contains(errOut, "effective before the current version's") {
		t.Errorf("a version effective before the current one: exit %d, %q", code, errOut)
	}
	if _, errOut, code := staffRun(t, dir, strings.NewReader(""), "plans", "show", "--patient", "p-404"); code != 1 ||
		!strings.Contains(errOut, "p-404 has no plan") {
		t.Errorf("plans show of a patient without a plan: exit %d, %q", code, errOut)
	}
}
