package analysis

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// Procedure is one of a patient's procedures as timing rules read it:
// planned or done (a cancelled one is not one).
type Procedure struct {
	ID   int64
	Type string // a catalogue id: chemical_peel
	Done bool   // done; else planned
	At   time.Time
}

// event is a time a timing rule measures from, and what it is in words.
type event struct {
	at   time.Time
	what string
}

// conflict is a procedure that comes too close to an event.
type conflict struct {
	proc Procedure
	ev   event
	gap  int // whole days from the event to the procedure (not_within: either way)
}

// timingSpan is the rule's span: not_within or at_least.
func (r *Rule) timingSpan() Duration {
	if r.Of != nil {
		return r.NotWithin
	}
	return r.AtLeast
}

// judgeTiming finds the procedures of the rule's kind that come too close
// to its events, counted in the clinic's calendar days: not_within N
// holds for a procedure fewer than N days before or after an event,
// at_least N for one fewer than N days after an event (the same day
// counts as 0 days). A done procedure is judged for N days after it; a
// planned one for as long as it is planned. A done one holds the rule; a
// planned one only warns (the verdict's forecast), so that the clinician
// planning it is told before it is done.
func judgeTiming(r *Rule, versions []*Plan, procs []Procedure, e env, only int64) verdict {
	n := r.timingSpan().Days()
	var done, planned *conflict
	for _, p := range procs {
		// A done one is judged from when it was done (a preview judges
		// past days) for n days.
		if p.Type != r.Procedure || only != 0 && p.ID != only || p.Done && (p.At.After(e.now) || int(e.today-e.clk.dayOf(p.At)) >= n) {
			continue
		}
		c, ok := firstConflict(r, p, versions, procs, e.clk, n)
		if !ok {
			continue
		}
		worst := &planned
		if p.Done {
			worst = &done
		}
		if *worst == nil || c.gap < (*worst).gap {
			*worst = &c
		}
	}
	v := verdict{judged: true, bound: float64(n), side: "below"}
	switch {
	case done != nil:
		v.holds, v.value, v.detail = true, float64(done.gap), done.words(r, e.clk)
	case planned != nil:
		v.forecast, v.value, v.detail = true, float64(planned.gap), planned.words(r, e.clk)
	}
	return v
}

// firstConflict returns the event nearest to p (the latest one before it
// for at_least) that is fewer than n days away.
func firstConflict(r *Rule, p Procedure, versions []*Plan, procs []Procedure, clk clock, n int) (conflict, bool) {
	pd := clk.dayOf(p.At)
	ev, from, to := r.Of, clk.start(pd-day(n)+1), clk.start(pd+day(n))
	if r.After != nil {
		ev, to = r.After, clk.start(pd+1)
	}
	var best conflict
	found := false
	for _, e := range eventsOf(ev, versions, procs, p.ID, clk.loc, from, to) {
		gap := int(pd - clk.dayOf(e.at))
		if gap < 0 {
			gap = -gap
		}
		if gap < n && (!found || gap < best.gap) {
			best, found = conflict{proc: p, ev: e, gap: gap}, true
		}
	}
	return best, found
}

// eventsOf returns ev's events in [from, to): a medication's doses due
// by the regimen of each version (or the versions that start or change
// it), or the planned and done procedures of a kind but self.
func eventsOf(ev *Event, versions []*Plan, procs []Procedure, self int64, loc *time.Location, from, to time.Time) []event {
	var out []event
	if ev.Procedure != "" {
		for _, p := range procs {
			if p.Type != ev.Procedure || p.ID == self || p.At.Before(from) || !p.At.Before(to) {
				continue
			}
			state := "planned for"
			if p.Done {
				state = "done on"
			}
			out = append(out, event{p.At, fmt.Sprintf("the %s %s %s", procedureWords(p.Type), state, p.At.In(loc).Format("2 Jan 2006"))})
		}
		return out
	}
	var prev *Dose
	for i, v := range versions {
		d, ok := v.dose(ev.Medication)
		started, changed := ok && prev == nil, ok && prev != nil && d != *prev
		prev = nil
		if ok {
			prev = &d
		}
		if !ok || v.Effective.Before(from) && (ev.Started || ev.Changed) || !v.Effective.Before(to) {
			continue
		}
		switch {
		case ev.Started || ev.Changed:
			if started || changed && ev.Changed {
				what := map[bool]string{true: "start", false: "change"}[started]
				out = append(out, event{v.Effective, fmt.Sprintf("the %s of %s on %s (plan v%d)", what, ev.Medication,
					v.Effective.In(loc).Format("2 Jan 2006"), v.Version)})
			}
		default:
			end := to
			if i+1 < len(versions) && versions[i+1].Effective.Before(end) {
				end = versions[i+1].Effective
			}
			for _, t := range d.Schedule.Due(v.Effective.In(loc), from, end) {
				out = append(out, event{t, fmt.Sprintf("the %s dose due %s", ev.Medication, t.In(loc).Format("2 Jan 2006"))})
			}
		}
	}
	return out
}

