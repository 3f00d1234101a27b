package analysis

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// designPlanYAML is the example plan of DESIGN.md, "Plans and alerts",
// verbatim.
const designPlanYAML = `patient: p-001
effective: 2026-11-01T00:00:00Z        # when this version takes over
regimen:
  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mg, schedule: twice_weekly}
  - {medication: progesterone, route: oral, amount: 100, unit: mg, schedule: daily}
rules:
  - {id: sleep-short, kind: threshold, metric: sleep.total_min, per_day: sum,
     over: 7d, aggregate: mean, below: 420, severity: warning}
  - {id: flushes-high, kind: threshold, metric: symptoms.hot_flushes,
     over: 7d, aggregate: mean, above: 2, severity: warning}
  - {id: mood-worsening, kind: trend, metric: symptoms.depressive_mood,
     over: 14d, slope_above: 0.1, severity: warning}       # points per day
  - {id: hrv-drop, kind: baseline, metric: sleep.hrv_rmssd_ms,
     baseline: 28d, recent: 3d, z_below: -2, severity: info}
  - {id: watch-silent, kind: silence, metric: heart_rate, for: 24h, severity: warning}
  - {id: estradiol-adherence, kind: adherence, medication: estradiol,
     over: 14d, below: 0.8, severity: warning}
  - {id: mrs-severe, kind: score, instrument: mrs, score: total, above: 16,
     severity: critical}
`

// designPlanJSON is the same plan written by hand as the JSON body of
// PUT /v1/patients/{id}/plan.
const designPlanJSON = `{
  "patient": "p-001",
  "effective": "2026-11-01T00:00:00Z",
  "regimen": [
    {"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "twice_weekly"},
    {"medication": "progesterone", "route": "oral", "amount": 100, "unit": "mg", "schedule": "daily"}
  ],
  "rules": [
    {"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
     "over": "7d", "aggregate": "mean", "below": 420, "severity": "warning"},
    {"id": "flushes-high", "kind": "threshold", "metric": "symptoms.hot_flushes",
     "over": "7d", "aggregate": "mean", "above": 2, "severity": "warning"},
    {"id": "mood-worsening", "kind": "trend", "metric": "symptoms.depressive_mood",
     "over": "14d", "slope_above": 0.1, "severity": "warning"},
    {"id": "hrv-drop", "kind": "baseline", "metric": "sleep.hrv_rmssd_ms",
     "baseline": "28d", "recent": "3d", "z_below": -2, "severity": "info"},
    {"id": "watch-silent", "kind": "silence", "metric": "heart_rate", "for": "24h", "severity": "warning"},
    {"id": "estradiol-adherence", "kind": "adherence", "medication": "estradiol",
     "over": "14d", "below": 0.8, "severity": "warning"},
    {"id": "mrs-severe", "kind": "score", "instrument": "mrs", "score": "total", "above": 16,
     "severity": "critical"}
  ]
}`

func ptF64(v float64) *float64 { return &v }

func ptDays(n int) Duration { return Duration(time.Duration(n) * 24 * time.Hour) }

// ptParse parses a plan that must have no problem.
func ptParse(t *testing.T, src string) Plan {
	t.Helper()
	p, err := ParsePlan([]byte(src))
	if err != nil {
		t.Fatalf("ParsePlan: %v\n%s", err, src)
	}
	return p
}

// ptProblems parses src and returns the problems Validate named; a decode
// error (not a *PlanError) fails the test.
func ptProblems(t *testing.T, src string) []string {
	t.Helper()
	_, err := ParsePlan([]byte(src))
	if err == nil {
		return nil
	}
	var pe *PlanError
	if !errors.As(err, &pe) {
		t.Fatalf("ParsePlan: want a *PlanError, got %T: %v\n%s", err, err, src)
	}
	if len(pe.Problems) == 0 {
		t.Fatalf("ParsePlan: a *PlanError with no problems\n%s", src)
	}
	return pe.Problems
}

// ptRoundTrip checks that p survives encoding as JSON and as YAML and
// parsing again.
func ptRoundTrip(t *testing.T, p Plan) {
	t.Helper()
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if got := ptParse(t, string(js)); !reflect.DeepEqual(got, p) {
		t.Errorf("JSON round trip differs:\n got %+v\nwant %+v\nJSON: %s", got, p, js)
	}
	ys, err := yaml.Marshal(p)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	if got := ptParse(t, string(ys)); !reflect.DeepEqual(got, p) {
		t.Errorf("YAML round trip differs:\n got %+v\nwant %+v\nYAML:\n%s", got, p, ys)
	}
}

func TestPlanDesignExampleParses(t *testing.T) {
	p := ptParse(t, designPlanYAML)
	want := Plan{
		Patient:   "p-001",
		Effective: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Regimen: []Dose{
			{Medication: "estradiol", Route: "transdermal", Amount: 0.05, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "weeks", Twice: true}},
			{Medication: "progesterone", Route: "oral", Amount: 100, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "days"}},
		},
		Rules: []Rule{
			{ID: "sleep-short", Kind: KindThreshold, Severity: SeverityWarning, Metric: "sleep.total_min", PerDay: "sum",
				Over: ptDays(7), Aggregate: "mean", Below: ptF64(420)},
			{ID: "flushes-high", Kind: KindThreshold, Severity: SeverityWarning, Metric: "symptoms.hot_flushes",
				Over: ptDays(7), Aggregate: "mean", Above: ptF64(2)},
			{ID: "mood-worsening", Kind: KindTrend, Severity: SeverityWarning, Metric: "symptoms.depressive_mood",
				Over: ptDays(14), SlopeAbove: ptF64(0.1)},
			{ID: "hrv-drop", Kind: KindBaseline, Severity: SeverityInfo, Metric: "sleep.hrv_rmssd_ms",
				Baseline: ptDays(28), Recent: ptDays(3), ZBelow: ptF64(-2)},
			{ID: "watch-silent", Kind: KindSilence, Severity: SeverityWarning, Metric: "heart_rate",
				For: Duration(24 * time.Hour)},
			{ID: "estradiol-adherence", Kind: KindAdherence, Severity: SeverityWarning, Medication: "estradiol",
				Over: ptDays(14), Below: ptF64(0.8)},
			{ID: "mrs-severe", Kind: KindScore, Severity: SeverityCritical, Instrument: "mrs", Score: "total",
				Above: ptF64(16)},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("parsed plan:\n got %+v\nwant %+v", p, want)
	}
	if err := want.Validate(); err != nil {
		t.Errorf("Validate of the plan built in Go: %v", err)
	}
	if got := ptParse(t, designPlanJSON); !reflect.DeepEqual(got, p) {
		t.Errorf("the hand-written JSON form parses differently:\n got %+v\nwant %+v", got, p)
	}
	ptRoundTrip(t, p)
}

