package analysis

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests need Europe/London and America/New_York wherever they run
)

// The judge tests build series sample by sample, relative to one fixed
// "now", and compare each verdict with numbers worked out by hand: the
// arithmetic is in the comment beside every expected number.

var (
	jtLondon = jtZone("Europe/London")
	jtUTC    = time.UTC
	// jtNow is Friday 2026-11-20 15:00 in London, which keeps GMT (UTC+0)
	// from 25 October 2026 to 28 March 2027.
	jtNow = time.Date(2026, 11, 20, 15, 0, 0, 0, jtLondon)
	// jtLongAgo is the effective time of a plan v1 older than every window.
	jtLongAgo = time.Date(2026, 1, 1, 0, 0, 0, 0, jtLondon)
)

// jtToday is 2026-11-20 counted from 1970-01-01: 56 years of 365 days and
// 14 leap days (1972..2024) to 2026-01-01 = 20440 + 14 = 20454, then
// Jan..Oct = 31+28+31+30+31+30+31+31+30+31 = 304 days and 19 more.
const jtToday day = 20454 + 304 + 19 // 20777

func jtZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func jtF(v float64) *float64 { return &v }

func jtDays(n int) Duration { return Duration(time.Duration(n) * 24 * time.Hour) }

// jtSample is one sample: ago calendar days before now's day, at local hour
// h (8.5 is 08:30), of value v.
type jtSample struct {
	ago int
	h   float64
	v   float64
}

// jtAt is the local time h on the day ago days before now's day.
func jtAt(loc *time.Location, now time.Time, ago int, h float64) time.Time {
	y, m, d := now.In(loc).Date()
	minute := int(math.Round(h * 60))
	return time.Date(y, m, d-ago, minute/60, minute%60, 0, 0, loc)
}

// jtPut adds v at t as the pipeline does (state.go): the day and the
// minute of the day in the clock's zone.
func jtPut(s *series, clk clock, t time.Time, v float64) {
	local := t.In(clk.loc)
	s.add(clk.dayOf(t), t, local.Hour()*60+local.Minute(), v)
}

// jtBuild is a series of k keeping 64 days, holding the samples.
func jtBuild(clk clock, now time.Time, k seriesKey, samples ...jtSample) *series {
	s := newSeries(k, 64)
	for _, x := range samples {
		jtPut(s, clk, jtAt(clk.loc, now, x.ago, x.h), x.v)
	}
	return s
}

// jtDaily is one sample a day at hour h, the oldest first: vals[i] is
// len(vals)-1-i days ago, so the last value is today's.
func jtDaily(h float64, vals ...float64) []jtSample {
	out := make([]jtSample, len(vals))
	for i, v := range vals {
		out[i] = jtSample{ago: len(vals) - 1 - i, h: h, v: v}
	}
	return out
}

// jtHours is one sample of v in each hour from..to-1 of the day ago.
func jtHours(ago, from, to int, v float64) []jtSample {
	var out []jtSample
	for h := from; h < to; h++ {
		out = append(out, jtSample{ago, float64(h), v})
	}
	return out
}

func jtJoin(parts ...[]jtSample) []jtSample {
	var out []jtSample
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// jtEnv is London at jtNow with 10 wear hours, under plan v1 of long ago.
// testEnv is the env of plan version v, effective at eff, the first.
func testEnv(clk clock, now time.Time, minWear, v int, eff time.Time) env {
	return newEnv(clk, now, minWear, &Plan{Version: v, Effective: eff}, eff)
}

func jtEnv() env { return testEnv(clock{jtLondon}, jtNow, 10, 1, jtLongAgo) }

// jtEnvV is London at jtNow under plan version v effective at eff.
func jtEnvV(v int, eff time.Time) env { return testEnv(clock{jtLondon}, jtNow, 10, v, eff) }

// jtWant is the verdict expected. Every field is compared: a zero field
// expects a zero value. reason is a part of the reason, required when
// the rule is not judged.
type jtWant struct {
	judged, holds bool
	reason        string
	value, bound  float64
	side          string
	from, to      day
	days          int
	reference     float64
	forecast      bool
	forecastDays  float64
	slope         float64
}

// jtCheck compares got with w, floats within tol (1e-9 when 0).
func jtCheck(t *testing.T, got verdict, w jtWant, tol float64) {
	t.Helper()
	if tol == 0 {
		tol = 1e-9
	}
	if got.judged != w.judged {
		t.Fatalf("judged = %v (reason %q, value %v), want %v", got.judged, got.reason, got.value, w.judged)
	}
	switch {
	case !w.judged && w.reason == "":
		t.Fatal("test case error: a not-judged case needs a reason to look for")
	case !w.judged && !strings.Contains(got.reason, w.reason):
		t.Errorf("reason = %q, want it to contain %q", got.reason, w.reason)
	case w.judged && got.reason != "":
		t.Errorf("reason = %q on a judged verdict", got.reason)
	}
	if got.holds != w.holds {
		t.Errorf("holds = %v (value %v), want %v", got.holds, got.value, w.holds)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"value", got.value, w.value}, {"bound", got.bound, w.bound}, {"reference", got.reference, w.reference},
		{"forecastDays", got.forecastDays, w.forecastDays}, {"slope", got.slope, w.slope},
	} {
		if math.Abs(f.got-f.want) > tol || math.IsNaN(f.got) {
			t.Errorf("%s = %.12g, want %.12g (±%g)", f.name, f.got, f.want, tol)
		}
	}
	if got.side != w.side {
		t.Errorf("side = %q, want %q", got.side, w.side)
	}
	if got.from != w.from || got.to != w.to {
		t.Errorf("window = today%+d..today%+d, want today%+d..today%+d",
			got.from-jtToday, got.to-jtToday, w.from-jtToday, w.to-jtToday)
	}
	if got.days != w.days {
		t.Errorf("days = %d, want %d", got.days, w.days)
	}
	if got.forecast != w.forecast {
		t.Errorf("forecast = %v (in %v days, slope %v), want %v", got.forecast, got.forecastDays, got.slope, w.forecast)
	}
}

// jtCase is one rule judged on one series.
type jtCase struct {
	name string
	rule Rule
	s    *series
	env  env
	want jtWant
	tol  float64
}

func jtRun(t *testing.T, judge func(*Rule, *series, env) verdict, cases []jtCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.env
			if e.clk.loc == nil {
				e = jtEnv()
			}
			jtCheck(t, judge(&c.rule, c.s, e), c.want, c.tol)
		})
	}
}

var (
	jtSleepKey = seriesKey{"sleep", "total_min", ""}
	jtHRKey    = seriesKey{"heart_rate", "bpm", ""}
	jtStepsKey = seriesKey{"activity", "steps", ""}
	jtFlushKey = seriesKey{"symptoms", "hot_flushes", ""}
	jtMoodKey  = seriesKey{"symptoms", "depressive_mood", ""}
	jtHRVKey   = seriesKey{"sleep", "hrv_rmssd_ms", ""}
	jtMRSKey   = seriesKey{"symptoms", "total", "mrs"}
)

// jtSleepRule is DESIGN.md's sleep-short rule, changed by mod.
func jtSleepRule(mod func(*Rule)) Rule {
	r := Rule{ID: "sleep-short", Kind: KindThreshold, Metric: "sleep.total_min", PerDay: "sum",
		Over: jtDays(7), Aggregate: "mean", Below: jtF(420)}
	if mod != nil {
		mod(&r)
	}
	return r
}