// procedureWords writes a catalogue id as words: chemical_peel is
// "chemical peel".
func procedureWords(id string) string { return strings.ReplaceAll(id, "_", " ") }

// words says the conflict: "the chemical peel planned for 12 Mar 2027 is
// 9 days from the estradiol dose due 3 Mar 2027".
func (c conflict) words(r *Rule, clk clock) string {
	state := "planned for"
	if c.proc.Done {
		state = "done on"
	}
	days := fmt.Sprintf("%d days", c.gap)
	switch c.gap {
	case 0:
		days = "the same day as"
	case 1:
		days = "1 day"
	}
	rel := map[bool]string{true: " after", false: " from"}[r.After != nil]
	if c.gap == 0 {
		rel = ""
	}
	return fmt.Sprintf("the %s %s %s is %s%s %s", procedureWords(r.Procedure), state,
		c.proc.At.In(clk.loc).Format("2 Jan 2006"), days, rel, c.ev.what)
}

// words says a timing rule's event: "an estradiol dose", "the start of
// estradiol", "pellet insertion" (a catalogue's name).
func (ev *Event) words() string {
	switch {
	case ev.Procedure != "":
		return procedureWords(ev.Procedure)
	case ev.Started:
		return "the start of " + ev.Medication
	case ev.Changed:
		return "a start or dose change of " + ev.Medication
	}
	return article(ev.Medication) + " " + ev.Medication + " dose"
}

// TimingConflicts reads the patient's plan versions and procedures and
// returns what the timing rules of the version in force at now say of
// the procedure of that id (all of them: 0), when it is planned or was
// done lately, as the answer to planning or recording it tells the
// clinician: a sentence for each rule it breaks; nil for none.
func TimingConflicts(ctx context.Context, reg *registry.Registry, id string, procedure int64, loc *time.Location, now time.Time) ([]string, error) {
	stored, err := reg.PlanVersions(ctx, id)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	versions, err := versionsOf(id, stored)
	if err != nil {
		return nil, err
	}
	procs, err := ProceduresOf(ctx, reg, id)
	if err != nil {
		return nil, err
	}
	return timingConflicts(versions, procs, procedure, loc, now), nil
}

func timingConflicts(versions []*Plan, procs []Procedure, only int64, loc *time.Location, now time.Time) []string {
	plan := (&patient{versions: versions}).versionAt(now)
	if plan == nil {
		return nil
	}
	en := newEnv(clock{loc}, now, 1, plan, versions[0].Effective)
	var out []string
	for i := range plan.Rules {
		r := &plan.Rules[i]
		if r.Kind != KindTiming {
			continue
		}
		if v := judgeTiming(r, versions, procs, en, only); v.holds || v.forecast {
			out = append(out, describe(r, v, plan.Version, plan.Effective, loc, ""))
		}
	}
	return out
}

// ProceduresOf reads the patient's planned and done procedures from the
// registry, as timing rules judge them.
func ProceduresOf(ctx context.Context, reg *registry.Registry, id string) ([]Procedure, error) {
	stored, err := reg.Procedures(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []Procedure
	for _, p := range stored {
		if p.Status != registry.ProcedureCancelled {
			out = append(out, Procedure{ID: p.ID, Type: p.Type, Done: p.Status == registry.ProcedureDone, At: p.At})
		}
	}
	return out, nil
}
