package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Validate reports every problem of p at once, as a *PlanError, for a
// clinic with the default backfill horizon (ValidateWithin).
func (p *Plan) Validate() error { return p.ValidateWithin(0) }

// ValidateWithin reports every problem of p at once, as a *PlanError,
// for a clinic whose backfill horizon (serve's --backfill-horizon) is
// horizon; 0 stands for the default, ingest.DefaultLimits().Backfill.
// The windows of a rule reach at most that far back: older samples are
// not taken in, and the horizon is kept within the bucket's retention.
func (p *Plan) ValidateWithin(horizon time.Duration) error {
	if horizon <= 0 {
		horizon = ingest.DefaultLimits().Backfill
	}
	v := &validator{horizon: max(int(horizon/(24*time.Hour)), 1), meds: map[string]Schedule{}}
	if p.Patient == "" {
		v.add("patient: required")
	}
	if p.Effective.IsZero() {
		v.add("effective: required, an RFC 3339 time such as 2026-11-01T00:00:00Z")
	}
	for i, d := range p.Regimen {
		at := fmt.Sprintf("regimen[%d]", i)
		if !ingest.IsMedication(d.Medication) {
			v.add("%s.medication: %q: want 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter", at, d.Medication)
		} else if _, twice := v.meds[d.Medication]; twice {
			v.add("%s.medication: %s is in the regimen twice", at, d.Medication)
		}
		if _, twice := v.meds[d.Medication]; !twice {
			v.meds[d.Medication] = d.Schedule
		}
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
		v.rule(at, &r)
	}
	if len(v.problems) > 0 {
		return &PlanError{Problems: v.problems}
	}
	return nil
}

type validator struct {
	problems []string
	horizon  int                 // the backfill horizon in whole days, at least 1
	meds     map[string]Schedule // the regimen's
}

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
		"score": r.Score != "", "since": r.Since != "", "procedure": r.Procedure != "", "not_within": r.NotWithin != 0,
		"of": r.Of != nil, "at_least": r.AtLeast != 0, "after": r.After != nil, "due_after": r.DueAfter != 0,
		"every": r.Every != 0, "grace": r.Grace != 0,
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

// window checks a window length: a whole number of days, 1 to the
// backfill horizon.
func (v *validator) window(at, field string, d Duration, required bool) {
	v.windowUpTo(at, field, d, required, v.horizon, "the backfill horizon")
}

// windowUpTo checks a window length: a whole number of days, 1 to most,
// which is what.
func (v *validator) windowUpTo(at, field string, d Duration, required bool, most int, what string) {
	switch {
	case d == 0 && required:
		v.add("%s.%s: required, a window such as 7d", at, field)
	case d <= 0: // absent, or unreadable and reported by ParsePlan
	case time.Duration(d)%(24*time.Hour) != 0 || d.Days() > most:
		v.add("%s.%s: %s: want whole days, 1d to %dd (%s), such as 7d or 2w", at, field, d, most, what)
	}
}

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func (v *validator) rule(at string, r *Rule) {
	v.oneOf(at, "severity", r.Severity, true, SeverityInfo, SeverityWarning, SeverityCritical)
	v.oneOf(at, "since", r.Since, false, SinceChange)
	switch r.Kind {
	case KindThreshold:
		v.threshold(at, r)
	case KindTrend:
		v.trend(at, r)
	case KindBaseline:
		v.baseline(at, r)
	case KindSilence:
		v.only(at, r, "metric", "for")
		v.metric(at, r, true)
		switch {
		case r.For == 0:
			v.add("%s.for: required, such as 24h", at)
		case r.For > 0 && time.Duration(r.For) < time.Hour:
			v.add("%s.for: %s: want at least 1h", at, r.For)
		case r.For > maxSilence:
			v.add("%s.for: %s: want 1h to %s (a yearly test a month late), such as 24h or 14d", at, r.For, maxSilence)
		}
	case KindAdherence:
		v.adherence(at, r)
	case KindScore:
		v.score(at, r)
	case KindTiming:
		v.timing(at, r)
	case KindFollowUp:
		v.followUp(at, r)
	case "":
		v.add("%s.kind: required, one of %s", at, strings.Join(kinds, ", "))
	default:
		v.add("%s.kind: %q: want one of %s", at, r.Kind, strings.Join(kinds, ", "))
	}
}

// maxSilence is the longest silence a rule may wait for. A silence is not
// a window of data, so the backfill horizon does not bound it: a lab
// result tested yearly is overdue after 400 days.
const maxSilence = Duration(400 * 24 * time.Hour)