func TestJudgeThresholdAggregates(t *testing.T) {
	// Nights (sleep records, by the morning they end) and naps: daily sums
	// today-6..today = 300+100, 410, 350+30, 420, 390, 400, 400
	// = 400, 410, 380, 420, 390, 400, 400. The 900 of today-7 is outside
	// the 7-day window.
	nights := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtSleepKey,
			jtSample{7, 7, 900},
			jtSample{6, 7, 300}, jtSample{6, 15, 100},
			jtSample{5, 7, 410},
			jtSample{4, 7, 350}, jtSample{4, 14, 30},
			jtSample{3, 7, 420}, jtSample{2, 7, 390}, jtSample{1, 7, 400}, jtSample{0, 7, 400})
	}
	// A gap: nothing on today-6; daily sums today-5..today = 480, 420, 390,
	// 200+250, 300, 480 = 480, 420, 390, 450, 300, 480 (6 days).
	gapped := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtSleepKey,
			jtSample{5, 7, 480}, jtSample{4, 7, 420}, jtSample{3, 7, 390},
			jtSample{2, 7, 200}, jtSample{2, 13, 250}, jtSample{1, 7, 300}, jtSample{0, 7, 480})
	}
	week := jtWant{judged: true, from: jtToday - 6, to: jtToday, days: 7}
	with := func(w jtWant, mod func(*jtWant)) jtWant { mod(&w); return w }
	jtRun(t, judgeThreshold, []jtCase{
		{name: "design example: per_day sum, 7-day mean below 420", rule: jtSleepRule(nil), s: nights(),
			// (400+410+380+420+390+400+400)/7 = 2800/7 = 400 < 420
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 400, 420, "below" })},
		{name: "min of daily sums", rule: jtSleepRule(func(r *Rule) { r.Aggregate = "min" }), s: nights(),
			// min(400,410,380,420,390,400,400) = 380 < 420
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 380, 420, "below" })},
		{name: "max of daily sums exactly at the bound does not hold", rule: jtSleepRule(func(r *Rule) { r.Aggregate = "max" }), s: nights(),
			// max = 420 (today-3); 420 < 420 is false
			want: with(week, func(w *jtWant) { w.value, w.bound, w.side = 420, 420, "below" })},
		{name: "sum of daily sums", rule: jtSleepRule(func(r *Rule) { r.Aggregate, r.Below, r.Above = "sum", nil, jtF(2700) }), s: nights(),
			// 400+410+380+420+390+400+400 = 2800 > 2700
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 2800, 2700, "above" })},
		{name: "count of daily values", rule: jtSleepRule(func(r *Rule) { r.Aggregate, r.Below = "count", jtF(8) }), s: nights(),
			// 7 judged days: 7 < 8
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 7, 8, "below" })},
		{name: "median of an odd count", rule: jtSleepRule(func(r *Rule) { r.Aggregate = "median" }), s: nights(),
			// sorted 380,390,400,400,400,410,420: the 4th = 400
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 400, 420, "below" })},
		{name: "sample mean without per_day", rule: jtSleepRule(func(r *Rule) { r.PerDay = "" }), s: nights(),
			// (300+100+410+350+30+420+390+400+400)/9 = 2800/9 = 311.11 (not the mean of daily means)
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 2800.0/9, 420, "below" })},
		{name: "sample count without per_day", rule: jtSleepRule(func(r *Rule) { r.PerDay, r.Aggregate, r.Below, r.Above = "", "count", nil, jtF(8) }), s: nights(),
			// 2+1+2+1+1+1+1 = 9 samples in the window > 8
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 9, 8, "above" })},
		{name: "sample min without per_day", rule: jtSleepRule(func(r *Rule) { r.PerDay, r.Aggregate, r.Below = "", "min", jtF(60) }), s: nights(),
			// the 30-minute nap of today-4 < 60 (the least daily sum is 380)
			want: with(week, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 30, 60, "below" })},
		{name: "sample max without per_day", rule: jtSleepRule(func(r *Rule) { r.PerDay, r.Aggregate = "", "max" }), s: nights(),
			// max sample 420 (today-3), the 900 of today-7 is outside: 420 < 420 is false
			want: with(week, func(w *jtWant) { w.value, w.bound, w.side = 420, 420, "below" })},
		{name: "gap: a missing day is left out, mean exactly at the bound", rule: jtSleepRule(nil), s: gapped(),
			// (480+420+390+450+300+480)/6 = 2520/6 = 420, not < 420 (a missing
			// day counted as 0 would give 2520/7 = 360)
			want: jtWant{judged: true, value: 420, bound: 420, side: "below", from: jtToday - 6, to: jtToday, days: 6}},
		{name: "median of an even count", rule: jtSleepRule(func(r *Rule) { r.Aggregate, r.Below, r.Above = "median", nil, jtF(430) }), s: gapped(),
			// sorted 300,390,420,450,480,480: (420+450)/2 = 435 > 430
			want: jtWant{judged: true, holds: true, value: 435, bound: 430, side: "above", from: jtToday - 6, to: jtToday, days: 6}},
	})
}

func TestJudgeThresholdSparseAndWear(t *testing.T) {
	sparse := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtSleepKey, jtSample{0, 7, 400}, jtSample{1, 7, 400}, jtSample{3, 7, 400})
	}
	fourNights := func(k seriesKey) *series {
		return jtBuild(clock{jtLondon}, jtNow, k, jtDaily(7, 400, 400, 400, 400)...)
	}
	// Heart rate: today 10 hours (5..14) of 110; today-1 9 hours of 60;
	// today-2 20 samples of 60 all in hour 8 (one hour); today-3 10 hours
	// (0..9) of 90.
	var oneHour []jtSample
	for i := range 20 {
		oneHour = append(oneHour, jtSample{2, 8 + float64(i*3)/60, 60})
	}
	hr := jtBuild(clock{jtLondon}, jtNow, jtHRKey,
		jtJoin(jtHours(0, 5, 15, 110), jtHours(1, 5, 14, 60), oneHour, jtHours(3, 0, 10, 90))...)
	hrRule := Rule{Kind: KindThreshold, Metric: "heart_rate.bpm", PerDay: "mean", Over: jtDays(7), Aggregate: "mean", Above: jtF(99), MinDays: 2}
	// Steps: today 10 hours of 100 (sum 1000), today-1 9 hours of 500
	// (4500), today-3 10 hours of 200 (2000).
	steps := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtStepsKey,
			jtJoin(jtHours(0, 5, 15, 100), jtHours(1, 5, 14, 500), jtHours(3, 0, 10, 200))...)
	}
	stepsRule := Rule{Kind: KindThreshold, Metric: "activity.steps", PerDay: "sum", Over: jtDays(7), Aggregate: "mean", Below: jtF(2000), MinDays: 2}
	jtRun(t, judgeThreshold, []jtCase{
		{name: "too few days: not judged, reason with the counts", rule: jtSleepRule(nil), s: sparse(),
			// need (7+1)/2 = 4 days, 3 have data
			want: jtWant{reason: "only 3 of the 4 days needed have enough data (wear time)", from: jtToday - 6, to: jtToday}},
		{name: "min_days given", rule: jtSleepRule(func(r *Rule) { r.MinDays = 5 }), s: fourNights(jtSleepKey),
			want: jtWant{reason: "only 4 of the 5 days needed", from: jtToday - 6, to: jtToday}},
		{name: "sleep: one record makes a judged day", rule: jtSleepRule(nil), s: fourNights(jtSleepKey),
			// 4 days of one record each, need 4: (400*4)/4 = 400 < 420
			want: jtWant{judged: true, holds: true, value: 400, bound: 420, side: "below", from: jtToday - 6, to: jtToday, days: 4}},
		{name: "heart rate: one sample is not a worn day", rule: Rule{Kind: KindThreshold, Metric: "heart_rate.bpm", Over: jtDays(7), Aggregate: "mean", Above: jtF(99)},
			s: fourNights(jtHRKey), want: jtWant{reason: "only 0 of the 4 days needed", from: jtToday - 6, to: jtToday}},
		{name: "heart rate: days below 10 wear hours left out", rule: hrRule, s: hr,
			// today (10 h) and today-3 (10 h) count; today-1 (9 h) and today-2 (1 h) do not:
			// (110+90)/2 = 100 > 99 (with them (110+60+60+90)/4 = 80)
			want: jtWant{judged: true, holds: true, value: 100, bound: 99, side: "above", from: jtToday - 6, to: jtToday, days: 2}},
		{name: "activity: days below 10 wear hours left out", rule: stepsRule, s: steps(),
			// (1000+2000)/2 = 1500 < 2000
			want: jtWant{judged: true, holds: true, value: 1500, bound: 2000, side: "below", from: jtToday - 6, to: jtToday, days: 2}},
		{name: "activity: 9 wear hours are enough when the clinic says so", rule: stepsRule, s: steps(),
			env: testEnv(clock{jtLondon}, jtNow, 9, 1, jtLongAgo),
			// (1000+4500+2000)/3 = 2500, not < 2000
			want: jtWant{judged: true, value: 2500, bound: 2000, side: "below", from: jtToday - 6, to: jtToday, days: 3}},
	})
}

