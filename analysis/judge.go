package analysis

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// verdict is what one rule says of one patient at one time.
type verdict struct {
	judged bool
	reason string // why not judged
	detail string // timing: the conflict; followup: the due day and what came, in words
	due    day    // followup: the due day judged
	state  string // followup: FollowUpDue, ...

	holds bool
	value float64 // what was measured: the aggregate, slope, z, share, score or hours of silence
	bound float64 // the bound it holds against (or was last compared with)
	side  string  // "below" or "above": which bound; "band" for a score band
	// The days judged (threshold, trend, baseline's recent, score over a
	// window) and how many had enough data.
	from, to day
	days     int
	// baseline only: the baseline's mean.
	reference float64

	// forecast (threshold rules with a horizon that do not hold)
	forecast     bool
	forecastDays float64
	slope        float64
}

// env is what judging needs besides the rule and the data.
type env struct {
	clk       clock
	now       time.Time
	today     day
	minWear   int       // hours of samples that make an activity or heart-rate day
	version   int       // the plan version in force
	effective time.Time // its effective time
	first     time.Time // the first version's effective time: silence counts from it when nothing was ever stored
}

func newEnv(clk clock, now time.Time, minWear int, plan *Plan, first time.Time) env {
	return env{clk: clk, now: now, today: clk.dayOf(now), minWear: minWear, version: plan.Version,
		effective: plan.Effective, first: first}
}

// window returns the n days ending today; for a rule that judges only the
// days since the change (since: change), cut at the version's first full
// day, and cut says whether it was.
func (e env) window(r *Rule, n int) (from, to day, cut bool) {
	to, from = e.today, e.today-day(n)+1
	if r.Since != SinceChange {
		return from, to, false
	}
	if eff := e.clk.firstDayFrom(e.effective); eff > from {
		return eff, to, true
	}
	return from, to, false
}

// worn reports whether a day of the series has enough data to be judged.
func (e env) worn(s *series, st *stats) bool {
	switch s.key.measurement {
	case "activity", "heart_rate":
		return st.wearHours() >= e.minWear
	}
	return st.count > 0
}

// daily returns the judged days of s in [from, to] and their stats.
func (e env) daily(s *series, from, to day) (days []day, sts []*stats) {
	for d := from; d <= to; d++ {
		if st := s.at(d); st != nil && e.worn(s, st) {
			days = append(days, d)
			sts = append(sts, st)
		}
	}
	return days, sts
}

// notEnough is the verdict of a rule with too few judged days.
func notEnough(got, need int, cut bool, version int) verdict {
	few := fmt.Sprintf("only %d of the %d days needed have enough data", got, need)
	if need == 1 {
		few = fmt.Sprintf("only %d of the 1 day needed has enough data", got)
	}
	if cut {
		return verdict{reason: fmt.Sprintf("%s since plan v%d took effect (the rule judges only days since the change)", few, version)}
	}
	return verdict{reason: few + " (wear time)"}
}

// minDays is how many judged days the rule's window needs (the baseline's,
// for a baseline rule): min_days, or half the window's days rounded up, at
// least 1 (trend and baseline: 3).
func (r *Rule) minDays() int {
	window, floor := r.Over, 1
	switch r.Kind {
	case KindTrend:
		window, floor = r.Over, 3 // a slope needs three days
	case KindBaseline:
		window, floor = r.Baseline, 3
	}
	switch {
	case r.MinDays > 0 && r.Kind == KindTrend:
		return max(r.MinDays, floor)
	case r.MinDays > 0:
		return r.MinDays
	}
	return max((window.Days()+1)/2, floor)
}

// holdsAgainst compares v with the rule's bounds.
func holdsAgainst(v float64, below, above *float64) (holds bool, bound float64, side string) {
	switch {
	case below != nil && v < *below:
		return true, *below, "below"
	case above != nil && v > *above:
		return true, *above, "above"
	case below != nil && above != nil:
		// Report the nearer bound, for the sentence of a clear verdict.
		if v-*below < *above-v {
			return false, *below, "below"
		}
		return false, *above, "above"
	case below != nil:
		return false, *below, "below"
	default:
		return false, *above, "above"
	}
}

func judgeThreshold(r *Rule, s *series, e env) verdict {
	n := r.Over.Days()
	from, to, cut := e.window(r, n)
	need := r.minDays()
	days, sts := e.daily(s, from, to)
	if len(days) < need {
		v := notEnough(len(days), need, cut, e.version)
		v.from, v.to = from, to
		return v
	}
	var value float64
	if r.PerDay != "" {
		vals := make([]float64, len(sts))
		for i, st := range sts {
			vals[i] = st.perDay(r.PerDay)
		}
		value = aggregate(r.Aggregate, vals)
	} else {
		value = aggregateSamples(r.Aggregate, sts)
	}
	v := verdict{judged: true, value: value, from: from, to: to, days: len(days)}
	v.holds, v.bound, v.side = holdsAgainst(value, r.Below, r.Above)
	if r.Forecast != 0 && !v.holds {
		forecast(r, &v, days, dailyValues(r.PerDay, sts), need, e)
	}
	return v
}

