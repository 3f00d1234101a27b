package registry

import (
	"errors"
	"testing"
)

// TestSummaries: a patient's published summary is found by its week,
// replaced by the next week's, and listed per week.
func TestSummaries(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		for _, id := range []string{"p-1", "p-2"} {
			if err := r.AddPatient(ctx, Patient{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.Summary(ctx, "p-1", "2026-W48"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Summary before any: %v, want ErrNotFound", err)
		}
		for _, s := range []struct{ patient, week, body string }{
			{"p-1", "2026-W47", `{"week":"2026-W47"}`},
			{"p-1", "2026-W48", `{"week":"2026-W48"}`},
			{"p-2", "2026-W48", `{"week":"2026-W48","p":2}`},
			{"p-2", "2026-W48", `{"week":"2026-W48","p":2,"again":true}`},
		} {
			if err := r.RecordSummary(ctx, s.patient, s.week, []byte(s.body)); err != nil {
				t.Fatalf("RecordSummary(%s, %s): %v", s.patient, s.week, err)
			}
		}
		if _, _, err := r.Summary(ctx, "p-1", "2026-W47"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the replaced week: %v, want ErrNotFound", err)
		}
		if body, at, err := r.Summary(ctx, "p-2", "2026-W48"); err != nil || string(body) != `{"week":"2026-W48","p":2,"again":true}` || at.IsZero() {
			t.Errorf("Summary(p-2) = %s %v %v", body, at, err)
		}
		if got, err := r.SummarisedPatients(ctx, "2026-W48"); err != nil || len(got) != 2 || !got["p-1"] || !got["p-2"] {
			t.Errorf("SummarisedPatients(W48) = %v, %v", got, err)
		}
		if got, err := r.SummarisedPatients(ctx, "2026-W47"); err != nil || len(got) != 0 {
			t.Errorf("SummarisedPatients(W47) = %v, %v", got, err)
		}
		if err := r.RecordSummary(ctx, "p-9", "2026-W48", []byte(`{}`)); err == nil {
			t.Error("a summary of an unknown patient recorded")
		}
	})
}