func TestJudgeThresholdPlanChange(t *testing.T) {
	// One night a day; the days of the old plan (today-6..today-3) are 100,
	// the new plan's 400, 410, 420.
	nights := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtSleepKey, jtDaily(7, 100, 100, 100, 100, 400, 410, 420)...)
	}
	// v2 takes effect 3 days ago at 10:00 (2026-11-17 10:00): the first day
	// starting at or after it is 2026-11-18, today-2.
	v2 := jtEnvV(2, jtAt(jtLondon, jtNow, 3, 10))
	since := func(more func(*Rule)) Rule {
		return jtSleepRule(func(r *Rule) {
			r.Since = SinceChange
			if more != nil {
				more(r)
			}
		})
	}
	jtRun(t, judgeThreshold, []jtCase{
		{name: "by default the whole window, the old plan's days too, against the new bounds", rule: jtSleepRule(nil), s: nights(), env: v2,
			// (100+100+100+100+400+410+420)/7 = 1630/7
			want: jtWant{judged: true, holds: true, value: 1630.0 / 7, bound: 420, side: "below", from: jtToday - 6, to: jtToday, days: 7}},
		{name: "by default judged the day the new version takes effect", rule: jtSleepRule(func(r *Rule) { r.Below = jtF(200) }),
			s: nights(), env: jtEnvV(3, jtAt(jtLondon, jtNow, 0, 9)),
			// 1630/7 = 232.9 is not below the new 200
			want: jtWant{judged: true, value: 1630.0 / 7, bound: 200, side: "below", from: jtToday - 6, to: jtToday, days: 7}},
		{name: "since change: too few days since the change", rule: since(nil), s: nights(), env: v2,
			// today-2..today = 3 days, need (7+1)/2 = 4
			want: jtWant{reason: "only 3 of the 4 days needed have enough data since plan v2 took effect", from: jtToday - 2, to: jtToday}},
		{name: "since change: judged on the new plan's days only", rule: since(func(r *Rule) { r.MinDays = 3 }), s: nights(), env: v2,
			// (400+410+420)/3 = 410 < 420 (the 100s of the old plan are left out)
			want: jtWant{judged: true, holds: true, value: 410, bound: 420, side: "below", from: jtToday - 2, to: jtToday, days: 3}},
		{name: "since change: effective at local midnight, that day counts", rule: since(nil), s: nights(),
			env: jtEnvV(2, jtAt(jtLondon, jtNow, 3, 0)),
			// from today-3: (100+400+410+420)/4 = 1330/4 = 332.5, 4 days of the 4 needed
			want: jtWant{judged: true, holds: true, value: 332.5, bound: 420, side: "below", from: jtToday - 3, to: jtToday, days: 4}},
		{name: "since change: effective today, no day yet", rule: since(nil), s: nights(), env: jtEnvV(3, jtAt(jtLondon, jtNow, 0, 9)),
			// the first day from today 09:00 is tomorrow
			want: jtWant{reason: "only 0 of the 4 days needed have enough data since plan v3", from: jtToday + 1, to: jtToday}},
	})
}

func TestJudgeThresholdBothBounds(t *testing.T) {
	rule := jtSleepRule(func(r *Rule) { r.Over, r.Below, r.Above = jtDays(1), jtF(360), jtF(480) })
	one := func(v float64) *series { return jtBuild(clock{jtLondon}, jtNow, jtSleepKey, jtSample{0, 7, v}) }
	today := jtWant{judged: true, from: jtToday, to: jtToday, days: 1}
	with := func(mod func(*jtWant)) jtWant { w := today; mod(&w); return w }
	jtRun(t, judgeThreshold, []jtCase{
		{name: "above the upper", rule: rule, s: one(500),
			want: with(func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 500, 480, "above" })},
		{name: "below the lower", rule: rule, s: one(300),
			want: with(func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 300, 360, "below" })},
		{name: "between, nearer the lower", rule: rule, s: one(400),
			// 400-360 = 40 < 480-400 = 80
			want: with(func(w *jtWant) { w.value, w.bound, w.side = 400, 360, "below" })},
		{name: "between, nearer the upper", rule: rule, s: one(450),
			// 450-360 = 90 > 480-450 = 30
			want: with(func(w *jtWant) { w.value, w.bound, w.side = 450, 480, "above" })},
		{name: "exactly at the upper", rule: rule, s: one(480),
			want: with(func(w *jtWant) { w.value, w.bound, w.side = 480, 480, "above" })},
		{name: "exactly at the lower", rule: rule, s: one(360),
			want: with(func(w *jtWant) { w.value, w.bound, w.side = 360, 360, "below" })},
	})
}

// TestJudgeDaysAreLocalCalendarDays judges the same three samples around
// the end of British Summer Time (2026-10-25 02:00 BST becomes 01:00 GMT)
// with a London clock and a UTC clock.
func TestJudgeDaysAreLocalCalendarDays(t *testing.T) {
	now := time.Date(2026, 10, 26, 12, 0, 0, 0, jtLondon) // 12:00 GMT = 12:00Z
	const oct25, oct26 day = 20454 + 273 + 24, 20454 + 273 + 25
	instants := []struct {
		t time.Time
		v float64
	}{
		{time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC), 100}, // 00:30 BST on the 25th: the 24th in UTC
		{time.Date(2026, 10, 25, 23, 30, 0, 0, time.UTC), 200}, // 23:30 GMT on the 25th (a 25-hour day)
		{time.Date(2026, 10, 26, 6, 0, 0, 0, time.UTC), 400},
	}
	rule := jtSleepRule(func(r *Rule) { r.Over, r.Aggregate, r.Below, r.Above, r.MinDays = jtDays(2), "sum", nil, jtF(650), 2 })
	for _, c := range []struct {
		name string
		loc  *time.Location
		want jtWant
	}{
		// Oct 25 = 100+200 = 300, Oct 26 = 400: 300+400 = 700 > 650
		{"london", jtLondon, jtWant{judged: true, holds: true, value: 700, bound: 650, side: "above", from: oct25, to: oct26, days: 2}},
		// Oct 24 = 100 is outside; Oct 25 = 200, Oct 26 = 400: 600, not > 650
		{"utc", jtUTC, jtWant{judged: true, value: 600, bound: 650, side: "above", from: oct25, to: oct26, days: 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := clock{c.loc}
			s := newSeries(jtSleepKey, 8)
			for _, x := range instants {
				jtPut(s, clk, x.t, x.v)
			}
			jtCheck(t, judgeThreshold(&rule, s, testEnv(clk, now, 10, 1, jtLongAgo)), c.want, 0)
		})
	}
}