// forecast projects a threshold rule's value along the least-squares line
// of its daily values (see the package documentation).
func forecast(r *Rule, v *verdict, days []day, vals []float64, need int, e env) {
	if len(days) < max(need, 3) {
		return
	}
	b, se := slope(days, vals)
	if b == 0 || math.Abs(b) < 2*se {
		return
	}
	rate := b
	if r.Aggregate == "sum" { // a sum over the window's days moves by b for each
		rate = b * float64(v.to-v.from+1)
	}
	best := math.Inf(1)
	for _, bd := range []struct {
		bound *float64
		side  string
	}{{r.Above, "above"}, {r.Below, "below"}} {
		if bd.bound == nil {
			continue
		}
		k := (*bd.bound - v.value) / rate
		if k > 0 && k < best {
			best = k
			v.bound, v.side = *bd.bound, bd.side
		}
	}
	v.slope = b
	if best <= float64(r.Forecast.Days()) {
		v.forecast, v.forecastDays = true, best
	}
}

func judgeTrend(r *Rule, s *series, e env) verdict {
	n := r.Over.Days()
	from, to, cut := e.window(r, n)
	need := r.minDays()
	days, sts := e.daily(s, from, to)
	if len(days) < need {
		v := notEnough(len(days), need, cut, e.version)
		v.from, v.to = from, to
		return v
	}
	b, _ := slope(days, dailyValues(r.PerDay, sts))
	v := verdict{judged: true, value: b, slope: b, from: from, to: to, days: len(days)}
	v.holds, v.bound, v.side = holdsAgainst(b, r.SlopeBelow, r.SlopeAbove)
	return v
}

func judgeBaseline(r *Rule, s *series, e env) verdict {
	nr, nb := r.Recent.Days(), r.Baseline.Days()
	recentFrom := e.today - day(nr) + 1
	from, to, cut := e.window(r, nr)
	baseDays, baseSts := e.daily(s, recentFrom-day(nb), recentFrom-1)
	need := r.minDays()
	if len(baseDays) < need {
		return verdict{from: from, to: to, reason: fmt.Sprintf("the %d-day baseline has only %d of the %d days needed", nb, len(baseDays), need)}
	}
	recentDays, recentSts := e.daily(s, from, to)
	if len(recentDays) == 0 {
		v := notEnough(0, 1, cut, e.version)
		v.from, v.to = from, to
		return v
	}
	base := dailyValues(r.PerDay, baseSts)
	mean, sd := meanSD(base)
	if sd == 0 {
		return verdict{from: from, to: to, reason: "the baseline does not vary, so a deviation from it cannot be measured"}
	}
	recent := aggregate("mean", dailyValues(r.PerDay, recentSts))
	z := (recent - mean) / sd
	v := verdict{judged: true, value: z, reference: mean, from: from, to: to, days: len(recentDays)}
	v.holds, v.bound, v.side = holdsAgainst(z, r.ZBelow, r.ZAbove)
	return v
}

// judgeSilence counts from the newest stored sample of the stream, whatever
// the plan; with none ever stored, from the first plan version's effective
// time.
func judgeSilence(r *Rule, s *series, e env) verdict {
	last := e.first
	if s != nil && s.newest != 0 {
		last = time.Unix(s.newest, 0)
	}
	quiet := e.now.Sub(last)
	return verdict{judged: true, holds: quiet > time.Duration(r.For), value: quiet.Hours(),
		bound: time.Duration(r.For).Hours(), side: "above"}
}

// judgeAdherence counts the scheduled doses of the window against the
// logged ones (times in unix seconds, sorted). Each dose is scheduled by
// the regimen of the version in force at its time (versions oldest
// first), from that version's effective time.
func judgeAdherence(r *Rule, versions []*Plan, logged []int64, e env) verdict {
	from := e.now.Add(-time.Duration(r.Over))
	if r.Since == SinceChange && e.effective.After(from) {
		from = e.effective
	}
	var due []scheduled
	for i, v := range versions {
		end := e.now
		if i+1 < len(versions) && versions[i+1].Effective.Before(end) {
			end = versions[i+1].Effective
		}
		d, ok := v.dose(r.Medication)
		if !ok || !end.After(from) || v.Effective.After(e.now) {
			continue
		}
		half := d.Schedule.Interval() / 2
		// A dose is counted once its half interval is over; doses are due
		// at the clinic's clock time, across changes of it.
		if counted := e.now.Add(-half + 1); counted.Before(end) {
			end = counted
		}
		for _, t := range d.Schedule.Due(v.Effective.In(e.clk.loc), from, end) {
			due = append(due, scheduled{t, half})
		}
	}
	if len(due) == 0 {
		return verdict{reason: fmt.Sprintf("no scheduled dose of %s is due yet", r.Medication)}
	}
	taken := countTaken(due, logged)
	share := float64(taken) / float64(len(due))
	return verdict{judged: true, holds: share < *r.Below, value: share, bound: *r.Below, side: "below",
		days: len(due), reference: float64(taken)}
}

