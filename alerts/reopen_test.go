package alerts

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

const mtDay = 24 * time.Hour

// mtPlanV2 makes a step's transition speak of plan version 2.
func mtPlanV2(s mtStep) mtStep { return mtWith(s, func(t *analysis.Transition) { t.PlanVersion = 2 }) }

// mtSilence makes a step's transition a silence rule's: its value is the
// hours without data, above a bound of 24.
func mtSilence(s mtStep) mtStep {
	return mtWith(s, func(t *analysis.Transition) {
		t.Kind, t.Side, t.Bound = analysis.KindSilence, "above", 24
		t.Sentence = fmt.Sprintf("no heart rate data for %.0f h", t.Value)
	})
}

// mtForecastUpdate makes an update one of the rule's forecast.
func mtForecastUpdate(s mtStep) mtStep {
	return mtWith(s, func(t *analysis.Transition) { t.Forecast = true })
}

// TestManagerUpdates: an update (a condition that holds on, at every
// sweep) refreshes the active alert of its key when it says something new.
func TestManagerUpdates(t *testing.T) {
	mtRunCases(t, []mtCase{
		{
			name: "a new sentence, value or severity is taken in; an equal update writes nothing",
			steps: []mtStep{
				mtFire(0, "r1", mtWarn, 120),
				mtUpdate(5*mtMin, "r1", mtWarn, 120, "r1 fired at 120"),
				mtPlanV2(mtUpdate(10*mtMin, "r1", mtWarn, 120, "r1 holds at 120 (plan v2)")),
				mtPlanV2(mtUpdate(15*mtMin, "r1", mtWarn, 120, "r1 holds at 120 (plan v2)")),
				mtPlanV2(mtUpdate(20*mtMin, "r1", mtWarn, 125, "r1 holds at 120 (plan v2)")),
				mtPlanV2(mtUpdate(25*mtMin, "r1", mtCrit, 125, "r1 holds at 120 (plan v2)")),
				mtPlanV2(mtUpdate(30*mtMin, "r1", mtWarn, 125, "r1 holds at 120 (plan v2)")),
			},
			alerts:   []string{"p1 r1 firing critical"},
			events:   [][]string{{"opened", "updated", "updated", "severity_raised"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @10m0s", "updated p1 r1 @20m0s", "severity_raised p1 r1 @25m0s"},
			check: func(t *testing.T, r *mtRig) {
				a := r.alert(r.alertID(mtP1, "r1"))
				if a.Sentence != "r1 holds at 120 (plan v2)" || a.Value != 125 || a.PlanVersion != 2 || !a.OpenedAt.Equal(mtT0) {
					t.Errorf("alert = %+v, want the latest update's sentence, value 125, plan v2, opened at t0", a)
				}
			},
		},
		{
			name: "an update of an acknowledged alert keeps it acknowledged",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""),
				mtUpdate(5*mtMin, "r1", mtWarn, 120, "r1 fired at 120"), mtUpdate(10*mtMin, "r1", mtWarn, 121, ""),
				mtUpdate(mtDay+10*mtMin, "r1", mtWarn, 121, "")},
			alerts:   []string{"p1 r1 acknowledged warning acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice", "updated"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s", "updated p1 r1 @10m0s"},
		},
		{
			name: "an update ends not-judged",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtNotJudged(mtMin, "r1", "too little data"),
				mtUpdate(5*mtMin, "r1", mtWarn, 120, "r1 fired at 120")},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated", "updated"}},
			notified: []string{"opened p1 r1 @0s", "updated p1 r1 @1m0s not-judged", "updated p1 r1 @5m0s"},
		},
		{
			name: "a silence's hours count only as its sentence changes",
			steps: []mtStep{
				mtSilence(mtFire(0, "quiet", mtWarn, 25)),
				mtSilence(mtUpdate(5*mtMin, "quiet", mtWarn, 25.08, "")),
				mtSilence(mtUpdate(10*mtMin, "quiet", mtWarn, 25.17, "")),
				mtSilence(mtUpdate(time.Hour, "quiet", mtWarn, 26, "")),
			},
			alerts:   []string{"p1 quiet firing warning"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 quiet @0s", "updated p1 quiet @1h0m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "quiet")); a.Sentence != "no heart rate data for 26 h" || a.Value != 26 {
					t.Errorf("alert = %+v", a)
				}
			},
		},
		{
			name: "a forecast's update goes to the rule#forecast alert",
			steps: []mtStep{
				mtForecast(0, "r1", mtWarn), mtFire(mtMin, "r1", mtWarn, 120),
				mtForecastUpdate(mtUpdate(2*mtMin, "r1", mtWarn, 97, "r1 is predicted to cross 100 within 3 days")),
				mtUpdate(3*mtMin, "r1", mtWarn, 120, "r1 fired at 120"),
			},
			alerts:   []string{"p1 r1#forecast firing warning forecast", "p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated"}, {"opened"}},
			notified: []string{"opened p1 r1#forecast @0s", "opened p1 r1 @1m0s", "updated p1 r1#forecast @2m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "r1#forecast")); a.Sentence != "r1 is predicted to cross 100 within 3 days" || a.Value != 97 {
					t.Errorf("forecast alert = %+v", a)
				}
				if a := r.alert(r.alertID(mtP1, "r1")); a.Sentence != "r1 fired at 120" {
					t.Errorf("rule alert = %+v", a)
				}
			},
		},
		{
			name:     "an update while the raise waits for FireAfter changes nothing",
			cfg:      func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtUpdate(mtMin, "r1", mtCrit, 130, ""), mtTick(5 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened"}},
			notified: []string{"opened p1 r1 @5m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "r1")); a.Value != 120 || a.Sentence != "r1 fired at 120" {
					t.Errorf("alert = %+v, want the fired transition's", a)
				}
			},
		},
		{
			name: "an update while a new firing of an open alert waits for FireAfter changes nothing",
			cfg:  func(_ *testing.T, c *Config) { c.FireAfter, c.ResolveAfter = 5*mtMin, 10*mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtTick(5 * mtMin), mtClear(6*mtMin, "r1"), mtFire(7*mtMin, "r1", mtWarn, 125),
				mtUpdate(8*mtMin, "r1", mtCrit, 130, ""), mtTick(12 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "updated"}},
			notified: []string{"opened p1 r1 @5m0s", "updated p1 r1 @12m0s"},
		},
		{
			name:     "an update while a clear waits for ResolveAfter changes nothing",
			cfg:      func(_ *testing.T, c *Config) { c.ResolveAfter = 10 * mtMin },
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"), mtUpdate(2*mtMin, "r1", mtCrit, 130, ""), mtTick(11 * mtMin)},
			alerts:   []string{"p1 r1 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @11m0s"},
		},
		{
			name:  "an update of a key without any alert changes nothing",
			steps: []mtStep{mtUpdate(0, "r1", mtWarn, 120, ""), mtTick(mtMin), mtUpdate(2*mtDay, "r1", mtWarn, 130, "")},
		},
	})
}

