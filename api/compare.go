package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// Days a side of a before-and-after comparison.
const (
	defaultCompareDays = 28
	maxCompareDays     = 90
)

// VersionComparison is "is the change working?" for one plan version:
// each metric its rules watch, before it took effect and after.
type VersionComparison struct {
	Version     int                   `json:"version"`
	Effective   time.Time             `json:"effective"`
	Changes     []string              `json:"changes"` // how its regimen differs from the version before
	Days        int                   `json:"days"`
	Comparisons []analysis.Comparison `json:"comparisons"`
}

// comparison answers the comparison of a version of the patient's plan
// (?version=N; by default the newest in force) over ?days= days a side
// (2 to 90, 28 by default).
func (a *API) comparison(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), r.PathValue("id")
	days, err := compareDays(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	plans, err := analysis.PlanHistory(ctx, a.reg, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.now()
	i := -1
	for j, p := range plans {
		if !p.Effective.After(now) {
			i = j
		}
	}
	if v, err := intParam(r, "version", 0); err != nil {
		a.fail(w, r, err)
		return
	} else if v > 0 {
		i = slices.IndexFunc(plans, func(p analysis.Plan) bool { return int64(p.Version) == v })
	}
	if i < 0 {
		a.fail(w, r, fmt.Errorf("%w: the patient has no such plan version in force", registry.ErrNotFound))
		return
	}
	vc, err := a.compareVersion(ctx, id, plans, i, days)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, vc)
}

func compareDays(r *http.Request) (int, error) {
	days, err := intParam(r, "days", defaultCompareDays)
	if err == nil && (days < 2 || days > maxCompareDays) {
		err = fmt.Errorf("%w: days: want 2 to %d", errBadRequest, maxCompareDays)
	}
	return int(days), err
}

// compareVersion compares each metric plans[i]'s rules watch before and
// after it took effect, reading the patient's samples from InfluxDB.
func (a *API) compareVersion(ctx context.Context, id string, plans []analysis.Plan, i, days int) (VersionComparison, error) {
	p := &plans[i]
	var prev *analysis.Plan
	if i > 0 {
		prev = &plans[i-1]
	}
	loc := a.location()
	before, after := analysis.CompareSpans(p.Effective, a.now(), loc, days)
	vc := VersionComparison{Version: p.Version, Effective: p.Effective, Changes: append([]string{}, analysis.RegimenChanges(prev, p)...),
		Days: days, Comparisons: []analysis.Comparison{}}
	read := map[string][]ingest.SeriesPoint{}
	tooMany := map[string]bool{}
	for _, m := range p.ComparedMetrics() {
		meas, _, _ := strings.Cut(m.Metric, ".")
		if _, done := read[meas]; !done && !tooMany[meas] {
			pts, err := a.series.Series(ctx, id, meas, before.From, after.To, maxSeriesPoints)
			switch {
			case errors.Is(err, ingest.ErrTooManyPoints):
				tooMany[meas] = true
			case err != nil:
				return vc, err
			default:
				read[meas] = pts
			}
		}
		in := func(s analysis.DaysSummary) []float64 {
			var pts []ingest.SeriesPoint
			for _, pt := range read[meas] {
				if !pt.Time.Before(s.From) && pt.Time.Before(s.To) {
					pts = append(pts, pt)
				}
			}
			return analysis.DailyValues(pts, m, loc, a.minWear())
		}
		c := analysis.Compare(m, before, after, in(before), in(after))
		if tooMany[meas] {
			c.Sentence = fmt.Sprintf("%s: more than %d samples in the %d days a side: not compared", c.Label, maxSeriesPoints, days)
		}
		vc.Comparisons = append(vc.Comparisons, c)
	}
	return vc, nil
}

func (a *API) minWear() int {
	if a.cfg.MinWearHours > 0 {
		return a.cfg.MinWearHours
	}
	return analysis.DefaultConfig().MinWearHours
}

// RegimenComparison is the clinic's comparison of one regimen: the latest
// change of each patient now on it, metric by metric.
type RegimenComparison struct {
	Regimen  string            `json:"regimen"` // the regimen in words
	Patients int               `json:"patients"`
	Metrics  []MetricAcrossAll `json:"metrics"`
}