func TestJudgeForecast(t *testing.T) {
	// Daily sums of hot flushes today-6..today.
	rising := jtDaily(9, 2, 3, 4, 5, 6, 7, 8)  // mean 35/7 = 5, slope exactly 1/day, SE 0
	falling := jtDaily(9, 8, 7, 6, 5, 4, 3, 2) // mean 5, slope -1/day
	// today-5..today 4,6,4,6,4,6: x = 1..6 (mean 3.5), y mean 5,
	// Sxx = 2*(2.5²+1.5²+0.5²) = 17.5, Sxy = -2.5*4-1.5*6-0.5*4+0.5*6+1.5*4+2.5*6 = 3,
	// b = 3/17.5 = 0.1714, SSres = Syy - b*Sxy = 6 - 0.5143 = 5.4857,
	// SE = sqrt(5.4857/4/17.5) = 0.2799: |b| < 2*SE = 0.5599, so no forecast
	// (without that check (6-5)/0.1714 = 5.8 days would be within 7).
	noisy := jtDaily(9, 4, 6, 4, 6, 4, 6)
	rule := func(mod func(*Rule)) Rule {
		r := Rule{Kind: KindThreshold, Metric: "symptoms.hot_flushes", PerDay: "sum", Over: jtDays(7),
			Aggregate: "mean", Above: jtF(10), Forecast: jtDays(7)}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	build := func(samples []jtSample) *series { return jtBuild(clock{jtLondon}, jtNow, jtFlushKey, samples...) }
	week := func(w jtWant) jtWant { w.judged, w.from, w.to = true, jtToday-6, jtToday; return w }
	jtRun(t, judgeThreshold, []jtCase{
		{name: "rising, crosses within the horizon", rule: rule(nil), s: build(rising),
			// (10-5)/1 = 5 days <= 7
			want: week(jtWant{value: 5, bound: 10, side: "above", days: 7, forecast: true, forecastDays: 5, slope: 1})},
		{name: "rising, crosses at the horizon", rule: rule(func(r *Rule) { r.Above = jtF(12) }), s: build(rising),
			// (12-5)/1 = 7 days: within 7
			want: week(jtWant{value: 5, bound: 12, side: "above", days: 7, forecast: true, forecastDays: 7, slope: 1})},
		{name: "rising, crosses beyond the horizon", rule: rule(func(r *Rule) { r.Above = jtF(15) }), s: build(rising),
			// (15-5)/1 = 10 days > 7
			want: week(jtWant{value: 5, bound: 15, side: "above", days: 7, slope: 1})},
		{name: "falling towards the lower bound", rule: rule(func(r *Rule) { r.Above, r.Below = nil, jtF(3) }), s: build(falling),
			// (3-5)/(-1) = 2 days
			want: week(jtWant{value: 5, bound: 3, side: "below", days: 7, forecast: true, forecastDays: 2, slope: -1})},
		{name: "both bounds: the one the line reaches", rule: rule(func(r *Rule) { r.Below = jtF(1) }), s: build(rising),
			// towards 1: (1-5)/1 = -4 (behind); towards 10: 5 days. Without the
			// forecast the nearer bound would be 1 (5-1 = 4 < 10-5 = 5).
			want: week(jtWant{value: 5, bound: 10, side: "above", days: 7, forecast: true, forecastDays: 5, slope: 1})},
		{name: "noise: slope within twice its standard error", rule: rule(func(r *Rule) { r.Above = jtF(6) }), s: build(noisy),
			// (4+6+4+6+4+6)/6 = 5
			want: week(jtWant{value: 5, bound: 6, side: "above", days: 6})},
		{name: "already holding: no forecast", rule: rule(func(r *Rule) { r.Above = jtF(4) }), s: build(rising),
			want: week(jtWant{holds: true, value: 5, bound: 4, side: "above", days: 7})},
		{name: "sum: the window's sum moves by slope times its days", rule: rule(func(r *Rule) { r.Aggregate, r.Above = "sum", jtF(50) }), s: build(rising),
			// sum 2+..+8 = 35, rate 1*7 = 7/day: (50-35)/7 = 15/7 = 2.14 days
			want: week(jtWant{value: 35, bound: 50, side: "above", days: 7, forecast: true, forecastDays: 15.0 / 7, slope: 1})},
		{name: "sum: beyond the horizon", rule: rule(func(r *Rule) { r.Aggregate, r.Above = "sum", jtF(100) }), s: build(rising),
			// (100-35)/7 = 65/7 = 9.3 days > 7
			want: week(jtWant{value: 35, bound: 100, side: "above", days: 7, slope: 1})},
		{name: "fewer than 3 days: no forecast", rule: rule(func(r *Rule) { r.MinDays = 1 }), s: build(jtDaily(9, 2, 3)),
			// (2+3)/2 = 2.5; 2 days < 3
			want: week(jtWant{value: 2.5, bound: 10, side: "above", days: 2})},
	})
}

func TestJudgeTrend(t *testing.T) {
	rule := func(mod func(*Rule)) Rule {
		r := Rule{Kind: KindTrend, Metric: "symptoms.depressive_mood", Over: jtDays(14), SlopeAbove: jtF(0.1)}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	build := func(samples ...jtSample) *series { return jtBuild(clock{jtLondon}, jtNow, jtMoodKey, samples...) }
	var rising, alternating []jtSample
	for i := range 10 { // today-9..today: 1, 1.2, ..., 2.8
		rising = append(rising, jtSample{9 - i, 9, 1 + 0.2*float64(i)})
	}
	for i := range 14 { // today-13..today: 3, 5, 3, 5, ...
		alternating = append(alternating, jtSample{13 - i, 9, float64(3 + 2*(i%2))})
	}
	fortnight := func(w jtWant) jtWant { w.judged, w.from, w.to = true, jtToday-13, jtToday; return w }
	jtRun(t, judgeTrend, []jtCase{
		{name: "flat", rule: rule(nil), s: build(jtDaily(9, 2, 2, 2, 2, 2, 2, 2)...),
			want: fortnight(jtWant{value: 0, bound: 0.1, side: "above", days: 7})},
		{name: "rising 0.2 a day", rule: rule(nil), s: build(rising...), tol: 1e-6, // float32 storage of 1.2, 1.4, ...
			want: fortnight(jtWant{holds: true, value: 0.2, slope: 0.2, bound: 0.1, side: "above", days: 10})},
		{name: "rising 0.2 a day, exactly", rule: rule(func(r *Rule) { r.MinDays = 3 }),
			// x = -10, -5, 0, y = 0, 1, 2: Sxy = (-5)(-1)+0+5*1 = 10, Sxx = 25+0+25 = 50: 10/50 = 0.2
			s:    build(jtSample{10, 9, 0}, jtSample{5, 9, 1}, jtSample{0, 9, 2}),
			want: fortnight(jtWant{holds: true, value: 0.2, slope: 0.2, bound: 0.1, side: "above", days: 3})},
		{name: "slope per day, not per judged day", rule: rule(func(r *Rule) { r.MinDays = 3 }),
			// days -4, -2, 0 with 1, 2, 3: 0.5 a day (1 a sample)
			s:    build(jtSample{4, 9, 1}, jtSample{2, 9, 2}, jtSample{0, 9, 3}),
			want: fortnight(jtWant{holds: true, value: 0.5, slope: 0.5, bound: 0.1, side: "above", days: 3})},
		{name: "falling", rule: rule(func(r *Rule) { r.SlopeAbove, r.SlopeBelow = nil, jtF(-0.25) }),
			s:    build(jtDaily(9, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5)...),
			want: fortnight(jtWant{holds: true, value: -0.5, slope: -0.5, bound: -0.25, side: "below", days: 8})},
		{name: "noisy but flat", rule: rule(nil), s: build(alternating...),
			// x = 0..13: Sxx = 2*(0.5²+1.5²+...+6.5²) = 227.5; each pair (3, 5)
			// adds -(x-6.5)+(x+1-6.5) = 1 to Sxy = 7: 7/227.5 = 0.0308 < 0.1
			want: fortnight(jtWant{value: 7 / 227.5, slope: 7 / 227.5, bound: 0.1, side: "above", days: 14})},
		{name: "days with two check-ins use their mean", rule: rule(func(r *Rule) { r.MinDays = 3 }),
			// daily means 1, (1+3)/2 = 2, 3 on days -2, -1, 0: slope 1
			s:    build(jtSample{2, 9, 1}, jtSample{1, 9, 1}, jtSample{1, 12, 3}, jtSample{0, 9, 3}),
			want: fortnight(jtWant{holds: true, value: 1, slope: 1, bound: 0.1, side: "above", days: 3})},
		{name: "half the window by default", rule: rule(nil), s: build(jtDaily(9, 1, 2, 3, 4, 5, 6)...),
			// need 14/2 = 7, 6 judged
			want: jtWant{reason: "only 6 of the 7 days needed", from: jtToday - 13, to: jtToday}},
		{name: "at least 3 days", rule: rule(func(r *Rule) { r.Over = jtDays(4) }), s: build(jtDaily(9, 1, 2)...),
			// (4+1)/2 = 2, at least 3
			want: jtWant{reason: "only 2 of the 3 days needed", from: jtToday - 3, to: jtToday}},
		{name: "across a plan change by default", rule: rule(nil), s: build(jtDaily(9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)...),
			// 1..14 over the 14 days, two weeks of the old plan's: slope 1
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 3, 10)),
			want: fortnight(jtWant{holds: true, value: 1, slope: 1, bound: 0.1, side: "above", days: 14})},
		{name: "since change: cut by a plan change", rule: rule(func(r *Rule) { r.Since = SinceChange }),
			s:    build(jtDaily(9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)...),
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 3, 10)),
			want: jtWant{reason: "only 3 of the 7 days needed have enough data since plan v2", from: jtToday - 2, to: jtToday}},
	})
}

func TestJudgeBaseline(t *testing.T) {
	rule := Rule{Kind: KindBaseline, Metric: "sleep.hrv_rmssd_ms", Baseline: jtDays(28), Recent: jtDays(3), ZBelow: jtF(-2)}
	since := rule
	since.Since = SinceChange
	// The baseline is today-30..today-2-1 = today-3: 16 days alternating
	// 40, 50 (today-3..today-18) and a 45 on today-19: mean (8*40+8*50+45)/17
	// = 765/17 = 45, squares 16*25 = 400, sample sd sqrt(400/16) = 5. The
	// 1000 of today-31 is outside.
	history := func(recent ...jtSample) *series {
		samples := []jtSample{{31, 7, 1000}, {19, 7, 45}}
		for i := range 16 {
			samples = append(samples, jtSample{3 + i, 7, float64(40 + 10*(i%2))})
		}
		return jtBuild(clock{jtLondon}, jtNow, jtHRVKey, append(samples, recent...)...)
	}
	recent := []jtSample{{2, 7, 34}, {1, 7, 30}, {1, 8, 40}, {0, 7, 33}} // daily means 34, 35, 33
	threeDays := jtWant{judged: true, from: jtToday - 2, to: jtToday, days: 3, reference: 45, bound: -2, side: "below"}
	with := func(w jtWant, mod func(*jtWant)) jtWant { mod(&w); return w }
	var short, flat []jtSample
	for i := range 13 {
		short = append(short, jtSample{3 + i, 7, float64(40 + 10*(i%2))})
	}
	for i := range 14 {
		flat = append(flat, jtSample{3 + i, 7, 45})
	}
	jtRun(t, judgeBaseline, []jtCase{
		{name: "recent mean well below the baseline", rule: rule, s: history(recent...),
			// recent (34+35+33)/3 = 34: z = (34-45)/5 = -2.2 < -2
			want: with(threeDays, func(w *jtWant) { w.holds, w.value = true, -2.2 })},
		{name: "exactly at the bound", rule: rule, s: history(jtSample{2, 7, 36}, jtSample{1, 7, 35}, jtSample{0, 7, 34}),
			// (36+35+34)/3 = 35: z = (35-45)/5 = -2, not < -2
			want: with(threeDays, func(w *jtWant) { w.value = -2 })},
		{name: "too little history", rule: rule, s: jtBuild(clock{jtLondon}, jtNow, jtHRVKey, append(short, recent...)...),
			// need (28+1)/2 = 14 baseline days, 13 have data
			want: jtWant{reason: "the 28-day baseline has only 13 of the 14 days needed", from: jtToday - 2, to: jtToday}},
		{name: "a baseline that does not vary", rule: rule, s: jtBuild(clock{jtLondon}, jtNow, jtHRVKey, append(flat, recent...)...),
			want: jtWant{reason: "does not vary", from: jtToday - 2, to: jtToday}},
		{name: "no recent day", rule: rule, s: history(),
			want: jtWant{reason: "only 0 of the 1 day needed has enough data (wear time)", from: jtToday - 2, to: jtToday}},
		{name: "by default the recent window spans a plan change",
			rule: rule, s: history(jtSample{2, 7, 100}, jtSample{1, 7, 100}, jtSample{0, 7, 40}),
			// (100+100+40)/3 = 80: z = (80-45)/5 = 7, not below -2
			env:  jtEnvV(3, jtAt(jtLondon, jtNow, 1, 10)),
			want: jtWant{judged: true, value: 7, reference: 45, bound: -2, side: "below", from: jtToday - 2, to: jtToday, days: 3}},
		{name: "since change: recent window cut by a plan change, the baseline is not",
			rule: since, s: history(jtSample{2, 7, 100}, jtSample{1, 7, 100}, jtSample{0, 7, 40}),
			// v3 from yesterday 10:00: recent = today only = 40, z = (40-45)/5 = -1
			// (uncut (100+100+40)/3 = 80 would give z = 7); the baseline still
			// has its 17 days of the old plan
			env:  jtEnvV(3, jtAt(jtLondon, jtNow, 1, 10)),
			want: jtWant{judged: true, value: -1, reference: 45, bound: -2, side: "below", from: jtToday, to: jtToday, days: 1}},
		{name: "since change: no recent day since the plan change", rule: since, s: history(recent...),
			env:  jtEnvV(3, jtAt(jtLondon, jtNow, 0, 10)),
			want: jtWant{reason: "only 0 of the 1 day needed has enough data since plan v3", from: jtToday + 1, to: jtToday}},
	})
}