// TestManagerReopen: a condition that still holds after staff resolved
// its alert comes back when its value worsens past the resolution's, or
// Renotify after the resolution.
func TestManagerReopen(t *testing.T) {
	adherence := func(s mtStep) mtStep {
		return mtWith(s, func(t *analysis.Transition) { t.Kind, t.Side, t.Bound = "adherence", "below", 0.8 })
	}
	band := func(s mtStep) mtStep {
		return mtWith(s, func(t *analysis.Transition) { t.Kind, t.Side, t.Bound = "score", "band", 16 })
	}
	mtRunCases(t, []mtCase{
		{
			name: "a worse value reopens at once, and the history says so",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "seen", ""),
				mtUpdate(5*mtMin, "r1", mtWarn, 120, "r1 fired at 120"), mtUpdate(10*mtMin, "r1", mtWarn, 125, "r1 holds at 125"),
				mtUpdate(15*mtMin, "r1", mtWarn, 125, "r1 holds at 125")},
			alerts: []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events: [][]string{
				{"opened", "resolved by alice: seen"},
				{"opened: reopened: worse (125) than when alice resolved it (120)"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @10m0s"},
			check: func(t *testing.T, r *mtRig) {
				evs := r.rec.all()
				if len(evs) != 3 {
					return // told above
				}
				if ev := evs[2]; ev.Note != "reopened: worse (125) than when alice resolved it (120)" || ev.Alert.ID == evs[0].Alert.ID {
					t.Errorf("notified %+v", ev)
				}
				a := r.alert(r.alertID(mtP1, "r1"))
				if a.Value != 125 || a.Sentence != "r1 holds at 125" || !a.OpenedAt.Equal(mtT0.Add(10*mtMin)) {
					t.Errorf("reopened alert = %+v", a)
				}
			},
		},
		{
			name: "the same or a better value waits for Renotify, then reopens",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""),
				mtUpdate(5*mtMin, "r1", mtWarn, 120, ""), mtUpdate(time.Hour, "r1", mtWarn, 110, ""),
				mtUpdate(mtDay+mtMin-time.Second, "r1", mtWarn, 110, ""), mtUpdate(mtDay+mtMin, "r1", mtWarn, 110, ""),
				mtUpdate(mtDay+6*mtMin, "r1", mtWarn, 110, "")},
			alerts: []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened: reopened: still holds 24h after alice resolved it"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h1m0s"},
		},
		{
			name: "Renotify is the setting",
			cfg:  func(_ *testing.T, c *Config) { c.Renotify = 90 * mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""),
				mtUpdate(90*mtMin, "r1", mtWarn, 120, ""), mtUpdate(91*mtMin, "r1", mtWarn, 120, "")},
			alerts:   []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: still holds 1h30m after alice resolved it"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @1h31m0s"},
		},
		{
			name: "below its bound, lower is worse",
			steps: []mtStep{adherence(mtFire(0, "adh", mtWarn, 0.43)), mtResolve(mtMin, "adh", "alice", "", ""),
				adherence(mtUpdate(5*mtMin, "adh", mtWarn, 0.5, "")), adherence(mtUpdate(10*mtMin, "adh", mtWarn, 0.43, "")),
				adherence(mtUpdate(15*mtMin, "adh", mtWarn, 0.375, ""))},
			alerts:   []string{"p1 adh resolved warning resolved=alice", "p1 adh firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: worse (0.375) than when alice resolved it (0.43)"}},
			notified: []string{"opened p1 adh @0s", "resolved p1 adh @1m0s", "opened p1 adh @15m0s"},
		},
		{
			name: "in a band, higher is worse",
			steps: []mtStep{band(mtFire(0, "mrs", mtWarn, 18)), mtResolve(mtMin, "mrs", "alice", "", ""),
				band(mtUpdate(5*mtMin, "mrs", mtWarn, 17, "")), band(mtUpdate(10*mtMin, "mrs", mtWarn, 19, ""))},
			alerts:   []string{"p1 mrs resolved warning resolved=alice", "p1 mrs firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: worse (19) than when alice resolved it (18)"}},
			notified: []string{"opened p1 mrs @0s", "resolved p1 mrs @1m0s", "opened p1 mrs @10m0s"},
		},
		{
			name: "a silence, whose hours grow by themselves, reopens only after Renotify",
			steps: []mtStep{mtSilence(mtFire(0, "quiet", mtWarn, 25)), mtResolve(mtMin, "quiet", "alice", "", ""),
				mtSilence(mtUpdate(time.Hour, "quiet", mtWarn, 26, "")), mtSilence(mtUpdate(12*time.Hour, "quiet", mtWarn, 37, "")),
				mtSilence(mtUpdate(mtDay-4*mtMin, "quiet", mtWarn, 49, "")), mtSilence(mtUpdate(mtDay+mtMin, "quiet", mtWarn, 49, ""))},
			alerts:   []string{"p1 quiet resolved warning resolved=alice", "p1 quiet firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: still holds 24h after alice resolved it"}},
			notified: []string{"opened p1 quiet @0s", "resolved p1 quiet @1m0s", "opened p1 quiet @24h1m0s"},
			check: func(t *testing.T, r *mtRig) {
				if a := r.alert(r.alertID(mtP1, "quiet")); a.Sentence != "no heart rate data for 49 h" {
					t.Errorf("reopened alert = %+v", a)
				}
			},
		},
		{
			name: "an acknowledgement is not a resolution",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""),
				mtUpdate(mtDay+2*mtMin, "r1", mtWarn, 120, "r1 fired at 120")},
			alerts:   []string{"p1 r1 acknowledged warning acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s"},
		},
		{
			name: "a condition that cleared after the staff resolve does not reopen; its next firing opens a plain alert",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""), mtClear(2*mtMin, "r1"),
				mtUpdate(3*mtMin, "r1", mtWarn, 130, ""), mtUpdate(mtDay+2*mtMin, "r1", mtWarn, 130, ""), mtTick(mtDay + 3*mtMin),
				mtFire(mtDay+4*mtMin, "r1", mtWarn, 130), mtUpdate(mtDay+9*mtMin, "r1", mtWarn, 130, "r1 fired at 130")},
			alerts:   []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h4m0s"},
		},
		{
			name: "resolved by patientpulse, nothing reopens; the next firing's alert resolved by staff does",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"),
				mtUpdate(2*mtMin, "r1", mtWarn, 130, ""), mtUpdate(mtDay+2*mtMin, "r1", mtWarn, 130, ""),
				mtFire(mtDay+3*mtMin, "r1", mtWarn, 130), mtResolve(mtDay+4*mtMin, "r1", "bob", "", ""),
				mtUpdate(mtDay+5*mtMin, "r1", mtWarn, 140, "")},
			alerts: []string{"p1 r1 resolved warning resolved=patientpulse", "p1 r1 resolved warning resolved=bob", "p1 r1 firing warning"},
			events: [][]string{
				{"opened", "resolved: the condition cleared"},
				{"opened", "resolved by bob"},
				{"opened: reopened: worse (140) than when bob resolved it (130)"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h3m0s", "resolved p1 r1 @24h4m0s", "opened p1 r1 @24h5m0s"},
		},
		{
			name: "a reopened alert resolved again waits Renotify from its own resolution",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""),
				mtUpdate(mtDay+mtMin, "r1", mtWarn, 120, ""), mtResolve(mtDay+2*mtMin, "r1", "bob", "", ""),
				mtUpdate(mtDay+3*mtMin, "r1", mtWarn, 120, ""), mtUpdate(2*mtDay+mtMin, "r1", mtWarn, 120, ""),
				mtUpdate(2*mtDay+2*mtMin, "r1", mtWarn, 120, "")},
			alerts: []string{"p1 r1 resolved warning resolved=alice", "p1 r1 resolved warning resolved=bob", "p1 r1 firing warning"},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened: reopened: still holds 24h after alice resolved it", "resolved by bob"},
				{"opened: reopened: still holds 24h after bob resolved it"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h1m0s", "resolved p1 r1 @24h2m0s", "opened p1 r1 @48h2m0s"},
		},
		{
			name: "a reopening over the patient's cap is suppressed, with its note",
			cfg:  func(_ *testing.T, c *Config) { c.MaxOpenPerPatient = 1 },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""), mtFire(2*mtMin, "r2", mtWarn, 5),
				mtUpdate(10*mtMin, "r1", mtWarn, 125, "")},
			alerts: []string{"p1 r1 resolved warning resolved=alice", "p1 r2 firing warning", "p1 r1 suppressed warning"},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened"},
				{"suppressed: reopened: worse (125) than when alice resolved it (120)"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r2 @2m0s", "suppressed p1 r1 @10m0s"},
		},
		{
			name: "a forecast reopens as a forecast",
			steps: []mtStep{mtForecast(0, "r1", mtWarn), mtResolve(mtMin, "r1#forecast", "alice", "", ""),
				mtForecastUpdate(mtUpdate(mtDay, "r1", mtWarn, 95, "")), mtForecastUpdate(mtUpdate(mtDay+mtMin, "r1", mtWarn, 95, ""))},
			alerts:   []string{"p1 r1#forecast resolved warning forecast resolved=alice", "p1 r1#forecast firing warning forecast"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: still holds 24h after alice resolved it"}},
			notified: []string{"opened p1 r1#forecast @0s", "resolved p1 r1#forecast @1m0s", "opened p1 r1#forecast @24h1m0s"},
		},
		{
			name: "one patient's resolution does not reopen another's",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtOn(mtP2, mtFire(0, "r1", mtWarn, 120)),
				mtResolve(mtMin, "r1", "alice", "", ""), mtOn(mtP2, mtUpdate(10*mtMin, "r1", mtWarn, 130, "")),
				mtOn(mtP2, mtUpdate(mtDay+2*mtMin, "r1", mtWarn, 130, ""))},
			alerts:   []string{"p1 r1 resolved warning resolved=alice", "p2 r1 firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened", "updated"}},
			notified: []string{"opened p1 r1 @0s", "opened p2 r1 @0s", "resolved p1 r1 @1m0s", "updated p2 r1 @10m0s"},
		},
	})
}