func (v *validator) threshold(at string, r *Rule) {
	v.only(at, r, "metric", "instrument", "per_day", "over", "aggregate", "below", "above", "min_days", "forecast", "since")
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
	if s, ok := thresholdSpan(r); ok {
		v.inRange(at, "below", r.Below, true, s)
		v.inRange(at, "above", r.Above, false, s)
	}
}

func (v *validator) trend(at string, r *Rule) {
	v.only(at, r, "metric", "instrument", "per_day", "over", "slope_above", "slope_below", "min_days", "since")
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
	if s, ok := slopeSpan(r); ok {
		v.inRange(at, "slope_below", r.SlopeBelow, true, s)
		v.inRange(at, "slope_above", r.SlopeAbove, false, s)
	}
}

func (v *validator) baseline(at string, r *Rule) {
	v.only(at, r, "metric", "instrument", "per_day", "baseline", "recent", "z_below", "z_above", "min_days", "since")
	v.metric(at, r, false)
	v.oneOf(at, "per_day", r.PerDay, false, perDays...)
	v.window(at, "baseline", r.Baseline, true)
	v.window(at, "recent", r.Recent, true)
	v.bounds(at, "z_below", r.ZBelow, "z_above", r.ZAbove)
	v.minDays(at, r.MinDays, r.Baseline)
	if r.Baseline > 0 && r.Baseline.Days() < 7 {
		v.add("%s.baseline: a baseline needs at least 7d", at)
	}
	whole := func(d Duration) bool { return d > 0 && time.Duration(d)%(24*time.Hour) == 0 && d.Days() <= v.horizon }
	if whole(r.Baseline) && whole(r.Recent) {
		switch b, rc := r.Baseline.Days(), r.Recent.Days(); {
		case rc >= b:
			v.add("%s.recent: %s: want shorter than the baseline's %s", at, r.Recent, r.Baseline)
		case b+rc > v.horizon:
			v.add("%s.baseline: %s before the recent %s reaches %d days back: want at most %dd together (the backfill horizon)",
				at, r.Baseline, r.Recent, b+rc, v.horizon)
		}
	}
	z := span{lo: -maxZ, hi: maxZ, phrase: "the sane range of a z-score, %s"}
	v.inRange(at, "z_below", r.ZBelow, true, z)
	v.inRange(at, "z_above", r.ZAbove, false, z)
}

// maxTiming is the longest span of a timing rule.
const maxTiming = Duration(365 * 24 * time.Hour)

func (v *validator) timing(at string, r *Rule) {
	v.only(at, r, "procedure", "not_within", "of", "at_least", "after")
	switch {
	case r.Procedure == "":
		v.add("%s.procedure: required, the catalogue id of a procedure such as chemical_peel", at)
	case !registry.ValidID(r.Procedure):
		v.add("%s.procedure: %q is not a catalogue id (letters, digits, '.', '_' or '-')", at, r.Procedure)
	}
	span, field, ev, evField := r.NotWithin, "not_within", r.Of, "of"
	switch {
	case r.Of != nil && r.After != nil:
		v.add("%s: give not_within with of, or at_least with after, not both", at)
		return
	case r.Of == nil && r.After == nil:
		v.add("%s: give not_within with of (no procedure near an event) or at_least with after (a procedure only so long after one)", at)
		return
	case r.After != nil:
		span, field, ev, evField = r.AtLeast, "at_least", r.After, "after"
		if r.NotWithin != 0 {
			v.add("%s.not_within: goes with of, not after", at)
		}
	case r.AtLeast != 0:
		v.add("%s.at_least: goes with after, not of", at)
	}
	switch {
	case span == 0:
		v.add("%s.%s: required, whole days such as 14d", at, field)
	case span > 0 && (time.Duration(span)%(24*time.Hour) != 0 || span > maxTiming):
		v.add("%s.%s: %s: want whole days, 1d to %dd", at, field, span, maxTiming.Days())
	}
	evAt := at + "." + evField
	switch {
	case (ev.Medication == "") == (ev.Procedure == ""):
		v.add("%s: give a medication of the regimen or a procedure", evAt)
	case ev.Procedure != "":
		if ev.Started || ev.Changed {
			v.add("%s: started and changed go with a medication", evAt)
		}
		if !registry.ValidID(ev.Procedure) {
			v.add("%s.procedure: %q is not a catalogue id", evAt, ev.Procedure)
		}
	default:
		sched, ok := v.meds[ev.Medication]
		days := int(sched.Interval() / (24 * time.Hour))
		switch {
		case !ok:
			v.add("%s.medication: %s is not in the regimen", evAt, ev.Medication)
		case ev.Started && ev.Changed:
			v.add("%s: started or changed, not both (changed includes the start)", evAt)
		case ev.Started || ev.Changed || span <= 0 || sched.Every <= 0:
		case r.Of != nil && 2*span.Days() > days || r.After != nil && span.Days() > days:
			v.add("%s: %s is due %s, so every day would be %s: give started: true or changed: true to measure from the regimen's changes",
				evAt, ev.Medication, strings.ReplaceAll(sched.String(), "_", " "), r.timingWords())
		}
	}
}

