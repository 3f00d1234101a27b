package analysis

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// benchPlan is the menopause template: thirteen rules of eight kinds over
// sleep, symptoms, heart rate, doses, procedures and follow-ups.
func benchPlan(b *testing.B, patient string, effective time.Time) *Plan {
	p := menopausePlan(b)
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

// demoHistory is days of a patient's stored values up to now at the demo's
// rates (simulate): a night's sleep record (8 fields) and 72 heart rates a
// day, the day's activity (2 fields), a complete MRS check-in every day
// (its 11 items, 3 subscales and total), the estradiol patch twice a week
// and progesterone daily, and a weekly blood pressure and weight.
func demoHistory(rng *rand.Rand, now time.Time, days int) []ingest.StoredValue {
	var out []ingest.StoredValue
	add := func(m string, t time.Time, tags map[string]string, fields map[string]float64) {
		for f, v := range fields {
			out = append(out, ingest.StoredValue{Measurement: m, Field: f, Value: v, Time: t, Tags: tags})
		}
	}
	watch := map[string]string{"device": "watch"}
	start := now.Truncate(24*time.Hour).AddDate(0, 0, -days)
	for d := range days + 1 {
		day := start.AddDate(0, 0, d)
		total := 360 + rng.Float64()*90
		add("sleep", day.Add(7*time.Hour), watch, map[string]float64{"total_min": total, "deep_min": total * 0.18,
			"rem_min": total * 0.22, "light_min": total * 0.55, "awake_min": 35, "efficiency": 0.92,
			"hrv_rmssd_ms": 35 + rng.Float64()*15, "resting_hr": 58 + rng.Float64()*4})
		for i := range 72 {
			add("heart_rate", day.Add(time.Duration(i)*20*time.Minute+5*time.Minute), watch, map[string]float64{"bpm": 60 + rng.Float64()*30})
		}
		add("activity", day.Add(22*time.Hour), watch, map[string]float64{"steps": 6000 + rng.Float64()*4000, "active_min": 35})
		items := map[string]float64{}
		for _, g := range [][]string{{"hot_flushes", "heart_discomfort", "sleep_problems", "joint_muscle"},
			{"depressive_mood", "irritability", "anxiety", "exhaustion"}, {"sexual_problems", "bladder", "vaginal_dryness"}} {
			for _, it := range g {
				items[it] = float64(rng.IntN(3))
			}
		}
		items["somatic"], items["psychological"], items["urogenital"], items["total"] = 4, 3, 2, 9
		add("symptoms", day.Add(20*time.Hour), map[string]string{"device": "app", "instrument": "mrs"}, items)
		add("dose", day.Add(22*time.Hour), map[string]string{"device": "app", "medication": "progesterone"}, map[string]float64{"amount": 100})
		if d%7 == 0 || d%7 == 3 {
			add("dose", day.Add(8*time.Hour), map[string]string{"device": "app", "medication": "estradiol"}, map[string]float64{"amount": 0.05})
		}
		if d%7 == 3 {
			add("vitals", day.Add(8*time.Hour), map[string]string{"device": "app"}, map[string]float64{"systolic": 121, "diastolic": 79, "weight_kg": 68})
		}
	}
	return out
}

// BenchmarkPreview tries the menopause template, one threshold changed, over
// the last 90 days of a patient whose devices send at the demo's rates
// (with the 91 days before them that its rules read back), and prints the
// time of one preview (ms/preview). The samples come from memory: what
// InfluxDB takes to send them is not in it (TestPlanChangeKeepsMonitoring logs a preview over InfluxDB).
func BenchmarkPreview(b *testing.B) {
	f := newEvFixture(b, "p-1")
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	plan := benchPlan(b, "p-1", now.AddDate(0, 0, -200))
	if _, err := SavePlan(f.ctx, f.reg, plan); err != nil {
		b.Fatal(err)
	}
	values := demoHistory(rand.New(rand.NewPCG(1, 2)), now, 90+91)
	f.src.put("p-1", values...)
	draft := *plan
	draft.Effective = now
	draft.Rules = slices.Clone(plan.Rules)
	draft.Rules[0].Below = ptr(390.0)
	for b.Loop() {
		pv, err := Preview(f.ctx, evConfig(), f.reg, f.src, draft, MaxPreviewDays, now)
		if err != nil || len(pv.Rules) != len(draft.Rules) {
			b.Fatalf("preview: %v", err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/preview")
	b.ReportMetric(float64(len(values)), "values")
}

func ptr[T any](v T) *T { return &v }
