package analysis

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

func TestTQuantile975(t *testing.T) {
	// Student's t tables.
	for df, want := range map[float64]float64{1: 12.706, 2: 4.303, 4: 2.776, 10: 2.228, 30: 2.042, 1000: 1.962} {
		if got := TQuantile975(df); math.Abs(got-want) > 0.001 {
			t.Errorf("t(0.975, %v) = %.4f, want %.3f", df, got, want)
		}
	}
}

// Worked by hand: before 360, 420, 480 (mean 420, sd 60), after 540, 600,
// 660 (mean 600, sd 60): difference 180; se √(3600/3 + 3600/3) = 48.99;
// Welch's df 4; t 2.776; half 136.0: from 44.0 to 316.0 minutes.
func TestCompare(t *testing.T) {
	before := []float64{360, 420, 480}
	after := []float64{540, 600, 660}
	seven := 420.0
	sleep := ComparedMetric{Metric: "sleep.total_min", PerDay: "sum", Target: "higher", Low: &seven}
	c := Compare(sleep, DaysSummary{}, DaysSummary{}, before, after)
	if c.Outcome != OutcomeImproved || math.Abs(*c.Difference-180) > 1e-9 || math.Abs(*c.Low95-44.0) > 0.1 || math.Abs(*c.High95-316.0) > 0.1 {
		t.Errorf("got %s %v [%v, %v]", c.Outcome, *c.Difference, *c.Low95, *c.High95)
	}
	if want := "sleep: 7 h before (3 days), 10 h after (3 days): +3 h (95% CI +0.7 h to +5.3 h); the plan wants it at least 7 h: improved"; c.Sentence != want {
		t.Errorf("sentence %q\nwant     %q", c.Sentence, want)
	}
	if *c.Before.Mean != 420 || *c.After.SD != 60 || c.After.Days != 3 {
		t.Errorf("summaries %+v %+v", c.Before, c.After)
	}
	flushes := ComparedMetric{Metric: "symptoms.hot_flushes", Instrument: "mrs", PerDay: "mean", Target: "lower", High: &seven}
	if c := Compare(flushes, DaysSummary{}, DaysSummary{}, before, after); c.Outcome != OutcomeWorsened {
		t.Errorf("a rise the plan wants lower: %s", c.Outcome)
	}
	lo, hi := 400.0, 500.0
	band := ComparedMetric{Metric: "sleep.total_min", PerDay: "sum", Target: "within", Low: &lo, High: &hi}
	if c := Compare(band, DaysSummary{}, DaysSummary{}, []float64{300, 310, 320}, []float64{420, 430, 440}); c.Outcome != OutcomeImproved {
		t.Errorf("into the band: %s", c.Outcome)
	}
	if c := Compare(ComparedMetric{Metric: "vitals.weight_kg", PerDay: "mean"}, DaysSummary{}, DaysSummary{}, before, after); c.Outcome != OutcomeChanged {
		t.Errorf("no target: %s", c.Outcome)
	}
	if c := Compare(sleep, DaysSummary{}, DaysSummary{}, []float64{1, 2, 3}, []float64{1.5, 2.5, 3.5}); c.Outcome != OutcomeUnclear || *c.Low95 > 0 {
		t.Errorf("within the noise: %s [%v, %v]", c.Outcome, *c.Low95, *c.High95)
	}
	c = Compare(sleep, DaysSummary{}, DaysSummary{}, []float64{400}, after)
	if c.Outcome != OutcomeTooFewDay || c.Difference != nil || c.Sentence != "sleep: 1 day with data before and 3 after: too few to compare (2 each at least)" {
		t.Errorf("one day before: %s %q", c.Outcome, c.Sentence)
	}
}

// The metrics of the menopause template, and which way it wants each.
func TestComparedMetrics(t *testing.T) {
	p := menopausePlan(t)
	var got []string
	for _, m := range p.ComparedMetrics() {
		got = append(got, m.Metric+"/"+m.Instrument+" "+m.PerDay+" "+m.Target)
	}
	want := []string{"sleep.total_min/ sum higher", "symptoms.hot_flushes/mrs mean lower", "symptoms.total/mrs mean lower",
		"symptoms.depressive_mood/mrs mean ", "sleep.hrv_rmssd_ms/ mean higher"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// A change at noon on the day the clocks go forward leaves that day out
// of both sides; the days after start at the following midnight, BST.
func TestCompareSpans(t *testing.T) {
	london := mustLoad(t, "Europe/London")
	before, after := CompareSpans(at(t, london, "2027-03-28 12:00"), at(t, london, "2027-04-20 00:00"), london, 7)
	for _, c := range []struct {
		got  time.Time
		want string
	}{{before.From, "2027-03-21 00:00"}, {before.To, "2027-03-28 00:00"}, {after.From, "2027-03-29 00:00"}, {after.To, "2027-04-05 00:00"}} {
		if !c.got.Equal(at(t, london, c.want)) {
			t.Errorf("%v, want %s", c.got.In(london), c.want)
		}
	}
	_, after = CompareSpans(at(t, london, "2027-04-01 00:00"), at(t, london, "2027-04-03 09:00"), london, 7)
	if !after.From.Equal(at(t, london, "2027-04-01 00:00")) || !after.To.Equal(at(t, london, "2027-04-03 09:00")) {
		t.Errorf("a change at midnight, compared two days on: %v to %v", after.From, after.To)
	}
}

// Each clinic day's value, as rules roll it up: steps summed on days worn
// 2 hours or more (here), the last estradiol result of a day.
func TestDailyValues(t *testing.T) {
	day1 := time.Date(2027, 1, 10, 8, 0, 0, 0, time.UTC)
	pts := []ingest.SeriesPoint{
		{Time: day1, Fields: map[string]float64{"steps": 1000}},
		{Time: day1.Add(3 * time.Hour), Fields: map[string]float64{"steps": 2500}},
		{Time: day1.Add(24 * time.Hour), Fields: map[string]float64{"steps": 400}}, // one hour worn
	}
	if got := DailyValues(pts, ComparedMetric{Metric: "activity.steps", PerDay: "sum"}, time.UTC, 2); len(got) != 1 || got[0] != 3500 {
		t.Errorf("steps: %v", got)
	}
	labs := []ingest.SeriesPoint{
		{Time: day1, Tags: map[string]string{"analyte": "estradiol"}, Fields: map[string]float64{"value": 300}},
		{Time: day1.Add(time.Hour), Tags: map[string]string{"analyte": "estradiol"}, Fields: map[string]float64{"value": 350}},
		{Time: day1, Tags: map[string]string{"analyte": "psa"}, Fields: map[string]float64{"value": 1}},
	}
	if got := DailyValues(labs, ComparedMetric{Metric: "labs.estradiol", PerDay: "last"}, time.UTC, 10); len(got) != 1 || got[0] != 350 {
		t.Errorf("estradiol: %v", got)
	}
}

func TestDifferenceWords(t *testing.T) {
	lo, hi := -3.0, 2.6
	for _, c := range []struct {
		got, want string
	}{
		{DifferenceWords("sleep.hrv_rmssd_ms", -0.2, &lo, &hi), "0 ms (95% CI −3 ms to +3 ms)"},
		{DifferenceWords("sleep.total_min", 42, nil, nil), "+0.7 h"},
		{DifferenceWords("symptoms.total", -5, nil, nil), "−5"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
