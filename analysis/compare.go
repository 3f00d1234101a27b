package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// Outcomes of a comparison.
const (
	OutcomeImproved  = "improved"        // the difference is clear of 0, toward the plan's target
	OutcomeWorsened  = "worsened"        // clear of 0, away from it
	OutcomeChanged   = "changed"         // clear of 0, and the plan sets no direction
	OutcomeUnclear   = "no clear change" // the interval includes 0
	OutcomeTooFewDay = "too few days"    // fewer than 2 days on a side
)

// ComparedMetric is a metric a plan version's rules watch: how its days
// are rolled up and which way the plan wants it.
type ComparedMetric struct {
	Metric     string   `json:"metric"`
	Instrument string   `json:"instrument,omitempty"`
	PerDay     string   `json:"per_day"`          // sum, mean, ...: each day's value
	Target     string   `json:"target,omitempty"` // higher, lower or within (Low to High); "": none set
	Low        *float64 `json:"low,omitempty"`
	High       *float64 `json:"high,omitempty"`
}

// ComparedMetrics are the metrics the version's threshold, trend, baseline
// and score rules watch, in the order of its rules; each rolled up as its
// first rule does (the mean by default), aimed as its first rule with a
// bound says (a trend sets no target).
func (p *Plan) ComparedMetrics() []ComparedMetric {
	var out []ComparedMetric
	for i := range p.Rules {
		r := &p.Rules[i]
		m := ComparedMetric{Metric: r.Metric, Instrument: r.Instrument, PerDay: r.PerDay}
		switch r.Kind {
		case KindThreshold:
			m.Low, m.High = r.Below, r.Above
			if r.Aggregate == "latest" && m.PerDay == "" {
				m.PerDay = "last"
			}
		case KindBaseline:
			if r.ZBelow != nil {
				m.Target = "higher"
			} else if r.ZAbove != nil {
				m.Target = "lower"
			}
		case KindScore:
			m.Metric = "symptoms." + r.Score
			m.Low, m.High = r.Below, r.Above
			if r.Band != "" {
				floor, _ := bandFloor(r.Instrument, r.Score, r.Band)
				m.High = &floor
			}
		case KindTrend:
		default:
			continue
		}
		if m.PerDay == "" {
			m.PerDay = "mean"
		}
		if m.Target == "" {
			switch {
			case m.Low != nil && m.High != nil:
				m.Target = "within"
			case m.Low != nil:
				m.Target = "higher"
			case m.High != nil:
				m.Target = "lower"
			}
		}
		j := slices.IndexFunc(out, func(o ComparedMetric) bool { return o.Metric == m.Metric && o.Instrument == m.Instrument })
		switch {
		case j < 0:
			out = append(out, m)
		case out[j].Target == "" && m.Target != "":
			out[j].Target, out[j].Low, out[j].High = m.Target, m.Low, m.High
		}
	}
	return out
}

// DaysSummary is a metric's daily values over days.
type DaysSummary struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"` // the end, exclusive
	Days int       `json:"days"`
	Mean *float64  `json:"mean"`
	SD   *float64  `json:"sd"`
}

// Comparison is a metric before and after a plan version took effect.
type Comparison struct {
	ComparedMetric
	Label      string      `json:"label"`
	Before     DaysSummary `json:"before"`
	After      DaysSummary `json:"after"`
	Difference *float64    `json:"difference"` // after − before, in the metric's stored unit
	Low95      *float64    `json:"ci_low"`     // the difference's 95% confidence interval
	High95     *float64    `json:"ci_high"`
	Outcome    string      `json:"outcome"`
	Sentence   string      `json:"sentence"`
}