// MetricAcrossAll is a metric's before-and-after differences across the
// patients of a regimen.
type MetricAcrossAll struct {
	Metric     string   `json:"metric"`
	Instrument string   `json:"instrument,omitempty"`
	Label      string   `json:"label"`
	Patients   int      `json:"patients"` // with enough days a side
	Mean       *float64 `json:"mean_difference"`
	Low95      *float64 `json:"ci_low"` // the mean difference's 95% confidence interval across the patients
	High95     *float64 `json:"ci_high"`
	Summary    string   `json:"summary"` // the mean difference and its interval in words, with the unit
	Improved   int      `json:"improved"`
	Worsened   int      `json:"worsened"`
	Unclear    int      `json:"unclear"` // no clear change, or changed where the plan sets no direction
	TooFewDays int      `json:"too_few_days"`
}

// clinicComparisons answers, for the clinic's own audit, each regimen's
// comparison: every monitored patient's newest plan version in force that
// took effect at least a day ago, compared as comparison does, grouped by
// its regimen; each metric's mean difference across the patients with its
// 95% confidence interval (Student's t over the patients' differences),
// and how many improved or worsened. It reads every such patient's
// samples: an audit, not a live view.
func (a *API) clinicComparisons(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	days, err := compareDays(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	latest, err := a.reg.LatestPlanVersions(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	now := a.now()
	type acc struct {
		patients int
		metrics  map[string]*MetricAcrossAll
		diffs    map[string][]float64
		order    []string
	}
	groups := map[string]*acc{}
	for _, id := range slices.Sorted(maps.Keys(latest)) {
		plans, err := analysis.PlanHistory(ctx, a.reg, id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		i := -1
		for j, p := range plans {
			if !p.Effective.After(now.Add(-24 * time.Hour)) {
				i = j
			}
		}
		if i < 0 {
			continue
		}
		vc, err := a.compareVersion(ctx, id, plans, i, days)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var words []string
		for _, d := range plans[i].Regimen {
			words = append(words, d.Words())
		}
		slices.Sort(words)
		key := strings.Join(words, "; ")
		g := groups[key]
		if g == nil {
			g = &acc{metrics: map[string]*MetricAcrossAll{}, diffs: map[string][]float64{}}
			groups[key] = g
		}
		g.patients++
		for _, c := range vc.Comparisons {
			k := c.Metric + "|" + c.Instrument
			m := g.metrics[k]
			if m == nil {
				m = &MetricAcrossAll{Metric: c.Metric, Instrument: c.Instrument, Label: c.Label}
				g.metrics[k] = m
				g.order = append(g.order, k)
			}
			switch c.Outcome {
			case analysis.OutcomeTooFewDay:
				m.TooFewDays++
				continue
			case analysis.OutcomeImproved:
				m.Improved++
			case analysis.OutcomeWorsened:
				m.Worsened++
			default:
				m.Unclear++
			}
			m.Patients++
			g.diffs[k] = append(g.diffs[k], *c.Difference)
		}
	}
	out := []RegimenComparison{}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		rc := RegimenComparison{Regimen: key, Patients: g.patients, Metrics: []MetricAcrossAll{}}
		for _, k := range g.order {
			m := g.metrics[k]
			m.Mean, m.Low95, m.High95 = meanInterval(g.diffs[k])
			if m.Mean != nil {
				m.Summary = analysis.DifferenceWords(m.Metric, *m.Mean, m.Low95, m.High95)
			}
			rc.Metrics = append(rc.Metrics, *m)
		}
		out = append(out, rc)
	}
	if err := a.reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionComparisons, Target: fmt.Sprintf("%d patients", len(latest))}); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"days": days, "regimens": out})
}

// meanInterval is the mean of vals and its 95% confidence interval by
// Student's t (nil without values; no interval with one).
func meanInterval(vals []float64) (mean, lo, hi *float64) {
	if len(vals) == 0 {
		return nil, nil, nil
	}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	m := sum / float64(len(vals))
	if len(vals) < 2 {
		return &m, nil, nil
	}
	var ss float64
	for _, v := range vals {
		ss += (v - m) * (v - m)
	}
	half := analysis.TQuantile975(float64(len(vals)-1)) * math.Sqrt(ss/float64(len(vals)-1)/float64(len(vals)))
	l, h := m-half, m+half
	return &m, &l, &h
}
