package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/simulate"
)

// TestColdStart runs (f) with a few patients: their whole history is
// written, every patient is judged from the evaluator's cold start (the
// phase fails when one is not, or when no rule holds for anyone), the
// per-patient path runs on each of them, and the row says so.
func TestColdStart(t *testing.T) {
	const patients = 40
	s := QuickSettings()
	s.ColdPatients = patients
	var progress strings.Builder
	b := &bencher{s: s, progress: &progress}
	var res Results
	if err := b.coldStart(t.Context(), &res); err != nil {
		t.Fatalf("(f): %v\n%s", err, progress.String())
	}
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(historyDays - 1))
	h, err := newColdHistory(start, now)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := range patients {
		want += int64(len(h.points[simulate.PersonaIndex(i)]))
	}
	c := res.cold
	if c.points != want || c.points < patients*6000 {
		t.Errorf("history: %d points written, want %d (90 days of heart rate alone are 6,480 a patient)", c.points, want)
	}
	if c.patients != patients || c.oldSample != patients || c.secs <= 0 || c.oldSecs <= 0 {
		t.Errorf("figures: %+v; want %d patients judged, each also rebuilt alone", c, patients)
	}
	t.Log(c.row())
	if row := c.row(); !strings.HasPrefix(row, "| (f) | cold start: 40 patients, 90 days |") {
		t.Errorf("row: %s", row)
	}
}