// Compare compares a metric's daily values before a change with those
// after it: their means, and the difference of the means with its 95%
// confidence interval by Welch's t (the days taken as independent
// samples, which daily values are only roughly). The difference is clear
// when the interval excludes 0; its outcome says whether it went the way
// the plan's target wants.
func Compare(m ComparedMetric, before, after DaysSummary, beforeVals, afterVals []float64) Comparison {
	c := Comparison{ComparedMetric: m, Label: metricLabel(m.Metric, m.Instrument), Before: daysSummary(before, beforeVals), After: daysSummary(after, afterVals)}
	if len(beforeVals) < 2 || len(afterVals) < 2 {
		c.Outcome = OutcomeTooFewDay
		c.Sentence = fmt.Sprintf("%s: %s with data before and %d after: too few to compare (2 each at least)", c.Label, dayCount(len(beforeVals)), len(afterVals))
		return c
	}
	m1, s1 := meanSD(beforeVals)
	m2, s2 := meanSD(afterVals)
	n1, n2 := float64(len(beforeVals)), float64(len(afterVals))
	diff := m2 - m1
	v1, v2 := s1*s1/n1, s2*s2/n2
	half := 0.0
	if se := math.Sqrt(v1 + v2); se > 0 {
		df := (v1 + v2) * (v1 + v2) / (v1*v1/(n1-1) + v2*v2/(n2-1))
		half = TQuantile975(df) * se
	}
	lo, hi := diff-half, diff+half
	c.Difference, c.Low95, c.High95 = &diff, &lo, &hi
	toward := towardTarget(m, m1, m2)
	switch {
	case lo <= 0 && hi >= 0:
		c.Outcome = OutcomeUnclear
	case toward > 0:
		c.Outcome = OutcomeImproved
	case toward < 0:
		c.Outcome = OutcomeWorsened
	default:
		c.Outcome = OutcomeChanged
	}
	f := func(v float64) string { return formatValue(m.Metric, v) }
	c.Sentence = fmt.Sprintf("%s: %s before (%d days), %s after (%d days): %s", c.Label, f(m1), len(beforeVals),
		f(m2), len(afterVals), DifferenceWords(m.Metric, diff, &lo, &hi))
	if t := targetWords(m, f); t != "" {
		c.Sentence += "; the plan wants it " + t
	}
	c.Sentence += ": " + c.Outcome
	return c
}

// DifferenceWords writes a difference of a metric with its sign and unit,
// and its 95% interval when given: "+0.8 h (95% CI +0.6 h to +1 h)".
func DifferenceWords(metric string, diff float64, lo, hi *float64) string {
	signed := func(v float64) string {
		text := formatValue(metric, abs(v))
		switch {
		case text == formatValue(metric, 0): // rounds to none
			return text
		case v < 0:
			return "−" + text
		}
		return "+" + text
	}
	if lo == nil || hi == nil {
		return signed(diff)
	}
	return fmt.Sprintf("%s (95%% CI %s to %s)", signed(diff), signed(*lo), signed(*hi))
}

func daysSummary(s DaysSummary, vals []float64) DaysSummary {
	s.Days = len(vals)
	if len(vals) > 0 {
		mean, sd := meanSD(vals)
		s.Mean = &mean
		if len(vals) > 1 {
			s.SD = &sd
		}
	}
	return s
}

// towardTarget says whether going from before to after moved toward the
// plan's target (1), away (-1), or neither or no target (0).
func towardTarget(m ComparedMetric, before, after float64) int {
	sign := func(v float64) int {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return 0
	}
	switch m.Target {
	case "higher":
		return sign(after - before)
	case "lower":
		return sign(before - after)
	case "within":
		dist := func(v float64) float64 { return max(*m.Low-v, 0, v-*m.High) }
		return sign(dist(before) - dist(after))
	}
	return 0
}

// targetWords says the plan's target: "at least 7 h", "below 2".
func targetWords(m ComparedMetric, f func(float64) string) string {
	switch {
	case m.Target == "within":
		return "from " + f(*m.Low) + " to " + f(*m.High)
	case m.Target == "higher" && m.Low != nil:
		return "at least " + f(*m.Low)
	case m.Target == "lower" && m.High != nil:
		return "at most " + f(*m.High)
	case m.Target == "higher":
		return "higher"
	case m.Target == "lower":
		return "lower"
	}
	return ""
}

