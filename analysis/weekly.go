package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// SummaryFormat names a weekly summary's JSON, for apps to recognise.
const SummaryFormat = "patientpulse-summary/v1"

// Week is a week of the clinic's, Monday to Monday in its time zone.
type Week struct {
	Name string    // ISO 8601: "2026-W48"
	From time.Time // its Monday's start
	To   time.Time // the next Monday's start, when it closes
}

// ClosedWeek is the newest week that has closed by now in loc.
func ClosedWeek(now time.Time, loc *time.Location) Week {
	clk := clock{loc}
	today := clk.dayOf(now)
	monday := today - (today+3)%7 // day 0, 1 January 1970, was a Thursday
	return weekFrom(clk, monday-7)
}

// Next is the week after w.
func (w Week) Next() Week {
	clk := clock{w.From.Location()}
	return weekFrom(clk, clk.dayOf(w.From)+7)
}

func weekFrom(clk clock, monday day) Week {
	from := clk.start(monday)
	y, n := from.ISOWeek()
	return Week{Name: fmt.Sprintf("%d-W%02d", y, n), From: from, To: clk.start(monday + 7)}
}

// WeeklySummary is a patient's own summary of a week, in plain language:
// how their sleep, activity and symptom scores went against their plan's
// targets, the doses they logged, and what is due. It is what their app
// and their own page show: it holds no clinician's notes, no rule's
// clinical wording and no other patient's data.
type WeeklySummary struct {
	Format string        `json:"format"` // SummaryFormat
	Week   string        `json:"week"`   // "2026-W48"
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Made   time.Time     `json:"made"`
	Lines  []SummaryLine `json:"lines"`
}

// SummaryLine is one topic of a weekly summary.
type SummaryLine struct {
	Topic string `json:"topic"` // sleep, activity, symptoms, doses or due
	Text  string `json:"text"`
	// OnTarget says whether the week's value met the plan's target;
	// absent where the plan sets none, or there was no data.
	OnTarget *bool `json:"on_target,omitempty"`
}

// summarised are the measurements a weekly summary speaks of.
var summarised = []string{"sleep", "activity", "symptoms"}

// dueAhead is how far past the week's end a follow-up's due day is
// still announced.
const dueAhead = 14 * 24 * time.Hour

