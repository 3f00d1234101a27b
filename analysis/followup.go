package analysis

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A follow-up's state now (Verdict.FollowUp).
const (
	FollowUpUpcoming = "upcoming" // not yet in its window
	FollowUpDue      = "due"      // in its window, not yet done
	FollowUpOverdue  = "overdue"  // its window passed without it: the rule holds
	FollowUpDone     = "done"     // done for the latest due day
)

// grace is the follow-up's grace: as given, or a week either side of the
// due day (at most half of every, so that each due day has its own).
func (r *Rule) grace() Duration {
	const week = Duration(7 * 24 * time.Hour)
	switch {
	case r.Grace != 0:
		return r.Grace
	case r.Every != 0 && r.Every/2 < week:
		return r.Every / 2 / Duration(24*time.Hour) * Duration(24*time.Hour)
	}
	return week
}

// regimenChange returns the latest version in force at now that changed
// the regimen (of medication, when given: started it or changed its
// dose) from the version before; the first version starts it. Nil when
// none has.
func regimenChange(versions []*Plan, medication string, now time.Time) *Plan {
	var last *Plan
	for i, v := range versions {
		if v.Effective.After(now) {
			break
		}
		var changed bool
		switch {
		case medication == "":
			changed = i == 0 || !slices.Equal(v.Regimen, versions[i-1].Regimen)
		default:
			d, ok := v.dose(medication)
			var prev Dose
			var had bool
			if i > 0 {
				prev, had = versions[i-1].dose(medication)
			}
			changed = ok && (!had || d != prev)
		}
		if changed {
			last = v
		}
	}
	return last
}

// judgeFollowUp keeps the follow-up of the latest regimen change, in the
// clinic's days: it is due on the change's day plus due_after (or every),
// then every `every` days; each due day is met by the newest sample of
// the metric (or a done procedure) on or after grace days before it, late
// ones included; it is overdue once grace days after a due day have
// passed unmet, and then the rule holds.
func judgeFollowUp(r *Rule, s *series, versions []*Plan, procs []Procedure, e env) verdict {
	change := regimenChange(versions, r.Medication, e.now)
	if change == nil {
		what := "no regimen change has taken effect yet"
		if r.Medication != "" {
			what = "no change of " + r.Medication + " has taken effect yet"
		}
		return verdict{reason: what}
	}
	g, every := day(r.grace().Days()), day(r.Every.Days())
	first := e.clk.dayOf(change.Effective) + day(r.DueAfter.Days())
	if r.DueAfter == 0 {
		first += every
	}
	var met day = -1 << 30 // the day of the newest sample or done procedure
	switch {
	case r.Procedure != "":
		for _, p := range procs {
			if p.Type == r.Procedure && p.Done && !p.At.After(e.now) {
				met = max(met, e.clk.dayOf(p.At))
			}
		}
	case s != nil && s.newest != 0:
		met = e.clk.dayOf(time.Unix(s.newest, 0))
	}
	// closed is the latest due day whose window has passed; open the one
	// after it (none for a one-off follow-up that has closed).
	closed, open, hasClosed, hasOpen := day(0), first, false, true
	if first+g < e.today {
		hasClosed, closed, hasOpen = true, first, every > 0
		if every > 0 {
			closed += (e.today - 1 - g - first) / every * every
		}
		open = closed + every
	}
	v := verdict{judged: true, bound: float64(g), side: "above"}
	why := r.followUpReason(change, e.clk)
	what := r.followUpWhat()
	date := func(d day) string { return e.clk.start(d).Format("2 Jan 2006") }
	switch {
	case hasClosed && met < closed-g:
		v.holds, v.due, v.state = true, closed, FollowUpOverdue
		v.value = float64(e.today - closed)
		v.detail = fmt.Sprintf("%s was due on %s (%s) and none has come since %s: %s overdue",
			what, date(closed), why, date(closed-g), dayCount(int(e.today-closed)))
	case hasOpen && met >= open-g:
		v.due, v.state, v.value = open, FollowUpDone, float64(e.today-open)
		v.detail = fmt.Sprintf("%s, due on %s (%s), came on %s", what, date(open), why, date(met))
	case hasOpen:
		v.due, v.value = open, float64(e.today-open)
		v.state = FollowUpUpcoming
		if e.today >= open-g {
			v.state = FollowUpDue
		}
		v.detail = fmt.Sprintf("%s is due on %s (%s), from %s to %s", what, date(open), why, date(open-g), date(open+g))
	default: // a one-off, met
		v.due, v.state, v.value = closed, FollowUpDone, float64(e.today-closed)
		v.detail = fmt.Sprintf("%s, due on %s (%s), came on %s", what, date(closed), why, date(met))
	}
	return v
}

// followUpWhat says what a follow-up waits for: "an estradiol result", "a
// symptom check-in", "a review visit".
func (r *Rule) followUpWhat() string {
	if r.Procedure != "" {
		w := procedureWords(r.Procedure)
		return article(w) + " " + w
	}
	m, _, _ := strings.Cut(r.Metric, ".")
	switch m {
	case "labs":
		l := metricLabel(r.Metric, "")
		if l == "labs" {
			return "a laboratory result"
		}
		return article(l) + " " + l + " result"
	case "symptoms":
		return "a symptom check-in"
	}
	return metricLabel(r.Metric, "") + " data"
}

// followUpSpan says when a follow-up is due after a change: "6 weeks",
// "every 2 weeks", or "6 weeks" then ", then every 12 weeks".
func (r *Rule) followUpSpan() (lead, then string) {
	switch {
	case r.DueAfter == 0:
		return "every " + spanWords(r.Every), ""
	case r.Every == 0:
		return spanWords(r.DueAfter), ""
	}
	return spanWords(r.DueAfter), ", then every " + spanWords(r.Every)
}

// followUpReason says which change a due day follows: "6 weeks after the
// regimen change of 4 Dec 2026, plan v3".
func (r *Rule) followUpReason(change *Plan, clk clock) string {
	which := "regimen change"
	if r.Medication != "" {
		which = r.Medication + " change"
	}
	lead, then := r.followUpSpan()
	return fmt.Sprintf("%s after the %s of %s, plan v%d%s", lead, which, change.Effective.In(clk.loc).Format("2 Jan 2006"), change.Version, then)
}

// dayCount writes n days: "1 day", "3 days".
func dayCount(n int) string {
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

// spanWords writes whole weeks as weeks, else days: "6 weeks", "10 days".
func spanWords(d Duration) string {
	n := d.Days()
	switch {
	case n == 7:
		return "1 week"
	case n > 0 && n%7 == 0:
		return fmt.Sprintf("%d weeks", n/7)
	}
	return dayCount(n)
}
