package analysis

import (
	"fmt"
	"time"
)

// Changes of a rule's verdict.
const (
	ChangeFired           = "fired"            // the rule started holding
	ChangeCleared         = "cleared"          // it stopped holding (or left the plan)
	ChangeForecast        = "forecast"         // its bound is predicted to be crossed within the horizon
	ChangeForecastCleared = "forecast_cleared" // no longer predicted
	ChangeNotJudged       = "not_judged"       // a holding rule can no longer judge (too little data)
	ChangeJudged          = "judged"           // and can again
	// ChangeUpdate is not a change: a rule that holds (or whose forecast
	// holds) holds on, re-judged at a sweep or under a new plan version,
	// with its value and sentence now. It is passed on, not recorded.
	ChangeUpdate = "update"
)

// Transition is one change of a rule's verdict for a patient.
type Transition struct {
	Patient       string    `json:"patient"`
	Rule          string    `json:"rule"`
	Kind          string    `json:"kind"`
	Change        string    `json:"change"`
	Forecast      bool      `json:"forecast,omitempty"` // a ChangeUpdate of the rule's forecast, not of the rule
	Holds         bool      `json:"holds"`              // whether the rule holds after the change
	Severity      string    `json:"severity"`
	Metric        string    `json:"metric,omitempty"`
	Value         float64   `json:"value"`
	Bound         float64   `json:"bound"`
	Side          string    `json:"side,omitempty"` // below, above or band
	PlanVersion   int       `json:"plan_version"`
	PlanEffective time.Time `json:"plan_effective"`
	WindowFrom    time.Time `json:"window_from,omitzero"`
	WindowTo      time.Time `json:"window_to,omitzero"`
	At            time.Time `json:"at"`
	Sentence      string    `json:"sentence"`
}

// judgeEvery judges the patient's rules at now against their recorded
// states, and returns the transitions and the states that changed (nil:
// the rule left the plan), and when asked every rule's verdict now, and
// ChangeUpdate transitions for the rules (and forecasts) that hold on. It
// changes nothing of p.
func judgeEvery(p *patient, clk clock, now time.Time, minWear int, withVerdicts, updates bool) ([]Transition, map[string]*ruleState, []Verdict) {
	plan := p.versionAt(now)
	var verdicts []Verdict
	changed := map[string]*ruleState{}
	var ts []Transition
	inPlan := map[string]bool{}
	if plan != nil {
		en := newEnv(clk, now, minWear, plan, p.versions[0].Effective)
		update := func(t Transition, forecast bool) Transition {
			t.Change, t.Forecast, t.Holds = ChangeUpdate, forecast, true
			return t
		}
		for i := range plan.Rules {
			r := &plan.Rules[i]
			inPlan[r.ID] = true
			v := judgeRule(r, plan, p, en)
			if withVerdicts {
				verdicts = append(verdicts, verdictOf(r, plan, v, clk))
			}
			old, known := p.states.get(r.ID)
			if !known {
				old = ruleState{Judged: true, Version: plan.Version}
			}
			next := old
			next.Version = plan.Version
			mk := func(change string) Transition {
				return transition(p.id, r, plan, v, change, now, clk)
			}
			if v.judged {
				if v.holds != old.Holds {
					next.Holds, next.Since = v.holds, now
					ts = append(ts, mk(map[bool]string{true: ChangeFired, false: ChangeCleared}[v.holds]))
				} else if !old.Judged && old.Holds {
					ts = append(ts, mk(ChangeJudged))
				}
				fc := v.forecast && !v.holds
				if fc != old.Forecast {
					next.Forecast = fc
					// A forecast that came true gives way to the firing; a
					// planned procedure's warning ends as it is done.
					if fc || !v.holds || r.Kind == KindTiming {
						ts = append(ts, mk(map[bool]string{true: ChangeForecast, false: ChangeForecastCleared}[fc]))
					}
				}
				switch {
				case !updates:
				case v.holds && old.Holds && old.Judged:
					ts = append(ts, update(mk(ChangeFired), false))
				case fc && old.Forecast:
					ts = append(ts, update(mk(ChangeForecast), true))
				}
			} else if old.Judged && old.Holds {
				t := mk(ChangeNotJudged)
				t.Holds = true // it neither starts nor stops holding
				ts = append(ts, t)
			}
			next.Judged = v.judged
			if next != old || !known {
				changed[r.ID] = &next
			}
		}
	}
	// Rules that left the plan stop holding.
	for _, n := range p.states {
		id, st := n.rule, n.state
		if inPlan[id] {
			continue
		}
		changed[id] = nil
		if st.Holds || st.Forecast {
			t := Transition{Patient: p.id, Rule: id, Change: ChangeCleared, At: now,
				Sentence: fmt.Sprintf("rule %s is no longer in the plan", id)}
			if r := p.lastRule(id); r != nil {
				t.Kind, t.Severity, t.Metric = r.Kind, r.Severity, r.Metric
			}
			if plan != nil {
				t.PlanVersion, t.PlanEffective = plan.Version, plan.Effective
				t.Sentence += fmt.Sprintf(" (plan v%d)", plan.Version)
			}
			ts = append(ts, t)
		}
	}
	return ts, changed, verdicts
}