// maxCheckInAge is how old the latest check-in a score rule without `over`
// judges may be.
const maxCheckInAge = Duration(90 * 24 * time.Hour)

func judgeScore(r *Rule, s *series, e env) verdict {
	var v verdict
	if r.Over != 0 {
		n := r.Over.Days()
		from, to, cut := e.window(r, n)
		_, sts := e.daily(s, from, to)
		if len(sts) == 0 {
			if cut {
				return verdict{from: from, to: to, reason: fmt.Sprintf("no check-in since plan v%d took effect", e.version)}
			}
			return verdict{from: from, to: to, reason: fmt.Sprintf("no check-in in the last %d days", n)}
		}
		v = verdict{judged: true, value: aggregateSamples("mean", sts), from: from, to: to, days: len(sts)}
	} else {
		switch {
		case s == nil || s.newest == 0:
			return verdict{reason: "no complete check-in yet"}
		case r.Since == SinceChange && s.newest < e.effective.Unix():
			return verdict{reason: fmt.Sprintf("no complete check-in since plan v%d took effect (the rule judges only check-ins since the change)", e.version)}
		case e.now.Sub(time.Unix(s.newest, 0)) > time.Duration(maxCheckInAge):
			return verdict{reason: fmt.Sprintf("the latest complete check-in is more than %d days old", maxCheckInAge.Days())}
		}
		d := e.clk.dayOf(time.Unix(s.newest, 0))
		v = verdict{judged: true, value: float64(s.newestVal), from: d, to: d, days: 1}
	}
	if r.Band != "" {
		floor, _ := bandFloor(r.Instrument, r.Score, r.Band)
		v.holds, v.bound, v.side = v.value >= floor, floor, "band"
		return v
	}
	v.holds, v.bound, v.side = holdsAgainst(v.value, r.Below, r.Above)
	return v
}

// dailyValues rolls each day up with perDay (mean when empty).
func dailyValues(perDay string, sts []*stats) []float64 {
	vals := make([]float64, len(sts))
	for i, st := range sts {
		vals[i] = st.perDay(perDay)
	}
	return vals
}

// aggregate combines values (at least one).
func aggregate(how string, vals []float64) float64 {
	switch how {
	case "min":
		return slices.Min(vals)
	case "max":
		return slices.Max(vals)
	case "sum":
		return sum(vals)
	case "count":
		return float64(len(vals))
	case "latest":
		return vals[len(vals)-1]
	case "median":
		s := slices.Clone(vals)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	default:
		return sum(vals) / float64(len(vals))
	}
}

// aggregateSamples combines every sample of the days (median is not
// available without per_day: validation refuses it).
func aggregateSamples(how string, sts []*stats) float64 {
	var total float64
	var count int
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, st := range sts {
		total += float64(st.sum)
		count += int(st.count)
		lo, hi = min(lo, float64(st.min)), max(hi, float64(st.max))
	}
	switch how {
	case "min":
		return lo
	case "max":
		return hi
	case "sum":
		return total
	case "count":
		return float64(count)
	case "latest": // the newest day's last sample
		return float64(sts[len(sts)-1].last)
	default:
		return total / float64(count)
	}
}

func sum(vals []float64) float64 {
	var s float64
	for _, v := range vals {
		s += v
	}
	return s
}

func meanSD(vals []float64) (mean, sd float64) {
	mean = sum(vals) / float64(len(vals))
	if len(vals) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(vals)-1))
}

// slope fits vals against their days by least squares and returns the
// slope per day and its standard error (0 with fewer than 3 points).
func slope(days []day, vals []float64) (b, se float64) {
	n := float64(len(vals))
	if n < 2 {
		return 0, 0
	}
	var mx, my float64
	for i := range vals {
		mx += float64(days[i])
		my += vals[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range vals {
		dx := float64(days[i]) - mx
		sxx += dx * dx
		sxy += dx * (vals[i] - my)
	}
	if sxx == 0 {
		return 0, 0
	}
	b = sxy / sxx
	if n < 3 {
		return b, 0
	}
	a := my - b*mx
	var ss float64
	for i := range vals {
		r := vals[i] - (a + b*float64(days[i]))
		ss += r * r
	}
	return b, math.Sqrt(ss / (n - 2) / sxx)
}
