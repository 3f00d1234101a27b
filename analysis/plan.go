package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patientpulse/patientpulse/ingest"
)

// Plan is one version of a patient's treatment plan: the regimen and the
// rules that judge whether it works.
type Plan struct {
	Patient   string    `json:"patient" yaml:"patient"`
	Version   int       `json:"version,omitempty" yaml:"version,omitempty"` // given by the registry
	Effective time.Time `json:"effective" yaml:"effective"`
	Regimen   []Dose    `json:"regimen" yaml:"regimen"`
	Rules     []Rule    `json:"rules" yaml:"rules"`
}

// Dose is one medication of the regimen.
type Dose struct {
	Medication string   `json:"medication" yaml:"medication"`
	Route      string   `json:"route" yaml:"route"`
	Amount     float64  `json:"amount" yaml:"amount"`
	Unit       string   `json:"unit" yaml:"unit"`
	Schedule   Schedule `json:"schedule" yaml:"schedule"`
}

// Rule kinds.
const (
	KindThreshold = "threshold"
	KindTrend     = "trend"
	KindBaseline  = "baseline"
	KindSilence   = "silence"
	KindAdherence = "adherence"
	KindScore     = "score"
)

// Severities, in rising order.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Rule is one target of a plan. Which fields apply depends on Kind; the
// package documentation defines each kind.
type Rule struct {
	ID       string `json:"id" yaml:"id"`
	Kind     string `json:"kind" yaml:"kind"`
	Severity string `json:"severity" yaml:"severity"`

	// threshold, trend, baseline: measurement.field; silence: a
	// measurement, or measurement.field.
	Metric string `json:"metric,omitempty" yaml:"metric,omitempty"`
	// Instrument limits a symptoms metric to one instrument's check-ins;
	// for score rules, the instrument scored.
	Instrument string `json:"instrument,omitempty" yaml:"instrument,omitempty"`
	// PerDay rolls each day's samples up first: sum, mean, min, max,
	// count or last.
	PerDay string `json:"per_day,omitempty" yaml:"per_day,omitempty"`
	// Over is the window: threshold, trend, adherence, and score (the mean
	// over it instead of the latest check-in).
	Over Duration `json:"over,omitempty" yaml:"over,omitempty"`
	// Aggregate of the window (threshold): mean, min, max, sum, count or
	// median.
	Aggregate string `json:"aggregate,omitempty" yaml:"aggregate,omitempty"`
	// Bounds (threshold, score, adherence): the rule holds below Below or
	// above Above.
	Below *float64 `json:"below,omitempty" yaml:"below,omitempty"`
	Above *float64 `json:"above,omitempty" yaml:"above,omitempty"`
	// Band (score): the rule holds when the score is in this published
	// band or a worse one: mild, moderate or severe.
	Band string `json:"band,omitempty" yaml:"band,omitempty"`
	// MinDays is how many judged days the window needs (threshold,
	// trend, baseline's baseline); 0: half the window's days, at least 1
	// (trend: at least 3).
	MinDays int `json:"min_days,omitempty" yaml:"min_days,omitempty"`
	// Forecast (threshold): report, as its own transition, when the
	// current trend is predicted to cross the bound within this horizon.
	Forecast Duration `json:"forecast,omitempty" yaml:"forecast,omitempty"`

	// trend: the rule holds when the slope, in units per day, is above
	// SlopeAbove or below SlopeBelow.
	SlopeAbove *float64 `json:"slope_above,omitempty" yaml:"slope_above,omitempty"`
	SlopeBelow *float64 `json:"slope_below,omitempty" yaml:"slope_below,omitempty"`

	// baseline: the mean of the Recent window against the Baseline
	// window before it, as a z-score.
	Baseline Duration `json:"baseline,omitempty" yaml:"baseline,omitempty"`
	Recent   Duration `json:"recent,omitempty" yaml:"recent,omitempty"`
	ZBelow   *float64 `json:"z_below,omitempty" yaml:"z_below,omitempty"`
	ZAbove   *float64 `json:"z_above,omitempty" yaml:"z_above,omitempty"`

	// silence: the rule holds after this long without data.
	For Duration `json:"for,omitempty" yaml:"for,omitempty"`

	// adherence: the medication of the regimen whose logged doses are
	// counted against its schedule.
	Medication string `json:"medication,omitempty" yaml:"medication,omitempty"`

	// score: total or a subscale of Instrument.
	Score string `json:"score,omitempty" yaml:"score,omitempty"`
}

