package analysis

import (
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at reads a local time of loc, "2006-01-02 15:04".
func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every date below is worked out by hand from the calendar; the clinic's
// days, not 24-hour spans, are what a timing rule counts.
func TestJudgeTiming(t *testing.T) {
	london, newYork := mustLoad(t, "Europe/London"), mustLoad(t, "America/New_York")
	pellet := func(loc *time.Location, effective string) []*Plan {
		// An estradiol pellet every 4 months from 31 Oct: due 31 Oct, 28
		// Feb (the last day of a shorter month), 30 Jun.
		return []*Plan{{Version: 1, Effective: at(t, loc, effective), Regimen: []Dose{
			{Medication: "estradiol", Route: "implant", Amount: 25, Unit: "mg", Schedule: Schedule{Every: 4, Unit: "months"}}}}}
	}
	started := func(loc *time.Location) []*Plan {
		prog := Dose{Medication: "progesterone", Route: "oral", Amount: 100, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "days"}}
		e2 := Dose{Medication: "estradiol", Route: "transdermal", Amount: 0.05, Unit: "mg", Schedule: Schedule{Every: 1, Unit: "weeks", Twice: true}}
		e2up := e2
		e2up.Amount = 0.075
		return []*Plan{
			{Version: 1, Effective: at(t, loc, "2027-01-01 00:00"), Regimen: []Dose{prog}},
			// 00:30 on 14 March, GMT; the clocks go forward on 28 March.
			{Version: 2, Effective: at(t, loc, "2027-03-14 00:30"), Regimen: []Dose{prog, e2}},
			{Version: 3, Effective: at(t, loc, "2027-05-01 09:00"), Regimen: []Dose{prog, e2up}},
		}
	}
	notWithin := func(n int, of Event) Rule {
		return Rule{ID: "r", Kind: KindTiming, Severity: SeverityCritical, Procedure: "chemical_peel",
			NotWithin: Duration(time.Duration(n) * 24 * time.Hour), Of: &of}
	}
	atLeast := func(proc string, n int, after Event) Rule {
		return Rule{ID: "r", Kind: KindTiming, Severity: SeverityWarning, Procedure: proc,
			AtLeast: Duration(time.Duration(n) * 24 * time.Hour), After: &after}
	}
	peel := func(id int64, loc *time.Location, when string, done bool) Procedure {
		return Procedure{ID: id, Type: "chemical_peel", Done: done, At: at(t, loc, when)}
	}
	needling := func(id int64, loc *time.Location, when string) Procedure {
		return Procedure{ID: id, Type: "microneedling", At: at(t, loc, when)}
	}
	e2 := Event{Medication: "estradiol"}
	for _, c := range []struct {
		name     string
		loc      *time.Location
		versions []*Plan
		rule     Rule
		procs    []Procedure
		now      string
		holds    bool
		forecast bool
		gap      float64
		detail   string
	}{
		{name: "13 days after the dose due on 28 Feb (31 Feb does not exist)", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2027-03-13 10:00", false)}, now: "2027-02-01 12:00",
			forecast: true, gap: 13, detail: "the chemical peel planned for 13 Mar 2027 is 13 days from the estradiol dose due 28 Feb 2027"},
		{name: "14 days after is not within 14 days", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2027-03-14 10:00", false)}, now: "2027-02-01 12:00"},
		{name: "13 days before the dose", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2027-02-15 16:00", false)}, now: "2027-02-01 12:00",
			forecast: true, gap: 13, detail: "the chemical peel planned for 15 Feb 2027 is 13 days from the estradiol dose due 28 Feb 2027"},
		{name: "14 days before", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2027-02-14 16:00", false)}, now: "2027-02-01 12:00"},
		{name: "the nearest of two planned", loc: london, versions: pellet(london, "2026-10-31 09:00"), rule: notWithin(14, e2),
			procs: []Procedure{peel(1, london, "2027-03-13 10:00", false), peel(2, london, "2027-03-05 10:00", false)}, now: "2027-02-01 12:00",
			forecast: true, gap: 5, detail: "the chemical peel planned for 5 Mar 2027 is 5 days from the estradiol dose due 28 Feb 2027"},
		{name: "done 10 days after the first dose, judged 10 days later", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2026-11-10 11:00", true)}, now: "2026-11-20 12:00",
			holds: true, gap: 10, detail: "the chemical peel done on 10 Nov 2026 is 10 days from the estradiol dose due 31 Oct 2026"},
		{name: "done, no longer judged 14 days on", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(14, e2), procs: []Procedure{peel(1, london, "2026-11-10 11:00", true)}, now: "2026-11-24 00:10"},
		{name: "done holds over planned", loc: london, versions: pellet(london, "2026-10-31 09:00"), rule: notWithin(14, e2),
			procs: []Procedure{peel(1, london, "2026-11-10 11:00", true), peel(2, london, "2027-03-01 11:00", false)}, now: "2026-11-20 12:00",
			holds: true, gap: 10, detail: "the chemical peel done on 10 Nov 2026 is 10 days from the estradiol dose due 31 Oct 2026"},
		// 22:00 in New York on 28 Feb is 1 March in UTC: the clinic's day is
		// the dose's day.
		{name: "the clinic's day, not UTC's", loc: newYork, versions: pellet(newYork, "2026-10-31 09:00"), rule: notWithin(14, e2),
			procs: []Procedure{peel(1, newYork, "2027-02-28 22:00", false)}, now: "2027-02-01 12:00",
			forecast: true, gap: 0, detail: "the chemical peel planned for 28 Feb 2027 is the same day as the estradiol dose due 28 Feb 2027"},
		// 14 March 00:30 GMT to 11 April 00:30 BST is 28 calendar days
		// (27 days and 23 hours).
		{name: "28 days after the start across the clocks going forward", loc: london, versions: started(london),
			rule:  atLeast("microneedling", 28, Event{Medication: "estradiol", Started: true}),
			procs: []Procedure{needling(1, london, "2027-04-11 00:30")}, now: "2027-03-01 12:00"},
		{name: "27 days after the start", loc: london, versions: started(london),
			rule:  atLeast("microneedling", 28, Event{Medication: "estradiol", Started: true}),
			procs: []Procedure{needling(1, london, "2027-04-10 23:59")}, now: "2027-03-01 12:00", forecast: true, gap: 27,
			detail: "the microneedling planned for 10 Apr 2027 is 27 days after the start of estradiol on 14 Mar 2027 (plan v2)"},
		{name: "before the start is not after it", loc: london, versions: started(london),
			rule:  atLeast("microneedling", 28, Event{Medication: "estradiol", Started: true}),
			procs: []Procedure{needling(1, london, "2027-03-10 10:00")}, now: "2027-03-01 12:00"},
		{name: "started ignores a dose change", loc: london, versions: started(london),
			rule:  atLeast("microneedling", 28, Event{Medication: "estradiol", Started: true}),
			procs: []Procedure{needling(1, london, "2027-05-10 10:00")}, now: "2027-03-01 12:00"},
		{name: "changed counts the dose change of 1 May", loc: london, versions: started(london),
			rule:  atLeast("microneedling", 28, Event{Medication: "estradiol", Changed: true}),
			procs: []Procedure{needling(1, london, "2027-05-10 10:00")}, now: "2027-03-01 12:00", forecast: true, gap: 9,
			detail: "the microneedling planned for 10 May 2027 is 9 days after the change of estradiol on 1 May 2027 (plan v3)"},
		// 27 March 12:00 GMT to 28 March 23:30 BST is 34.5 hours but 1 day;
		// to 29 March 00:30 BST, 35.5 hours but 2 days.
		{name: "1 calendar day on the short day", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(2, Event{Procedure: "pellet_insertion"}),
			procs: []Procedure{{ID: 1, Type: "pellet_insertion", Done: true, At: at(t, london, "2027-03-27 12:00")},
				peel(2, london, "2027-03-28 23:30", false)}, now: "2027-03-27 13:00", forecast: true, gap: 1,
			detail: "the chemical peel planned for 28 Mar 2027 is 1 day from the pellet insertion done on 27 Mar 2027"},
		{name: "2 calendar days within 36 hours", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule: notWithin(2, Event{Procedure: "pellet_insertion"}),
			procs: []Procedure{{ID: 1, Type: "pellet_insertion", Done: true, At: at(t, london, "2027-03-27 12:00")},
				peel(2, london, "2027-03-29 00:30", false)}, now: "2027-03-27 13:00"},
		{name: "a procedure is not its own event", loc: london, versions: pellet(london, "2026-10-31 09:00"),
			rule:  atLeast("chemical_peel", 28, Event{Procedure: "chemical_peel"}),
			procs: []Procedure{peel(1, london, "2027-06-01 10:00", false), peel(2, london, "2027-06-20 10:00", false)}, now: "2027-03-01 12:00",
			forecast: true, gap: 19, detail: "the chemical peel planned for 20 Jun 2027 is 19 days after the chemical peel planned for 1 Jun 2027"},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := at(t, c.loc, c.now)
			for _, v := range c.versions {
				v.Rules = []Rule{c.rule}
			}
			plan := (&patient{versions: c.versions}).versionAt(now)
			if plan == nil {
				plan = c.versions[0]
			}
			en := newEnv(clock{c.loc}, now, 1, plan, c.versions[0].Effective)
			v := judgeTiming(&c.rule, c.versions, c.procs, en, 0)
			if !v.judged || v.holds != c.holds || v.forecast != c.forecast || v.detail != c.detail || (c.holds || c.forecast) && v.value != c.gap {
				t.Errorf("got judged %v holds %v forecast %v gap %v %q\nwant holds %v forecast %v gap %v %q",
					v.judged, v.holds, v.forecast, v.value, v.detail, c.holds, c.forecast, c.gap, c.detail)
			}
		})
	}
}

