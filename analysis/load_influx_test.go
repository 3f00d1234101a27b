package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestBulkLoadMatchesPerPatientLoad stores several patients' samples in a
// real influxd (sleep records of 8 fields, hourly heart rate, check-ins
// of every MRS and AMS item, doses of two medications, vitals, lab
// results with their reference ranges), then rebuilds every patient from
// it both ways in bulk (loadChunks: chunks of 2 on two workers, patients
// matched; loadAll: every patient stored read at once, the rows of others
// dropped) and one at a time, one measurement at a time (load, the path
// of a plan change). Each patient must come out holding the same of what
// their rules read (ruleView), the same doses and rule states, and
// judging every rule the same: patients on both plan templates, whose
// reads of doses differ in length (a patient given rows beyond its
// window, or another's, would hold more doses or other values), one
// whose watch fell silent before the read-back window (its silence
// counts from an older sample), one with a plan and no data at all, one
// without a plan, and one with a plan and data that is not loaded
// (another instance's).
func TestBulkLoadMatchesPerPatientLoad(t *testing.T) {
	in, err := testservices.StartInflux()
	testservices.Require(t, err)
	t.Cleanup(func() { in.Close() })
	ctx := t.Context()
	src := ingest.NewInflux(ingest.InfluxConfig{URL: in.URL, Bucket: "pp-bulk", Org: "pp", Timeout: 30 * time.Second})
	t.Cleanup(src.Close)
	if err := src.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })

	now := time.Now().UTC().Truncate(time.Minute)
	today := now.Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -60)
	women := []string{"bulk-w1", "bulk-w2", "bulk-w-silent", "bulk-w-empty"}
	men := []string{"bulk-m1", "bulk-m2"}
	// bulk-other has a plan, data and another instance: it is not loaded.
	for _, id := range append(append(slices.Clone(women), men...), "bulk-noplan", "bulk-other") {
		if err := reg.AddPatient(ctx, registry.Patient{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range append(slices.Clone(women), "bulk-other") {
		savePlanFile(t, reg, id, "menopause-estradiol-progesterone.yaml", start)
	}
	for _, id := range men {
		savePlanFile(t, reg, id, "hypogonadism-testosterone.yaml", start)
	}

	var lines []byte
	add := func(patient, device, m string, at time.Time, tags []ingest.Tag, fields ...ingest.Field) {
		lines = ingest.AppendLine(lines, &ingest.Point{Measurement: m, Time: at, Tags: tags, Fields: fields}, patient, device, int64(len(lines)))
		lines = append(lines, '\n')
	}
	f := func(k string, v float64) ingest.Field { return ingest.Field{Key: k, Value: v} }
	for i, id := range append(slices.Clone(women[:3]), append(slices.Clone(men), "bulk-other")...) {
		for d := range 60 {
			day := start.AddDate(0, 0, d)
			v := float64((d*7+i*13)%11) / 10 // varies by day and patient
			watchOn := id != "bulk-w-silent" || d < 55
			if watchOn {
				add(id, id+"-watch", "sleep", day.Add(7*time.Hour), nil, f("total_min", 380+40*v), f("deep_min", 70), f("rem_min", 80),
					f("light_min", 200), f("awake_min", 35), f("efficiency", 0.9), f("hrv_rmssd_ms", 40+5*v), f("resting_hr", 60))
				for h := 0; h < 24; h += 2 {
					add(id, id+"-watch", "heart_rate", day.Add(time.Duration(h)*time.Hour+5*time.Minute), nil, f("bpm", 60+10*v+float64(h)))
				}
			}
			instrument, items := "mrs", []string{"hot_flushes", "heart_discomfort", "sleep_problems", "depressive_mood", "irritability"}
			if strings.HasPrefix(id, "bulk-m") {
				instrument, items = "ams", []string{"depressive_mood", "sleep_problems", "irritability"}
			}
			if d%2 == 0 {
				fields := []ingest.Field{f("total", 8+10*v)}
				for j, item := range items {
					fields = append(fields, f(item, float64((d+j)%4)+1))
				}
				add(id, id+"-app", "symptoms", day.Add(20*time.Hour), []ingest.Tag{{Key: "instrument", Value: instrument}}, fields...)
			}
			for _, med := range []string{"estradiol", "progesterone", "testosterone"} {
				if (d+len(med))%3 != 0 {
					add(id, id+"-app", "dose", day.Add(8*time.Hour+time.Duration(len(med))*time.Minute),
						[]ingest.Tag{{Key: "medication", Value: med}, {Key: "route", Value: "oral"}, {Key: "unit", Value: "mg"}}, f("amount", 1))
				}
			}
			if d%4 == 1 {
				add(id, id+"-app", "vitals", day.Add(8*time.Hour), nil, f("systolic", 130+12*v), f("diastolic", 82+9*v), f("weight_kg", 80+float64(d)/20))
			}
			if d%20 == 5 {
				for _, lab := range []struct {
					analyte string
					value   float64
				}{{"hematocrit", 50 + 5*v}, {"testosterone", 15 + 10*v}, {"psa", 1 + 4*v}} {
					add(id, id+"-app", "labs", day.Add(11*time.Hour), []ingest.Tag{{Key: "analyte", Value: lab.analyte}},
						f("value", lab.value), f("reported_value", lab.value), f("ref_low", 1), f("ref_high", 60))
				}
			}
		}
	}
	if err := src.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}

	ids := append(append(slices.Clone(women), men...), "bulk-noplan")
	newEv := func() *Evaluator {
		e := NewEvaluator(evConfig(), reg, src, slog.New(slog.DiscardHandler), nil, nil)
		e.now = func() time.Time { return now }
		e.chunk = 2
		return e
	}
	one := newEv()
	for _, id := range ids {
		if err := one.load(ctx, id); err != nil {
			t.Fatalf("load(%s): %v", id, err)
		}
	}
	want := append(slices.Clone(women), men...)
	if got := sortedIDs(one); len(got) != len(want) {
		t.Fatalf("patients held one by one: %v; want the %d with a plan", got, len(want))
	}
	// The unfiltered queries return rows that must be dropped: of
	// bulk-other, and of patients whose reads of the same measurement
	// are shorter (the women's doses, 18 days, within the men's 57).
	if !sharedMeasurement(one.readGroups(one.patients, now)) {
		t.Fatal("no measurement is read over two lengths by different patients: the unfiltered path drops nothing here")
	}
	for _, tc := range []struct {
		name string
		load func(*Evaluator, context.Context, []string) ([]string, error)
	}{
		{"chunks, patients matched", (*Evaluator).loadChunks},
		{"unfiltered, others' rows dropped", (*Evaluator).loadAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bulk := newEv()
			if failed, err := tc.load(bulk, ctx, ids); len(failed) > 0 || err != nil {
				t.Fatalf("%d failed: %v", len(failed), err)
			}
			if got := sortedIDs(bulk); !reflect.DeepEqual(got, sortedIDs(one)) {
				t.Fatalf("patients held: bulk %v, one by one %v", got, sortedIDs(one))
			}
			compareLoads(t, bulk, one, want, now)
		})
	}
}