// Duration is a span written as a whole number of minutes (30m), hours
// (24h), days (7d) or weeks (2w).
type Duration time.Duration

// Days is d in whole days, rounded up.
func (d Duration) Days() int { return int(math.Ceil(time.Duration(d).Hours() / 24)) }

var durationRE = regexp.MustCompile(`^([1-9][0-9]{0,4})(m|h|d|w)$`)

// ParseDuration reads a Duration.
func ParseDuration(s string) (Duration, error) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a duration: want a whole number and m, h, d or w, such as 7d", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return Duration(time.Duration(n) * unit), nil
}

// String writes d in the largest unit that divides it.
func (d Duration) String() string {
	t := time.Duration(d)
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}} {
		if t != 0 && t%u.unit == 0 {
			return strconv.FormatInt(int64(t/u.unit), 10) + u.suffix
		}
	}
	return t.String()
}

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// badDuration marks a Duration that failed to parse: its problem is
// reported already, and Validate says nothing more of it.
const badDuration Duration = -1

// UnmarshalYAML reads d as ParseDuration does. A bad value is reported
// with its line, and decoding goes on, so that ParsePlan names every
// problem of the file.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		*d = badDuration
		return lineError(n, err, "a duration such as 7d")
	}
	*d = v
	return nil
}

// lineError is the decode error of node n: err, or "want ..." when n is
// not a scalar.
func lineError(n *yaml.Node, err error, want string) error {
	msg := "want " + want
	if n.Kind == yaml.ScalarNode && err != nil {
		msg = err.Error()
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

// UnmarshalText reads d as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Schedule is when a medication is due: daily, twice_weekly, weekly,
// every_N_days, every_N_weeks or every_N_months (a pellet).
type Schedule struct {
	Every int    // how many units between doses; twice_weekly is 7 days, twice
	Unit  string // "days", "weeks" or "months"
	Twice bool   // twice per Every Unit (twice_weekly)
}

var scheduleRE = regexp.MustCompile(`^every_([1-9][0-9]?)_(days|weeks|months)$`)

// ParseSchedule reads a Schedule.
func ParseSchedule(s string) (Schedule, error) {
	switch s {
	case "daily":
		return Schedule{Every: 1, Unit: "days"}, nil
	case "twice_weekly":
		return Schedule{Every: 1, Unit: "weeks", Twice: true}, nil
	case "weekly":
		return Schedule{Every: 1, Unit: "weeks"}, nil
	}
	m := scheduleRE.FindStringSubmatch(s)
	if m == nil {
		return Schedule{}, fmt.Errorf("%q is not a schedule: want daily, twice_weekly, weekly, every_N_days, every_N_weeks or every_N_months", s)
	}
	n, _ := strconv.Atoi(m[1])
	return Schedule{Every: n, Unit: m[2]}, nil
}

// String writes s as ParseSchedule reads it.
func (s Schedule) String() string {
	switch {
	case s.Twice:
		return "twice_weekly"
	case s.Every == 1 && s.Unit == "days":
		return "daily"
	case s.Every == 1 && s.Unit == "weeks":
		return "weekly"
	case s.Every == 0:
		return ""
	}
	return fmt.Sprintf("every_%d_%s", s.Every, s.Unit)
}

// Due returns the scheduled dose times in [from, to), counted from anchor
// (the plan version's effective time).
func (s Schedule) Due(anchor, from, to time.Time) []time.Time {
	var out []time.Time
	for k := 0; ; k++ {
		t := s.nth(anchor, k)
		if !t.Before(to) {
			return out
		}
		if !t.Before(from) {
			out = append(out, t)
		}
		if k > 100000 { // a guard: schedules are at most daily
			return out
		}
	}
}

// nth is the k-th dose time from anchor.
func (s Schedule) nth(anchor time.Time, k int) time.Time {
	switch {
	case s.Twice: // every 3.5 days
		return anchor.Add(time.Duration(k) * 84 * time.Hour)
	case s.Unit == "days":
		return anchor.AddDate(0, 0, k*s.Every)
	case s.Unit == "weeks":
		return anchor.AddDate(0, 0, 7*k*s.Every)
	default: // the same day of the month, or its last day in a shorter month
		y, m, d := anchor.Date()
		first := time.Date(y, m+time.Month(k*s.Every), 1, anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), anchor.Location())
		last := first.AddDate(0, 1, -1).Day()
		return first.AddDate(0, 0, min(d, last)-1)
	}
}

// Interval is the typical time between two doses.
func (s Schedule) Interval() time.Duration {
	switch {
	case s.Twice:
		return 84 * time.Hour
	case s.Unit == "days":
		return time.Duration(s.Every) * 24 * time.Hour
	case s.Unit == "weeks":
		return time.Duration(s.Every) * 7 * 24 * time.Hour
	default:
		return time.Duration(s.Every) * 30 * 24 * time.Hour
	}
}

// MarshalText writes s as String does.
func (s Schedule) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML reads s as ParseSchedule does, reporting a bad value with
// its line and going on (see Duration.UnmarshalYAML).
func (s *Schedule) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSchedule(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		*s = Schedule{Every: -1}
		return lineError(n, err, "a schedule such as daily")
	}
	*s = v
	return nil
}

