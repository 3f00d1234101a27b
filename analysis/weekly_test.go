package analysis

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// TestClosedWeek: the newest week closed by now, Monday to Monday in the
// clinic's zone, across a clock change, a year's end and zones that
// disagree on the day.
func TestClosedWeek(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	newYork, _ := time.LoadLocation("America/New_York")
	for _, tt := range []struct {
		name     string
		now      time.Time
		loc      *time.Location
		want     string
		from, to time.Time
		hours    float64
	}{
		{"Tuesday, UTC", time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), time.UTC,
			"2026-W48", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), 168},
		{"Monday's first minute closes the week", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), time.UTC,
			"2026-W48", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), 168},
		{"Sunday's last minute does not", time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC), time.UTC,
			"2026-W47", time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 168},
		// 03:00 UTC on Monday 30 November is 22:00 on Sunday in New York.
		{"New York is still on Sunday", time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), newYork,
			"2026-W47", time.Date(2026, 11, 16, 0, 0, 0, 0, newYork), time.Date(2026, 11, 23, 0, 0, 0, 0, newYork), 168},
		// The clocks went forward on Sunday 29 March 2026: that week has 167 hours.
		{"London's clocks go forward", time.Date(2026, 3, 30, 0, 30, 0, 0, london), london,
			"2026-W13", time.Date(2026, 3, 23, 0, 0, 0, 0, london), time.Date(2026, 3, 30, 0, 0, 0, 0, london), 167},
		// 31 December 2026 is a Thursday: its week is 2026's 53rd.
		{"a year's end", time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC), time.UTC,
			"2026-W53", time.Date(2026, 12, 28, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC), 168},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ClosedWeek(tt.now, tt.loc)
			if w.Name != tt.want || !w.From.Equal(tt.from) || !w.To.Equal(tt.to) || w.To.Sub(w.From).Hours() != tt.hours {
				t.Errorf("ClosedWeek = %s %v..%v (%v), want %s %v..%v (%v h)", w.Name, w.From, w.To, w.To.Sub(w.From), tt.want, tt.from, tt.to, tt.hours)
			}
			if n := w.Next(); !n.From.Equal(w.To) || n.To.Sub(n.From) < 167*time.Hour {
				t.Errorf("Next = %v..%v, want from %v", n.From, n.To, w.To)
			}
		})
	}
}

// TestSummarize: a week's summary against the plan, worked by hand: sleep
// on target and better than the week before, an MRS total above target,
// 5 of 7 daily doses, an overdue lab; nothing of the clinician's notes or
// of another patient.
func TestSummarize(t *testing.T) {
	f := newEvFixture(t, "p-1", "p-2")
	daily, err := ParseSchedule("daily")
	if err != nil {
		t.Fatal(err)
	}
	mrs := Rule{ID: "mrs-high", Kind: KindScore, Severity: SeverityWarning, Instrument: "mrs", Score: "total", Above: evF(15)}
	labs := Rule{ID: "e2-recheck", Kind: KindFollowUp, Severity: SeverityWarning, Metric: "labs.estradiol", DueAfter: evDays(14), Grace: evDays(7)}
	f.savePlan("p-1", evEff1, []Dose{{Medication: "estradiol", Route: "oral", Amount: 1, Unit: "mg", Schedule: daily}},
		evSleepRule("sleep-low", 420), mrs, labs)
	f.savePlan("p-2", evEff1, nil, evSleepRule("sleep-low", 420))
	for d := 16; d <= 29; d++ { // nights ending 16..22 Nov: 400 min; 23..29 Nov: 450
		minutes := 400.0
		if d >= 23 {
			minutes = 450
		}
		f.src.put("p-1", evSleep(evAt(d, 7), minutes))
		f.src.put("p-2", evSleep(evAt(d, 7), 100))
	}
	f.src.put("p-1", evSleep(evAt(30, 7), 60)) // after the week: not in it
	f.src.put("p-1", evCheckIn(evAt(24, 20), "mrs", 18), evCheckIn(evAt(26, 20), "mrs", 18))
	for d := 23; d <= 27; d++ {
		f.src.put("p-1", evDose(evAt(d, 8), "estradiol"))
	}
	if _, err := f.reg.AddPatientNote(f.ctx, "p-1", "private remark of the clinician"); err != nil {
		t.Fatal(err)
	}
	week := ClosedWeek(evAt(31, 0).AddDate(0, 0, 1), time.UTC) // Tuesday 1 December
	if week.Name != "2026-W48" {
		t.Fatalf("week %s", week.Name)
	}
	made := evAt(31, 0).AddDate(0, 0, 1)
	sum, err := Summarize(f.ctx, evConfig(), f.reg, f.src, "p-1", week, made)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	want := []SummaryLine{
		{"sleep", "Sleep: 7.5 h on average this week (7 days with data); the week before, 6.7 h. Your plan's target is at least 7 h: on target.", &yes},
		{"symptoms", "MRS total: 18 on average this week (2 days with data). Your plan's target is at most 15: not on target this week.", &no},
		{"doses", "Your estradiol: 5 of the 7 doses due this week were logged.", &no},
		{"due", "An estradiol result was due from Sunday 15 November and is not recorded yet: please arrange it with your clinic.", &no},
	}
	if sum.Format != SummaryFormat || sum.Week != "2026-W48" || !sum.From.Equal(evAt(23, 0)) || !sum.To.Equal(evAt(30, 0)) || !sum.Made.Equal(made) {
		t.Errorf("summary %s %s %v..%v made %v", sum.Format, sum.Week, sum.From, sum.To, sum.Made)
	}
	if len(sum.Lines) != len(want) {
		t.Fatalf("lines %+v, want %d", sum.Lines, len(want))
	}
	for i, w := range want {
		g := sum.Lines[i]
		if g.Topic != w.Topic || g.Text != w.Text || (g.OnTarget == nil) != (w.OnTarget == nil) || g.OnTarget != nil && *g.OnTarget != *w.OnTarget {
			t.Errorf("line %d = %s %q %v, want %s %q %v", i, g.Topic, g.Text, g.OnTarget, w.Topic, w.Text, w.OnTarget)
		}
	}
	body, _ := json.Marshal(sum)
	for _, leak := range []string{"private remark", "p-1", "p-2", "sleep-low", "e2-recheck"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the summary carries %q: %s", leak, body)
		}
	}

	if _, err := Summarize(f.ctx, evConfig(), f.reg, f.src, "p-1", ClosedWeek(evAt(1, 0), time.UTC), made); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the week before the first plan: %v, want ErrNotFound", err)
	}
}