// TestManagerReopenRestart: what reopening compares with is kept in the
// registry, so a restarted manager reopens as the first would have.
func TestManagerReopenRestart(t *testing.T) {
	adherence := func(s mtStep) mtStep {
		return mtWith(s, func(t *analysis.Transition) { t.Kind, t.Side, t.Bound = "adherence", "below", 0.8 })
	}
	mtRunCases(t, []mtCase{
		{
			name: "a worse value reopens after a restart",
			steps: []mtStep{adherence(mtFire(0, "adh", mtWarn, 0.43)), mtResolve(mtMin, "adh", "alice", "", ""), mtRestart(2 * mtMin),
				adherence(mtUpdate(5*mtMin, "adh", mtWarn, 0.43, "")),
				// An evaluator that lost the side still compares as the rule did at the resolution.
				mtWith(mtUpdate(10*mtMin, "adh", mtWarn, 0.5, ""), func(t *analysis.Transition) { t.Kind = "adherence" }),
				adherence(mtUpdate(15*mtMin, "adh", mtWarn, 0.38, ""))},
			alerts:   []string{"p1 adh resolved warning resolved=alice", "p1 adh firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: worse (0.38) than when alice resolved it (0.43)"}},
			notified: []string{"opened p1 adh @0s", "resolved p1 adh @1m0s", "opened p1 adh @15m0s"},
			check: func(t *testing.T, r *mtRig) {
				var b body
				if err := json.Unmarshal(r.rows()[0].Body, &b); err != nil || b.Side != "below" || b.Value != 0.43 {
					t.Errorf("stored body %s (%v): want side below and value 0.43", r.rows()[0].Body, err)
				}
			},
		},
		{
			name: "Renotify counts from the resolution across restarts",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""), mtRestart(time.Hour),
				mtUpdate(2*time.Hour, "r1", mtWarn, 120, ""), mtRestart(mtDay), mtUpdate(mtDay+mtMin-time.Second, "r1", mtWarn, 120, ""),
				mtUpdate(mtDay+mtMin, "r1", mtWarn, 120, "")},
			alerts:   []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened: reopened: still holds 24h after alice resolved it"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h1m0s"},
		},
		{
			name: "a reopened alert resolved again before a restart counts from its own resolution",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "alice", "", ""),
				mtUpdate(mtDay+mtMin, "r1", mtWarn, 120, ""), mtResolve(mtDay+2*mtMin, "r1", "bob", "", ""),
				mtRestart(mtDay + 3*mtMin), mtUpdate(mtDay+4*mtMin, "r1", mtWarn, 120, ""),
				mtUpdate(2*mtDay+2*mtMin, "r1", mtWarn, 120, "")},
			alerts: []string{"p1 r1 resolved warning resolved=alice", "p1 r1 resolved warning resolved=bob", "p1 r1 firing warning"},
			events: [][]string{
				{"opened", "resolved by alice"},
				{"opened: reopened: still holds 24h after alice resolved it", "resolved by bob"},
				{"opened: reopened: still holds 24h after bob resolved it"},
			},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s", "opened p1 r1 @24h1m0s", "resolved p1 r1 @24h2m0s", "opened p1 r1 @48h2m0s"},
		},
		{
			name: "a firing after the staff resolve has its own alert, not a reopening",
			cfg:  func(_ *testing.T, c *Config) { c.FireAfter = 5 * mtMin },
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtTick(5 * mtMin), mtResolve(6*mtMin, "r1", "alice", "", ""),
				mtClear(7*mtMin, "r1"), mtFire(8*mtMin, "r1", mtWarn, 125), mtRestart(9 * mtMin),
				mtUpdate(10*mtMin, "r1", mtWarn, 126, ""), mtTick(13 * mtMin), mtUpdate(14*mtMin, "r1", mtWarn, 126, "")},
			alerts:   []string{"p1 r1 resolved warning resolved=alice", "p1 r1 firing warning"},
			events:   [][]string{{"opened", "resolved by alice"}, {"opened", "updated"}},
			notified: []string{"opened p1 r1 @5m0s", "resolved p1 r1 @6m0s", "opened p1 r1 @13m0s", "updated p1 r1 @14m0s"},
		},
	})
}

