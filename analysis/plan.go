package analysis

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
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
	KindTiming    = "timing"
	KindFollowUp  = "followup"
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
	// Aggregate of the window (threshold): mean, min, max, sum, count,
	// median or latest (the newest value in it: a lab result).
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

	// Since is what a windowed rule judges when the plan changes: ""
	// (SinceWindow, the default), its whole window whatever version was
	// in force, against the bounds of the version in force now; or
	// SinceChange, only the days since this version took effect ("is the
	// new dose working?"), so that it is not judged until it has enough
	// of them.
	Since string `json:"since,omitempty" yaml:"since,omitempty"`

	// timing: the procedure (a catalogue id) whose planned or done dates
	// are judged against events: not within NotWithin of an event of Of,
	// or at least AtLeast after the latest event of After before it.
	Procedure string   `json:"procedure,omitempty" yaml:"procedure,omitempty"`
	NotWithin Duration `json:"not_within,omitempty" yaml:"not_within,omitempty"`
	Of        *Event   `json:"of,omitempty" yaml:"of,omitempty"`
	AtLeast   Duration `json:"at_least,omitempty" yaml:"at_least,omitempty"`
	After     *Event   `json:"after,omitempty" yaml:"after,omitempty"`

	// followup: what must happen after each regimen change (of
	// Medication, when set): data of Metric (a lab result, a check-in) or
	// a done Procedure, DueAfter the change and then Every so often (or
	// Every from the change), from Grace before each due day; overdue
	// Grace after it.
	DueAfter Duration `json:"due_after,omitempty" yaml:"due_after,omitempty"`
	Every    Duration `json:"every,omitempty" yaml:"every,omitempty"`
	Grace    Duration `json:"grace,omitempty" yaml:"grace,omitempty"`
}

// Event is what a timing rule measures a procedure from: a medication of
// the regimen (each dose its schedule makes due; with Started only the
// plan versions that start it, with Changed those that start it or change
// its dose) or another procedure of the catalogue (each planned or done).
type Event struct {
	Medication string `json:"medication,omitempty" yaml:"medication,omitempty"`
	Procedure  string `json:"procedure,omitempty" yaml:"procedure,omitempty"`
	Started    bool   `json:"started,omitempty" yaml:"started,omitempty"`
	Changed    bool   `json:"changed,omitempty" yaml:"changed,omitempty"`
}

// What a rule judges across a plan change (Rule.Since).
const (
	SinceWindow = ""
	SinceChange = "change"
)

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
