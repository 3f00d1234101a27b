package analysis

import (
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/examples"
)

// vtHead is a plan whose regimen has a twice-weekly patch and a pellet
// every 4 months; each case of TestValidateRanges adds one rule, id r.
const vtHead = `patient: p-001
effective: 2026-11-01T00:00:00Z
regimen:
  - {medication: estradiol, route: transdermal, amount: 0.05, unit: mg, schedule: twice_weekly}
  - {medication: testosterone, route: implant, amount: 100, unit: mg, schedule: every_4_months}
rules:
  - `

// TestValidateRanges: every bound and band of a rule lies in the range of
// what it bounds, and every window within the backfill horizon (90 days
// by default). Each want is the whole sentence, in order.
func TestValidateRanges(t *testing.T) {
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
		want []string
	}{
		// threshold: a mean, min, max or median stays in the metric's range
		{"MRS item above 99", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, above: 99",
			[]string{"rules[0] (r).above: 99 is outside hot_flushes' range 0–4"}},
		{"sleep minimum of -30 minutes", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: mean, below: -30",
			[]string{"rules[0] (r).below: -30 is outside the range of a day's sum of total_min, 0–1440"}},
		{"sleep sample above a day", thr + "metric: sleep.total_min, over: 7d, aggregate: max, above: 1500",
			[]string{"rules[0] (r).above: 1500 is outside total_min's range 0–1440"}},
		{"nothing is below an item's 0", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, below: 0",
			[]string{"rules[0] (r).below: 0 can never be crossed: nothing in hot_flushes' range 0–4 is below it"}},
		{"nothing is above an item's 4", thr + "metric: symptoms.hot_flushes, instrument: mrs, per_day: max, over: 7d, aggregate: median, above: 4",
			[]string{"rules[0] (r).above: 4 can never be crossed: nothing in hot_flushes' range 0–4 is above it"}},
		{"below an item's top", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, below: 4", nil},
		{"above an item's bottom", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, above: 0", nil},
		{"an item of two instruments", thr + "metric: symptoms.depressive_mood, over: 7d, aggregate: mean, above: 4.5", nil},
		{"an item of two instruments, above both", thr + "metric: symptoms.depressive_mood, over: 7d, aggregate: mean, above: 6",
			[]string{"rules[0] (r).above: 6 is outside depressive_mood's range 0–5"}},
		{"AMS item below 1", thr + "metric: symptoms.libido, instrument: ams, over: 14d, aggregate: min, below: 1",
			[]string{"rules[0] (r).below: 1 can never be crossed: nothing in libido's range 1–5 is below it"}},
		{"custom item above 10", thr + "metric: symptoms.pain_level, instrument: custom, over: 7d, aggregate: mean, above: 12",
			[]string{"rules[0] (r).above: 12 is outside pain_level's range 0–10"}},
		{"MRS subscale", thr + "metric: symptoms.urogenital, instrument: mrs, over: 7d, aggregate: mean, above: 13",
			[]string{"rules[0] (r).above: 13 is outside urogenital's range 0–12"}},
		{"heart rate below 20", thr + "metric: heart_rate.bpm, over: 7d, aggregate: min, below: 10",
			[]string{"rules[0] (r).below: 10 is outside bpm's range 20–250"}},
		{"skin temperature", thr + "metric: sleep.skin_temp_dev_c, over: 7d, aggregate: mean, above: -6",
			[]string{"rules[0] (r).above: -6 is outside skin_temp_dev_c's range -5 to 5"}},
		{"per_day mean stays in range", thr + "metric: vitals.systolic, per_day: mean, over: 30d, aggregate: mean, above: 300",
			[]string{"rules[0] (r).above: 300 is outside systolic's range 50–260"}},
		{"a day's steps have no top", thr + "metric: activity.steps, per_day: sum, over: 7d, aggregate: mean, below: 200000", nil},
		{"a day's steps are not negative", thr + "metric: activity.steps, per_day: sum, over: 7d, aggregate: mean, below: -1",
			[]string{"rules[0] (r).below: -1 is outside the range of a day's sum of steps, 0 or more"}},
		{"a day's sleep is at most a day", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: mean, below: 1500",
			[]string{"rules[0] (r).below: 1500 is outside the range of a day's sum of total_min, 0–1440"}},
		{"a day's count", thr + "metric: heart_rate.bpm, per_day: count, over: 7d, aggregate: mean, below: -1",
			[]string{"rules[0] (r).below: -1 is outside the range of a day's count of bpm samples, 0 or more"}},

		// threshold: a sum scales with the window, a count is a count
		{"7-day sum of sleep", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: sum, below: 2000, above: 10000", nil},
		{"7-day sum of sleep above a week", thr + "metric: sleep.total_min, per_day: sum, over: 7d, aggregate: sum, above: 20000",
			[]string{"rules[0] (r).above: 20000 is outside the range of a 7-day sum of total_min, 0–10080"}},
		{"7-day sum of sleep samples", thr + "metric: sleep.total_min, over: 7d, aggregate: sum, above: 10080",
			[]string{"rules[0] (r).above: 10080 can never be crossed: nothing in the range of a 7-day sum of total_min, 0–10080 is above it"}},
		{"7-day sum of MRS items", thr + "metric: symptoms.hot_flushes, instrument: mrs, per_day: max, over: 7d, aggregate: sum, above: 29",
			[]string{"rules[0] (r).above: 29 is outside the range of a 7-day sum of hot_flushes, 0–28"}},
		{"sum of step samples", thr + "metric: activity.steps, over: 7d, aggregate: sum, below: -5",
			[]string{"rules[0] (r).below: -5 is outside the range of a 7-day sum of steps, 0 or more"}},
		{"count of days", thr + "metric: vitals.systolic, per_day: last, over: 7d, aggregate: count, below: 3", nil},
		{"count of days above the window", thr + "metric: vitals.systolic, per_day: last, over: 7d, aggregate: count, above: 8",
			[]string{"rules[0] (r).above: 8 is outside the range of a count of days in 7 days, 0–7"}},
		{"count of days at the window", thr + "metric: vitals.systolic, per_day: last, over: 7d, aggregate: count, above: 7",
			[]string{"rules[0] (r).above: 7 can never be crossed: nothing in the range of a count of days in 7 days, 0–7 is above it"}},
		{"count of samples", thr + "metric: dose.amount, over: 7d, aggregate: count, above: 1000", nil},
		{"count of samples below 0", thr + "metric: dose.amount, over: 7d, aggregate: count, below: 0",
			[]string{"rules[0] (r).below: 0 can never be crossed: nothing in the range of a count of samples, 0 or more is below it"}},
		{"several bounds", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, below: -1, above: 99",
			[]string{"rules[0] (r).below: -1 is outside hot_flushes' range 0–4", "rules[0] (r).above: 99 is outside hot_flushes' range 0–4"}},
		{"not a number", thr + "metric: symptoms.hot_flushes, instrument: mrs, over: 7d, aggregate: mean, above: .nan",
			[]string{"rules[0] (r).above: NaN: want a finite number"}},

		// trend: a slope per day, at most the range's width a day
		{"MRS item slope", trend + "metric: symptoms.depressive_mood, instrument: mrs, over: 14d, slope_above: 5",
			[]string{"rules[0] (r).slope_above: 5 is outside the range of a slope of depressive_mood, -4 to 4 a day"}},
		{"MRS item slope at the width", trend + "metric: symptoms.depressive_mood, instrument: mrs, over: 14d, slope_above: 4",
			[]string{"rules[0] (r).slope_above: 4 can never be crossed: nothing in the range of a slope of depressive_mood, -4 to 4 a day is above it"}},
		{"falling sleep", trend + "metric: sleep.total_min, per_day: sum, over: 14d, slope_below: -2000",
			[]string{"rules[0] (r).slope_below: -2000 is outside the range of a slope of total_min, -1440 to 1440 a day"}},
		{"weight slope", trend + "metric: vitals.weight_kg, over: 28d, slope_above: 0.07, slope_below: -0.2", nil},
		{"steps slope has no range", trend + "metric: activity.steps, per_day: sum, over: 14d, slope_below: -1000000", nil},

		// baseline: z within ±10, recent shorter than baseline, both within the horizon
		{"z far out", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_below: -12",
			[]string{"rules[0] (r).z_below: -12 is outside the sane range of a z-score, -10 to 10"}},
		{"z at 10", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 3d, z_above: 10", nil},
		{"recent as long as baseline", base + "metric: sleep.hrv_rmssd_ms, baseline: 28d, recent: 28d, z_below: -2",
			[]string{"rules[0] (r).recent: 4w: want shorter than the baseline's 4w"}},
		{"baseline and recent beyond the horizon", base + "metric: sleep.hrv_rmssd_ms, baseline: 84d, recent: 14d, z_below: -2",
			[]string{"rules[0] (r).baseline: 12w before the recent 2w reaches 98 days back: want at most 90d together (the backfill horizon)"}},
		{"baseline beyond the horizon", base + "metric: sleep.hrv_rmssd_ms, baseline: 120d, recent: 3d, z_below: -2",
			[]string{"rules[0] (r).baseline: 120d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},

		// windows: 1 day to the backfill horizon
		{"threshold window at the horizon", thr + "metric: vitals.weight_kg, over: 90d, aggregate: mean, above: 150", nil},
		{"threshold window beyond the horizon", thr + "metric: vitals.weight_kg, over: 120d, aggregate: mean, above: 150",
			[]string{"rules[0] (r).over: 120d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"trend window beyond the horizon", trend + "metric: vitals.weight_kg, over: 26w, slope_above: 0.07",
			[]string{"rules[0] (r).over: 26w: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"score window beyond the horizon", score + "instrument: mrs, score: total, above: 16, over: 100d",
			[]string{"rules[0] (r).over: 100d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"adherence window beyond the horizon", adh + "medication: estradiol, over: 100d, below: 0.8",
			[]string{"rules[0] (r).over: 100d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"adherence of a pellet over 180d", adh + "medication: testosterone, over: 180d, below: 1", nil},
		{"adherence of a pellet beyond two intervals", adh + "medication: testosterone, over: 241d, below: 1",
			[]string{"rules[0] (r).over: 241d: want whole days, 1d to 240d (two of testosterone's every_4_months intervals), such as 7d or 2w"}},

		// silence: 1h to 400d
		{"silence of a yearly lab", sil + "metric: vitals.hematocrit_pct, for: 400d", nil},
		{"silence too long", sil + "metric: vitals.hematocrit_pct, for: 401d",
			[]string{"rules[0] (r).for: 401d: want 1h to 400d (a yearly test a month late), such as 24h or 14d"}},
		{"silence too short", sil + "metric: heart_rate, for: 59m", []string{"rules[0] (r).for: 59m: want at least 1h"}},

		// score: against the total's or the subscale's range
		{"MRS total above 44", score + "instrument: mrs, score: total, above: 50",
			[]string{"rules[0] (r).above: 50 is outside mrs total's range 0–44"}},
		{"MRS total at 44", score + "instrument: mrs, score: total, above: 44",
			[]string{"rules[0] (r).above: 44 can never be crossed: nothing in mrs total's range 0–44 is above it"}},
		{"AMS total below 17", score + "instrument: ams, score: total, below: 17",
			[]string{"rules[0] (r).below: 17 can never be crossed: nothing in ams total's range 17–85 is below it"}},
		{"AMS total below 10", score + "instrument: ams, score: total, below: 10",
			[]string{"rules[0] (r).below: 10 is outside ams total's range 17–85"}},
		{"AMS subscale", score + "instrument: ams, score: somatic, above: 36, over: 28d",
			[]string{"rules[0] (r).above: 36 is outside ams somatic's range 7–35"}},
		{"MRS subscale", score + "instrument: mrs, score: psychological, above: 8", nil},
		{"band", score + "instrument: mrs, score: total, band: severe", nil},

		// adherence: a share
		{"adherence below 80", adh + "medication: estradiol, over: 14d, below: 80",
			[]string{"rules[0] (r).below: 80: want a share above 0, at most 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vtWant(t, ptProblems(t, vtHead+"{"+tc.rule+"}\n"), tc.want)
		})
	}
}

// vtWant checks that got is exactly want.
func vtWant(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestValidateEveryRangeProblemAtOnce: the DESIGN.md plan with a bound
// out of range in several rules and a window past the horizon names
// every problem, each with its rule.
func TestValidateEveryRangeProblemAtOnce(t *testing.T) {
	src := designPlanYAML
	for _, r := range [][2]string{
		{"over: 7d, aggregate: mean, below: 420", "over: 7d, aggregate: mean, below: -30"},
		{"over: 7d, aggregate: mean, above: 2", "over: 7d, aggregate: mean, above: 99"},
		{"over: 14d, slope_above: 0.1", "over: 120d, slope_above: 0.1"},
		{"z_below: -2", "z_below: -20"},
		{"for: 24h", "for: 30m"},
		{"score: total, above: 16", "score: total, above: 45"},
	} {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("the DESIGN.md plan lacks %q", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	vtWant(t, ptProblems(t, src), []string{
		"rules[0] (sleep-short).below: -30 is outside the range of a day's sum of total_min, 0–1440",
		"rules[1] (flushes-high).above: 99 is outside hot_flushes' range 0–4",
		"rules[2] (mood-worsening).over: 120d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w",
		"rules[3] (hrv-drop).z_below: -20 is outside the sane range of a z-score, -10 to 10",
		"rules[4] (watch-silent).for: 30m: want at least 1h",
		"rules[6] (mrs-severe).above: 45 is outside mrs total's range 0–44",
	})
}

// TestValidateWithinHorizon: a clinic with a longer backfill horizon may
// look further back, and one with a shorter one may not look as far.
func TestValidateWithinHorizon(t *testing.T) {
	const day = 24 * time.Hour
	rule := func(over string) Plan {
		return ptDecode(t, vtHead+"{id: r, kind: threshold, severity: info, metric: vitals.weight_kg, over: "+over+", aggregate: mean, above: 150}\n")
	}
	for _, tc := range []struct {
		name    string
		over    string
		horizon time.Duration
		want    []string
	}{
		{"default horizon", "90d", 0, nil},
		{"default horizon, beyond", "92d", 0, []string{"rules[0] (r).over: 92d: want whole days, 1d to 90d (the backfill horizon), such as 7d or 2w"}},
		{"180 days", "180d", 180 * day, nil},
		{"180 days, beyond", "181d", 180 * day, []string{"rules[0] (r).over: 181d: want whole days, 1d to 180d (the backfill horizon), such as 7d or 2w"}},
		{"30 days", "5w", 30 * day, []string{"rules[0] (r).over: 5w: want whole days, 1d to 30d (the backfill horizon), such as 7d or 2w"}},
		{"a horizon of hours", "1d", 36 * time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rule(tc.over)
			var got []string
			if err := p.ValidateWithin(tc.horizon); err != nil {
				got = err.(*PlanError).Problems
			}
			vtWant(t, got, tc.want)
			if _, err := ParsePlanWithin([]byte(vtHead+"{id: r, kind: threshold, severity: info, metric: vitals.weight_kg, over: "+tc.over+
				", aggregate: mean, above: 150}\n"), tc.horizon); (err == nil) != (tc.want == nil) {
				t.Errorf("ParsePlanWithin: %v, want the same problems", err)
			}
		})
	}
}

// ptDecode decodes src without validating it; it must have no decode
// problem.
func ptDecode(t *testing.T, src string) Plan {
	t.Helper()
	p, err := DecodePlan([]byte(src))
	if err != nil {
		t.Fatalf("DecodePlan: %v\n%s", err, src)
	}
	return p
}

// TestExamplePlansValid: the templates of examples/plans, which clinics
// start from and simulate applies, and the DESIGN.md plan are valid.
func TestExamplePlansValid(t *testing.T) {
	names, err := fs.Glob(examples.Plans, "plans/*.yaml")
	if err != nil || len(names) < 3 {
		t.Fatalf("templates %v: %v", names, err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := examples.Plans.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParsePlan(data); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	for _, src := range []string{designPlanYAML, designPlanJSON} {
		if _, err := ParsePlan([]byte(src)); err != nil {
			t.Errorf("the DESIGN.md plan: %v", err)
		}
	}
}

// TestDecodeProblemsNameTheirRule: a decode problem inside a rule or a
// regimen line is named as Validate names its problems, in YAML and in
// JSON written on one line (as the web editor sends it), and is reported
// with the plan's other problems.
func TestDecodeProblemsNameTheirRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"YAML", `patient: p-001
effective: 2026-11-01T00:00:00Z
regimen:
  - {medication: estradiol, route: oral, amount: 1, unit: mg, schedule: fortnightly}
rules:
  - {id: flushes-high, kind: threshold, metric: symptoms.hot_flushes, instrument: mrs,
     over: 7d, aggregate: mean, above: 99, severity: warning}
  - {id: sleep-short, kind: threshold, metric: sleep.total_min, per_day: sum,
     over: 7days, aggregate: mean, below: 420, severity: warning}
  - id: watch-silent
    kind: silence
    metric: heart_rate
    for: 24h
    severity: warning
    forr: 2h
`, []string{
			`regimen[0].schedule: line 4: "fortnightly" is not a schedule: want daily, twice_weekly, weekly, every_N_days, every_N_weeks or every_N_months`,
			`rules[1] (sleep-short).over: line 9: "7days" is not a duration: want a whole number and m, h, d or w, such as 7d`,
			`rules[2] (watch-silent).forr: line 15: field forr not found in type analysis.Rule`,
			`rules[0] (flushes-high).above: 99 is outside hot_flushes' range 0–4`,
		}},
		{"JSON on one line", `{"patient": "p-001", "effective": "2026-11-01T00:00:00Z", "rules": [` +
			`{"id": "a", "kind": "silence", "metric": "heart_rate", "for": "1 day", "severity": "info"}, ` +
			`{"id": "b", "kind": "baseline", "metric": "sleep.hrv_rmssd_ms", "baseline": "28d", "recent": "3d", "z_below": "low", "severity": "info"}, ` +
			`{"id": "c", "kind": "silence", "metric": "heart_rate", "for": "1 day", "severity": "info", "note": "x"}, ` +
			`{"id": "d", "kind": "threshold", "metric": "symptoms.hot_flushes", "over": "7d", "aggregate": "mean", "above": 99, "severity": "info"}]}`,
			[]string{
				`rules[0] (a).for: line 1: "1 day" is not a duration: want a whole number and m, h, d or w, such as 7d`,
				"rules[1] (b).z_below: line 1: cannot unmarshal !!str `low` into float64",
				`rules[2] (c).for: line 1: "1 day" is not a duration: want a whole number and m, h, d or w, such as 7d`,
				`rules[2] (c).note: line 1: field note not found in type analysis.Rule`,
				`rules[3] (d).above: 99 is outside hot_flushes' range 0–4`,
			}},
		{"a rule that is not a mapping", "patient: p-001\neffective: 2026-11-01T00:00:00Z\nrules:\n  - 5\n",
			[]string{"rules[0]: line 4: cannot unmarshal !!int `5` into analysis.Rule"}},
		{"top-level problems stay as they are", "patient: p-001\npatinet: p-002\neffective: 2026-11-01T00:00:00Z\n",
			[]string{"line 2: field patinet not found in type analysis.Plan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vtWant(t, ptProblems(t, tc.src), tc.want)
		})
	}
}