// TestManagerReopenDecision: which resolutions reopen, judged from what
// the manager knows of the condition (since when it holds) and of the
// key's newest alert, as resume or a first look leave them.
func TestManagerReopenDecision(t *testing.T) {
	since := mtT0.Add(time.Hour)
	at := func(d time.Duration) *time.Time { t := since.Add(d); return &t }
	resolved := func(by string, when *time.Time, value float64, side string) *Alert {
		return &Alert{ID: 1, Patient: mtP1, Rule: "r1", State: registry.AlertResolved, Severity: mtWarn, Value: value,
			ResolvedAt: when, ResolvedBy: by, side: side}
	}
	update := analysis.Transition{Patient: mtP1, Rule: "r1", Kind: "threshold", Change: analysis.ChangeUpdate, Holds: true,
		Severity: mtWarn, Value: 130, Bound: 100, Side: "above", PlanVersion: 1, Sentence: "r1 holds at 130"}
	for _, c := range []struct {
		name   string
		newest *Alert
		now    time.Duration // after since
		side   string        // the update's, when not "above"
		want   string
	}{
		{name: "resolved by staff while holding, worse", newest: resolved("alice", at(0), 120, "above"), now: mtMin,
			want: "reopened: worse (130) than when alice resolved it (120)"},
		{name: "resolved by staff while holding, not worse, not yet due", newest: resolved("alice", at(0), 130, "above"), now: mtDay - time.Second},
		{name: "resolved by staff while holding, due", newest: resolved("alice", at(0), 130, "above"), now: mtDay,
			want: "reopened: still holds 24h after alice resolved it"},
		{name: "resolved by patientpulse", newest: resolved(patientpulseActor, at(0), 120, "above"), now: 2 * mtDay},
		{name: "resolved by staff before the condition began holding", newest: resolved("alice", at(-time.Second), 120, "above"), now: 2 * mtDay},
		{name: "no alert", now: 2 * mtDay},
		{name: "stored without its side: the update's", newest: resolved("alice", at(0), 120, ""), now: mtMin,
			want: "reopened: worse (130) than when alice resolved it (120)"},
		{name: "the resolution's side wins over the update's", newest: resolved("alice", at(0), 140, "below"), now: mtMin, side: "band",
			want: "reopened: worse (130) than when alice resolved it (140)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := mtNewRig(t, mtBaseConfig())
			k := condKey{mtP1, "r1"}
			r.m.holding[k] = &holding{since: since, looked: true, newest: c.newest}
			r.clk.set(since.Add(c.now))
			u := update
			u.At = r.clk.now()
			if c.side != "" {
				u.Side = c.side
			}
			got, err := r.m.reopening(r.ctx, k, u)
			if err != nil || got != c.want {
				t.Errorf("reopening = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestNoteFormats(t *testing.T) {
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"share", number(0.428571), "0.429"},
		{"whole", number(43), "43"},
		{"hundreds", number(354.2857), "354"},
		{"thousands", number(12345.6), "12346"},
		{"negative slope", number(-0.01234), "-0.0123"},
		{"zero", number(0), "0"},
		{"a day", span(24 * time.Hour), "24h"},
		{"an hour and a half", span(90 * time.Minute), "1h30m"},
		{"minutes", span(5 * time.Minute), "5m"},
		{"seconds", span(90 * time.Second), "1m30s"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}