// UnmarshalText reads s as ParseSchedule does.
func (s *Schedule) UnmarshalText(b []byte) error {
	v, err := ParseSchedule(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParsePlan reads a plan file, YAML or JSON (JSON is YAML), refusing
// unknown keys, and validates it. A *PlanError names every problem at
// once: those of decoding (with their lines) and then those of Validate.
// A file that is not YAML at all gets a plain error.
func ParsePlan(data []byte) (Plan, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Plan{}, fmt.Errorf("plan: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return Plan{}, errors.New("plan: want a mapping of patient, effective, regimen and rules")
	}
	var p Plan
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var decodeProblems []string
	err := dec.Decode(&p)
	var terr *yaml.TypeError
	switch {
	case errors.As(err, &terr):
		decodeProblems = terr.Errors
	case err != nil:
		return Plan{}, fmt.Errorf("plan: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	err = p.Validate()
	var perr *PlanError
	if errors.As(err, &perr) || len(decodeProblems) > 0 {
		all := decodeProblems
		if perr != nil {
			all = append(all, perr.Problems...)
		}
		return Plan{}, &PlanError{Problems: all}
	}
	return p, nil
}

// PlanError is every problem of a plan, one per line.
type PlanError struct{ Problems []string }

func (e *PlanError) Error() string {
	return fmt.Sprintf("plan has %d problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Validate reports every problem of p at once, as a *PlanError.
func (p *Plan) Validate() error {
	v := &validator{}
	if p.Patient == "" {
		v.add("patient: required")
	}
	if p.Effective.IsZero() {
		v.add("effective: required, an RFC 3339 time such as 2026-11-01T00:00:00Z")
	}
	meds := map[string]bool{}
	for i, d := range p.Regimen {
		at := fmt.Sprintf("regimen[%d]", i)
		if !ingest.IsMedication(d.Medication) {
			v.add("%s.medication: %q: want 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter", at, d.Medication)
		} else if meds[d.Medication] {
			v.add("%s.medication: %s is in the regimen twice", at, d.Medication)
		}
		meds[d.Medication] = true
		if !ingest.IsRoute(d.Route) {
			v.add("%s.route: %q is not a route", at, d.Route)
		}
		if !(d.Amount > 0) {
			v.add("%s.amount: must be above 0", at)
		}
		if !ingest.IsUnit(d.Unit) {
			v.add("%s.unit: %q is not a unit", at, d.Unit)
		}
		if d.Schedule.Every == 0 {
			v.add("%s.schedule: required", at)
		} // < 0: unreadable, reported by ParsePlan
	}
	ids := map[string]bool{}
	for i, r := range p.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		if r.ID != "" {
			at += " (" + r.ID + ")"
		}
		switch {
		case r.ID == "":
			v.add("%s.id: required", at)
		case ids[r.ID]:
			v.add("%s.id: duplicate rule id %s", at, r.ID)
		}
		ids[r.ID] = true
		v.rule(at, &r, meds)
	}
	if len(v.problems) > 0 {
		return &PlanError{Problems: v.problems}
	}
	return nil
}

type validator struct{ problems []string }

func (v *validator) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// oneOf reports a problem unless value is one of allowed (or empty and
// not required).
func (v *validator) oneOf(at, field, value string, required bool, allowed ...string) {
	switch {
	case value == "" && required:
		v.add("%s.%s: required, one of %s", at, field, strings.Join(allowed, ", "))
	case value != "" && !slices.Contains(allowed, value):
		v.add("%s.%s: %q: want one of %s", at, field, value, strings.Join(allowed, ", "))
	}
}

// only reports the fields set on r that its kind does not use.
func (v *validator) only(at string, r *Rule, allowed ...string) {
	set := map[string]bool{
		"metric": r.Metric != "", "instrument": r.Instrument != "", "per_day": r.PerDay != "", "over": r.Over != 0,
		"aggregate": r.Aggregate != "", "below": r.Below != nil, "above": r.Above != nil, "band": r.Band != "",
		"min_days": r.MinDays != 0, "forecast": r.Forecast != 0, "slope_above": r.SlopeAbove != nil,
		"slope_below": r.SlopeBelow != nil, "baseline": r.Baseline != 0, "recent": r.Recent != 0,
		"z_below": r.ZBelow != nil, "z_above": r.ZAbove != nil, "for": r.For != 0, "medication": r.Medication != "",
		"score": r.Score != "",
	}
	var extra []string
	for k, on := range set {
		if on && !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		v.add("%s.%s: not used by %s %s rule", at, k, article(r.Kind), r.Kind)
	}
}

// window checks a window length: a whole number of days, 1 to 365.
func (v *validator) window(at, field string, d Duration, required bool) {
	switch {
	case d == 0 && required:
		v.add("%s.%s: required, a window such as 7d", at, field)
	case d <= 0: // absent, or unreadable and reported by ParsePlan
	case time.Duration(d)%(24*time.Hour) != 0 || d.Days() > 365:
		v.add("%s.%s: %s: want whole days, at most 365 (such as 7d or 2w)", at, field, d)
	}
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func (v *validator) rule(at string, r *Rule, meds map[string]bool) {
	v.oneOf(at, "severity", r.Severity, true, SeverityInfo, SeverityWarning, SeverityCritical)
	switch r.Kind {
	case KindThreshold:
		v.only(at, r, "metric", "instrument", "per_day", "over", "aggregate", "below", "above", "min_days", "forecast")
		v.metric(at, r, false)
		v.oneOf(at, "per_day", r.PerDay, false, perDays...)
		v.window(at, "over", r.Over, true)
		v.oneOf(at, "aggregate", r.Aggregate, true, aggregates...)
		v.bounds(at, "below", r.Below, "above", r.Above)
		v.minDays(at, r.MinDays, r.Over)
		if r.Aggregate == "median" && r.PerDay == "" {
			v.add("%s.aggregate: median needs per_day: it is a median of daily values", at)
		}
		switch {
		case r.Forecast <= 0:
		case time.Duration(r.Forecast)%(24*time.Hour) != 0 || r.Forecast.Days() > 90:
			v.add("%s.forecast: %s: want whole days, 1d to 90d", at, r.Forecast)
		case r.Aggregate == "count":
			v.add("%s.forecast: a count cannot be forecast", at)
		}
	case KindTrend:
		v.only(at, r, "metric", "instrument", "per_day", "over", "slope_above", "slope_below", "min_days")
		v.metric(at, r, false)
		v.oneOf(at, "per_day", r.PerDay, false, perDays...)
		v.window(at, "over", r.Over, true)
		v.bounds(at, "slope_below", r.SlopeBelow, "slope_above", r.SlopeAbove)
		v.minDays(at, r.MinDays, r.Over)
		if r.Over > 0 && r.Over.Days() < 3 {
			v.add("%s.over: a trend needs at least 3d", at)
		}
		if r.MinDays > 0 && r.MinDays < 3 {
			v.add("%s.min_days: %d: a slope needs at least 3 days", at, r.MinDays)
		}
	case KindBaseline:
		v.only(at, r, "metric", "instrument", "per_day", "baseline", "recent", "z_below", "z_above", "min_days")
		v.metric(at, r, false)
		v.oneOf(at, "per_day", r.PerDay, false, perDays...)
		v.window(at, "baseline", r.Baseline, true)
		v.window(at, "recent", r.Recent, true)
		v.bounds(at, "z_below", r.ZBelow, "z_above", r.ZAbove)
		v.minDays(at, r.MinDays, r.Baseline)
		if r.Baseline > 0 && r.Baseline.Days() < 7 {
			v.add("%s.baseline: a baseline needs at least 7d", at)
		}
	case KindSilence:
		v.only(at, r, "metric", "for")
		v.metric(at, r, true)
		if r.For == 0 {
			v.add("%s.for: required, such as 24h", at)
		} else if r.For > 0 && time.Duration(r.For) < time.Hour {
			v.add("%s.for: %s: want at least 1h", at, r.For)
		}
	case KindAdherence:
		v.only(at, r, "medication", "over", "below")
		switch {
		case r.Medication == "":
			v.add("%s.medication: required", at)
		case !meds[r.Medication]:
			v.add("%s.medication: %s is not in the regimen", at, r.Medication)
		}
		v.window(at, "over", r.Over, true)
		switch {
		case r.Below == nil:
			v.add("%s.below: required, the share of scheduled doses logged (0 to 1)", at)
		case *r.Below <= 0 || *r.Below > 1:
			v.add("%s.below: %v: want a share above 0, at most 1", at, *r.Below)
		}
	case KindScore:
		v.only(at, r, "instrument", "score", "over", "below", "above", "band")
		v.oneOf(at, "instrument", r.Instrument, true, "mrs", "ams")
		if r.Instrument == "mrs" || r.Instrument == "ams" {
			v.oneOf(at, "score", r.Score, true, append([]string{"total"}, ingest.Subscales(r.Instrument)...)...)
		}
		v.window(at, "over", r.Over, false)
		if r.Band != "" {
			if r.Below != nil || r.Above != nil {
				v.add("%s.band: give a band or bounds, not both", at)
			}
			if _, ok := bandFloor(r.Instrument, r.Score, r.Band); !ok && r.Instrument != "" && r.Score != "" {
				v.add("%s.band: %q: no published %s band for %s %s (want mild, moderate or severe, or give above)", at, r.Band, r.Band, r.Instrument, r.Score)
			}
		} else {
			v.bounds(at, "below", r.Below, "above", r.Above)
		}
	case "":
		v.add("%s.kind: required, one of %s", at, strings.Join(kinds, ", "))
	default:
		v.add("%s.kind: %q: want one of %s", at, r.Kind, strings.Join(kinds, ", "))
	}
}

var (
	kinds      = []string{KindThreshold, KindTrend, KindBaseline, KindSilence, KindAdherence, KindScore}
	perDays    = []string{"sum", "mean", "min", "max", "count", "last"}
	aggregates = []string{"mean", "min", "max", "sum", "count", "median"}
)

// bounds requires at least one of a lower and an upper bound, with the
// lower below the upper.
func (v *validator) bounds(at, lowName string, low *float64, highName string, high *float64) {
	switch {
	case low == nil && high == nil:
		v.add("%s: bound missing: give %s or %s", at, lowName, highName)
	case low != nil && high != nil && *low >= *high:
		v.add("%s: %s (%v) must be below %s (%v)", at, lowName, *low, highName, *high)
	}
}

func (v *validator) minDays(at string, n int, window Duration) {
	if n < 0 || (window != 0 && n > window.Days()) {
		v.add("%s.min_days: %d: want 1 to the window's %d days", at, n, window.Days())
	}
}

// metric checks r.Metric: measurement.field of the InfluxDB layout (for
// silence, a measurement alone is enough), and r.Instrument beside it.
func (v *validator) metric(at string, r *Rule, measurementOnly bool) {
	if r.Metric == "" {
		v.add("%s.metric: required, measurement.field such as sleep.total_min", at)
		return
	}
	m, field, hasField := strings.Cut(r.Metric, ".")
	fields := ingest.Fields(m)
	switch {
	case fields == nil:
		v.add("%s.metric: unknown metric %q: the measurement must be one of %s", at, r.Metric, strings.Join(ingest.SampleTypes(), ", "))
		return
	case !hasField && !measurementOnly:
		v.add("%s.metric: %q names no field: want measurement.field such as %s.%s", at, r.Metric, m, fields[0])
		return
	}
	if r.Instrument != "" {
		if m != "symptoms" {
			v.add("%s.instrument: only for symptoms metrics", at)
			return
		}
		if !slices.Contains(ingest.Instruments(), r.Instrument) {
			v.oneOf(at, "instrument", r.Instrument, false, ingest.Instruments()...)
			return
		}
	}
	switch {
	case !hasField:
	case m == "symptoms" && r.Instrument == "custom":
		if !ingest.ValidItemKey(field) {
			v.add("%s.metric: %q: a custom item key is lowercase letters, digits and '_'", at, r.Metric)
		}
	case m == "symptoms" && r.Instrument != "":
		if !slices.Contains(ingest.InstrumentFields(r.Instrument), field) {
			v.add("%s.metric: unknown metric %q: %s has no item or subscale %s", at, r.Metric, r.Instrument, field)
		}
	case !slices.Contains(fields, field):
		v.add("%s.metric: unknown metric %q: %s has no field %s (it has %s)", at, r.Metric, m, field, strings.Join(fields, ", "))
	}
}