func TestPlanJSONEncoding(t *testing.T) {
	p := ptParse(t, designPlanYAML)
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(js)
	// Schedules and durations are written as in a plan file, and unset
	// optional fields are left out.
	for _, frag := range []string{`"schedule":"twice_weekly"`, `"schedule":"daily"`, `"over":"1w"`, `"over":"2w"`,
		`"baseline":"4w"`, `"recent":"3d"`, `"for":"1d"`, `"effective":"2026-11-01T00:00:00Z"`} {
		if !strings.Contains(s, frag) {
			t.Errorf("JSON lacks %s:\n%s", frag, s)
		}
	}
	for _, absent := range []string{`"version"`, `"forecast"`, `"min_days"`, `"band"`, `"z_above"`} {
		if strings.Contains(s, absent) {
			t.Errorf("JSON has unset %s:\n%s", absent, s)
		}
	}
}

// everyProblemRules is a plan with one problem in its regimen and one in
// each rule, in this order.
const everyProblemPlan = `patient: p-001
effective: 2026-11-01T00:00:00Z
regimen:
  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mgs, schedule: twice_weekly}
rules:
  - {id: a, kind: threshold, metric: sleep.deep_sleep, over: 7d, aggregate: mean, below: 60, severity: warning}
  - {id: b, kind: threshold, metric: sleep.total_min, over: %s, aggregate: mean, below: 420, severity: warning}
  - {id: c, kind: threshold, metric: vitals.weight_kg, over: 7d, aggregate: mean, severity: info}
  - {id: c, kind: silence, metric: heart_rate, for: 24h, severity: warning}
  - {id: d, kind: range, metric: vitals.systolic, severity: warning}
  - {id: e, kind: silence, metric: sleep, for: 48h, severity: urgent}
  - {id: f, kind: adherence, medication: testosterone, over: 14d, below: 0.8, severity: warning}
  - {id: g, kind: score, instrument: ams, score: somatic, band: moderate, severity: warning}
  - {id: h, kind: threshold, metric: symptoms.hot_flushes, instrument: mrs, over: 14d, aggregate: median, above: 2, severity: warning}
  - {id: i, kind: threshold, metric: dose.amount, per_day: count, over: 7d, aggregate: count, below: 3, forecast: 7d, severity: info}
`

// everyProblemWant is what Validate should say of everyProblemPlan, in
// order; %s is the problem of rule b's window.
var everyProblemWant = []string{
	`regimen[0].unit: "mgs" is not a unit`,
	`rules[0] (a).metric: unknown metric "sleep.deep_sleep": sleep has no field deep_sleep`,
	`rules[1] (b).over: %s`,
	`rules[2] (c): bound missing: give below or above`,
	`rules[3] (c).id: duplicate rule id c`,
	`rules[4] (d).kind: "range": want one of threshold, trend, baseline, silence, adherence, score`,
	`rules[5] (e).severity: "urgent": want one of info, warning, critical`,
	`rules[6] (f).medication: testosterone is not in the regimen`,
	`rules[7] (g).band: "moderate": no published moderate band for ams somatic`,
	`rules[8] (h).aggregate: median needs per_day`,
	`rules[9] (i).forecast: a count cannot be forecast`,
}

func checkEveryProblem(t *testing.T, over, overProblem string) {
	t.Helper()
	src := strings.Replace(everyProblemPlan, "%s", over, 1)
	got := ptProblems(t, src)
	if len(got) != len(everyProblemWant) {
		t.Errorf("got %d problems, want %d:\n  %s", len(got), len(everyProblemWant), strings.Join(got, "\n  "))
	}
	for i, w := range everyProblemWant {
		w = strings.Replace(w, "%s", overProblem, 1)
		if i >= len(got) || !strings.Contains(got[i], w) {
			t.Errorf("problem %d: want it to contain %q; all problems:\n  %s", i, w, strings.Join(got, "\n  "))
		}
	}
	_, err := ParsePlan([]byte(src))
	if msg := err.Error(); !strings.HasPrefix(msg, "plan has 11 problem(s):\n  ") || strings.Count(msg, "\n") != 11 {
		t.Errorf("error text: %q", msg)
	}
}

// TestPlanValidateEveryProblemAtOnce: one plan, every problem named.
func TestPlanValidateEveryProblemAtOnce(t *testing.T) {
	checkEveryProblem(t, "36h", "36h: want whole days, 1d to 90d (the backfill horizon)")
}