// DailyValues rolls a metric's stored points up into one value per day of
// the clinic's (loc), as rules roll them (per_day), in [from, to); an
// activity or heart-rate day counts only with samples in minWear distinct
// hours, as rules judge them (see the package documentation).
func DailyValues(pts []ingest.SeriesPoint, m ComparedMetric, loc *time.Location, minWear int) []float64 {
	meas, field, _ := strings.Cut(m.Metric, ".")
	clk := clock{loc}
	type dayAcc struct {
		sum, lo, hi, last float64
		n                 int
		hours             map[int]bool
	}
	days := map[day]*dayAcc{}
	for _, p := range pts {
		if m.Instrument != "" && p.Tags["instrument"] != m.Instrument {
			continue
		}
		name := field
		if meas == "labs" {
			if p.Tags["analyte"] != field {
				continue
			}
			name = "value"
		}
		v, ok := p.Fields[name]
		if !ok {
			continue
		}
		d := clk.dayOf(p.Time)
		a := days[d]
		if a == nil {
			a = &dayAcc{lo: v, hi: v, hours: map[int]bool{}}
			days[d] = a
		}
		a.sum += v
		a.n++
		a.lo, a.hi, a.last = min(a.lo, v), max(a.hi, v), v
		a.hours[p.Time.In(loc).Hour()] = true
	}
	keys := make([]day, 0, len(days))
	for d := range days {
		keys = append(keys, d)
	}
	slices.Sort(keys)
	var out []float64
	for _, d := range keys {
		a := days[d]
		if (meas == "activity" || meas == "heart_rate") && len(a.hours) < minWear {
			continue
		}
		switch m.PerDay {
		case "sum":
			out = append(out, a.sum)
		case "min":
			out = append(out, a.lo)
		case "max":
			out = append(out, a.hi)
		case "count":
			out = append(out, float64(a.n))
		case "last":
			out = append(out, a.last)
		default:
			out = append(out, a.sum/float64(a.n))
		}
	}
	return out
}

// CompareSpans returns the spans a comparison of a version that took
// effect at effective takes, days days a side: the whole days before the
// day it took effect on, and those from the first day that starts at or
// after it, up to now (a change at noon leaves its day out of both).
func CompareSpans(effective, now time.Time, loc *time.Location, days int) (before, after DaysSummary) {
	clk := clock{loc}
	first, last := clk.firstDayFrom(effective), clk.dayOf(effective)-1
	before = DaysSummary{From: clk.start(last - day(days) + 1), To: clk.start(last + 1)}
	after = DaysSummary{From: clk.start(first), To: clk.start(first + day(days))}
	if after.To.After(now) {
		after.To = now
	}
	return before, after
}

// RegimenChanges says how next's regimen differs from prev's (nil: the
// first version): "started estradiol 0.05 mg transdermal, twice weekly",
// "estradiol 0.05 mg transdermal, twice weekly → estradiol 0.075 mg
// transdermal, twice weekly", "stopped progesterone".
func RegimenChanges(prev, next *Plan) []string {
	var out []string
	for _, d := range next.Regimen {
		var was Dose
		var had bool
		if prev != nil {
			was, had = prev.dose(d.Medication)
		}
		switch {
		case !had:
			out = append(out, "started "+d.Words())
		case was != d:
			out = append(out, was.Words()+" → "+d.Words())
		}
	}
	if prev != nil {
		for _, d := range prev.Regimen {
			if _, kept := next.dose(d.Medication); !kept {
				out = append(out, "stopped "+d.Medication)
			}
		}
	}
	return out
}

// TQuantile975 is the 97.5th percentile of Student's t distribution with
// df degrees of freedom, found by bisection on its distribution function.
func TQuantile975(df float64) float64 {
	lo, hi := 0.0, 1000.0
	for range 100 {
		mid := (lo + hi) / 2
		if 1-0.5*regIncBeta(df/2, 0.5, df/(df+mid*mid)) < 0.975 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// regIncBeta is the regularized incomplete beta function I_x(a, b)
// (Numerical Recipes' betai, with Lentz's continued fraction).
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lab, _ := math.Lgamma(a + b)
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log(1-x))
	if x < (a+1)/(a+b+2) {
		return front * betaFraction(a, b, x) / a
	}
	return 1 - front*betaFraction(b, a, 1-x)/b
}

func betaFraction(a, b, x float64) float64 {
	const tiny = 1e-300
	clamp := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	c, d := 1.0, 1/clamp(1-(a+b)*x/(a+1))
	h := d
	for m := 1.0; m <= 300; m++ {
		aa := m * (b - m) * x / ((a - 1 + 2*m) * (a + 2*m))
		d = 1 / clamp(1+aa*d)
		c = clamp(1 + aa/c)
		h *= d * c
		aa = -(a + m) * (a + b + m) * x / ((a + 2*m) * (a + 1 + 2*m))
		d = 1 / clamp(1+aa*d)
		c = clamp(1 + aa/c)
		step := d * c
		h *= step
		if math.Abs(step-1) < 3e-14 {
			break
		}
	}
	return h
}