func TestJudgeSilence(t *testing.T) {
	rule := Rule{Kind: KindSilence, Metric: "heart_rate", For: Duration(24 * time.Hour)}
	key := seriesKey{"heart_rate", "", ""}
	build := func(samples ...jtSample) *series { return jtBuild(clock{jtLondon}, jtNow, key, samples...) }
	quiet := func(holds bool, hours float64) jtWant {
		return jtWant{judged: true, holds: holds, value: hours, bound: 24, side: "above"}
	}
	octNow := time.Date(2026, 10, 26, 0, 30, 0, 0, jtLondon) // 00:30 GMT
	octSeries := newSeries(key, 8)
	jtPut(octSeries, clock{jtLondon}, time.Date(2026, 10, 25, 0, 30, 0, 0, jtLondon), 70) // 00:30 BST = Oct 24 23:30Z
	jtRun(t, judgeSilence, []jtCase{
		{name: "26 hours", rule: rule, s: build(jtSample{3, 9, 60}, jtSample{1, 13, 60}),
			// yesterday 13:00 to today 15:00 = 26 h > 24
			want: quiet(true, 26)},
		{name: "26 hours 15 minutes", rule: rule, s: build(jtSample{1, 12.75, 60}),
			want: quiet(true, 26.25)},
		{name: "23 hours", rule: rule, s: build(jtSample{1, 16, 60}),
			want: quiet(false, 23)},
		{name: "exactly 24 hours does not exceed", rule: rule, s: build(jtSample{1, 15, 60}),
			want: quiet(false, 24)},
		{name: "no data ever: from the effective time", rule: rule, s: newSeries(key, 8),
			env: jtEnvV(2, jtNow.Add(-30*time.Hour)), want: quiet(true, 30)},
		{name: "no series at all", rule: rule, s: nil,
			env: jtEnvV(2, jtNow.Add(-20*time.Hour)), want: quiet(false, 20)},
		{name: "data older than the plan: from the data, not the plan", rule: rule, s: build(jtSample{5, 9, 60}),
			// 5 days ago 09:00 to today 15:00 = 5*24 + 6 h
			env: jtEnvV(2, jtNow.Add(-10*time.Hour)), want: quiet(true, 126)},
		{name: "no data ever: from the first version's effective time", rule: rule, s: newSeries(key, 8),
			env:  newEnv(clock{jtLondon}, jtNow, 10, &Plan{Version: 2, Effective: jtNow.Add(-10 * time.Hour)}, jtNow.Add(-40*time.Hour)),
			want: quiet(true, 40)},
		{name: "elapsed hours across the end of summer time", rule: rule, s: octSeries,
			// Oct 25 00:30 BST (23:30Z) to Oct 26 00:30 GMT (00:30Z): 25 h, though
			// the wall clock moved 24 h
			env: testEnv(clock{jtLondon}, octNow, 10, 1, jtLongAgo), want: quiet(true, 25)},
	})
}

func TestJudgeAdherence(t *testing.T) {
	london := func(mo time.Month, d int, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, jtLondon) }
	utc := func(mo time.Month, d int, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, time.UTC) }
	dailyLogs := func(h, m int, from, to int, skip ...int) []time.Time {
		var out []time.Time
	days:
		for d := from; d <= to; d++ {
			for _, s := range skip {
				if d == s {
					continue days
				}
			}
			out = append(out, london(time.November, d, h, m))
		}
		return out
	}
	shares := func(holds bool, taken, due int, below float64) jtWant {
		return jtWant{judged: true, holds: holds, value: float64(taken) / float64(due), bound: below, side: "below",
			days: due, reference: float64(taken)}
	}
	for _, c := range []struct {
		name     string
		schedule string
		over     int // days
		below    float64
		now      time.Time // jtNow when zero
		loc      *time.Location
		eff      time.Time
		logs     []time.Time
		want     jtWant
	}{
		{name: "daily, 3 of 14 missed", schedule: "daily", over: 14, below: 0.8,
			eff: london(time.October, 1, 2, 0), logs: dailyLogs(2, 30, 6, 20, 10, 14, 18),
			// from = now-14d = Nov 6 15:00; a dose is counted once t+12h <= now, t <= Nov 20
			// 03:00: 02:00 on Nov 7..Nov 20 = 14 doses (Nov 6 02:00 is before from).
			// Logged 02:30 every day but Nov 10, 14, 18: 11/14 = 0.786 < 0.8
			want: shares(true, 11, 14, 0.8)},
		{name: "daily: today's dose is not late yet", schedule: "daily", over: 14, below: 0.8,
			eff: london(time.October, 1, 8, 0), logs: dailyLogs(8, 0, 7, 19),
			// t <= now-12h = Nov 20 03:00: 08:00 on Nov 7..Nov 19 = 13 doses (today's
			// 08:00 dose, unlogged, has until 20:00): 13/13 = 1
			want: shares(false, 13, 13, 0.8)},
		{name: "early and late within half an interval", schedule: "daily", over: 14, below: 0.8,
			eff: london(time.November, 17, 8, 0),
			// from = effective: doses Nov 17, 18, 19 08:00 (Nov 20's not counted yet).
			// Nov 16 20:30 is 11.5 h early for Nov 17; Nov 18 19:30 11.5 h late for
			// Nov 18; Nov 19 20:30 is 12.5 h late, outside Nov 19's [-12 h, +12 h):
			// 2/3 = 0.667 < 0.8
			logs: []time.Time{london(time.November, 16, 20, 30), london(time.November, 18, 19, 30), london(time.November, 19, 20, 30)},
			want: shares(true, 2, 3, 0.8)},
		{name: "twice weekly", schedule: "twice_weekly", over: 14, below: 0.8,
			eff: london(time.November, 6, 9, 0),
			// every 84 h from Nov 6 09:00; from = now-14d = Nov 6 15:00; counted
			// while t <= now-42h = Nov 18 21:00: Nov 9 21:00, Nov 13 09:00, Nov 16
			// 21:00 = 3. Logged Nov 6 09:10 (for the dose before from), Nov 10 08:00
			// (+11 h) and Nov 13 09:00; Nov 16 missed: 2/3
			logs: []time.Time{london(time.November, 6, 9, 10), london(time.November, 10, 8, 0), london(time.November, 13, 9, 0)},
			want: shares(true, 2, 3, 0.8)},
		{name: "pellet every 3 months, none due yet", schedule: "every_3_months", over: 90, below: 0.8,
			eff: london(time.November, 1, 10, 0), logs: []time.Time{london(time.November, 1, 10, 5)},
			// the Nov 1 dose is counted from Nov 1 + 45 days = Dec 16
			want: jtWant{reason: "no scheduled dose of testosterone is due yet"}},
		{name: "pellet every 3 months, two due", schedule: "every_3_months", over: 180, below: 0.8,
			eff: london(time.July, 1, 10, 0), logs: []time.Time{london(time.July, 1, 11, 0)},
			// from = effective Jul 1; counted while t <= now-45d = Oct 6 15:00Z:
			// Jul 1 and Oct 1 10:00; only Jul 1 logged: 1/2
			want: shares(true, 1, 2, 0.8)},
		{name: "one log cannot count for two doses (monthly)", schedule: "every_1_months", over: 90, below: 0.8,
			now: utc(time.April, 1, 12, 0), loc: time.UTC, eff: utc(time.January, 15, 9, 0),
			// half interval 15 days; doses Jan 15, Feb 15, Mar 15 09:00 (all <= Mar 17
			// 12:00). Feb 15's window [Jan 31, Mar 2) and Mar 15's [Feb 28, Mar 30)
			// overlap; the Mar 1 log counts once: 2/3
			logs: []time.Time{utc(time.January, 15, 10, 0), utc(time.March, 1, 9, 0)},
			want: shares(true, 2, 3, 0.8)},
		{name: "one log cannot count for two doses (daily, start of summer time)", schedule: "daily", over: 14, below: 0.8,
			now: london(time.March, 30, 12, 0), eff: london(time.March, 27, 8, 0),
			// 08:00 local on Mar 27 (08:00Z), 28 (08:00Z), 29 (BST, 07:00Z); Mar 30's
			// is not due till 20:00. Windows of Mar 28 [Mar 27 20:00Z, Mar 28 20:00Z)
			// and Mar 29 [Mar 28 19:00Z, ...) overlap; the 19:30Z log counts once: 2/3
			logs: []time.Time{utc(time.March, 27, 8, 0), utc(time.March, 28, 19, 30)},
			want: shares(true, 2, 3, 0.8)},
	} {
		t.Run(c.name, func(t *testing.T) {
			sched, err := ParseSchedule(c.schedule)
			if err != nil {
				t.Fatal(err)
			}
			now, loc := c.now, c.loc
			if now.IsZero() {
				now = jtNow
			}
			if loc == nil {
				loc = jtLondon
			}
			logged := make([]int64, len(c.logs))
			for i, l := range c.logs {
				logged[i] = l.Unix()
			}
			rule := Rule{Kind: KindAdherence, Medication: "testosterone", Over: jtDays(c.over), Below: jtF(c.below)}
			plan := &Plan{Version: 2, Effective: c.eff, Regimen: []Dose{{Medication: "testosterone", Schedule: sched}}}
			jtCheck(t, judgeAdherence(&rule, []*Plan{plan}, logged, testEnv(clock{loc}, now, 10, 2, c.eff)), c.want, 0)
		})
	}
}

