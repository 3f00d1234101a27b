package analysis

import (
	"strings"
	"testing"
	"time"
)

// TestPreview tries a draft over the last 5 days of a patient with a plan
// (v1) and checks what each rule would have done, day by day, and what it
// says now, as saved (v2).
func TestPreview(t *testing.T) {
	f := newEvFixture(t, "p-1")
	f.savePlan("p-1", evEff1, nil, evSleepRule("sleep-low", 420))
	// Nights ending 10..20 Nov: 480 min each, but 300 on 16, 17 and 18 Nov.
	for d := 10; d <= 20; d++ {
		minutes := 480.0
		if d >= 16 && d <= 18 {
			minutes = 300
		}
		f.src.put("p-1", evSleep(evAt(d, 7), minutes))
	}
	// The watch was last heard on 2 Nov: older than anything read back.
	f.src.put("p-1", evHR(evAt(2, 12), 70))
	now := evAt(20, 12)
	since := evSleepRule("sleep-new", 420)
	since.MinDays, since.Since = 0, SinceChange // needs (7+1)/2 = 4 days since the change
	draft := Plan{Patient: "p-1", Effective: now, Rules: []Rule{
		evSleepRule("sleep-low", 420),
		since,
		{ID: "hr-silent", Kind: KindSilence, Severity: SeverityWarning, Metric: "heart_rate", For: Duration(24 * time.Hour)},
		{ID: "mrs-high", Kind: KindScore, Severity: SeverityCritical, Instrument: "mrs", Score: "total", Above: evF(15)},
	}}
	if err := draft.Validate(); err != nil {
		t.Fatal(err)
	}
	pv, err := Preview(f.ctx, evConfig(), f.reg, f.src, draft, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Days != 5 || !pv.From.Equal(evAt(15, 12)) || !pv.To.Equal(now) || len(pv.Rules) != 4 {
		t.Fatalf("preview = %d days %v..%v, %d rules", pv.Days, pv.From, pv.To, len(pv.Rules))
	}
	type tr struct {
		at       time.Time
		change   string
		sentence string
	}
	check := func(rp RulePreview, want ...tr) {
		t.Helper()
		if len(rp.Transitions) != len(want) {
			t.Errorf("%s: transitions %+v, want %d", rp.Rule, rp.Transitions, len(want))
			return
		}
		for i, w := range want {
			got := rp.Transitions[i]
			if !got.At.Equal(w.at) || got.Change != w.change || got.Sentence != w.sentence {
				t.Errorf("%s: transition %d = %v %s %q, want %v %s %q", rp.Rule, i, got.At, got.Change, got.Sentence, w.at, w.change, w.sentence)
			}
		}
	}
	// Judged at 12:00 on 15..20 Nov. The 7-day windows: 9..15 Nov has six
	// nights of 480; 16 Nov (480*6+300)/7 = 454.3; 17 Nov (480*5+600)/7 =
	// 428.6; 18, 19 and 20 Nov (480*4+900)/7 = 402.9 < 420: fired on 18 Nov.
	fired := "7-day mean sleep 6.7 h is below the plan's 7 h (this draft)"
	check(pv.Rules[0], tr{evAt(18, 12), ChangeFired, fired})
	// As if in force, since: change judges the same days (4 needed, 6 or 7 had).
	check(pv.Rules[1], tr{evAt(18, 12), ChangeFired, fired})
	// 2 Nov 12:00 to 15 Nov 12:00 = 312 h.
	check(pv.Rules[2], tr{evAt(15, 12), ChangeFired, "no heart rate data for 312 h, longer than the plan's 24 h (this draft)"})
	check(pv.Rules[3])
	if u := pv.Rules[3].Unjudged; len(u) != 1 || u[0].Days != 6 || !u[0].From.Equal(evAt(15, 0)) || !u[0].To.Equal(evAt(20, 0)) ||
		u[0].Reason != "no complete check-in yet" {
		t.Errorf("mrs-high unjudged = %+v, want 15..20 Nov, 6 days, no check-in", u)
	}
	for _, rp := range pv.Rules[:3] {
		if len(rp.Unjudged) != 0 {
			t.Errorf("%s unjudged = %+v, want none", rp.Rule, rp.Unjudged)
		}
	}
	if pv.Raised != 3 {
		t.Errorf("raised %d, want 3", pv.Raised)
	}

	// Now, as saved: v2 from 20 Nov 12:00.
	now0, now1, now2 := pv.Rules[0].Now, pv.Rules[1].Now, pv.Rules[2].Now
	if !now0.Judged || !now0.Holds || now0.PlanVersion != 2 ||
		now0.Sentence != "7-day mean sleep 6.7 h is below the plan's 7 h (plan v2, since 20 Nov)" || pv.Rules[0].JudgedFrom != nil {
		t.Errorf("sleep-low now = %+v", now0)
	}
	// Its first full day is 21 Nov; with a night on each it has 4 on 24 Nov.
	if now1.Judged || pv.Rules[1].JudgedFrom == nil || !pv.Rules[1].JudgedFrom.Equal(evAt(24, 0)) ||
		!strings.Contains(now1.Reason, "only 0 of the 4 days needed have enough data since plan v2 took effect") {
		t.Errorf("sleep-new now = %+v, judged from %v; want not judged until 24 Nov", now1, pv.Rules[1].JudgedFrom)
	}
	if !now2.Judged || !now2.Holds || now2.Value != 432 {
		t.Errorf("hr-silent now = %+v, want 432 h", now2)
	}
	want := "This plan would have raised 3 alerts in the last 5 days: hr-silent on 15 Nov, sleep-low on 18 Nov, sleep-new on 18 Nov." +
		" sleep-new cannot be judged until 24 Nov 00:00. mrs-high cannot be judged now: no complete check-in yet."
	if pv.Summary != want {
		t.Errorf("summary\n%s\nwant\n%s", pv.Summary, want)
	}

	// The draft is not saved.
	if vs, _ := f.reg.PlanVersions(f.ctx, "p-1"); len(vs) != 1 {
		t.Errorf("%d plan versions after a preview, want 1", len(vs))
	}
	for _, d := range []int{0, 91} {
		if _, err := Preview(f.ctx, evConfig(), f.reg, f.src, draft, d, now); err == nil {
			t.Errorf("a preview of %d days was not refused", d)
		}
	}
}

// TestPreviewNewPatient tries a first plan on a patient whose data begin
// within the days tried: the draft is tried from then on, not before.
func TestPreviewNewPatient(t *testing.T) {
	f := newEvFixture(t, "p-2")
	for d := 17; d <= 20; d++ {
		f.src.put("p-2", evSleep(evAt(d, 7), 300))
	}
	now := evAt(20, 12)
	draft := Plan{Patient: "p-2", Effective: now, Rules: []Rule{
		evSleepRule("sleep-low", 420),
		{ID: "hr-silent", Kind: KindSilence, Severity: SeverityWarning, Metric: "heart_rate", For: Duration(24 * time.Hour)},
	}}
	pv, err := Preview(f.ctx, evConfig(), f.reg, f.src, draft, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	// Tried from 17 Nov 07:00, moved back to whole days before now: 16 Nov
	// 12:00. On 15 Nov nothing was in force; on 16 Nov no night yet.
	sleep, silent := pv.Rules[0], pv.Rules[1]
	want := []Unjudged{
		{From: evAt(15, 0), To: evAt(15, 0), Days: 1, Reason: "before the patient's first plan or data"},
		{From: evAt(16, 0), To: evAt(16, 0), Days: 1, Reason: "only 0 of the 1 day needed has enough data (wear time)"},
	}
	if len(sleep.Unjudged) != 2 || sleep.Unjudged[0] != want[0] || sleep.Unjudged[1] != want[1] {
		t.Errorf("sleep-low unjudged %+v, want %+v", sleep.Unjudged, want)
	}
	if len(sleep.Transitions) != 1 || sleep.Transitions[0].Change != ChangeFired || !sleep.Transitions[0].At.Equal(evAt(17, 12)) {
		t.Errorf("sleep-low transitions %+v, want fired on 17 Nov", sleep.Transitions)
	}
	// No heart rate ever: counted from 16 Nov 12:00, 24 h on 17 Nov (not
	// more than 24), 48 h on 18 Nov.
	if len(silent.Transitions) != 1 || silent.Transitions[0].Change != ChangeFired || !silent.Transitions[0].At.Equal(evAt(18, 12)) ||
		silent.Transitions[0].Sentence != "no heart rate data for 48 h, longer than the plan's 24 h (this draft)" {
		t.Errorf("hr-silent transitions %+v, want fired on 18 Nov at 48 h", silent.Transitions)
	}
}
