package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/patientpulse/patientpulse/ingest"
)

// The clinical ranges a rule's bounds are checked against (Validate):
// what each bound is a bound of, from the range of the metric's samples in
// ingest's table, the one that validates them.

// span is the range of what a rule compares its bounds with, lo to hi,
// either of which may be infinite. phrase names it, with %s for the range
// in words: "hot_flushes' range %s".
type span struct {
	lo, hi float64
	phrase string
	// edges: nothing in the span is below lo or above hi, so that a bound
	// below at lo, or above at hi, can never be crossed.
	edges bool
}

func (s span) String() string {
	var r string
	switch {
	case math.IsInf(s.hi, 1):
		r = num(s.lo, -1) + " or more"
	case math.IsInf(s.lo, -1):
		r = "at most " + num(s.hi, -1)
	case s.lo < 0:
		r = num(s.lo, -1) + " to " + num(s.hi, -1)
	default:
		r = num(s.lo, -1) + "–" + num(s.hi, -1)
	}
	return fmt.Sprintf(s.phrase, r)
}

// inRange reports a bound outside s, and one on its edge that the value
// can never cross. below tells which side the bound holds on.
func (v *validator) inRange(at, name string, bound *float64, below bool, s span) {
	if bound == nil || math.IsNaN(*bound) || math.IsInf(*bound, 0) || (math.IsInf(s.lo, -1) && math.IsInf(s.hi, 1)) {
		return
	}
	switch x := *bound; {
	case x < s.lo || x > s.hi:
		v.add("%s.%s: %s is outside %s", at, name, num(x, -1), s)
	case s.edges && below && x == s.lo:
		v.add("%s.%s: %s can never be crossed: nothing in %s is below it", at, name, num(x, -1), s)
	case s.edges && !below && x == s.hi:
		v.add("%s.%s: %s can never be crossed: nothing in %s is above it", at, name, num(x, -1), s)
	}
}

// minutesPerDay bounds a day's sum of a field of minutes (*_min).
const minutesPerDay = 24 * 60

// metricSpan is the range of the samples of r's metric, from the table
// ingest validates them with; ok is false for an unknown metric or
// per_day, whose problems are reported already.
func metricSpan(r *Rule) (field string, s span, ok bool) {
	m, field, _ := strings.Cut(r.Metric, ".")
	if r.PerDay != "" && !slices.Contains(perDays, r.PerDay) {
		return field, span{}, false
	}
	lo, hi, ok := ingest.Range(m, field, r.Instrument)
	return field, span{lo: lo, hi: hi, phrase: possessive(field) + " range %s", edges: true}, ok
}

// dailySpan is the range of r's daily values: per_day rolls s, the range
// of the samples of field, up into one value a day (a mean without
// per_day). A sum may grow with the samples of the day, but a day holds
// only 1440 minutes.
func dailySpan(r *Rule, field string, s span) span {
	switch r.PerDay {
	case "sum":
		d := span{phrase: "the range of a day's sum of " + field + ", %s", edges: true}
		d.lo, d.hi = unbounded(s)
		if isMinutes(field, s) {
			d.hi = minutesPerDay
		}
		return d
	case "count":
		return span{lo: 0, hi: math.Inf(1), phrase: "the range of a day's count of " + field + " samples, %s", edges: true}
	}
	return s
}

func isMinutes(field string, s span) bool {
	return strings.HasSuffix(field, "_min") && s.lo == 0 && s.hi == minutesPerDay
}

// thresholdSpan is the range of a threshold rule's aggregate: a mean,
// min, max or median stays in the range of what it aggregates (daily
// values with per_day, else samples); a sum scales with the window's days
// (or, of samples, is unbounded but for minutes); a count of days is at
// most the window's days.
func thresholdSpan(r *Rule) (span, bool) {
	field, s, ok := metricSpan(r)
	if !ok {
		return span{}, false
	}
	if r.PerDay != "" {
		s = dailySpan(r, field, s)
	}
	n := float64(r.Over.Days())
	switch r.Aggregate {
	case "mean", "min", "max", "median", "latest":
		return s, true
	case "sum":
		if r.Over <= 0 {
			return span{}, false
		}
		sum := span{lo: s.lo, hi: s.hi, phrase: fmt.Sprintf("the range of a %d-day sum of %s, %%s", int(n), field), edges: true}
		if r.PerDay != "" || isMinutes(field, s) { // one value a day, or minutes: at most n days' worth
			sum.lo, sum.hi = min(s.lo, n*s.lo), max(s.hi, n*s.hi)
		} else { // of any number of samples
			sum.lo, sum.hi = unbounded(s)
		}
		if r.PerDay == "count" {
			sum.phrase = fmt.Sprintf("the range of a %d-day sum of daily counts, %%s", int(n))
		}
		return sum, true
	case "count":
		if r.PerDay == "" {
			return span{lo: 0, hi: math.Inf(1), phrase: "the range of a count of samples, %s", edges: true}, true
		}
		if r.Over <= 0 {
			return span{}, false
		}
		return span{lo: 0, hi: n, phrase: fmt.Sprintf("the range of a count of days in %d days, %%s", int(n)), edges: true}, true
	}
	return span{}, false
}

// unbounded is the range of a sum of one or more values in s: a sum of
// values that are never negative is at least the least of them, one of
// values never positive at most the greatest; any other side grows
// without bound with the number of values.
func unbounded(s span) (lo, hi float64) {
	lo, hi = s.lo, s.hi
	if lo < 0 {
		lo = math.Inf(-1)
	}
	if hi > 0 {
		hi = math.Inf(1)
	}
	return lo, hi
}

// slopeSpan is the range of a trend rule's slope, per day: its daily
// values cannot move by more than their range's width in a day.
func slopeSpan(r *Rule) (span, bool) {
	field, s, ok := metricSpan(r)
	if !ok {
		return span{}, false
	}
	d := dailySpan(r, field, s)
	w := d.hi - d.lo
	if math.IsInf(w, 0) {
		return span{}, false
	}
	return span{lo: -w, hi: w, phrase: "the range of a slope of " + field + ", %s a day", edges: true}, true
}

// possessive is name's: "total_min's", "hot_flushes'".
func possessive(name string) string {
	if strings.HasSuffix(name, "s") {
		return name + "'"
	}
	return name + "'s"
}