func TestJudgeScore(t *testing.T) {
	rule := func(mod func(*Rule)) Rule {
		r := Rule{Kind: KindScore, Instrument: "mrs", Score: "total"}
		mod(&r)
		return r
	}
	// Check-ins: 10 three days ago; today 18 at 11:00, then a 20 of 08:00
	// that arrives late: the latest check-in is the 11:00 one.
	latest := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtMRSKey, jtSample{3, 9, 10}, jtSample{0, 11, 18}, jtSample{0, 8, 20})
	}
	// 30 eight days ago (outside a week), 10, 14, and today 12 and 18.
	week := func() *series {
		return jtBuild(clock{jtLondon}, jtNow, jtMRSKey,
			jtSample{8, 9, 30}, jtSample{5, 9, 10}, jtSample{2, 9, 14}, jtSample{0, 8, 12}, jtSample{0, 11, 18})
	}
	todayOnly := jtWant{judged: true, from: jtToday, to: jtToday, days: 1}
	with := func(w jtWant, mod func(*jtWant)) jtWant { mod(&w); return w }
	jtRun(t, judgeScore, []jtCase{
		{name: "severe band", rule: rule(func(r *Rule) { r.Band = "severe" }), s: latest(),
			// MRS total severe is 17+: 18 >= 17
			want: with(todayOnly, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 18, 17, "band" })},
		{name: "the lowest score of the band", rule: rule(func(r *Rule) { r.Band = "severe" }),
			s: jtBuild(clock{jtLondon}, jtNow, jtMRSKey, jtSample{0, 9, 17}),
			// 17 is severe (17+)
			want: with(todayOnly, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 17, 17, "band" })},
		{name: "just below the band", rule: rule(func(r *Rule) { r.Band = "severe" }),
			s: jtBuild(clock{jtLondon}, jtNow, jtMRSKey, jtSample{0, 9, 16}),
			// 16 is moderate (9-16)
			want: with(todayOnly, func(w *jtWant) { w.value, w.bound, w.side = 16, 17, "band" })},
		{name: "a worse band than asked holds", rule: rule(func(r *Rule) { r.Band = "moderate" }), s: latest(),
			// moderate is 9+: 18 >= 9
			want: with(todayOnly, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 18, 9, "band" })},
		{name: "above 20", rule: rule(func(r *Rule) { r.Above = jtF(20) }), s: latest(),
			// 18 > 20 is false (the late 20 of 08:00 is not the latest)
			want: with(todayOnly, func(w *jtWant) { w.value, w.bound, w.side = 18, 20, "above" })},
		{name: "design: above 16", rule: rule(func(r *Rule) { r.Above = jtF(16) }), s: latest(),
			want: with(todayOnly, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 18, 16, "above" })},
		{name: "latest check-in older than the plan: judged by default", rule: rule(func(r *Rule) { r.Band = "severe" }), s: latest(),
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 0, 12)),
			want: with(todayOnly, func(w *jtWant) { w.holds, w.value, w.bound, w.side = true, 18, 17, "band" })},
		{name: "since change: latest check-in older than the plan", rule: rule(func(r *Rule) { r.Band, r.Since = "severe", SinceChange }), s: latest(),
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 0, 12)),
			want: jtWant{reason: "no complete check-in since plan v2 took effect"}},
		{name: "no check-in at all", rule: rule(func(r *Rule) { r.Band = "severe" }), s: nil,
			want: jtWant{reason: "no complete check-in yet"}},
		{name: "mean over a week", rule: rule(func(r *Rule) { r.Over, r.Above = jtDays(7), jtF(13) }), s: week(),
			// (10+14+12+18)/4 = 54/4 = 13.5 > 13, on 3 days
			want: jtWant{judged: true, holds: true, value: 13.5, bound: 13, side: "above", from: jtToday - 6, to: jtToday, days: 3}},
		{name: "mean over a week across a plan change", rule: rule(func(r *Rule) { r.Over, r.Above = jtDays(7), jtF(13) }), s: week(),
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 1, 10)),
			want: jtWant{judged: true, holds: true, value: 13.5, bound: 13, side: "above", from: jtToday - 6, to: jtToday, days: 3}},
		{name: "since change: mean over a week, cut by the plan", rule: rule(func(r *Rule) { r.Over, r.Above, r.Since = jtDays(7), jtF(13), SinceChange }), s: week(),
			// v2 from yesterday 10:00: today only, (12+18)/2 = 15
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 1, 10)),
			want: jtWant{judged: true, holds: true, value: 15, bound: 13, side: "above", from: jtToday, to: jtToday, days: 1}},
		{name: "since change: mean over a week, nothing since the plan", rule: rule(func(r *Rule) { r.Over, r.Above, r.Since = jtDays(7), jtF(13), SinceChange }), s: week(),
			env:  jtEnvV(2, jtAt(jtLondon, jtNow, 0, 12)),
			want: jtWant{reason: "no check-in since plan v2 took effect", from: jtToday + 1, to: jtToday}},
		{name: "mean over two days, none", rule: rule(func(r *Rule) { r.Over, r.Above = jtDays(2), jtF(13) }),
			s:    jtBuild(clock{jtLondon}, jtNow, jtMRSKey, jtSample{5, 9, 10}),
			want: jtWant{reason: "no check-in in the last 2 days", from: jtToday - 1, to: jtToday}},
	})
}

func TestJudgeSlope(t *testing.T) {
	for _, c := range []struct {
		name  string
		days  []day
		vals  []float64
		b, se float64
	}{
		{"exact line", []day{1, 2, 3, 4}, []float64{2, 4, 6, 8}, 2, 0},
		// x̄ = 1, ȳ = 2, Sxx = 2, Sxy = (-1)(-1)+0+(1)(0) = 1: b = 0.5; line
		// 1.5, 2, 2.5, residuals -0.5, 1, -0.5, SS 1.5: SE = sqrt(1.5/1/2)
		{"three points", []day{0, 1, 2}, []float64{1, 3, 2}, 0.5, math.Sqrt(0.75)},
		// days 20770, 20772, 20776 (x̄ = 20772.666…) with 1, 2, 4: the same as
		// x = 0, 2, 6 (x̄ = 8/3): Sxx = 64/9+4/9+100/9 = 168/9,
		// Sxy = (-8/3)(-4/3)+(-2/3)(-1/3)+(10/3)(5/3) = (32+2+50)/9 = 84/9: b = 0.5;
		// line ȳ + b(x-x̄) = 7/3 + (x-8/3)/2: 1, 2, 4 exactly: SE 0
		{"gaps on real day numbers", []day{20770, 20772, 20776}, []float64{1, 2, 4}, 0.5, 0},
		{"two points: no SE", []day{3, 5}, []float64{1, 2}, 0.5, 0},
		{"one point", []day{3}, []float64{7}, 0, 0},
		{"one day twice", []day{3, 3}, []float64{1, 2}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, se := slope(c.days, c.vals)
			if math.Abs(b-c.b) > 1e-9 || math.Abs(se-c.se) > 1e-9 {
				t.Errorf("slope = %v ± %v, want %v ± %v", b, se, c.b, c.se)
			}
		})
	}
}

