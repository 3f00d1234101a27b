package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/report"
)

// maxReportSpan is the longest span a visit report covers.
const maxReportSpan = 366 * 24 * time.Hour

// reportSeries are the series a visit report charts: measurement, field,
// title, unit, and a conversion from the stored unit. Symptom totals are
// charted per instrument.
var reportSeries = []struct {
	m, field, title, unit string
	conv                  func(float64) float64
}{
	{"sleep", "total_min", "Sleep, each night", "h", func(v float64) float64 { return v / 60 }},
	{"heart_rate", "bpm", "Heart rate, daily mean", "bpm", nil},
	{"sleep", "hrv_rmssd_ms", "HRV (RMSSD), each night", "ms", nil},
	{"activity", "steps", "Steps", "steps", nil},
	{"symptoms", "total", "Symptom score", "", nil},
	{"vitals", "weight_kg", "Weight", "kg", nil},
	{"vitals", "systolic", "Blood pressure, systolic", "mmHg", nil},
	{"vitals", "hematocrit_pct", "Hematocrit", "%", nil},
}

// patientReport answers the patient's visit report over [from, to) (by
// default the last 30 days) as a PDF to download.
func (a *API) patientReport(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	now := a.now()
	to, err := timeParam(r, "to", now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	from, err := timeParam(r, "from", to.Add(-30*24*time.Hour))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !from.Before(to) || to.Sub(from) > maxReportSpan || seriesTimeProblem("from", from) != "" || seriesTimeProblem("to", to) != "" {
		a.fail(w, r, fmt.Errorf("%w: from must be before to, at most a year apart", errBadRequest))
		return
	}
	d, err := a.reportData(ctx, id, from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, _ := auth.FromContext(ctx)
	d.GeneratedAt, d.GeneratedBy, d.Location = now, p.Username, a.cfg.Location
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="visit-report-%s-%s.pdf"`, id, from.In(a.location()).Format("2006-01-02")))
	if err := report.Render(w, d); err != nil {
		a.log.Error("visit report failed", "err", err)
	}
}

func (a *API) location() *time.Location {
	if a.cfg.Location != nil {
		return a.cfg.Location
	}
	return time.UTC
}

// reportData gathers what the report shows.
func (a *API) reportData(ctx context.Context, id string, from, to time.Time) (report.Data, error) {
	pt, err := a.reg.Patient(ctx, id)
	if err != nil {
		return report.Data{}, err
	}
	d := report.Data{PatientID: pt.ID, PatientName: pt.Name, From: from, To: to}
	plans, err := analysis.PlanHistory(ctx, a.reg, id)
	if err != nil {
		return d, err
	}
	// The versions in force during the span: the last one before it and
	// every one that took effect within it.
	var inForce []analysis.Plan
	for i, p := range plans {
		if p.Effective.Before(to) && (i+1 == len(plans) || plans[i+1].Effective.After(from)) {
			inForce = append(inForce, p)
		}
	}
	for _, p := range inForce {
		rp := report.Plan{Version: p.Version, Effective: p.Effective}
		for _, dose := range p.Regimen {
			rp.Regimen = append(rp.Regimen, dose.Words())
		}
		for _, rule := range p.Rules {
			rp.Rules = append(rp.Rules, fmt.Sprintf("%s (%s): %s", rule.ID, rule.Severity, rule.Words()))
		}
		d.Plans = append(d.Plans, rp)
	}
	procs, err := a.reg.Procedures(ctx, id)
	if err != nil {
		return d, err
	}
	types, err := a.reg.ProcedureTypes(ctx)
	if err != nil {
		return d, err
	}
	names := map[string]string{}
	for _, t := range types {
		names[t.ID] = t.Name
	}
	for _, p := range procs {
		if !p.At.Before(from) && p.At.Before(to) {
			d.Treatments = append(d.Treatments, report.Treatment{At: p.At, Name: names[p.Type], Status: p.Status, PerformedBy: p.PerformedBy, Notes: p.Notes})
		}
	}
	verdicts, err := a.verdictsOf(ctx, id)
	if err != nil {
		return d, err
	}
	for _, v := range verdicts {
		d.Verdicts = append(d.Verdicts, report.Verdict{Rule: v.Rule, Severity: v.Severity, Sentence: v.Sentence, Judged: v.Judged, Holds: v.Holds})
	}
	// Is the change working? Each version that took effect in the span,
	// or the one in force through it.
	var compared []int
	for i, p := range plans {
		if !p.Effective.Before(from) && p.Effective.Before(to) && !p.Effective.After(a.now()) {
			compared = append(compared, i)
		}
	}
	if len(compared) == 0 && len(inForce) > 0 {
		compared = append(compared, slices.IndexFunc(plans, func(p analysis.Plan) bool { return p.Version == inForce[0].Version }))
	}
	for _, i := range compared {
		vc, err := a.compareVersion(ctx, id, plans, i, defaultCompareDays)
		if err != nil {
			return d, err
		}
		rc := report.Comparison{Version: vc.Version, Effective: vc.Effective, Changes: vc.Changes, Days: vc.Days}
		for _, c := range vc.Comparisons {
			rc.Metrics = append(rc.Metrics, report.ComparedMetric{Outcome: c.Outcome, Sentence: c.Sentence})
		}
		d.Comparisons = append(d.Comparisons, rc)
	}

	read := map[string][]ingest.SeriesPoint{}
	for _, m := range []string{"sleep", "heart_rate", "activity", "symptoms", "vitals", "dose", "labs"} {
		pts, err := a.series.Series(ctx, id, m, from, to, maxSeriesPoints)
		if errors.Is(err, ingest.ErrTooManyPoints) {
			continue // charted from nothing rather than refused: the rest of the report stands
		}
		if err != nil {
			return d, err
		}
		read[m] = pts
	}
	loc := a.location()
	for _, s := range reportSeries {
		byInstrument := map[string][]report.Point{}
		for _, p := range read[s.m] {
			v, ok := p.Fields[s.field]
			if !ok {
				continue
			}
			if s.conv != nil {
				v = s.conv(v)
			}
			inst := p.Tags["instrument"]
			byInstrument[inst] = append(byInstrument[inst], report.Point{T: p.Time, V: v})
		}
		for _, inst := range sortedKeys(byInstrument) {
			pts := byInstrument[inst]
			if s.m == "heart_rate" || s.m == "activity" {
				pts = perDay(pts, loc, s.m == "activity")
			}
			title := s.title
			if inst != "" {
				title = fmt.Sprintf("%s, %s total", s.title, strings.ToUpper(inst))
			}
			c := report.Chart{Title: title, Unit: s.unit, Points: pts}
			c.Bands = bandsOf(inForce, s.m+"."+s.field, inst, s.conv)
			d.Charts = append(d.Charts, c)
		}
	}
	logged := map[string]int{}
	for _, p := range read["dose"] {
		logged[p.Tags["medication"]]++
	}
	for _, med := range sortedKeys(logged) {
		d.Doses = append(d.Doses, report.DoseCount{Medication: med, Logged: logged[med]})
	}
	for _, p := range read["labs"] {
		l := report.Lab{T: p.Time, Analyte: ingest.AnalyteLabel(p.Tags["analyte"]), Unit: ingest.AnalyteUnit(p.Tags["analyte"]), Value: p.Fields["value"]}
		if v, ok := p.Fields["ref_low"]; ok {
			l.RefLow, l.Low = &v, l.Value < v
		}
		if v, ok := p.Fields["ref_high"]; ok {
			l.RefHigh, l.High = &v, l.Value > v
		}
		d.Labs = append(d.Labs, l)
	}

	// The alerts open at some time in the span, oldest first.
	list, err := a.alerts.List(ctx, registry.AlertFilter{Patient: id, All: true})
	if err != nil {
		return d, err
	}
	if err := a.alerts.WithNotes(ctx, list); err != nil {
		return d, err
	}
	slices.Reverse(list)
	for _, al := range list {
		if !al.OpenedAt.Before(to) || (al.ResolvedAt != nil && al.ResolvedAt.Before(from)) {
			continue
		}
		ra := report.Alert{OpenedAt: al.OpenedAt, Severity: al.Severity, State: al.State, Sentence: al.Sentence}
		for _, n := range al.Notes {
			ra.Notes = append(ra.Notes, fmt.Sprintf("%s, %s, %s: %s", n.Change, n.Actor, n.At.In(loc).Format("2 Jan 15:04"), n.Note))
		}
		d.Alerts = append(d.Alerts, ra)
	}
	notes, err := a.reg.PatientNotes(ctx, id)
	if err != nil {
		return d, err
	}
	slices.Reverse(notes)
	for _, n := range notes {
		if !n.At.Before(from) && n.At.Before(to) {
			d.Notes = append(d.Notes, report.Note{At: n.At, Author: n.Author, Text: n.Note})
		}
	}
	return d, nil
}

// verdictsOf is each rule's verdict now, from the analysis or, for a
// patient another instance judges, its view.
func (a *API) verdictsOf(ctx context.Context, id string) ([]analysis.Verdict, error) {
	vs := []analysis.Verdict{}
	if a.analysis == nil {
		return vs, nil
	}
	if a.analysis.Owns(id) {
		return append(vs, a.analysis.Verdicts(id)...), nil
	}
	view, ok, err := a.reg.PatientView(ctx, id)
	if err != nil || !ok {
		return vs, err
	}
	return append(vs, viewVerdicts(view)...), nil
}

// bandsOf is each plan version's band of a metric: its threshold and
// score rules' bounds over the span the version was in force.
func bandsOf(plans []analysis.Plan, metric, instrument string, conv func(float64) float64) []report.Band {
	var out []report.Band
	for i, p := range plans {
		b := report.Band{Version: p.Version, From: p.Effective}
		if i+1 < len(plans) {
			b.To = plans[i+1].Effective
		}
		for _, r := range p.Rules {
			if r.Kind != analysis.KindThreshold || r.Metric != metric || (r.Instrument != "" && r.Instrument != instrument) {
				continue
			}
			if r.Below != nil {
				v := *r.Below
				if conv != nil {
					v = conv(v)
				}
				b.Low = &v
			}
			if r.Above != nil {
				v := *r.Above
				if conv != nil {
					v = conv(v)
				}
				b.High = &v
			}
		}
		if b.Low != nil || b.High != nil {
			out = append(out, b)
		}
	}
	return out
}

// perDay rolls points up per clinic day, at the day's noon: their mean,
// or their sum.
func perDay(pts []report.Point, loc *time.Location, sum bool) []report.Point {
	type acc struct {
		t time.Time
		v float64
		n int
	}
	days := map[string]*acc{}
	for _, p := range pts {
		t := p.T.In(loc)
		k := t.Format("2006-01-02")
		if days[k] == nil {
			days[k] = &acc{t: time.Date(t.Year(), t.Month(), t.Day(), 12, 0, 0, 0, loc)}
		}
		days[k].v += p.V
		days[k].n++
	}
	out := make([]report.Point, 0, len(days))
	for _, d := range days {
		v := d.v
		if !sum {
			v /= float64(d.n)
		}
		out = append(out, report.Point{T: d.t, V: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T.Before(out[j].T) })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