// A planned conflict warns (a forecast, at most warning severity); done,
// it fires at the rule's severity and the warning clears.
func TestTimingTransitions(t *testing.T) {
	loc := time.UTC
	eff := time.Date(2027, 1, 10, 9, 0, 0, 0, loc)
	plan := &Plan{Version: 1, Effective: eff, Regimen: []Dose{
		{Medication: "estradiol", Route: "implant", Amount: 25, Unit: "mg", Schedule: Schedule{Every: 4, Unit: "months"}}},
		Rules: []Rule{{ID: "peel-after-pellet", Kind: KindTiming, Severity: SeverityCritical, Procedure: "chemical_peel",
			NotWithin: Duration(14 * 24 * time.Hour), Of: &Event{Medication: "estradiol"}}}}
	p := newPatient("p", []*Plan{plan})
	clk := clock{loc}
	now := eff.Add(24 * time.Hour)
	step := func(want ...string) []Transition {
		t.Helper()
		ts, changed, _ := judgeEvery(p, clk, now, 1, false, false)
		p.apply(changed)
		var got []string
		for _, tr := range ts {
			got = append(got, tr.Change+" "+tr.Severity)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		return ts
	}
	step()
	p.procedures = []Procedure{{ID: 1, Type: "chemical_peel", At: eff.AddDate(0, 0, 5)}}
	ts := step("forecast warning")
	if want := "the chemical peel planned for 15 Jan 2027 is 5 days from the estradiol dose due 10 Jan 2027: the plan wants no chemical peel within 14 days of an estradiol dose; warned before it is done (plan v1, since 10 Jan)"; ts[0].Sentence != want {
		t.Errorf("sentence %q\nwant %q", ts[0].Sentence, want)
	}
	now = eff.AddDate(0, 0, 5).Add(time.Hour)
	p.procedures[0].Done = true
	ts = step("fired critical", "forecast_cleared warning")
	if want := "the chemical peel done on 15 Jan 2027 is 5 days from the estradiol dose due 10 Jan 2027: the plan wants no chemical peel within 14 days of an estradiol dose (plan v1, since 10 Jan)"; ts[0].Sentence != want {
		t.Errorf("sentence %q\nwant %q", ts[0].Sentence, want)
	}
	now = eff.AddDate(0, 0, 19)
	ts = step("cleared critical")
	if want := "no planned or recent chemical peel is within 14 days of an estradiol dose (plan v1, since 10 Jan)"; ts[0].Sentence != want {
		t.Errorf("sentence %q\nwant %q", ts[0].Sentence, want)
	}
	if got, want := plan.Rules[0].Words(), "chemical peel: warn when one is planned within 14 days of an estradiol dose, alert when one is done"; got != want {
		t.Errorf("Words %q, want %q", got, want)
	}
}

func TestValidateTiming(t *testing.T) {
	for _, c := range []struct {
		rule string
		want []string
	}{
		{`{id: a, kind: timing, procedure: chemical_peel, not_within: 14d, of: {medication: estradiol}, severity: warning}`, nil},
		{`{id: a, kind: timing, procedure: microneedling, at_least: 28d, after: {medication: progesterone, started: true}, severity: info}`, nil},
		{`{id: a, kind: timing, procedure: chemical_peel, not_within: 14d, of: {procedure: pellet_insertion}, severity: warning}`, nil},
		{`{id: a, kind: timing, severity: warning}`, []string{
			"rules[0] (a).procedure: required, the catalogue id of a procedure such as chemical_peel",
			"rules[0] (a): give not_within with of (no procedure near an event) or at_least with after (a procedure only so long after one)"}},
		{`{id: a, kind: timing, procedure: x, not_within: 14d, of: {medication: progesterone}, severity: warning}`, []string{
			"rules[0] (a).of: progesterone is due daily, so every day would be within 14 days of a progesterone dose: give started: true or changed: true to measure from the regimen's changes"}},
		{`{id: a, kind: timing, procedure: x, not_within: 36h, at_least: 2d, of: {medication: testosterone, procedure: y}, severity: warning}`, []string{
			"rules[0] (a).at_least: goes with after, not of",
			"rules[0] (a).not_within: 36h: want whole days, 1d to 365d",
			"rules[0] (a).of: give a medication of the regimen or a procedure"}},
		{`{id: a, kind: timing, procedure: x, at_least: 2d, after: {procedure: y, started: true}, metric: sleep.total_min, severity: warning}`, []string{
			"rules[0] (a).metric: not used by a timing rule",
			"rules[0] (a).after: started and changed go with a medication"}},
		{`{id: a, kind: timing, procedure: x, at_least: 2d, after: {medication: testosterone}, severity: warning}`, []string{
			"rules[0] (a).after.medication: testosterone is not in the regimen"}},
	} {
		checkProblems(t, "  - {medication: progesterone, route: oral, amount: 100, unit: mg, schedule: daily}\n", c.rule, c.want)
	}
}

// checkProblems parses a plan of an estradiol pellet, the regimen lines
// given, and the rule, and checks the problems named.
func checkProblems(t *testing.T, regimen, rule string, want []string) {
	t.Helper()
	doc := "patient: p\neffective: 2027-01-01T00:00:00Z\nregimen:\n" +
		"  - {medication: estradiol, route: implant, amount: 25, unit: mg, schedule: every_4_months}\n" + regimen + "rules:\n  - " + rule + "\n"
	_, err := ParsePlan([]byte(doc))
	var got []string
	if pe, ok := err.(*PlanError); ok {
		got = pe.Problems
	} else if err != nil {
		t.Errorf("%s: %v", rule, err)
		return
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot  %q\nwant %q", rule, got, want)
	}
}