func TestJudgeMeanSD(t *testing.T) {
	for _, c := range []struct {
		vals     []float64
		mean, sd float64
	}{
		// mean 40/8 = 5; squares 9+1+1+1+0+0+4+16 = 32: sqrt(32/7)
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7)},
		// mean 45; squares 25+25 = 50: sqrt(50/1)
		{[]float64{40, 50}, 45, math.Sqrt(50)},
		{[]float64{7}, 7, 0},
		{[]float64{3, 3, 3}, 3, 0},
	} {
		mean, sd := meanSD(c.vals)
		if math.Abs(mean-c.mean) > 1e-9 || math.Abs(sd-c.sd) > 1e-9 {
			t.Errorf("meanSD(%v) = %v, %v; want %v, %v", c.vals, mean, sd, c.mean, c.sd)
		}
	}
}

func TestJudgeAggregate(t *testing.T) {
	odd, even := []float64{3, 1, 2}, []float64{4, 1, 3, 2}
	for _, c := range []struct {
		how  string
		vals []float64
		want float64
	}{
		{"min", odd, 1}, {"max", odd, 3}, {"sum", odd, 6}, {"count", odd, 3},
		{"mean", odd, 2},   // 6/3
		{"", even, 2.5},    // 10/4: mean by default
		{"median", odd, 2}, // sorted 1, 2, 3
		{"median", even, 2.5},
		{"sum", even, 10},
	} {
		if got := aggregate(c.how, c.vals); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("aggregate(%q, %v) = %v, want %v", c.how, c.vals, got, c.want)
		}
	}
	if odd[0] != 3 || even[0] != 4 {
		t.Errorf("median sorted the caller's values: %v %v", odd, even)
	}
}

func TestJudgeStatsAndSeries(t *testing.T) {
	var st stats
	for _, x := range []struct {
		v      float64
		minute int
	}{{5, 600}, {2, 61}, {9, 1439}, {4, 700}} {
		st.add(x.v, x.minute)
	}
	// sum 20, count 4, min 2, max 9, last the 23:59 one (9), hours 1, 10, 11, 23
	for how, want := range map[string]float64{"sum": 20, "count": 4, "min": 2, "max": 9, "last": 9, "mean": 5} {
		if got := st.perDay(how); got != want {
			t.Errorf("perDay(%q) = %v, want %v", how, got, want)
		}
	}
	if st.wearHours() != 4 {
		t.Errorf("wearHours = %d, want 4", st.wearHours())
	}

	at := func(d day) time.Time { return time.Unix(int64(d)*86400+3600, 0) }
	s := newSeries(jtSleepKey, 3)
	for _, d := range []day{10, 11, 12, 14} {
		s.add(d, at(d), 60, float64(d))
	}
	s.add(11, at(11).Add(time.Minute), 61, 100) // older than the 3 days kept (12..14): dropped
	s.add(12, at(12), 60, 100)                  // the same time again (a message delivered twice): dropped
	for d, want := range map[day]float64{10: -1, 11: -1, 12: 12, 13: -1, 14: 14} {
		got := s.at(d)
		switch {
		case want < 0 && got != nil:
			t.Errorf("day %d: %+v, want none", d, *got)
		case want >= 0 && (got == nil || got.sum != float32(want) || got.count != 1):
			t.Errorf("day %d: %+v, want one sample of %v", d, got, want)
		}
	}
	s.add(30, at(30), 60, 3) // far ahead: every kept day is cleared
	if s.at(12) != nil || s.at(14) != nil || s.at(30) == nil || s.newest != at(30).Unix() {
		t.Errorf("after a jump: day 12 %v, 14 %v, 30 %v, newest %d", s.at(12), s.at(14), s.at(30), s.newest)
	}
}

