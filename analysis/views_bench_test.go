package analysis

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// BenchmarkViewsSweep10kPatients prints what keeping views costs an
// evaluation sweep over 10,000 patients with the menopause plan and 90
// days of history: judging every rule without verdicts, as a lone
// instance does (ms/sweep-plain), and with them, each patient's view
// marshalled and compared with the last one kept (ms/sweep-views), the
// first sweep keeping every view and a second one, nothing having
// changed, none (ms/sweep-unchanged). Writing 10,000 views to the
// registry is registry's BenchmarkWritePatientViews10k.
func BenchmarkViewsSweep10kPatients(b *testing.B) {
	const patients, days = 10000, 90
	clk := clock{time.UTC}
	now := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	samples := history(rand.New(rand.NewPCG(1, 2)), now, days)
	ps := make([]*patient, patients)
	for i := range ps {
		ps[i] = newPatient(fmt.Sprintf("p-%05d", i), []*Plan{benchPlan(b, "p", now.Add(-days*24*time.Hour))})
		for _, s := range samples {
			ps[i].add(clk, s)
		}
		ps[i].trimDoses(now)
	}
	for b.Loop() {
		start := time.Now()
		for _, p := range ps {
			judgeEvery(p, clk, now, 10, false, true)
		}
		plain := time.Since(start)
		e := &Evaluator{views: map[string]registry.PatientView{}}
		for _, p := range ps {
			p.view = nil
		}
		start = time.Now()
		for _, p := range ps {
			_, _, vs := judgeEvery(p, clk, now, 10, true, true)
			e.noteView(p, vs, now)
		}
		views := time.Since(start)
		if len(e.views) != patients {
			b.Fatalf("%d views kept, want %d", len(e.views), patients)
		}
		clear(e.views)
		start = time.Now()
		for _, p := range ps {
			_, _, vs := judgeEvery(p, clk, now, 10, true, true)
			e.noteView(p, vs, now)
		}
		unchanged := time.Since(start)
		if len(e.views) != 0 {
			b.Fatalf("%d views kept again though nothing changed", len(e.views))
		}
		b.ReportMetric(float64(plain.Milliseconds()), "ms/sweep-plain")
		b.ReportMetric(float64(views.Milliseconds()), "ms/sweep-views")
		b.ReportMetric(float64(unchanged.Milliseconds()), "ms/sweep-unchanged")
	}
}