// Verdict is what a rule says of a patient now, for consoles.
type Verdict struct {
	Rule        string  `json:"rule"`
	Kind        string  `json:"kind"`
	Severity    string  `json:"severity"`
	Metric      string  `json:"metric,omitempty"`
	Words       string  `json:"words"` // the rule in words
	Judged      bool    `json:"judged"`
	Holds       bool    `json:"holds"`
	Forecast    bool    `json:"forecast,omitempty"`
	Value       float64 `json:"value"`
	Bound       float64 `json:"bound"`
	Side        string  `json:"side,omitempty"`
	Reason      string  `json:"reason,omitempty"` // why it is not judged
	Sentence    string  `json:"sentence"`
	PlanVersion int     `json:"plan_version"`
	// A follow-up's due day (its start), its state then (upcoming, due,
	// overdue or done), and what it waits for ("an estradiol result").
	Due      time.Time `json:"due,omitzero"`
	FollowUp string    `json:"follow_up,omitempty"`
	Awaits   string    `json:"awaits,omitempty"`
}

// verdictOf is what rule r says now; a rule that does not hold but is
// forecast to (a planned procedure, for a timing rule) says its forecast.
func verdictOf(r *Rule, plan *Plan, v verdict, clk clock) Verdict {
	change := ""
	if v.forecast && !v.holds {
		change = ChangeForecast
	}
	out := Verdict{Rule: r.ID, Kind: r.Kind, Severity: r.Severity, Metric: r.Metric, Words: r.Words(),
		Judged: v.judged, Holds: v.holds, Forecast: v.forecast, Value: v.value, Bound: v.bound, Side: v.side, Reason: v.reason,
		Sentence: describe(r, v, plan.Version, plan.Effective, clk.loc, change), PlanVersion: plan.Version}
	if v.state != "" {
		out.Due, out.FollowUp, out.Awaits = clk.start(v.due), v.state, r.followUpWhat()
	}
	return out
}

// judgeRule runs the rule's kind.
func judgeRule(r *Rule, plan *Plan, p *patient, en env) verdict {
	s := p.seriesFor(r)
	switch r.Kind {
	case KindThreshold:
		return judgeThreshold(r, s, en)
	case KindTrend:
		return judgeTrend(r, s, en)
	case KindBaseline:
		return judgeBaseline(r, s, en)
	case KindSilence:
		return judgeSilence(r, s, en)
	case KindScore:
		return judgeScore(r, s, en)
	case KindTiming:
		return judgeTiming(r, p.versions, p.procedures, en, 0)
	case KindFollowUp:
		return judgeFollowUp(r, s, p.versions, p.procedures, en)
	case KindAdherence:
		if _, ok := plan.dose(r.Medication); ok {
			return judgeAdherence(r, p.versions, p.dosesOf(r.Medication), en)
		}
	}
	return verdict{reason: "the rule cannot be judged"}
}

func transition(patientID string, r *Rule, plan *Plan, v verdict, change string, now time.Time, clk clock) Transition {
	t := Transition{
		Patient: patientID, Rule: r.ID, Kind: r.Kind, Change: change, Holds: v.holds, Severity: r.Severity,
		Metric: r.Metric, Value: v.value, Bound: v.bound, Side: v.side,
		PlanVersion: plan.Version, PlanEffective: plan.Effective, At: now,
		Sentence: describe(r, v, plan.Version, plan.Effective, clk.loc, change),
	}
	if v.to != 0 || v.from != 0 {
		t.WindowFrom, t.WindowTo = clk.start(v.from), clk.start(v.to+1)
	}
	if r.Kind == KindAdherence {
		t.WindowFrom, t.WindowTo = now.Add(-time.Duration(r.Over)), now
	}
	if change == ChangeForecast || change == ChangeForecastCleared {
		t.Holds = v.forecast
		if r.Kind == KindTiming && r.Severity == SeverityCritical {
			t.Severity = SeverityWarning // a plan, not yet a harm: warned, not paged
		}
	}
	return t
}
