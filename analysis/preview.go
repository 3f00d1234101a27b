package analysis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Preview days: how far back a draft plan is tried by default, and at most.
const (
	DefaultPreviewDays = 30
	MaxPreviewDays     = 90
)

// PlanPreview is what a draft plan would have said of a patient's last
// days, had it been in force over them, and what it says now as it would
// be saved.
type PlanPreview struct {
	Days    int           `json:"days"`
	From    time.Time     `json:"from"` // the first time judged
	To      time.Time     `json:"to"`   // now
	Raised  int           `json:"raised"`
	Summary string        `json:"summary"`
	Rules   []RulePreview `json:"rules"`
}

// RulePreview is one rule of a draft, tried.
type RulePreview struct {
	Rule     string `json:"rule"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Words    string `json:"words"`
	// Now is its verdict now, as the plan would be saved (a rule with
	// since: change cannot judge until its version has enough days).
	Now Verdict `json:"now"`
	// JudgedFrom is, for a rule that cannot judge now only because its
	// version is too new, when it will have enough days, given data on
	// each of them.
	JudgedFrom *time.Time `json:"judged_from,omitempty"`
	// Transitions are what it would have done, judged day by day.
	Transitions []PreviewTransition `json:"transitions"`
	// Unjudged are the runs of days it could not judge, and why.
	Unjudged []Unjudged `json:"unjudged"`
}

// PreviewTransition is one change a draft's rule would have made.
type PreviewTransition struct {
	At       time.Time `json:"at"`
	Change   string    `json:"change"`
	Holds    bool      `json:"holds"`
	Sentence string    `json:"sentence"`
}

// Unjudged is a run of days a rule could not judge for one reason: the
// days from From to To (the start of each), Days of them.
type Unjudged struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Days   int       `json:"days"`
	Reason string    `json:"reason"`
}

// Preview tries a valid draft plan (see Plan.Validate) over the patient's
// last days (1 to MaxPreviewDays) of stored data, read from src, as if it
// had been in force since the patient was first monitored (their first
// plan version or first sample): it judges the draft once a day, at now's
// time of day, from days ago to now. It also judges it now as it would be
// saved: after the stored versions that take effect before it.
func Preview(ctx context.Context, cfg Config, reg *registry.Registry, src Source, draft Plan, days int, now time.Time) (*PlanPreview, error) {
	if days < 1 || days > MaxPreviewDays {
		return nil, fmt.Errorf("preview: days must be 1 to %d", MaxPreviewDays)
	}
	stored, err := reg.PlanVersions(ctx, draft.Patient)
	if err != nil {
		return nil, err
	}
	versions, err := versionsOf(draft.Patient, stored)
	if err != nil {
		return nil, err
	}
	clk := clock{cfg.Location}
	saved := draft
	saved.Version = 1
	var kept []*Plan
	for _, v := range versions {
		if v.Effective.Before(draft.Effective) {
			kept = append(kept, v)
			saved.Version = v.Version + 1
		}
	}
	asSaved := buildPatient(draft.Patient, append(kept, &saved))
	// The draft tried as version 0, in force since the patient was first
	// monitored: their first plan version or first sample read, whichever
	// came first (moved back by whole days, so that its schedules keep
	// their clock time).
	start := now.Add(-time.Duration(days) * 24 * time.Hour)
	tried := draft
	tried.Version = 0
	hyp := buildPatient(draft.Patient, []*Plan{&tried})
	if hyp.timed() || asSaved.timed() {
		if asSaved.procedures, err = ProceduresOf(ctx, reg, draft.Patient); err != nil {
			return nil, err
		}
		hyp.procedures = asSaved.procedures
	}
	samples, err := previewSamples(ctx, src, clk, draft.Patient, days, now, hyp, asSaved)
	if err != nil {
		return nil, err
	}
	first := draft.Effective
	if len(versions) > 0 && versions[0].Effective.Before(first) {
		first = versions[0].Effective
	}
	if len(samples) > 0 && samples[0].Time.Before(first) {
		first = samples[0].Time
	}
	if back := draft.Effective.Sub(first); back > 0 {
		tried.Effective = draft.Effective.AddDate(0, 0, -int((back+24*time.Hour-1)/(24*time.Hour)))
	}
	out := &PlanPreview{Days: days, From: start, To: now}
	byRule := map[string]*RulePreview{}
	for i := range draft.Rules {
		r := &draft.Rules[i]
		out.Rules = append(out.Rules, RulePreview{Rule: r.ID, Kind: r.Kind, Severity: r.Severity, Words: r.Words(),
			Transitions: []PreviewTransition{}, Unjudged: []Unjudged{}})
	}
	for i := range out.Rules {
		byRule[out.Rules[i].Rule] = &out.Rules[i]
	}

	// Day by day, as if in force.
	next := 0
	for k := days; k >= 0; k-- {
		at := now.Add(-time.Duration(k) * 24 * time.Hour)
		for ; next < len(samples) && !samples[next].Time.After(at); next++ {
			hyp.add(clk, samples[next])
		}
		if hyp.versionAt(at) == nil {
			for i := range out.Rules {
				out.Rules[i].unjudged(clk, clk.dayOf(at), "before the patient's first plan or data")
			}
			continue
		}
		ts, changed, vs := judgeEvery(hyp, clk, at, cfg.MinWearHours, true, false)
		hyp.apply(changed)
		for _, t := range ts {
			rp := byRule[t.Rule]
			rp.Transitions = append(rp.Transitions, PreviewTransition{At: t.At, Change: t.Change, Holds: t.Holds, Sentence: t.Sentence})
			if t.Change == ChangeFired || t.Change == ChangeForecast {
				out.Raised++
			}
		}
		for _, v := range vs {
			if !v.Judged {
				byRule[v.Rule].unjudged(clk, clk.dayOf(at), v.Reason)
			}
		}
	}

	// Now, as saved.
	for _, s := range samples {
		asSaved.add(clk, s)
	}
	judged := now
	if draft.Effective.After(judged) {
		judged = draft.Effective
	}
	// The saved version is in force then: one verdict a rule, in its order.
	_, _, vs := judgeEvery(asSaved, clk, judged, cfg.MinWearHours, true, false)
	for i, v := range vs {
		out.Rules[i].Now = v
		if !v.Judged {
			out.Rules[i].JudgedFrom = judgeableFrom(&saved.Rules[i], &saved, clk, judged)
		}
	}
	out.Summary = summary(out, clk)
	return out, nil
}

// Preview tries a draft plan (see the package function Preview) with the
// evaluator's setup and source, now. It is safe to call from any
// goroutine: it reads only the registry and the source.
func (e *Evaluator) Preview(ctx context.Context, draft Plan, days int) (*PlanPreview, error) {
	return Preview(ctx, e.cfg, e.reg, e.src, draft, days, e.now())
}

// previewSamples reads what the patients' rules read, from as far back as
// the first day judged needs, to now, oldest first.
func previewSamples(ctx context.Context, src Source, clk clock, id string, days int, now time.Time, ps ...*patient) ([]Sample, error) {
	back := map[string]int{}
	for _, p := range ps {
		for m, n := range p.readBack() {
			back[m] = max(back[m], n)
		}
	}
	var samples []Sample
	today := clk.dayOf(now)
	for _, m := range slices.Sorted(maps.Keys(back)) {
		from := clk.start(today - day(days) - day(back[m]))
		err := src.Values(ctx, id, []string{m}, from, now.Add(time.Nanosecond), func(v ingest.StoredValue) error {
			if s, ok := sampleOf(v); ok {
				samples = append(samples, s)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	// A silence counts from the newest sample of its stream, however old.
	for _, p := range ps {
		for _, s := range p.series {
			if !p.silenced(s.key) || slices.ContainsFunc(samples, s.key.takes) {
				continue
			}
			t, ok, err := src.Newest(ctx, id, s.key.measurement, s.key.field)
			if err != nil {
				return nil, err
			}
			if ok {
				s.newest = t.Unix()
			}
		}
	}
	return samples, nil
}

// unjudged adds day d, not judged for reason, to the runs of the rule.
func (rp *RulePreview) unjudged(clk clock, d day, reason string) {
	if n := len(rp.Unjudged); n > 0 {
		last := &rp.Unjudged[n-1]
		if last.Reason == reason && clk.dayOf(last.To) == d-1 {
			last.To, last.Days = clk.start(d), last.Days+1
			return
		}
	}
	rp.Unjudged = append(rp.Unjudged, Unjudged{From: clk.start(d), To: clk.start(d), Days: 1, Reason: reason})
}

// judgeableFrom is when a rule that judges only the days since its
// version took effect (since: change) will have enough of them, given data
// on each; nil when that is not why it cannot judge at t, or when no day
// can be named (a score rule waits for the next check-in).
func judgeableFrom(r *Rule, v *Plan, clk clock, t time.Time) *time.Time {
	if r.Since != SinceChange {
		return nil
	}
	first := clk.firstDayFrom(v.Effective)
	var at time.Time
	switch r.Kind {
	case KindThreshold, KindTrend:
		at = clk.start(first + day(r.minDays()) - 1)
	case KindBaseline:
		at = clk.start(first)
	case KindScore:
		if r.Over == 0 {
			return nil
		}
		at = clk.start(first)
	case KindAdherence:
		d, ok := v.dose(r.Medication)
		if !ok {
			return nil
		}
		at = v.Effective.Add(d.Schedule.Interval() / 2)
	default:
		return nil
	}
	if !at.After(t) {
		return nil
	}
	return &at
}

// summary says in two sentences what the preview found.
func summary(pv *PlanPreview, clk clock) string {
	type alert struct {
		at   time.Time
		what string
	}
	var alerts []alert
	for _, rp := range pv.Rules {
		for _, t := range rp.Transitions {
			switch t.Change {
			case ChangeFired:
				alerts = append(alerts, alert{t.At, rp.Rule})
			case ChangeForecast:
				alerts = append(alerts, alert{t.At, rp.Rule + " (forecast)"})
			}
		}
	}
	slices.SortStableFunc(alerts, func(a, b alert) int { return a.at.Compare(b.at) })
	raised := make([]string, len(alerts))
	for i, a := range alerts {
		raised[i] = fmt.Sprintf("%s on %s", a.what, a.at.In(clk.loc).Format("2 Jan"))
	}
	var b strings.Builder
	switch len(raised) {
	case 0:
		fmt.Fprintf(&b, "This plan would have raised no alert in the last %d days.", pv.Days)
	default:
		if len(raised) > 6 {
			raised = append(raised[:5], fmt.Sprintf("%d more", len(raised)-5))
		}
		fmt.Fprintf(&b, "This plan would have raised %d %s in the last %d days: %s.", pv.Raised,
			map[bool]string{true: "alert", false: "alerts"}[pv.Raised == 1], pv.Days, strings.Join(raised, ", "))
	}
	for _, rp := range pv.Rules {
		switch {
		case rp.Now.Judged:
		case rp.JudgedFrom != nil:
			fmt.Fprintf(&b, " %s cannot be judged until %s.", rp.Rule, rp.JudgedFrom.In(clk.loc).Format("2 Jan 15:04"))
		default:
			fmt.Fprintf(&b, " %s cannot be judged now: %s.", rp.Rule, rp.Now.Reason)
		}
	}
	return b.String()
}

// Text writes the preview for a terminal: the summary, then each rule with
// its verdict now, the changes it would have made and the days it could
// not judge, times in loc.
func (pv *PlanPreview) Text(loc *time.Location) string {
	var b strings.Builder
	day := func(t time.Time) string { return t.In(loc).Format("2 Jan") }
	fmt.Fprintf(&b, "%s\n", pv.Summary)
	for _, rp := range pv.Rules {
		now := rp.Now.Sentence
		if rp.JudgedFrom != nil {
			now += "; judged from " + rp.JudgedFrom.In(loc).Format("2 Jan 15:04")
		}
		fmt.Fprintf(&b, "\n%s (%s, %s): %s\n  now: %s\n", rp.Rule, rp.Kind, rp.Severity, rp.Words, now)
		for _, t := range rp.Transitions {
			fmt.Fprintf(&b, "  %s %-16s %s\n", t.At.In(loc).Format("2 Jan 15:04"), t.Change, t.Sentence)
		}
		for _, u := range rp.Unjudged {
			span := day(u.From)
			if u.Days > 1 {
				span += " to " + day(u.To)
			}
			fmt.Fprintf(&b, "  not judged %s (%d %s): %s\n", span, u.Days, map[bool]string{true: "day", false: "days"}[u.Days == 1], u.Reason)
		}
	}
	return b.String()
}