// Summarize makes the patient's summary of week from their plan in force
// at its end, the samples stored for it and the week before (read from
// src), and what their follow-ups are at its end. It returns an error
// wrapping registry.ErrNotFound when the patient had no plan in force;
// other errors may name the patient.
func Summarize(ctx context.Context, cfg Config, reg *registry.Registry, src Source, id string, week Week, now time.Time) (*WeeklySummary, error) {
	e := &Evaluator{cfg: cfg, clk: clock{cfg.Location}, reg: reg, src: src, patients: map[string]*patient{},
		now: func() time.Time { return week.To }}
	if err := e.load(ctx, id); err != nil {
		return nil, err
	}
	p := e.patients[id]
	var plan *Plan
	if p != nil {
		plan = p.versionAt(week.To.Add(-time.Nanosecond))
	}
	if plan == nil {
		return nil, fmt.Errorf("summary of %s: %w: no plan was in force", week.Name, registry.ErrNotFound)
	}
	out := &WeeklySummary{Format: SummaryFormat, Week: week.Name, From: week.From, To: week.To, Made: now.UTC(), Lines: []SummaryLine{}}
	lastWeek := week.From.AddDate(0, 0, -7)
	read := map[string][]ingest.SeriesPoint{}
	for _, meas := range summarised {
		err := src.Values(ctx, id, []string{meas}, lastWeek, week.To, func(v ingest.StoredValue) error {
			read[meas] = append(read[meas], ingest.SeriesPoint{Time: v.Time, Tags: v.Tags, Fields: map[string]float64{v.Field: v.Value}})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, m := range plan.ComparedMetrics() {
		meas, _, _ := strings.Cut(m.Metric, ".")
		if !slices.Contains(summarised, meas) {
			continue
		}
		in := func(from, to time.Time) []float64 {
			var pts []ingest.SeriesPoint
			for _, pt := range read[meas] {
				if !pt.Time.Before(from) && pt.Time.Before(to) {
					pts = append(pts, pt)
				}
			}
			return DailyValues(pts, m, cfg.Location, cfg.MinWearHours)
		}
		out.Lines = append(out.Lines, metricLine(meas, m, in(week.From, week.To), in(lastWeek, week.From)))
	}
	doses, err := dosesLine(ctx, src, id, p.versions, week, e.clk)
	if err != nil {
		return nil, err
	}
	out.Lines = append(out.Lines, doses...)
	_, _, verdicts := judgeEvery(p, e.clk, week.To, cfg.MinWearHours, true, false)
	for _, v := range verdicts {
		if l, ok := dueLine(v, week, e.clk); ok {
			out.Lines = append(out.Lines, l)
		}
	}
	return out, nil
}

// metricLine says a metric's week: its mean daily value, last week's,
// and the plan's target.
func metricLine(topic string, m ComparedMetric, week, before []float64) SummaryLine {
	label := metricLabel(m.Metric, m.Instrument)
	label = strings.ToUpper(label[:1]) + label[1:]
	f := func(v float64) string { return formatValue(m.Metric, v) }
	l := SummaryLine{Topic: topic}
	if len(week) == 0 {
		l.Text = label + ": nothing was recorded this week."
		return l
	}
	mean, _ := meanSD(week)
	l.Text = fmt.Sprintf("%s: %s on average this week (%s with data)", label, f(mean), dayCount(len(week)))
	if len(before) > 0 {
		prev, _ := meanSD(before)
		l.Text += fmt.Sprintf("; the week before, %s", f(prev))
	}
	l.Text += "."
	if m.Low == nil && m.High == nil {
		return l
	}
	met := (m.Low == nil || mean >= *m.Low) && (m.High == nil || mean <= *m.High)
	l.OnTarget = &met
	l.Text += " Your plan's target is " + targetWords(m, f) + ": "
	if met {
		l.Text += "on target."
	} else {
		l.Text += "not on target this week."
	}
	return l
}

// dosesLine says, for each medication the plan schedules in the week, how
// many of its doses were logged, each within half an interval of its
// time.
func dosesLine(ctx context.Context, src Source, id string, versions []*Plan, week Week, clk clock) ([]SummaryLine, error) {
	meds := map[string][]scheduled{}
	var order []string
	var widest time.Duration
	for i, v := range versions {
		end := week.To
		if i+1 < len(versions) && versions[i+1].Effective.Before(end) {
			end = versions[i+1].Effective
		}
		from := week.From
		if v.Effective.After(from) {
			from = v.Effective
		}
		if !end.After(from) {
			continue
		}
		for _, d := range v.Regimen {
			if _, ok := meds[d.Medication]; !ok {
				order = append(order, d.Medication)
				meds[d.Medication] = nil
			}
			half := d.Schedule.Interval() / 2
			widest = max(widest, half)
			for _, t := range d.Schedule.Due(v.Effective.In(clk.loc), from, end) {
				meds[d.Medication] = append(meds[d.Medication], scheduled{t, half})
			}
		}
	}
	logged := map[string][]int64{}
	err := src.Values(ctx, id, []string{"dose"}, week.From.Add(-widest), week.To.Add(widest), func(v ingest.StoredValue) error {
		if med := v.Tags["medication"]; meds[med] != nil && !slices.Contains(logged[med], v.Time.Unix()) {
			logged[med] = append(logged[med], v.Time.Unix())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []SummaryLine
	for _, name := range order {
		due := meds[name]
		if len(due) == 0 {
			continue
		}
		times := logged[name]
		slices.Sort(times)
		taken := countTaken(due, times)
		all := taken == len(due)
		out = append(out, SummaryLine{Topic: "doses", OnTarget: &all,
			Text: fmt.Sprintf("Your %s: %d of the %d doses due this week were logged.", name, taken, len(due))})
	}
	return out, nil
}

// dueLine says a follow-up that is overdue, due, or due within dueAhead
// of the week's end.
func dueLine(v Verdict, week Week, clk clock) (SummaryLine, bool) {
	if v.Kind != KindFollowUp || v.Due.IsZero() {
		return SummaryLine{}, false
	}
	what := strings.ToUpper(v.Awaits[:1]) + v.Awaits[1:]
	date := v.Due.In(clk.loc).Format("Monday 2 January")
	l := SummaryLine{Topic: "due"}
	switch {
	case v.FollowUp == FollowUpOverdue:
		l.Text = fmt.Sprintf("%s was due from %s and is not recorded yet: please arrange it with your clinic.", what, date)
		l.OnTarget = new(bool)
	case v.FollowUp == FollowUpDue:
		l.Text = fmt.Sprintf("%s is due now (from %s).", what, date)
	case v.FollowUp == FollowUpUpcoming && v.Due.Before(week.To.Add(dueAhead)):
		l.Text = fmt.Sprintf("%s will be due from %s.", what, date)
	default:
		return SummaryLine{}, false
	}
	return l, true
}

// scheduled is a dose due at a time, met by one logged within half of it.
type scheduled struct {
	at   time.Time
	half time.Duration
}

// countTaken counts the scheduled doses that a logged dose (sorted Unix
// seconds) met, each logged dose meeting one at most.
func countTaken(due []scheduled, logged []int64) int {
	used := make([]bool, len(logged))
	taken := 0
	for _, sd := range due {
		lo, hi := sd.at.Add(-sd.half).Unix(), sd.at.Add(sd.half).Unix()
		i, _ := slices.BinarySearch(logged, lo)
		for ; i < len(logged) && logged[i] < hi; i++ {
			if !used[i] {
				used[i] = true
				taken++
				break
			}
		}
	}
	return taken
}
