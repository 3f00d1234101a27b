package simulate

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/examples"
	"github.com/patientpulse/patientpulse/ingest"
)

// Personas is the number of personas in the cohort.
func Personas() int { return len(personas) }

// PlanTemplate is the plan template (under examples/plans/) that persona
// pi's clinician applies, without patient or effective date.
func PlanTemplate(pi int) (analysis.Plan, error) {
	data, err := examples.Plans.ReadFile("plans/" + personas[pi].template)
	if err != nil {
		return analysis.Plan{}, err
	}
	return analysis.ParsePlan(data)
}

// History is what persona pi's devices send over days days from start
// (under plan, whose doses are due from start) up to now, as a
// simulation sends it (the watch's and the app's samples, seed 1),
// decoded by ingest as serve decodes it, as stored values by measurement.
func History(pi int, plan *analysis.Plan, start, now time.Time, days int) (map[string][]ingest.StoredValue, error) {
	p := personas[pi]
	var regimen []simDose
	for _, d := range plan.Regimen {
		sched := d.Schedule
		regimen = append(regimen, simDose{Medication: d.Medication, Route: d.Route, Unit: d.Unit, Amount: d.Amount,
			due: func(from, to time.Time) []time.Time { return sched.Due(start.Add(8*time.Hour), from, to) }})
	}
	lim := ingest.Limits{MaxSamples: 10000, Backfill: time.Duration(days+2) * 24 * time.Hour, FutureSkew: 5 * time.Minute}
	out := map[string][]ingest.StoredValue{}
	for d := range days {
		dayStart := start.AddDate(0, 0, d)
		rng := rand.New(rand.NewPCG(1, uint64(pi)<<32|uint64(d)))
		watch, app := p.deviceDay(rng, d, days, dayStart, regimen)
		samples := due(append(watch, app...), start.Add(-time.Nanosecond), now)
		if len(samples) == 0 {
			continue
		}
		env, err := ingest.Decode(envelope(int64(d+1), samples), now, lim)
		if err != nil {
			return nil, fmt.Errorf("simulated history: %w", err)
		}
		if len(env.Problems) > 0 {
			return nil, fmt.Errorf("simulated history: %d samples refused, first: %v", len(env.Problems), env.Problems[0])
		}
		for _, pt := range env.Points {
			var tags map[string]string
			for _, t := range pt.Tags {
				if tags == nil {
					tags = map[string]string{}
				}
				tags[t.Key] = t.Value
			}
			for _, f := range pt.Fields {
				out[pt.Measurement] = append(out[pt.Measurement], ingest.StoredValue{Measurement: pt.Measurement,
					Field: f.Key, Value: f.Value, Time: pt.Time, Tags: tags})
			}
		}
	}
	return out, nil
}