func TestJudgeScheduleDue(t *testing.T) {
	london := func(mo time.Month, d, h int) time.Time { return time.Date(2026, mo, d, h, 0, 0, 0, jtLondon) }
	for _, c := range []struct {
		name             string
		schedule         string
		anchor, from, to time.Time
		want             []time.Time
	}{
		{"daily, to is exclusive", "daily", london(time.November, 1, 8), london(time.November, 3, 0), london(time.November, 5, 8),
			[]time.Time{london(time.November, 3, 8), london(time.November, 4, 8)}},
		{"daily, from is inclusive", "daily", london(time.November, 1, 8), london(time.November, 3, 8), london(time.November, 4, 9),
			[]time.Time{london(time.November, 3, 8), london(time.November, 4, 8)}},
		// 08:00 local on both sides of the clock change: 25 hours apart
		{"daily keeps the local time across summer time", "daily", london(time.October, 24, 8), london(time.October, 24, 0), london(time.October, 26, 12),
			[]time.Time{london(time.October, 24, 8), london(time.October, 25, 8), london(time.October, 26, 8)}},
		{"twice weekly, 84 hours apart", "twice_weekly", london(time.November, 2, 9), london(time.November, 1, 0), london(time.November, 10, 0),
			[]time.Time{london(time.November, 2, 9), london(time.November, 5, 21), london(time.November, 9, 9)}},
		{"every 2 weeks", "every_2_weeks", london(time.November, 2, 9), london(time.November, 3, 0), london(time.December, 31, 0),
			[]time.Time{london(time.November, 16, 9), london(time.November, 30, 9), london(time.December, 14, 9), london(time.December, 28, 9)}},
		{"every 3 months", "every_3_months", london(time.January, 15, 9), london(time.January, 1, 0), london(time.December, 31, 0),
			[]time.Time{london(time.January, 15, 9), london(time.April, 15, 9), london(time.July, 15, 9), london(time.October, 15, 9)}},
		{"none in the span", "every_3_months", london(time.January, 15, 9), london(time.January, 16, 0), london(time.April, 15, 9), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSchedule(c.schedule)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Due(c.anchor, c.from, c.to)
			if len(got) != len(c.want) {
				t.Fatalf("Due = %v, want %v", got, c.want)
			}
			for i := range got {
				if !got[i].Equal(c.want[i]) {
					t.Errorf("Due[%d] = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
	// 08:00 BST on the 24th to 08:00 GMT on the 25th, in elapsed time.
	d := Schedule{Every: 1, Unit: "days"}.Due(london(time.October, 24, 8), london(time.October, 24, 0), london(time.October, 25, 9))
	if len(d) != 2 || d[1].Sub(d[0]) != 25*time.Hour {
		t.Errorf("doses over the clock change: %v, want 25 h apart", d)
	}
}

func TestJudgeParseDuration(t *testing.T) {
	for _, c := range []struct {
		in, out string
		want    time.Duration
		days    int
	}{
		{"30m", "30m", 30 * time.Minute, 1}, // rounded up to a day
		{"24h", "1d", 24 * time.Hour, 1},
		{"36h", "36h", 36 * time.Hour, 2}, // 1.5 days rounded up
		{"7d", "1w", 7 * 24 * time.Hour, 7},
		{"14d", "2w", 14 * 24 * time.Hour, 14},
		{"2w", "2w", 14 * 24 * time.Hour, 14},
		{"90d", "90d", 90 * 24 * time.Hour, 90},
		{"99999m", "99999m", 99999 * time.Minute, 70}, // 99999/1440 = 69.4
	} {
		d, err := ParseDuration(c.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", c.in, err)
			continue
		}
		if time.Duration(d) != c.want || d.String() != c.out || d.Days() != c.days {
			t.Errorf("ParseDuration(%q) = %v (%q, %d days), want %v (%q, %d days)", c.in, time.Duration(d), d, d.Days(), c.want, c.out, c.days)
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("%q does not read back: %v, %v", d.String(), back, err)
		}
	}
	for _, bad := range []string{"", "7", "0d", "07d", "1.5d", "-1d", "100000d", "7D", "1y", " 7d"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d)
		}
	}
}

func TestJudgeParseSchedule(t *testing.T) {
	for _, c := range []struct {
		in       string
		want     Schedule
		out      string
		interval time.Duration
	}{
		{"daily", Schedule{Every: 1, Unit: "days"}, "daily", 24 * time.Hour},
		{"twice_weekly", Schedule{Every: 1, Unit: "weeks", Twice: true}, "twice_weekly", 84 * time.Hour},
		{"weekly", Schedule{Every: 1, Unit: "weeks"}, "weekly", 7 * 24 * time.Hour},
		{"every_3_days", Schedule{Every: 3, Unit: "days"}, "every_3_days", 72 * time.Hour},
		{"every_2_weeks", Schedule{Every: 2, Unit: "weeks"}, "every_2_weeks", 14 * 24 * time.Hour},
		{"every_3_months", Schedule{Every: 3, Unit: "months"}, "every_3_months", 90 * 24 * time.Hour}, // 3*30 days
		{"every_1_days", Schedule{Every: 1, Unit: "days"}, "daily", 24 * time.Hour},
	} {
		s, err := ParseSchedule(c.in)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", c.in, err)
			continue
		}
		if s != c.want || s.String() != c.out || s.Interval() != c.interval {
			t.Errorf("ParseSchedule(%q) = %+v (%q, %v), want %+v (%q, %v)", c.in, s, s, s.Interval(), c.want, c.out, c.interval)
		}
		if back, err := ParseSchedule(s.String()); err != nil || back != s {
			t.Errorf("%q does not read back: %+v, %v", s.String(), back, err)
		}
	}
	for _, bad := range []string{"", "monthly", "every_0_days", "every_100_days", "every_3_years", "Daily", "every_3_day"} {
		if s, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestJudgeClock(t *testing.T) {
	london, ny := clock{jtLondon}, clock{jtZone("America/New_York")}
	utc := clock{time.UTC}
	// Day numbers: 2026-01-01 = 20454; Oct 1 = 20454+273 = 20727; Mar 1 = 20454+59 = 20513.
	const oct19, oct20, oct21, oct25, oct26 day = 20745, 20746, 20747, 20751, 20752
	const mar29, mar30, nov19, nov20, nov21 day = 20541, 20542, 20776, 20777, 20778
	z := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		name string
		clk  clock
		t    time.Time
		day  day // dayOf
		from day // firstDayFrom
	}{
		{"now", london, jtNow, nov20, nov21},
		{"23:30Z in summer is 00:30 BST the next day", london, z(time.October, 19, 23, 30), oct20, oct21},
		{"the same instant in UTC", utc, z(time.October, 19, 23, 30), oct19, oct20},
		{"BST midnight starts its day", london, z(time.October, 19, 23, 0), oct20, oct20},
		{"22:00 EST is still the day before", ny, z(time.November, 20, 3, 0), nov19, nov20},
		{"EST midnight starts its day", ny, z(time.November, 20, 5, 0), nov20, nov20},
		{"a minute after EST midnight", ny, z(time.November, 20, 5, 1), nov20, nov21},
		{"a minute before EST midnight", ny, z(time.November, 20, 4, 59), nov19, nov20},
		{"00:30 BST on the 25-hour day", london, z(time.October, 24, 23, 30), oct25, oct26},
	} {
		if got := c.clk.dayOf(c.t); got != c.day {
			t.Errorf("%s: dayOf = %d, want %d", c.name, got, c.day)
		}
		if got := c.clk.firstDayFrom(c.t); got != c.from {
			t.Errorf("%s: firstDayFrom = %d, want %d", c.name, got, c.from)
		}
	}
	// Local midnights around the clock changes of 2026: the 25th of
	// October lasts 25 hours, the 29th of March 23.
	for _, c := range []struct {
		d     day
		start time.Time
		hours float64
	}{
		{oct25, z(time.October, 24, 23, 0), 25},
		{oct26, z(time.October, 26, 0, 0), 24},
		{mar29, z(time.March, 29, 0, 0), 23},
		{mar30, z(time.March, 29, 23, 0), 24},
	} {
		if got := london.start(c.d); !got.Equal(c.start) {
			t.Errorf("start(%d) = %v, want %v", c.d, got.UTC(), c.start)
		}
		if got := london.start(c.d + 1).Sub(london.start(c.d)).Hours(); got != c.hours {
			t.Errorf("day %d lasts %v h, want %v", c.d, got, c.hours)
		}
	}
}

func TestJudgeStatsManySamplesADay(t *testing.T) {
	// A heart-rate strap streaming once a second sends 86,400 samples a
	// day (ingest takes 5 messages of 500 samples a second per device);
	// the daily mean must stay the mean.
	var st stats
	for i := range 86400 {
		st.add(60, i/60) // 60 bpm, every second
	}
	// 86400*60/86400 = 60
	if got := st.perDay("mean"); got != 60 {
		t.Errorf("mean of 86400 samples of 60 = %v, want 60", got)
	}
	if got := aggregateSamples("mean", []*stats{&st}); got != 60 {
		t.Errorf("sample mean of 86400 samples of 60 = %v, want 60", got)
	}
}

// TestJudgeAdherenceAcrossVersions counts each scheduled dose against the
// regimen of the version that scheduled it.
func TestJudgeAdherenceAcrossVersions(t *testing.T) {
	utc := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	now := utc(15, 12)
	daily, _ := ParseSchedule("daily")
	weekly, _ := ParseSchedule("weekly")
	estradiol := func(s Schedule) []Dose { return []Dose{{Medication: "estradiol", Schedule: s}} }
	v1 := &Plan{Version: 1, Effective: time.Date(2026, 10, 20, 8, 0, 0, 0, time.UTC), Regimen: estradiol(daily)}
	v2 := &Plan{Version: 2, Effective: utc(8, 8), Regimen: estradiol(weekly)}
	v1None := &Plan{Version: 1, Effective: v1.Effective}
	// Logged: 4 of v1's daily doses of 2..7 Nov, and v2's first weekly dose
	// late on 9 Nov (within half a week of 8 Nov 08:00).
	var logged []int64
	for _, d := range []int{2, 3, 5, 6} {
		logged = append(logged, time.Date(2026, 11, d, 8, 30, 0, 0, time.UTC).Unix())
	}
	logged = append(logged, utc(9, 20).Unix())
	rule := func(since string) Rule {
		return Rule{Kind: KindAdherence, Medication: "estradiol", Over: jtDays(14), Below: jtF(0.8), Since: since}
	}
	for _, c := range []struct {
		name     string
		rule     Rule
		versions []*Plan
		want     jtWant
	}{
		{name: "v1's daily doses and v2's weekly one", rule: rule(SinceWindow), versions: []*Plan{v1, v2},
			// window 1 Nov 12:00..now: v1 schedules 2..7 Nov 08:00 (6; its 8 Nov
			// dose is v2's), v2 schedules 8 Nov 08:00 (15 Nov's is not yet half a
			// week old): 4 + 1 = 5 of 7 = 0.714 < 0.8
			want: jtWant{judged: true, holds: true, value: 5.0 / 7, bound: 0.8, side: "below", days: 7, reference: 5}},
		{name: "since change: v2's doses only", rule: rule(SinceChange), versions: []*Plan{v1, v2},
			want: jtWant{judged: true, value: 1, bound: 0.8, side: "below", days: 1, reference: 1}},
		{name: "the medication was not in v1: nothing scheduled then", rule: rule(SinceWindow), versions: []*Plan{v1None, v2},
			want: jtWant{judged: true, value: 1, bound: 0.8, side: "below", days: 1, reference: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			en := newEnv(clock{time.UTC}, now, 10, c.versions[len(c.versions)-1], c.versions[0].Effective)
			r := c.rule
			jtCheck(t, judgeAdherence(&r, c.versions, logged, en), c.want, 0)
		})
	}
}

// TestJudgeSparseSeries: a lab series keeps only its days with results,
// the last keep days up to its newest, in day order whatever the order
// they came in.
func TestJudgeSparseSeries(t *testing.T) {
	s := newSeries(seriesKey{"labs", "hematocrit", ""}, 90)
	if s.days != nil {
		t.Fatal("a lab series has a ring")
	}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, d := range []day{100, 40, 160, 130, 130} {
		s.add(d, at.Add(time.Duration(i)*time.Hour), 540, float64(d))
	}
	kept := func() string {
		var out []string
		for _, x := range s.sparse.dated {
			out = append(out, fmt.Sprintf("%d:%d", x.d, x.st.count))
		}
		return strings.Join(out, " ")
	}
	// 160 is the newest: 40 is 90 days or more before it.
	if got := kept(); got != "100:1 130:2 160:1" {
		t.Errorf("kept %s, want 100:1 130:2 160:1", got)
	}
	if st := s.at(130); st == nil || st.last != 130 || st.count != 2 {
		t.Errorf("at(130) = %+v", st)
	}
	if s.at(40) != nil || s.at(161) != nil || s.at(131) != nil {
		t.Error("at returns a day without a result, or one not kept")
	}
	s.add(250, at.Add(10*time.Hour), 540, 1) // 250 - 90 = 160: the others go
	if got := kept(); got != "250:1" {
		t.Errorf("kept %s after a result on day 250, want 250:1", got)
	}
}
