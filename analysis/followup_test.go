package analysis

import (
	"testing"
	"time"
)

// Follow-ups after the estradiol change of 31 January (a month end), in
// the clinic's days; every due day and window below is worked out by
// hand.
func TestJudgeFollowUp(t *testing.T) {
	london, newYork := mustLoad(t, "Europe/London"), mustLoad(t, "America/New_York")
	versions := func(loc *time.Location) []*Plan {
		prog := Dose{Medication: "progesterone", Route: "oral", Amount: 100, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "days"}}
		e2 := Dose{Medication: "estradiol", Route: "transdermal", Amount: 0.05, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "weeks", Twice: true}}
		up := e2
		up.Amount = 0.075
		return []*Plan{
			{Version: 1, Effective: at(t, loc, "2027-01-01 00:00"), Regimen: []Dose{prog, e2}},
			{Version: 2, Effective: at(t, loc, "2027-01-31 09:00"), Regimen: []Dose{prog, up}},
			{Version: 3, Effective: at(t, loc, "2027-03-20 10:00"), Regimen: []Dose{prog, up}}, // rules only: no regimen change
		}
	}
	week := func(n int) Duration { return Duration(time.Duration(n) * 7 * 24 * time.Hour) }
	days := func(n int) Duration { return Duration(time.Duration(n) * 24 * time.Hour) }
	// 31 Jan + 6 weeks is 14 March; give or take 14 days, 28 Feb to 28 Mar.
	labs := Rule{ID: "r", Kind: KindFollowUp, Severity: SeverityWarning, Metric: "labs.estradiol", DueAfter: week(6), Grace: days(14)}
	// Every 2 weeks from 31 Jan: 14 Feb (7 to 21 Feb), 28 Feb (21 Feb to 7 Mar), ...
	checkIns := Rule{ID: "r", Kind: KindFollowUp, Severity: SeverityInfo, Metric: "symptoms", Every: week(2)}
	// 12 weeks after estradiol's change: 25 April (11 April to 9 May).
	visit := Rule{ID: "r", Kind: KindFollowUp, Severity: SeverityWarning, Procedure: "review_visit", Medication: "estradiol", DueAfter: week(12), Grace: days(14)}
	// Progesterone has not changed since it started on 1 January: 29 January.
	progLabs := Rule{ID: "r", Kind: KindFollowUp, Severity: SeverityWarning, Metric: "labs", Medication: "progesterone", DueAfter: week(4)}
	// 14 March, then every 12 weeks: 6 June, 29 August.
	repeat := Rule{ID: "r", Kind: KindFollowUp, Severity: SeverityWarning, Metric: "labs.estradiol", DueAfter: week(6), Every: week(12), Grace: days(14)}
	for _, c := range []struct {
		name   string
		loc    *time.Location
		rule   Rule
		newest string // the newest sample, local; "" for none
		procs  []Procedure
		now    string
		state  string
		due    string // the due day, 2006-01-02
		holds  bool
		detail string
	}{
		{name: "a result from before the change does not count", loc: london, rule: labs, newest: "2027-01-20 09:00", now: "2027-02-20 12:00",
			state: FollowUpUpcoming, due: "2027-03-14",
			detail: "an estradiol result is due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2), from 28 Feb 2027 to 28 Mar 2027"},
		{name: "its window opens on 28 Feb", loc: london, rule: labs, now: "2027-02-28 00:10", state: FollowUpDue, due: "2027-03-14",
			detail: "an estradiol result is due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2), from 28 Feb 2027 to 28 Mar 2027"},
		// 23:30 on 28 March is BST: 22:30 UTC, still the 28th.
		{name: "still due late on the last day of the window, after the clocks went forward", loc: london, rule: labs, now: "2027-03-28 23:30",
			state: FollowUpDue, due: "2027-03-14",
			detail: "an estradiol result is due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2), from 28 Feb 2027 to 28 Mar 2027"},
		// 00:30 BST on the 29th is 23:30 UTC on the 28th: the clinic's day is the 29th.
		{name: "overdue on the clinic's 29 March", loc: london, rule: labs, newest: "2027-02-27 18:00", now: "2027-03-29 00:30",
			state: FollowUpOverdue, due: "2027-03-14", holds: true,
			detail: "an estradiol result was due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2) and none has come since 28 Feb 2027: 15 days overdue"},
		{name: "met on the first day of its window", loc: london, rule: labs, newest: "2027-02-28 08:00", now: "2027-03-29 12:00",
			state: FollowUpDone, due: "2027-03-14",
			detail: "an estradiol result, due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2), came on 28 Feb 2027"},
		{name: "a late result clears it", loc: london, rule: labs, newest: "2027-04-02 10:00", now: "2027-04-03 12:00",
			state: FollowUpDone, due: "2027-03-14",
			detail: "an estradiol result, due on 14 Mar 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2), came on 2 Apr 2027"},
		{name: "a check-in missed for 14 Feb", loc: london, rule: checkIns, newest: "2027-02-06 20:00", now: "2027-02-22 09:00",
			state: FollowUpOverdue, due: "2027-02-14", holds: true,
			detail: "a symptom check-in was due on 14 Feb 2027 (every 2 weeks after the regimen change of 31 Jan 2027, plan v2) and none has come since 7 Feb 2027: 8 days overdue"},
		{name: "met for 14 Feb, the next one due", loc: london, rule: checkIns, newest: "2027-02-07 20:00", now: "2027-02-22 09:00",
			state: FollowUpDue, due: "2027-02-28",
			detail: "a symptom check-in is due on 28 Feb 2027 (every 2 weeks after the regimen change of 31 Jan 2027, plan v2), from 21 Feb 2027 to 7 Mar 2027"},
		// 22:00 on 6 Feb in New York is 03:00 UTC on the 7th.
		{name: "the clinic's day, not UTC's", loc: newYork, rule: checkIns, newest: "2027-02-06 22:00", now: "2027-02-22 09:00",
			state: FollowUpOverdue, due: "2027-02-14", holds: true,
			detail: "a symptom check-in was due on 14 Feb 2027 (every 2 weeks after the regimen change of 31 Jan 2027, plan v2) and none has come since 7 Feb 2027: 8 days overdue"},
		{name: "a visit done", loc: london, rule: visit, procs: []Procedure{{ID: 1, Type: "review_visit", Done: true, At: at(t, london, "2027-04-12 11:00")}},
			now: "2027-05-10 12:00", state: FollowUpDone, due: "2027-04-25",
			detail: "a review visit, due on 25 Apr 2027 (12 weeks after the estradiol change of 31 Jan 2027, plan v2), came on 12 Apr 2027"},
		{name: "a visit only planned", loc: london, rule: visit, procs: []Procedure{{ID: 1, Type: "review_visit", At: at(t, london, "2027-04-20 11:00")}},
			now: "2027-05-10 12:00", state: FollowUpOverdue, due: "2027-04-25", holds: true,
			detail: "a review visit was due on 25 Apr 2027 (12 weeks after the estradiol change of 31 Jan 2027, plan v2) and none has come since 11 Apr 2027: 15 days overdue"},
		{name: "from a medication's start", loc: london, rule: progLabs, now: "2027-01-10 12:00", state: FollowUpUpcoming, due: "2027-01-29",
			detail: "a laboratory result is due on 29 Jan 2027 (4 weeks after the progesterone change of 1 Jan 2027, plan v1), from 22 Jan 2027 to 5 Feb 2027"},
		{name: "then every 12 weeks", loc: london, rule: repeat, newest: "2027-03-10 10:00", now: "2027-06-25 12:00",
			state: FollowUpOverdue, due: "2027-06-06", holds: true,
			detail: "an estradiol result was due on 6 Jun 2027 (6 weeks after the regimen change of 31 Jan 2027, plan v2, then every 12 weeks) and none has come since 23 May 2027: 19 days overdue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := versions(c.loc)
			now := at(t, c.loc, c.now)
			var s *series
			if c.rule.Metric != "" {
				k, _, _, _ := c.rule.seriesKey()
				s = newSeries(k, 1)
				if c.newest != "" {
					s.newest = at(t, c.loc, c.newest).Unix()
				}
			}
			plan := (&patient{versions: vs}).versionAt(now)
			en := newEnv(clock{c.loc}, now, 1, plan, vs[0].Effective)
			v := judgeFollowUp(&c.rule, s, vs, c.procs, en)
			due := clock{c.loc}.start(v.due).Format("2006-01-02")
			if !v.judged || v.state != c.state || due != c.due || v.holds != c.holds || v.detail != c.detail {
				t.Errorf("got %s due %s holds %v %q (%s)\nwant %s due %s holds %v %q", v.state, due, v.holds, v.detail, v.reason,
					c.state, c.due, c.holds, c.detail)
			}
		})
	}
	future := versions(london)
	v := judgeFollowUp(&labs, nil, future, nil, newEnv(clock{london}, at(t, london, "2026-12-01 00:00"), 1, future[0], future[0].Effective))
	if v.judged || v.reason != "no regimen change has taken effect yet" {
		t.Errorf("before the first version: %+v", v)
	}
}