// TestPlanParseBadDurationWithOtherProblems: a window that is not a
// duration at all ("7days") should be named along with the plan's other
// problems.
func TestPlanParseBadDurationWithOtherProblems(t *testing.T) {
	got := ptProblems(t, strings.Replace(everyProblemPlan, "%s", "7days", 1))
	want := append([]string{`line 7: "7days" is not a duration`}, slices.Delete(slices.Clone(everyProblemWant), 2, 3)...)
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
	for i, w := range want {
		if i >= len(got) || !strings.Contains(got[i], w) {
			t.Errorf("problem %d: want it to contain %q; all problems:\n  %s", i, w, strings.Join(got, "\n  "))
		}
	}
}

// TestPlanDecodeErrors: what the decoder finds (unknown keys, unreadable
// durations, schedules and times) is named with its line, among the
// plan's other problems.
func TestPlanDecodeErrors(t *testing.T) {
	const head = "patient: p-001\neffective: 2026-11-01T00:00:00Z\n"
	const med = "regimen:\n  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mg, schedule: %s}\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"unknown top-level keys", head + "patinet: p-002\nrules: []\nnotes: hello\n",
			[]string{"line 3: field patinet not found", "line 5: field notes not found"}},
		{"unknown rule key", head + "rules:\n  - {id: a, kind: silence, metric: heart_rate, for: 24h, severity: info, forr: 2h}\n",
			[]string{"line 4: field forr not found"}},
		{"unknown dose key", head + "regimen:\n  - {medication: estradiol, route: oral, amount: 1, unit: mg, schedule: daily, dose: 2}\n",
			[]string{"line 4: field dose not found"}},
		{"unknown JSON key", `{"patient": "p-001", "effective": "2026-11-01T00:00:00Z", "rulez": []}`,
			[]string{"line 1: field rulez not found"}},
		{"bad duration", head + "rules:\n  - {id: a, kind: silence, metric: heart_rate, for: 7days, severity: info}\n",
			[]string{`line 4: "7days" is not a duration`}},
		{"duration in seconds", head + "rules:\n  - {id: a, kind: silence, metric: heart_rate, for: 90s, severity: info}\n",
			[]string{`line 4: "90s" is not a duration`}},
		{"bad schedule", head + strings.Replace(med, "%s", "fortnightly", 1), []string{`line 4: "fortnightly" is not a schedule`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePlan([]byte(tc.src))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.src)
			}
			var pe *PlanError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *PlanError naming every problem with its line, got %v", err)
			}
			if len(pe.Problems) != len(tc.want) {
				t.Errorf("problems %q: want %d", pe.Problems, len(tc.want))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestPlanNotYAMLMapping: a file that is not a mapping, or whose
// effective is not a time, gets one plain error.
func TestPlanNotYAMLMapping(t *testing.T) {
	for _, src := range []string{"- just\n- a list\n", "just words", "{unclosed: [", "patient: p-001\neffective: yesterday\n"} {
		_, err := ParsePlan([]byte(src))
		var pe *PlanError
		if err == nil || errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "plan: ") {
			t.Errorf("ParsePlan(%q) = %v, want one plain error starting \"plan: \"", src, err)
		}
	}
}

func TestPlanValidatePlanFields(t *testing.T) {
	const rules = "rules:\n  - {id: a, kind: silence, metric: heart_rate, for: 24h, severity: info}\n"
	const dose = "  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mg, schedule: twice_weekly}\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"valid", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nregimen:\n" + dose + rules, nil},
		{"no regimen", "patient: p-001\neffective: 2026-11-01T00:00:00Z\n" + rules, nil},
		{"empty", "{}", []string{"patient: required", "effective: required, an RFC 3339 time"}},
		{"dose problems", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nregimen:\n" +
			"  - {medication: Estradiol, route: patch, amount: 0, unit: mgs}\n" + rules,
			[]string{`regimen[0].medication: "Estradiol": want 1 to 64 lowercase letters`, `regimen[0].route: "patch" is not a route`,
				"regimen[0].amount: must be above 0", `regimen[0].unit: "mgs" is not a unit`, "regimen[0].schedule: required"}},
		{"negative amount", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nregimen:\n" +
			"  - {medication: estradiol, route: oral, amount: -1, unit: mg, schedule: daily}\n",
			[]string{"regimen[0].amount: must be above 0"}},
		{"medication twice", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nregimen:\n" + dose + dose,
			[]string{"regimen[1].medication: estradiol is in the regimen twice"}},
		{"rule without id", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nrules:\n  - {kind: silence, metric: heart_rate, for: 24h, severity: info}\n",
			[]string{"rules[0].id: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptWant(t, ptProblems(t, tc.src), tc.want)
		})
	}
}

// ptWant checks that got has exactly one problem per fragment of want, in
// order.
func ptWant(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d (%q):\n  %s", len(got), len(want), want, strings.Join(got, "\n  "))
		return
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("problem %d is %q, want it to contain %q", i, got[i], w)
		}
	}
}

