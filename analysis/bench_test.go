package analysis

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
)

// benchPlan is the menopause template: nine rules of six kinds over sleep,
// symptoms, heart rate and doses.
func benchPlan(b *testing.B, patient string, effective time.Time) *Plan {
	b.Helper()
	data, err := os.ReadFile("../examples/plans/menopause-estradiol-progesterone.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p, err := ParsePlan(data)
	if err != nil {
		b.Fatal(err)
	}
	p.Patient, p.Version, p.Effective = patient, 1, effective
	return &p
}

// history returns days of a patient's samples up to now: a night's sleep
// (total and HRV) and 24 hourly heart rates a day, an MRS check-in every
// third day, the estradiol patch twice a week and progesterone daily.
func history(rng *rand.Rand, now time.Time, days int) []Sample {
	var out []Sample
	start := now.Add(-time.Duration(days) * 24 * time.Hour).Truncate(24 * time.Hour)
	for d := range days {
		morning := start.Add(time.Duration(d)*24*time.Hour + 7*time.Hour)
		out = append(out,
			Sample{Measurement: "sleep", Field: "total_min", Value: 380 + rng.Float64()*80, Time: morning},
			Sample{Measurement: "sleep", Field: "hrv_rmssd_ms", Value: 35 + rng.Float64()*15, Time: morning},
			Sample{Measurement: "dose", Field: "amount", Value: 100, Time: morning.Add(14 * time.Hour), Medication: "progesterone"})
		for h := range 24 {
			out = append(out, Sample{Measurement: "heart_rate", Field: "bpm", Value: 55 + rng.Float64()*40,
				Time: start.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + 17*time.Minute)})
		}
		if d%3 == 0 {
			t := morning.Add(5 * time.Hour)
			for _, f := range []string{"hot_flushes", "depressive_mood", "sleep_problems", "total"} {
				out = append(out, Sample{Measurement: "symptoms", Field: f, Value: float64(rng.IntN(4)), Time: t, Instrument: "mrs"})
			}
		}
		if d%7 == 0 || d%7 == 3 {
			out = append(out, Sample{Measurement: "dose", Field: "amount", Value: 0.05, Time: morning.Add(time.Hour), Medication: "estradiol"})
		}
	}
	return out
}

// BenchmarkAnalysis10kPatients holds 10,000 patients, each with the
// menopause plan and 90 days of history, and prints what analysis costs:
// per sample taken in (ns/sample), per patient evaluated (ns/eval), and
// the memory the patients' state takes (bytes/patient, MiB/10k).
func BenchmarkAnalysis10kPatients(b *testing.B) {
	const patients, days = 10000, 90
	clk := clock{time.UTC}
	now := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	samples := history(rng, now, days)

	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ps := make([]*patient, patients)
		for i := range ps {
			ps[i] = newPatient(fmt.Sprintf("p-%05d", i), []*Plan{benchPlan(b, "p", now.Add(-days*24*time.Hour))})
		}
		start := time.Now()
		for _, p := range ps {
			for _, s := range samples {
				p.add(clk, s)
			}
			p.trimDoses(now)
		}
		addTime := time.Since(start)

		start = time.Now()
		fired := 0
		for _, p := range ps {
			ts, changed, _ := judgeEvery(p, clk, now, 10, false, false)
			p.apply(changed)
			fired += len(ts)
		}
		evalTime := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if fired == 0 {
			b.Fatal("no rule fired for any patient: the benchmark judges nothing")
		}
		perPatient := float64(after.HeapAlloc-before.HeapAlloc) / patients
		b.ReportMetric(float64(addTime.Nanoseconds())/float64(patients*len(samples)), "ns/sample")
		b.ReportMetric(float64(evalTime.Nanoseconds())/patients, "ns/eval")
		b.ReportMetric(perPatient, "bytes/patient")
		b.ReportMetric(perPatient*patients/(1<<20), "MiB/10k")
		runtime.KeepAlive(ps)
	}
}