func TestValidateFollowUp(t *testing.T) {
	for _, c := range []struct {
		rule string
		want []string
	}{
		{`{id: a, kind: followup, metric: labs.estradiol, due_after: 6w, grace: 14d, severity: warning}`, nil},
		{`{id: a, kind: followup, metric: symptoms, every: 14d, severity: info}`, nil},
		{`{id: a, kind: followup, procedure: review_visit, medication: estradiol, due_after: 12w, every: 26w, severity: warning}`, nil},
		{`{id: a, kind: followup, severity: warning}`, []string{
			"rules[0] (a): give a metric (labs.estradiol: a result; symptoms: a check-in) or a procedure of the catalogue (a review visit), not both",
			"rules[0] (a): give due_after (such as 6w: once after each regimen change), every (such as 14d: over and over), or both"}},
		{`{id: a, kind: followup, metric: labs.nothing, medication: testosterone, every: 36h, grace: 1d, instrument: mrs, severity: warning}`, []string{
			"rules[0] (a).instrument: not used by a followup rule",
			"rules[0] (a).instrument: only for symptoms metrics",
			"rules[0] (a).medication: testosterone is not in the regimen",
			"rules[0] (a).every: 36h: want whole days, 1d to 365d"}},
		{`{id: a, kind: followup, metric: symptoms, every: 14d, grace: 8d, severity: info}`, []string{
			"rules[0] (a).grace: 8d: at most half of every (2w), so that each due day has its own window"}},
	} {
		checkProblems(t, "", c.rule, c.want)
	}
}