// sharedMeasurement reports whether a measurement is read over two
// lengths, by patients that are not all in both reads.
func sharedMeasurement(groups map[readKey][]string) bool {
	for a, pa := range groups {
		for b, pb := range groups {
			if a.measurement == b.measurement && !a.from.Equal(b.from) && !slices.Equal(slices.Sorted(slices.Values(pa)), slices.Sorted(slices.Values(pb))) {
				return true
			}
		}
	}
	return false
}

// compareLoads checks that the patients bulk and one hold (the fixture
// of TestBulkLoadMatchesPerPatientLoad) read the same and judge the same.
func compareLoads(t *testing.T, bulk, one *Evaluator, want []string, now time.Time) {
	t.Helper()
	judged := 0
	for _, id := range want {
		pb, po := bulk.patients[id], one.patients[id]
		if b, o := ruleView(pb, bulk.clk, now), ruleView(po, one.clk, now); b != o {
			t.Errorf("%s: bulk rebuild holds\n%s\none by one\n%s", id, b, o)
		}
		_, _, vb := judgeEvery(pb, bulk.clk, now, bulk.cfg.MinWearHours, true, false)
		_, _, vo := judgeEvery(po, one.clk, now, one.cfg.MinWearHours, true, false)
		if !reflect.DeepEqual(vb, vo) {
			t.Errorf("%s: verdicts differ:\nbulk       %+v\none by one %+v", id, vb, vo)
		}
		for _, v := range vb {
			if v.Judged {
				judged++
			}
		}
	}
	// What the rebuilds must agree on is there: data judged, a silence
	// counted from before the window, and a lab result over its bound.
	if judged < 20 {
		t.Errorf("only %d verdicts judged: the rebuilds read little back", judged)
	}
	silent := heldVerdict(t, bulk, "bulk-w-silent", "watch-silent")
	if !silent.Holds || silent.Value < 4*24 {
		t.Errorf("bulk-w-silent's watch-silent: holds %v after %.0f h; want it to hold after 4 days or more", silent.Holds, silent.Value)
	}
	if empty := heldVerdict(t, bulk, "bulk-w-empty", "sleep-short"); empty.Judged {
		t.Errorf("bulk-w-empty's sleep-short is judged with no data: %+v", empty)
	}
}

// heldVerdict is the patient's verdict on a rule, as e holds it.
func heldVerdict(t *testing.T, e *Evaluator, patient, rule string) Verdict {
	t.Helper()
	_, _, vs := judgeEvery(e.patients[patient], e.clk, e.now(), e.cfg.MinWearHours, true, false)
	for _, v := range vs {
		if v.Rule == rule {
			return v
		}
	}
	t.Fatalf("%s has no verdict on %s", patient, rule)
	return Verdict{}
}

// savePlanFile saves a plan template under examples/plans as the
// patient's plan, effective from eff.
func savePlanFile(t *testing.T, reg *registry.Registry, patient, file string, eff time.Time) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "plans", file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePlan(data)
	if err != nil {
		t.Fatal(err)
	}
	p.Patient, p.Effective = patient, eff
	if _, err := SavePlan(t.Context(), reg, &p); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", patient, err))
	}
}