// TestPlanValidateRules checks each rule kind's required and forbidden
// fields. Each case is one rule, with id r, in a plan whose regimen has
// estradiol; the wanted fragments follow "rules[0] (r)".
func TestPlanValidateRules(t *testing.T) {
	const head = `patient: p-001
effective: 2026-11-01T00:00:00Z
regimen:
  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mg, schedule: twice_weekly}
rules:
  - `
	const (
		thr   = "id: r, kind: threshold, severity: warning, "
		trend = "id: r, kind: trend, severity: warning, "
		base  = "id: r, kind: baseline, severity: info, "
		sil   = "id: r, kind: silence, severity: warning, "
		adh   = "id: r, kind: adherence, severity: warning, "
		score = "id: r, kind: score, severity: warning, "
	)
	for _, tc := range []struct {
		name string
		rule string
		want []string // fragments after "rules[0] (r)"
	}{
		// common fields
		{"no id", "kind: silence, severity: info, metric: heart_rate, for: 24h", []string{"rules[0].id: required"}},
		{"no severity", "id: r, kind: silence, metric: heart_rate, for: 24h", []string{".severity: required, one of info, warning, critical"}},
		{"bad severity", "id: r, kind: silence, metric: heart_rate, for: 24h, severity: high", []string{`.severity: "high": want one of info, warning, critical`}},
		{"no kind", "id: r, severity: info, metric: heart_rate", []string{".kind: required, one of threshold, trend, baseline, silence, adherence, score"}},
		{"unknown kind", "id: r, kind: range, severity: info, metric: heart_rate", []string{`.kind: "range": want one of threshold,`}},

		// threshold
		{"threshold valid", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420", nil},
		{"threshold all fields", thr + "metric: symptoms.hot_flushes, instrument: mrs, per_day: max, over: 2w, aggregate: median, below: 0.5, above: 2, min_days: 14, forecast: 90d", nil},
		{"threshold for", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, for: 24h", []string{".for: not used by a threshold rule"}},
		{"threshold trend and baseline fields", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, slope_above: 1, recent: 3d, baseline: 28d, medication: estradiol, score: total, band: mild, z_below: -2",
			[]string{".band: not used by a threshold rule", ".baseline: not used", ".medication: not used", ".recent: not used", ".score: not used", ".slope_above: not used", ".z_below: not used"}},
		{"threshold no metric", thr + "over: 7d, aggregate: mean, below: 420", []string{".metric: required, measurement.field such as sleep.total_min"}},
		{"threshold no over", thr + "metric: sleep.total_min, aggregate: mean, below: 420", []string{".over: required, a window such as 7d"}},
		{"threshold no aggregate", thr + "metric: sleep.total_min, over: 7d, below: 420", []string{".aggregate: required, one of mean, min, max, sum, count, median, latest"}},
		{"threshold bad aggregate", thr + "metric: sleep.total_min, over: 7d, aggregate: avg, below: 420", []string{`.aggregate: "avg": want one of mean, min, max, sum, count, median, latest`}},
		{"threshold bad per_day", thr + "metric: sleep.total_min, per_day: total, over: 7d, aggregate: mean, below: 420", []string{`.per_day: "total": want one of sum, mean, min, max, count, last`}},
		{"threshold no bound", thr + "metric: sleep.total_min, over: 7d, aggregate: mean", []string{": bound missing: give below or above"}},
		{"threshold below above inverted", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 500, above: 300", []string{": below (500) must be below above (300)"}},
		{"threshold below equals above", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, above: 420", []string{": below (420) must be below above (420)"}},
		{"threshold window in hours", thr + "metric: sleep.total_min, over: 36h, aggregate: mean, below: 420", []string{".over: 36h: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"threshold window in minutes", thr + "metric: sleep.total_min, over: 90m, aggregate: mean, below: 420", []string{".over: 90m: want whole days"}},
		{"threshold window 90d", thr + "metric: vitals.weight_kg, over: 90d, aggregate: mean, below: 50", nil},
		{"threshold window 92d", thr + "metric: vitals.weight_kg, over: 92d, aggregate: mean, below: 50", []string{".over: 92d: want whole days, 1d to 90d (the backfill horizon)"}},
		{"threshold window 13w", thr + "metric: vitals.weight_kg, over: 13w, aggregate: mean, below: 50", []string{".over: 13w: want whole days, 1d to 90d (the backfill horizon)"}},
		{"threshold min_days whole window", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, min_days: 7", nil},
		{"threshold min_days beyond window", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, min_days: 8", []string{".min_days: 8: want 1 to the window's 7 days"}},
		{"threshold min_days negative", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, min_days: -1", []string{".min_days: -1: want 1 to the window's 7 days"}},
		{"threshold median without per_day", thr + "metric: sleep.total_min, over: 7d, aggregate: median, below: 420", []string{".aggregate: median needs per_day: it is a median of daily values"}},
		{"threshold median with per_day", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: median, below: 420", nil},
		{"threshold forecast", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: mean, below: 420, forecast: 2w", nil},
		{"threshold forecast in hours", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, forecast: 12h", []string{".forecast: 12h: want whole days, 1d to 90d"}},
		{"threshold forecast too far", thr + "metric: sleep.total_min, over: 7d, aggregate: mean, below: 420, forecast: 13w", []string{".forecast: 13w: want whole days, 1d to 90d"}},
		{"threshold forecast of a count", thr + "metric: dose.amount, over: 7d, aggregate: count, below: 3, forecast: 7d", []string{".forecast: a count cannot be forecast"}},
		{"threshold metric without field", thr + "metric: sleep, over: 7d, aggregate: mean, below: 420", []string{`.metric: "sleep" names no field: want measurement.field such as sleep.awake_min`}},
		{"threshold unknown measurement", thr + "metric: blood.pressure, over: 7d, aggregate: mean, below: 420",
			[]string{`.metric: unknown metric "blood.pressure": the measurement must be one of activity, dose, heart_rate, labs, sleep, symptoms, vitals`}},
		{"threshold unknown field", thr + "metric: vitals.bmi, over: 7d, aggregate: mean, above: 30",
			[]string{`.metric: unknown metric "vitals.bmi": vitals has no field bmi (it has diastolic, hematocrit_pct, systolic, weight_kg)`}},
		{"threshold instrument on vitals", thr + "metric: vitals.systolic, instrument: mrs, over: 7d, aggregate: mean, above: 140", []string{".instrument: only for symptoms metrics"}},
		{"threshold heart rate", thr + "metric: heart_rate.bpm, over: 7d, aggregate: max, above: 120", nil},
		{"threshold activity", thr + "metric: activity.steps, per_day: sum, over: 7d, aggregate: mean, below: 5000", nil},

		// trend
		{"trend valid", trend + "metric: symptoms.depressive_mood, over: 14d, slope_above: 0.1", nil},
		{"trend both slopes", trend + "metric: vitals.weight_kg, per_day: last, over: 28d, min_days: 8, slope_below: -0.1, slope_above: 0.1", nil},
		{"trend no slope", trend + "metric: symptoms.depressive_mood, over: 14d", []string{": bound missing: give slope_below or slope_above"}},
		{"trend slopes inverted", trend + "metric: symptoms.depressive_mood, over: 14d, slope_below: 1, slope_above: 0.5", []string{": slope_below (1) must be below slope_above (0.5)"}},
		{"trend short window", trend + "metric: symptoms.depressive_mood, over: 2d, slope_above: 0.1", []string{".over: a trend needs at least 3d"}},
		{"trend 3d window", trend + "metric: symptoms.depressive_mood, over: 3d, slope_above: 0.1", nil},
		{"trend no window", trend + "metric: symptoms.depressive_mood, slope_above: 0.1", []string{".over: required, a window such as 7d"}},
		{"trend threshold fields", trend + "metric: symptoms.depressive_mood, over: 14d, slope_above: 0.1, aggregate: mean, above: 2, forecast: 7d",
			[]string{".above: not used by a trend rule", ".aggregate: not used by a trend rule", ".forecast: not used by a trend rule"}},
		{"trend min_days beyond window", trend + "metric: symptoms.depressive_mood, over: 14d, slope_above: 0.1, min_days: 15", []string{".min_days: 15: want 1 to the window's 14 days"}},
		{"trend no metric", trend + "over: 14d, slope_above: 0.1", []string{".metric: required"}},

		// baseline
		{"baseline valid", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_below: -2", nil},
		{"baseline all fields", base + "metric: heart_rate.bpm, per_day: mean, baseline: 4w, recent: 1w, min_days: 28, z_below: -3, z_above: 3", nil},
		{"baseline no windows", base + "metric: sleep.hrv_rmssd_ms, z_below: -2", []string{".baseline: required, a window such as 7d", ".recent: required, a window such as 7d"}},
		{"baseline short", base + "metric: sleep.hrv_rmssd_ms, baseline: 5d, recent: 1d, z_below: -2", []string{".baseline: a baseline needs at least 7d"}},
		{"baseline recent in hours", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 12h, z_below: -2", []string{".recent: 12h: want whole days"}},
		{"baseline no z", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d", []string{": bound missing: give z_below or z_above"}},
		{"baseline z inverted", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_below: 2, z_above: -2", []string{": z_below (2) must be below z_above (-2)"}},
		{"baseline over", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_below: -2, over: 7d", []string{".over: not used by a baseline rule"}},
		{"baseline below", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, below: 20", []string{".below: not used by a baseline rule", ": bound missing: give z_below or z_above"}},
		{"baseline min_days beyond baseline", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_below: -2, min_days: 29", []string{".min_days: 29: want 1 to the window's 28 days"}},

		// silence
		{"silence valid", sil + "metric: heart_rate, for: 24h", nil},
		{"silence of a field", sil + "metric: vitals.hematocrit_pct, for: 120d", nil},
		{"silence of check-ins", sil + "metric: symptoms, for: 2w", nil},
		{"silence one hour", sil + "metric: heart_rate, for: 60m", nil},
		{"silence no for", sil + "metric: heart_rate", []string{".for: required, such as 24h"}},
		{"silence too short", sil + "metric: heart_rate, for: 30m", []string{".for: 30m: want at least 1h"}},
		{"silence no metric", sil + "for: 24h", []string{".metric: required"}},
		{"silence unknown measurement", sil + "metric: watch, for: 24h", []string{`.metric: unknown metric "watch"`}},
		{"silence unknown field", sil + "metric: heart_rate.rate, for: 24h", []string{`.metric: unknown metric "heart_rate.rate": heart_rate has no field rate`}},
		{"silence over and instrument", sil + "metric: symptoms, for: 24h, over: 7d, instrument: mrs",
			[]string{".instrument: not used by a silence rule", ".over: not used by a silence rule"}},

		// adherence
		{"adherence valid", adh + "medication: estradiol, over: 14d, below: 0.8", nil},
		{"adherence every dose", adh + "medication: estradiol, over: 2w, below: 1", nil},
		{"adherence no medication", adh + "over: 14d, below: 0.8", []string{".medication: required"}},
		{"adherence not in regimen", adh + "medication: progesterone, over: 14d, below: 0.8", []string{".medication: progesterone is not in the regimen"}},
		{"adherence no below", adh + "medication: estradiol, over: 14d", []string{".below: required, the share of scheduled doses logged (0 to 1)"}},
		{"adherence below above 1", adh + "medication: estradiol, over: 14d, below: 80", []string{".below: 80: want a share above 0, at most 1"}},
		{"adherence below 0", adh + "medication: estradiol, over: 14d, below: 0", []string{".below: 0: want a share above 0, at most 1"}},
		{"adherence no over", adh + "medication: estradiol, below: 0.8", []string{".over: required, a window such as 7d"}},
		{"adherence over in hours", adh + "medication: estradiol, over: 36h, below: 0.8", []string{".over: 36h: want whole days"}},
		{"adherence other fields", adh + "medication: estradiol, over: 14d, below: 0.8, above: 0.1, metric: dose.amount, min_days: 3",
			// "a adherence" or "an adherence": either reads.
			[]string{".above: not used by a", ".metric: not used by a", ".min_days: not used by a"}},

		// score
		{"score above", score + "instrument: mrs, score: total, above: 16", nil},
		{"score band", score + "instrument: mrs, score: total, band: severe", nil},
		{"score mrs subscale bands", score + "instrument: mrs, score: urogenital, band: mild, over: 28d", nil},
		{"score ams total band", score + "instrument: ams, score: total, band: moderate", nil},
		{"score ams subscale bounds", score + "instrument: ams, score: sexual, above: 20", nil},
		{"score below", score + "instrument: ams, score: total, below: 27, over: 4w", nil},
		{"score no instrument", score + "score: total, above: 16", []string{".instrument: required, one of mrs, ams"}},
		{"score custom instrument", score + "instrument: custom, score: total, above: 16", []string{`.instrument: "custom": want one of mrs, ams`}},
		{"score no score", score + "instrument: mrs, above: 16", []string{".score: required, one of total, somatic, psychological, urogenital"}},
		{"score subscale of the other instrument", score + "instrument: mrs, score: sexual, above: 3", []string{`.score: "sexual": want one of total, somatic, psychological, urogenital`}},
		{"score ams subscales", score + "instrument: ams, score: urogenital, above: 3", []string{`.score: "urogenital": want one of total, somatic, psychological, sexual`}},
		{"score band on ams subscale", score + "instrument: ams, score: somatic, band: moderate", []string{`.band: "moderate": no published moderate band for ams somatic`}},
		{"score unknown band", score + "instrument: mrs, score: total, band: extreme", []string{`.band: "extreme": no published extreme band for mrs total`}},
		{"score band and bound", score + "instrument: mrs, score: total, band: severe, above: 16", []string{".band: give a band or bounds, not both"}},
		{"score no band nor bound", score + "instrument: mrs, score: total", []string{": bound missing: give below or above"}},
		{"score bounds inverted", score + "instrument: mrs, score: total, below: 20, above: 10", []string{": below (20) must be below above (10)"}},
		{"score over in hours", score + "instrument: mrs, score: total, above: 16, over: 36h", []string{".over: 36h: want whole days"}},
		{"score over 48h", score + "instrument: mrs, score: total, above: 16, over: 48h", nil}, // 2d
		{"score metric and per_day", score + "instrument: mrs, score: total, above: 16, metric: symptoms.total, per_day: mean",
			[]string{".metric: not used by a score rule", ".per_day: not used by a score rule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				if strings.HasPrefix(w, "rules[") {
					want[i] = w
				} else {
					want[i] = "rules[0] (r)" + w
				}
			}
			ptWant(t, ptProblems(t, head+"{"+tc.rule+"}\n"), want)
		})
	}
}

// TestPlanValidateSymptomMetrics checks symptoms metrics against the
// rule's instrument.
func TestPlanValidateSymptomMetrics(t *testing.T) {
	// A count of samples has the same range whatever the metric.
	const head = "patient: p-001\neffective: 2026-11-01T00:00:00Z\nrules:\n  - {id: r, kind: threshold, severity: info, over: 7d, aggregate: count, above: 2, "
	for _, tc := range []struct {
		metric, instrument string
		want               string // a fragment of the one problem, or "" for none
	}{
		{"symptoms.hot_flushes", "mrs", ""},
		{"symptoms.vaginal_dryness", "mrs", ""},
		{"symptoms.somatic", "mrs", ""},
		{"symptoms.urogenital", "mrs", ""},
		{"symptoms.total", "mrs", ""},
		{"symptoms.libido", "ams", ""},
		{"symptoms.morning_erections", "ams", ""},
		{"symptoms.sexual", "ams", ""},
		{"symptoms.total", "ams", ""},
		{"symptoms.depressive_mood", "ams", ""}, // an item of both
		{"symptoms.hot_flushes", "", ""},        // any fixed instrument's item
		{"symptoms.libido", "", ""},
		{"symptoms.sexual", "", ""},
		{"symptoms.pain_level", "custom", ""},
		{"symptoms.hot_flushes", "custom", ""}, // a clinic may reuse a name
		{"symptoms.a", "custom", ""},
		{"symptoms.hot_flushes", "ams", `unknown metric "symptoms.hot_flushes": ams has no item or subscale hot_flushes`},
		{"symptoms.libido", "mrs", `unknown metric "symptoms.libido": mrs has no item or subscale libido`},
		{"symptoms.sexual", "mrs", "mrs has no item or subscale sexual"},
		{"symptoms.urogenital", "ams", "ams has no item or subscale urogenital"},
		{"symptoms.pain_level", "", "symptoms has no field pain_level"},
		{"symptoms.Pain", "custom", `.metric: "symptoms.Pain": a custom item key is lowercase letters, digits and '_'`},
		{"symptoms.2nd", "custom", "a custom item key"},
		{"symptoms.pain-level", "custom", "a custom item key"},
		{"symptoms.seq", "custom", "a custom item key"}, // reserved
		{"symptoms.time", "custom", "a custom item key"},
		{"symptoms.instrument", "custom", "a custom item key"},
		{"symptoms.patient", "custom", "a custom item key"},
		{"symptoms", "mrs", `"symptoms" names no field`},
	} {
		t.Run(tc.metric+"/"+tc.instrument, func(t *testing.T) {
			src := head + "metric: " + tc.metric
			if tc.instrument != "" {
				src += ", instrument: " + tc.instrument
			}
			src += "}\n"
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			ptWant(t, ptProblems(t, src), want)
		})
	}
	// An unknown instrument is named (it may also leave the metric
	// unknown).
	got := ptProblems(t, head+"metric: symptoms.hot_flushes, instrument: phq9}\n")
	if len(got) == 0 || !strings.Contains(got[0], `rules[0] (r).instrument: "phq9": want one of mrs, ams, custom`) {
		t.Errorf("problems %q", got)
	}
}

func TestDurationParseAndString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"30m", 30 * time.Minute, "30m"},
		{"90m", 90 * time.Minute, "90m"},
		{"60m", time.Hour, "1h"},
		{"1h", time.Hour, "1h"},
		{"24h", 24 * time.Hour, "1d"},
		{"36h", 36 * time.Hour, "36h"},
		{"1d", 24 * time.Hour, "1d"},
		{"7d", 7 * 24 * time.Hour, "1w"},
		{"10d", 10 * 24 * time.Hour, "10d"},
		{"14d", 14 * 24 * time.Hour, "2w"},
		{"2w", 14 * 24 * time.Hour, "2w"},
		{"365d", 365 * 24 * time.Hour, "365d"},
		{"99999m", 99999 * time.Minute, "99999m"},
	} {
		d, err := ParseDuration(tc.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
			continue
		}
		if time.Duration(d) != tc.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, time.Duration(d), tc.want)
		}
		if s := d.String(); s != tc.str {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", d.String(), back, err, d)
		}
		var u Duration
		if b, _ := d.MarshalText(); u.UnmarshalText(b) != nil || u != d {
			t.Errorf("text round trip of %q gives %v", tc.in, u)
		}
	}
	for _, bad := range []string{"", "7", "d", "7days", "7D", "0d", "07d", "-1d", "+1d", "1.5d", " 7d", "7d ", "1s", "2y",
		"100000m", "1h30m", "P7D"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d)
		} else if !strings.Contains(err.Error(), "is not a duration") {
			t.Errorf("ParseDuration(%q): %v", bad, err)
		}
	}
	if got := ptDays(1).Days(); got != 1 {
		t.Errorf("1d.Days() = %d", got)
	}
	if got := Duration(36 * time.Hour).Days(); got != 2 {
		t.Errorf("36h.Days() = %d, want 2 (rounded up)", got)
	}
	if got := Duration(time.Hour).Days(); got != 1 {
		t.Errorf("1h.Days() = %d, want 1 (rounded up)", got)
	}
}

func TestScheduleParseAndString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Schedule
		str  string
		gap  time.Duration
	}{
		{"daily", Schedule{Every: 1, Unit: "days"}, "daily", 24 * time.Hour},
		{"twice_weekly", Schedule{Every: 1, Unit: "weeks", Twice: true}, "twice_weekly", 84 * time.Hour},
		{"weekly", Schedule{Every: 1, Unit: "weeks"}, "weekly", 7 * 24 * time.Hour},
		{"every_3_days", Schedule{Every: 3, Unit: "days"}, "every_3_days", 3 * 24 * time.Hour},
		{"every_1_days", Schedule{Every: 1, Unit: "days"}, "daily", 24 * time.Hour},
		{"every_1_weeks", Schedule{Every: 1, Unit: "weeks"}, "weekly", 7 * 24 * time.Hour},
		{"every_2_weeks", Schedule{Every: 2, Unit: "weeks"}, "every_2_weeks", 14 * 24 * time.Hour},
		{"every_4_months", Schedule{Every: 4, Unit: "months"}, "every_4_months", 120 * 24 * time.Hour},
		{"every_1_months", Schedule{Every: 1, Unit: "months"}, "every_1_months", 30 * 24 * time.Hour},
		{"every_99_days", Schedule{Every: 99, Unit: "days"}, "every_99_days", 99 * 24 * time.Hour},
	} {
		s, err := ParseSchedule(tc.in)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tc.in, err)
			continue
		}
		if s != tc.want {
			t.Errorf("ParseSchedule(%q) = %+v, want %+v", tc.in, s, tc.want)
		}
		if got := s.String(); got != tc.str {
			t.Errorf("ParseSchedule(%q).String() = %q, want %q", tc.in, got, tc.str)
		}
		if back, err := ParseSchedule(s.String()); err != nil || back != s {
			t.Errorf("ParseSchedule(%q) = %+v, %v; want %+v", s.String(), back, err, s)
		}
		if got := s.Interval(); got != tc.gap {
			t.Errorf("%s.Interval() = %v, want %v", tc.in, got, tc.gap)
		}
	}
	for _, bad := range []string{"", "Daily", "twice_daily", "twice weekly", "fortnightly", "monthly", "every_0_days",
		"every_100_days", "every_01_days", "every_2_years", "every_2_day", "every__days", "every_-1_days", "every_3_days ",
		"every_n_weeks"} {
		if s, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) = %+v, want an error", bad, s)
		} else if !strings.Contains(err.Error(), "is not a schedule") {
			t.Errorf("ParseSchedule(%q): %v", bad, err)
		}
	}
	if s := (Schedule{}).String(); s != "" {
		t.Errorf("zero schedule writes %q, want \"\"", s)
	}
}

func TestScheduleDue(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	sched := func(s string) Schedule {
		v, err := ParseSchedule(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name             string
		sched            string
		anchor, from, to time.Time
		want             []time.Time
	}{
		{"daily", "daily", utc(2026, 11, 1, 22, 0), utc(2026, 11, 3, 12, 0), utc(2026, 11, 6, 22, 0),
			[]time.Time{utc(2026, 11, 3, 22, 0), utc(2026, 11, 4, 22, 0), utc(2026, 11, 5, 22, 0)}}, // to is excluded
		{"daily from a due time", "daily", utc(2026, 11, 1, 0, 0), utc(2026, 11, 3, 0, 0), utc(2026, 11, 4, 0, 1),
			[]time.Time{utc(2026, 11, 3, 0, 0), utc(2026, 11, 4, 0, 0)}}, // from is included
		{"daily from before the anchor", "daily", utc(2026, 11, 1, 8, 0), utc(2026, 10, 1, 0, 0), utc(2026, 11, 3, 0, 0),
			[]time.Time{utc(2026, 11, 1, 8, 0), utc(2026, 11, 2, 8, 0)}},
		{"daily before the anchor", "daily", utc(2026, 11, 1, 8, 0), utc(2026, 10, 1, 0, 0), utc(2026, 11, 1, 8, 0), nil},
		{"empty span", "daily", utc(2026, 11, 1, 8, 0), utc(2026, 11, 5, 0, 0), utc(2026, 11, 5, 0, 0), nil},
		{"every_3_days", "every_3_days", utc(2026, 11, 1, 8, 0), utc(2026, 11, 2, 0, 0), utc(2026, 11, 11, 0, 0),
			[]time.Time{utc(2026, 11, 4, 8, 0), utc(2026, 11, 7, 8, 0), utc(2026, 11, 10, 8, 0)}},
		// Every 84 hours: Sunday 08:00, Wednesday 20:00, Sunday 08:00, ...
		{"twice_weekly", "twice_weekly", utc(2026, 11, 1, 8, 0), utc(2026, 11, 1, 0, 0), utc(2026, 11, 15, 8, 0),
			[]time.Time{utc(2026, 11, 1, 8, 0), utc(2026, 11, 4, 20, 0), utc(2026, 11, 8, 8, 0), utc(2026, 11, 11, 20, 0)}},
		{"weekly", "weekly", utc(2026, 11, 1, 8, 0), utc(2026, 11, 2, 0, 0), utc(2026, 11, 30, 0, 0),
			[]time.Time{utc(2026, 11, 8, 8, 0), utc(2026, 11, 15, 8, 0), utc(2026, 11, 22, 8, 0), utc(2026, 11, 29, 8, 0)}},
		{"every_2_weeks", "every_2_weeks", utc(2026, 11, 1, 9, 0), utc(2026, 11, 10, 0, 0), utc(2027, 1, 1, 0, 0),
			[]time.Time{utc(2026, 11, 15, 9, 0), utc(2026, 11, 29, 9, 0), utc(2026, 12, 13, 9, 0), utc(2026, 12, 27, 9, 0)}},
		// Calendar months from the anchor: the k-th dose is k*4 months after
		// it (counted from the anchor, never from the previous dose), on the
		// anchor's day of the month, or the month's last day when it is
		// shorter: the 31st stays the 31st where it exists, and a missing
		// 31 September is 30 September.
		{"every_4_months from Jan 31", "every_4_months", utc(2027, 1, 31, 10, 0), utc(2027, 1, 1, 0, 0), utc(2028, 6, 1, 0, 0),
			[]time.Time{utc(2027, 1, 31, 10, 0), utc(2027, 5, 31, 10, 0), utc(2027, 9, 30, 10, 0), utc(2028, 1, 31, 10, 0), utc(2028, 5, 31, 10, 0)}},
		{"every_4_months", "every_4_months", utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), utc(2027, 11, 2, 0, 0),
			[]time.Time{utc(2027, 3, 1, 0, 0), utc(2027, 7, 1, 0, 0), utc(2027, 11, 1, 0, 0)}},
		{"every_1_months from Jan 31", "every_1_months", utc(2027, 1, 31, 0, 0), utc(2027, 2, 1, 0, 0), utc(2027, 6, 1, 0, 0),
			[]time.Time{utc(2027, 2, 28, 0, 0), utc(2027, 3, 31, 0, 0), utc(2027, 4, 30, 0, 0), utc(2027, 5, 31, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sched(tc.sched).Due(tc.anchor, tc.from, tc.to)
			if len(got) != len(tc.want) {
				t.Fatalf("Due = %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Errorf("Due[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}

	// Calendar schedules keep the local wall-clock time across a daylight
	// saving change; twice_weekly is every 84 elapsed hours.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil { // time/tzdata is linked into this package's tests (judge_test.go)
		t.Fatalf("no time zone data: %v", err)
	}
	anchor := time.Date(2026, 10, 20, 8, 0, 0, 0, berlin) // summer time ends 25 October
	due := sched("weekly").Due(anchor, anchor.Add(time.Hour), anchor.AddDate(0, 0, 8))
	if want := time.Date(2026, 10, 27, 8, 0, 0, 0, berlin); len(due) != 1 || !due[0].Equal(want) {
		t.Errorf("weekly across the change: %v, want [%v]", due, want)
	}
	due = sched("twice_weekly").Due(anchor, anchor.AddDate(0, 0, 6), anchor.AddDate(0, 0, 8))
	if want := anchor.Add(168 * time.Hour); len(due) != 1 || !due[0].Equal(want) || due[0].In(berlin).Hour() != 7 {
		t.Errorf("twice_weekly across the change: %v, want [%v] (07:00 local)", due, want)
	}
}

// TestExamplePlans parses every plan template of examples/plans: each must
// have no problem, survive JSON and YAML round trips, and explain each
// regimen line and rule with a comment.
func TestExamplePlans(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "plans", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want at least 3 example plans, found %q", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := ptParse(t, string(src))
			if len(p.Regimen) == 0 || len(p.Rules) == 0 {
				t.Errorf("want a regimen and rules, got %d doses and %d rules", len(p.Regimen), len(p.Rules))
			}
			if !strings.HasPrefix(p.Patient, "p-") || p.Effective.IsZero() {
				t.Errorf("patient %q, effective %v", p.Patient, p.Effective)
			}
			ptRoundTrip(t, p)

			var doc yaml.Node
			if err := yaml.Unmarshal(src, &doc); err != nil {
				t.Fatal(err)
			}
			for _, section := range []struct {
				name string
				n    int
			}{{"regimen", len(p.Regimen)}, {"rules", len(p.Rules)}} {
				items := ptSequence(&doc, section.name)
				if len(items) != section.n {
					t.Fatalf("%s: %d nodes for %d entries", section.name, len(items), section.n)
				}
				for i, item := range items {
					if item.HeadComment == "" && item.LineComment == "" {
						t.Errorf("%s[%d] (line %d) has no comment", section.name, i, item.Line)
					}
				}
			}
		})
	}
}

// ptSequence returns the items of the top-level sequence key of doc.
func ptSequence(doc *yaml.Node, key string) []*yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Content
		}
	}
	return nil
}
