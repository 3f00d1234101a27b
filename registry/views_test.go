package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

var errTestFenced = errors.New("fenced (test)")

// refuse is a Fence that refuses every write, as cluster's Check does for
// a lost partition.
func refuse(context.Context, *sql.Tx) error { return errTestFenced }

// TestPatientViews: views written in one call across statement batches
// read back alike, one at a time or all at once; a second write replaces
// them; a refusing fence writes none of a call's views.
func TestPatientViews(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r, _ := openTest(t, b)
		ctx := t.Context()
		at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		var views []PatientView
		for i := range viewBatch + 50 {
			id := fmt.Sprintf("pv-%03d", i)
			if err := r.AddPatient(ctx, Patient{ID: id}); err != nil {
				t.Fatal(err)
			}
			views = append(views, PatientView{Patient: id, Verdicts: []byte(fmt.Sprintf(`[{"rule":"r%d"}]`, i)),
				LastData: map[string]time.Time{"sleep": at.Add(-time.Duration(i) * time.Minute)}, JudgedAt: at})
		}
		if err := r.WritePatientViews(ctx, nil, views); err != nil {
			t.Fatalf("WritePatientViews: %v", err)
		}
		all, err := r.PatientViews(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(views) {
			t.Fatalf("PatientViews: %d views, want %d", len(all), len(views))
		}
		got := all["pv-201"]
		if string(got.Verdicts) != `[{"rule":"r201"}]` || !got.LastData["sleep"].Equal(at.Add(-201*time.Minute)) || !got.JudgedAt.Equal(at) {
			t.Errorf("view of pv-201: %+v", got)
		}
		views[0].Verdicts, views[0].JudgedAt = []byte(`[]`), at.Add(time.Minute)
		if err := r.WritePatientViews(ctx, nil, views[:1]); err != nil {
			t.Fatal(err)
		}
		one, ok, err := r.PatientView(ctx, "pv-000")
		if err != nil || !ok || string(one.Verdicts) != `[]` || !one.JudgedAt.Equal(at.Add(time.Minute)) {
			t.Errorf("PatientView(pv-000) after a rewrite = %+v, %v, %v", one, ok, err)
		}
		views[1].Verdicts = []byte(`["fenced"]`)
		if err := r.WritePatientViews(ctx, refuse, views[1:2]); !errors.Is(err, errTestFenced) {
			t.Errorf("WritePatientViews with a refusing fence = %v, want the fence's error", err)
		}
		if v, _, _ := r.PatientView(ctx, "pv-001"); string(v.Verdicts) != `[{"rule":"r1"}]` {
			t.Errorf("a fenced write changed the view: %s", v.Verdicts)
		}
		if _, ok, err := r.PatientView(ctx, "pv-none"); ok || err != nil {
			t.Errorf("PatientView of a patient without one = %v, %v", ok, err)
		}
	})
}

// TestRecordTransitionsFenced: a refusing fence records neither the
// transitions, the rule states nor the view; a passing one records all
// three.
func TestRecordTransitionsFenced(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r, _ := openTest(t, b)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "p-1"}); err != nil {
			t.Fatal(err)
		}
		ts := []Transition{{Rule: "r", Change: "fired", At: time.Now(), Body: []byte(`{}`)}}
		states := map[string][]byte{"r": []byte(`{"holds":true}`)}
		view := &PatientView{Patient: "p-1", Verdicts: []byte(`[{"rule":"r"}]`), JudgedAt: time.Now()}
		if err := r.RecordTransitionsFenced(ctx, refuse, "p-1", ts, states, view); !errors.Is(err, errTestFenced) {
			t.Fatalf("RecordTransitionsFenced with a refusing fence = %v", err)
		}
		if got, _ := r.Transitions(ctx, "p-1", 0, 10); len(got) != 0 {
			t.Errorf("fenced: %d transitions recorded", len(got))
		}
		if got, _ := r.RuleStates(ctx, "p-1"); len(got) != 0 {
			t.Errorf("fenced: rule states %v recorded", got)
		}
		if _, ok, _ := r.PatientView(ctx, "p-1"); ok {
			t.Errorf("fenced: the view recorded")
		}
		ran := false
		pass := func(context.Context, *sql.Tx) error { ran = true; return nil }
		if err := r.RecordTransitionsFenced(ctx, pass, "p-1", ts, states, view); err != nil || !ran {
			t.Fatalf("RecordTransitionsFenced = %v (fence ran: %v)", err, ran)
		}
		if got, _ := r.Transitions(ctx, "p-1", 0, 10); len(got) != 1 {
			t.Errorf("%d transitions recorded, want 1", len(got))
		}
		if v, ok, err := r.PatientView(ctx, "p-1"); !ok || err != nil || string(v.Verdicts) != `[{"rule":"r"}]` {
			t.Errorf("PatientView after the write = %s, %v, %v", v.Verdicts, ok, err)
		}
	})
}

// BenchmarkWritePatientViews10k writes the views of 10,000 patients in
// one call, as an evaluator's sweep over them would, on SQLite and on
// Postgres, and prints the time a sweep's write takes (ms/sweep).
func BenchmarkWritePatientViews10k(b *testing.B) {
	const patients = 10000
	verdicts := []byte(`[` + fmt.Sprintf(`{"rule":"sleep-short","kind":"threshold","severity":"warning","metric":"sleep.total_min",`+
		`"words":"7-day mean of nightly sleep below 420 min","judged":true,"holds":false,"value":431.2,"bound":420,"side":"below",`+
		`"sentence":"The 7-day mean of nightly sleep is 431 min, above 420 min.","plan_version":1}`) + `]`)
	for _, dsn := range []struct {
		name string
		dsn  func() string
	}{
		{"sqlite", func() string { return filepath.Join(b.TempDir(), "r.db") }},
		{"postgres", func() string { return testservices.PostgresDB(b) }},
	} {
		b.Run(dsn.name, func(b *testing.B) {
			ctx := context.Background()
			r, err := Open(ctx, dsn.dsn())
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			views := make([]PatientView, patients)
			at := time.Now()
			for i := range views {
				id := fmt.Sprintf("pv-%05d", i)
				if err := r.AddPatient(ctx, Patient{ID: id}); err != nil {
					b.Fatal(err)
				}
				views[i] = PatientView{Patient: id, Verdicts: verdicts,
					LastData: map[string]time.Time{"sleep": at, "heart_rate": at, "dose": at}, JudgedAt: at}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := r.WritePatientViews(ctx, nil, views); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sweep")
		})
	}
}