func (v *validator) followUp(at string, r *Rule) {
	v.only(at, r, "metric", "procedure", "medication", "due_after", "every", "grace")
	switch {
	case (r.Metric == "") == (r.Procedure == ""):
		v.add("%s: give a metric (labs.estradiol: a result; symptoms: a check-in) or a procedure of the catalogue (a review visit), not both", at)
	case r.Metric != "":
		v.metric(at, r, true)
	case !registry.ValidID(r.Procedure):
		v.add("%s.procedure: %q is not a catalogue id (letters, digits, '.', '_' or '-')", at, r.Procedure)
	}
	if _, ok := v.meds[r.Medication]; r.Medication != "" && !ok {
		v.add("%s.medication: %s is not in the regimen", at, r.Medication)
	}
	if r.DueAfter == 0 && r.Every == 0 {
		v.add("%s: give due_after (such as 6w: once after each regimen change), every (such as 14d: over and over), or both", at)
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"due_after", r.DueAfter}, {"every", r.Every}, {"grace", r.Grace}} {
		if f.d > 0 && (time.Duration(f.d)%(24*time.Hour) != 0 || f.d > maxTiming) {
			v.add("%s.%s: %s: want whole days, 1d to %dd", at, f.name, f.d, maxTiming.Days())
		}
	}
	if r.Every > 0 && r.Grace > 0 && 2*r.Grace.Days() > r.Every.Days() {
		v.add("%s.grace: %s: at most half of every (%s), so that each due day has its own window", at, r.Grace, r.Every)
	}
}

// maxZ bounds a baseline rule's z: a recent mean 10 standard deviations
// from the patient's own baseline is already beyond any clinical use.
const maxZ = 10

func (v *validator) adherence(at string, r *Rule) {
	v.only(at, r, "medication", "over", "below", "since")
	sched, inRegimen := v.meds[r.Medication]
	switch {
	case r.Medication == "":
		v.add("%s.medication: required", at)
	case !inRegimen:
		v.add("%s.medication: %s is not in the regimen", at, r.Medication)
	}
	// A dose counts once it is half an interval late, so a window must
	// span one and a half intervals to count one: a sparse schedule (a
	// pellet every 4 months) may look back two intervals past the horizon.
	most, what := v.horizon, "the backfill horizon"
	if two := int(2 * sched.Interval() / (24 * time.Hour)); sched.Every > 0 && two > most {
		most, what = two, fmt.Sprintf("two of %s's %s intervals", r.Medication, sched)
	}
	v.windowUpTo(at, "over", r.Over, true, most, what)
	switch {
	case r.Below == nil:
		v.add("%s.below: required, the share of scheduled doses logged (0 to 1)", at)
	case *r.Below <= 0 || *r.Below > 1:
		v.add("%s.below: %v: want a share above 0, at most 1", at, *r.Below)
	}
}

func (v *validator) score(at string, r *Rule) {
	v.only(at, r, "instrument", "score", "over", "below", "above", "band", "since")
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
		return
	}
	v.bounds(at, "below", r.Below, "above", r.Above)
	if r.Instrument != "mrs" && r.Instrument != "ams" {
		return // reported above
	}
	if lo, hi, ok := ingest.Range("symptoms", r.Score, r.Instrument); ok {
		s := span{lo: lo, hi: hi, phrase: r.Instrument + " " + r.Score + "'s range %s", edges: true}
		v.inRange(at, "below", r.Below, true, s)
		v.inRange(at, "above", r.Above, false, s)
	}
}

var (
	kinds      = []string{KindThreshold, KindTrend, KindBaseline, KindSilence, KindAdherence, KindScore, KindTiming, KindFollowUp}
	perDays    = []string{"sum", "mean", "min", "max", "count", "last"}
	aggregates = []string{"mean", "min", "max", "sum", "count", "median", "latest"}
)

// bounds requires at least one of a lower and an upper bound, with the
// lower below the upper, and each a finite number.
func (v *validator) bounds(at, lowName string, low *float64, highName string, high *float64) {
	for _, b := range []struct {
		name string
		x    *float64
	}{{lowName, low}, {highName, high}} {
		if b.x != nil && (math.IsNaN(*b.x) || math.IsInf(*b.x, 0)) {
			v.add("%s.%s: %v: want a finite number", at, b.name, *b.x)
		}
	}
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
		v.add("%s.metric: unknown metric %q: the measurement must be one of %s", at, r.Metric, strings.Join(ingest.Measurements(), ", "))
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
