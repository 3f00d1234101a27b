package alerts

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests need Europe/London wherever they run
)

// ocTestSchedule has a primary tier with day, night (past midnight) and
// weekend shifts and an overlap, a secondary tier round the clock and a
// consultant on weekday office hours and Friday evening to 24:00.
const ocTestSchedule = `timezone: Europe/London
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [otto], days: [weekdays], from: "08:00", to: "18:00"}
      - {staff: [nina], days: [mon, tue, wed, thu, fri], from: "18:00", to: "08:00"}
      - {staff: [sam, nina], days: [weekend], from: "08:00", to: "18:00"}
      - {staff: [sam], days: [sat, sun], from: "18:00", to: "08:00"}
      - {staff: [sam, otto], days: [wed], from: "12:00", to: "14:00"}
  - name: secondary
    after: 15m
    shifts:
      - {staff: [dr-lee], days: [all], from: "00:00", to: "24:00"}
  - name: consultant
    after: 45m
    shifts:
      - {staff: [dr-khan], days: [weekdays], from: "09:00", to: "17:00"}
      - {staff: [dr-khan], days: [fri], from: "17:00", to: "24:00"}
`

func ocTestParse(t *testing.T, src string) *OnCallSchedule {
	t.Helper()
	s, err := ParseOnCall([]byte(src))
	if err != nil {
		t.Fatalf("ParseOnCall: %v\n%s", err, src)
	}
	return s
}

func ocLondon(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestOnCallParsesSchedule(t *testing.T) {
	s := ocTestParse(t, ocTestSchedule)
	if s.Location.String() != "Europe/London" {
		t.Errorf("Location = %v", s.Location)
	}
	if len(s.Tiers) != 3 {
		t.Fatalf("%d tiers, want 3", len(s.Tiers))
	}
	for i, want := range []struct {
		name   string
		after  time.Duration
		shifts int
	}{{"primary", 0, 5}, {"secondary", 15 * time.Minute, 1}, {"consultant", 45 * time.Minute, 2}} {
		tier := s.Tiers[i]
		if tier.Name != want.name || tier.After != want.after || len(tier.Shifts) != want.shifts {
			t.Errorf("tier %d = %s after %v with %d shifts, want %s after %v with %d", i, tier.Name, tier.After, len(tier.Shifts), want.name, want.after, want.shifts)
		}
	}
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	night := s.Tiers[0].Shifts[1]
	if !slices.Equal(night.Staff, []string{"nina"}) || !slices.Equal(night.Days, weekdays) || night.From != 18*60 || night.To != 8*60 {
		t.Errorf("night shift = %+v", night)
	}
	weekend := s.Tiers[0].Shifts[2]
	if !slices.Equal(weekend.Staff, []string{"nina", "sam"}) || !slices.Equal(weekend.Days, []time.Weekday{time.Sunday, time.Saturday}) {
		t.Errorf("weekend shift = %+v", weekend)
	}
	all := s.Tiers[1].Shifts[0]
	if len(all.Days) != 7 || all.From != 0 || all.To != 1440 {
		t.Errorf("round-the-clock shift = %+v", all)
	}
}

func TestOnCallAt(t *testing.T) {
	s := ocTestParse(t, ocTestSchedule)
	lon := ocLondon(t)
	local := func(y int, m time.Month, d, h, min, sec int) time.Time {
		return time.Date(y, m, d, h, min, sec, 0, lon)
	}
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	// 2026-03-06 is a Friday; 2026-03-29 (clocks go forward at 01:00
	// GMT) and 2026-10-25 (back at 01:00 GMT) are Sundays.
	const primary, secondary, consultant = 0, 1, 2
	for _, c := range []struct {
		name string
		tier int
		at   time.Time
		want []string
	}{
		{"weekday day", primary, local(2026, 3, 11, 10, 0, 0), []string{"otto"}},
		{"weekday day from 08:00", primary, local(2026, 3, 9, 8, 0, 0), []string{"otto"}},
		{"Monday 07:59:59 is Sunday's night", primary, local(2026, 3, 9, 7, 59, 59), []string{"sam"}},
		{"Monday 00:00 is Sunday's night", primary, local(2026, 3, 9, 0, 0, 0), []string{"sam"}},
		{"weekday day to 17:59:59", primary, local(2026, 3, 10, 17, 59, 59), []string{"otto"}},
		{"weekday night from 18:00", primary, local(2026, 3, 10, 18, 0, 0), []string{"nina"}},
		{"overlap sorted without duplicates", primary, local(2026, 3, 11, 12, 30, 0), []string{"otto", "sam"}},
		{"overlap ends at 14:00", primary, local(2026, 3, 11, 14, 0, 0), []string{"otto"}},
		{"Thursday's night into Friday", primary, local(2026, 3, 6, 1, 0, 0), []string{"nina"}},
		{"Friday night", primary, local(2026, 3, 6, 23, 30, 0), []string{"nina"}},
		{"Friday's night into Saturday", primary, local(2026, 3, 7, 3, 0, 0), []string{"nina"}},
		{"Saturday 07:59 is still Friday's night", primary, local(2026, 3, 7, 7, 59, 0), []string{"nina"}},
		{"Saturday 08:00 weekend day", primary, local(2026, 3, 7, 8, 0, 0), []string{"nina", "sam"}},
		{"Saturday night", primary, local(2026, 3, 7, 20, 0, 0), []string{"sam"}},
		{"Saturday's night into Sunday, not Friday's", primary, local(2026, 3, 8, 2, 0, 0), []string{"sam"}},
		{"another zone judged in London", primary, time.Date(2026, 3, 11, 5, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)), []string{"otto"}},

		{"spring forward: 00:59 GMT", primary, utc(2026, 3, 29, 0, 59), []string{"sam"}},
		{"spring forward: 01:00Z is 02:00 BST", primary, utc(2026, 3, 29, 1, 0), []string{"sam"}},
		{"spring forward: 06:59Z is 07:59 BST", primary, utc(2026, 3, 29, 6, 59), []string{"sam"}},
		{"spring forward: 07:00Z is 08:00 BST", primary, utc(2026, 3, 29, 7, 0), []string{"nina", "sam"}},
		{"spring forward: 16:59Z is 17:59 BST", primary, utc(2026, 3, 29, 16, 59), []string{"nina", "sam"}},
		{"spring forward: 17:00Z is 18:00 BST", primary, utc(2026, 3, 29, 17, 0), []string{"sam"}},
		{"Monday after: 06:59Z is 07:59 BST", primary, utc(2026, 3, 30, 6, 59), []string{"sam"}},
		{"Monday after: 07:00Z is 08:00 BST", primary, utc(2026, 3, 30, 7, 0), []string{"otto"}},
		{"Monday after: 16:59Z is 17:59 BST", primary, utc(2026, 3, 30, 16, 59), []string{"otto"}},
		{"Monday after: 17:00Z is 18:00 BST", primary, utc(2026, 3, 30, 17, 0), []string{"nina"}},

		{"Saturday before fall back: 06:59Z is 07:59 BST", primary, utc(2026, 10, 24, 6, 59), []string{"nina"}},
		{"Saturday before fall back: 07:00Z is 08:00 BST", primary, utc(2026, 10, 24, 7, 0), []string{"nina", "sam"}},
		{"fall back: 00:30Z is the first 01:30 (BST)", primary, utc(2026, 10, 25, 0, 30), []string{"sam"}},
		{"fall back: 01:30Z is the second 01:30 (GMT)", primary, utc(2026, 10, 25, 1, 30), []string{"sam"}},
		{"fall back: 07:59Z is 07:59 GMT", primary, utc(2026, 10, 25, 7, 59), []string{"sam"}},
		{"fall back: 08:00Z is 08:00 GMT", primary, utc(2026, 10, 25, 8, 0), []string{"nina", "sam"}},
		{"fall back: 17:59Z is 17:59 GMT", primary, utc(2026, 10, 25, 17, 59), []string{"nina", "sam"}},
		{"fall back: 18:00Z is 18:00 GMT", primary, utc(2026, 10, 25, 18, 0), []string{"sam"}},
		{"Monday after: 07:59Z is 07:59 GMT", primary, utc(2026, 10, 26, 7, 59), []string{"sam"}},
		{"Monday after: 08:00Z is 08:00 GMT", primary, utc(2026, 10, 26, 8, 0), []string{"otto"}},

		{"round the clock at 23:59:59", secondary, local(2026, 3, 7, 23, 59, 59), []string{"dr-lee"}},
		{"round the clock at 00:00", secondary, local(2026, 3, 8, 0, 0, 0), []string{"dr-lee"}},
		{"round the clock in the hour spring forward skips", secondary, utc(2026, 3, 29, 1, 0), []string{"dr-lee"}},

		{"office hours from 09:00", consultant, local(2026, 3, 11, 9, 0, 0), []string{"dr-khan"}},
		{"nobody before office hours", consultant, local(2026, 3, 11, 8, 59, 0), nil},
		{"nobody after office hours", consultant, local(2026, 3, 11, 17, 0, 0), nil},
		{"Friday evening", consultant, local(2026, 3, 6, 17, 0, 0), []string{"dr-khan"}},
		{"to 24:00 covers 23:59:59", consultant, local(2026, 3, 6, 23, 59, 59), []string{"dr-khan"}},
		{"to 24:00 does not run into Saturday", consultant, local(2026, 3, 7, 0, 0, 0), nil},
		{"nobody at the weekend", consultant, local(2026, 3, 7, 12, 0, 0), nil},
		{"summer office hours: 08:00Z is 09:00 BST", consultant, utc(2026, 3, 30, 8, 0), []string{"dr-khan"}},
		{"summer office hours: 07:59Z is 08:59 BST", consultant, utc(2026, 3, 30, 7, 59), nil},

		{"tier -1", -1, local(2026, 3, 11, 10, 0, 0), nil},
		{"tier past the last", 3, local(2026, 3, 11, 10, 0, 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := s.OnCall(c.tier, c.at)
			if !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
				t.Errorf("OnCall(%d, %v) = %q, want %q", c.tier, c.at.In(lon), got, c.want)
			}
		})
	}
}

func TestOnCallNilAndZeroSchedule(t *testing.T) {
	var s *OnCallSchedule
	now := time.Date(2026, 3, 11, 10, 0, 0, 0, time.UTC)
	if got := s.OnCall(0, now); got != nil {
		t.Errorf("nil schedule: OnCall = %q", got)
	}
	if got := s.TierDue(now, now); got != -1 {
		t.Errorf("nil schedule: TierDue = %d", got)
	}
	if _, ok := s.NextEscalation(-1, now); ok {
		t.Error("nil schedule: NextEscalation ok")
	}
	// A schedule built in code without a Location is in UTC.
	z := &OnCallSchedule{Tiers: []OnCallTier{{Name: "primary", Shifts: []Shift{{Staff: []string{"otto"}, Days: []time.Weekday{time.Wednesday}, From: 600, To: 660}}}}}
	if got := z.OnCall(0, now); !slices.Equal(got, []string{"otto"}) {
		t.Errorf("UTC schedule at 10:00Z: OnCall = %q", got)
	}
	if got := z.OnCall(0, now.Add(-time.Second)); got != nil {
		t.Errorf("UTC schedule at 09:59:59Z: OnCall = %q", got)
	}
}

func TestTierDue(t *testing.T) {
	s := ocTestParse(t, ocTestSchedule) // 0m, 15m, 45m
	late := &OnCallSchedule{Tiers: []OnCallTier{{Name: "primary", After: 5 * time.Minute}, {Name: "secondary", After: 20 * time.Minute}}}
	opened := time.Date(2026, 3, 29, 0, 50, 0, 0, time.UTC) // across the spring-forward hour: elapsed time, not wall clock
	for _, c := range []struct {
		name  string
		s     *OnCallSchedule
		since time.Duration
		want  int
	}{
		{"before the alert opened", s, -time.Second, -1},
		{"as it opens", s, 0, 0},
		{"just before the second tier", s, 15*time.Minute - time.Nanosecond, 0},
		{"exactly at the second tier's after", s, 15 * time.Minute, 1},
		{"just before the third", s, 45*time.Minute - time.Second, 1},
		{"exactly at the third", s, 45 * time.Minute, 2},
		{"long after", s, 10 * time.Hour, 2},
		{"first tier after 5m: not yet", late, 5*time.Minute - time.Second, -1},
		{"first tier after 5m: exactly", late, 5 * time.Minute, 0},
		{"first tier after 5m: second at 20m", late, 20 * time.Minute, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.TierDue(opened, opened.Add(c.since)); got != c.want {
				t.Errorf("TierDue(opened, opened%+v) = %d, want %d", c.since, got, c.want)
			}
		})
	}
}

func TestNextEscalation(t *testing.T) {
	s := ocTestParse(t, ocTestSchedule) // 0m, 15m, 45m
	opened := time.Date(2026, 10, 25, 0, 50, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		tier   int
		want   time.Time
		wantOK bool
	}{
		{"none due yet: the first tier", -1, opened, true},
		{"after the first: the second", 0, opened.Add(15 * time.Minute), true},
		{"after the second: the third", 1, opened.Add(45 * time.Minute), true},
		{"after the last: none", 2, time.Time{}, false},
		{"past the last: none", 3, time.Time{}, false},
		{"below -1: none", -2, time.Time{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := s.NextEscalation(c.tier, opened)
			if !got.Equal(c.want) || ok != c.wantOK {
				t.Errorf("NextEscalation(%d) = %v, %v; want %v, %v", c.tier, got, ok, c.want, c.wantOK)
			}
			// What NextEscalation promises, TierDue keeps: the tier is due
			// exactly then and not a moment before.
			if ok {
				if due := s.TierDue(opened, got); due != c.tier+1 {
					t.Errorf("TierDue at NextEscalation(%d) = %d, want %d", c.tier, due, c.tier+1)
				}
				if due := s.TierDue(opened, got.Add(-time.Nanosecond)); due != c.tier {
					t.Errorf("TierDue just before NextEscalation(%d) = %d, want %d", c.tier, due, c.tier)
				}
			}
		})
	}
}

// ocProblems parses src and returns the problems named, failing unless
// the error is an *OnCallError.
func ocProblems(t *testing.T, src string) []string {
	t.Helper()
	s, err := ParseOnCall([]byte(src))
	var oerr *OnCallError
	if !errors.As(err, &oerr) {
		t.Fatalf("ParseOnCall = %v, %v; want an *OnCallError\n%s", s, err, src)
	}
	if s != nil {
		t.Errorf("ParseOnCall returned a schedule with its error")
	}
	return oerr.Problems
}

func ocSameProblems(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestOnCallParseEveryProblemAtOnce(t *testing.T) {
	const src = `timezone: Mars/Olympus
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [otto], days: [mon, funday], from: "08:00", to: "18:00"}
      - {staff: [nina], days: [weekdays], from: "8am", to: "25:00"}
      - {staff: [sam], days: [sat], from: "09:00", to: "09:00"}
      - {staff: [], days: [sun], from: "00:00", to: "24:00"}
      - {staff: [Bad Name!], days: [sun], from: "00:00", to: "24:00", colour: red}
  - name: primary
    after: 15m
    shifts:
      - {staff: [dr-lee], days: [all], from: "00:00", to: "24:00"}
  - name: consultant
    after: 10m
    shifts: []
  - name: Night Tier
    after: 30s
    escalate: yes
    shifts:
      - {staff: [dr-khan], days: [all], from: "00:00", to: "24:00"}
`
	ocSameProblems(t, ocProblems(t, src), []string{
		`line 1: timezone: "Mars/Olympus": want an IANA zone such as Europe/London or UTC`,
		`line 6: "funday" is not a day: want mon, tue, wed, thu, fri, sat, sun, weekdays, weekend or all`,
		`line 7: "8am" is not a time of day: want HH:MM, 00:00 to 24:00`,
		`line 7: "25:00" is not a time of day: want HH:MM, 00:00 to 24:00`,
		`line 8: tiers[0] (primary).shifts[2]: from and to are both 09:00, an empty shift (a whole day is 00:00 to 24:00)`,
		`line 9: tiers[0] (primary).shifts[3].staff: required, at least one username`,
		`line 10: unknown key "colour" in a shift: want staff, days, from, to`,
		`line 10: "Bad Name!" is not a username: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
		`line 11: tiers[1].name: duplicate tier primary`,
		`line 15: tiers[2] (consultant).shifts: required, at least one shift`,
		`line 16: tiers[2] (consultant).after: 10m: want later than the tier before's 15m`,
		`line 18: tiers[3].name: "Night Tier": want 1 to 64 lowercase letters, digits, '_' or '-'`,
		`line 19: after: "30s": want whole minutes, 0 or more, such as 0m, 15m or 1h`,
		`line 20: unknown key "escalate" in a tier: want name, after, shifts`,
	})
}

func TestOnCallParseProblems(t *testing.T) {
	const shift = `{staff: [otto], days: [all], from: "00:00", to: "24:00"}`
	for _, c := range []struct {
		name string
		src  string
		want []string
	}{
		{"missing timezone", "tiers:\n  - name: primary\n    shifts: [" + shift + "]\n",
			[]string{"timezone: required, an IANA zone such as Europe/London"}},
		{"Local is not a zone", "timezone: Local\ntiers:\n  - name: primary\n    shifts: [" + shift + "]\n",
			[]string{`line 1: timezone: "Local": want an IANA zone such as Europe/London or UTC`}},
		{"timezone not a single value", "timezone: [Europe/London]\ntiers:\n  - name: primary\n    shifts: [" + shift + "]\n",
			[]string{"line 1: want a single value"}},
		{"unknown top-level key", "timezone: UTC\ntier:\n  - name: primary\n",
			[]string{"tiers: required, at least one tier", `line 2: unknown key "tier": want timezone, tiers`}},
		{"no tiers", "timezone: UTC\ntiers: []\n",
			[]string{"tiers: required, at least one tier"}},
		{"tiers not a list", "timezone: UTC\ntiers: primary\n",
			[]string{"line 2: want a list of tiers, not a string"}},
		{"tier not a mapping", "timezone: UTC\ntiers: [primary]\n",
			[]string{"line 2: want a tier: a mapping of name, after and shifts"}},
		{"shift not a mapping", "timezone: UTC\ntiers:\n  - name: primary\n    shifts: [otto]\n",
			[]string{"line 4: want a shift: a mapping of staff, days, from and to"}},
		{"shifts not a list", "timezone: UTC\ntiers:\n  - name: primary\n    shifts: {staff: [otto]}\n",
			[]string{"line 4: want a list of shifts, not a mapping"}},
		{"missing name, and after on a later tier", "timezone: UTC\ntiers:\n  - shifts: [" + shift + "]\n  - name: secondary\n    shifts: [" + shift + "]\n",
			[]string{"line 3: tiers[0].name: required",
				"line 4: tiers[1] (secondary).after: required on every tier but the first: how long after the alert opens it is notified, such as 15m"}},
		{"equal after", "timezone: UTC\ntiers:\n  - {name: a, after: 15m, shifts: [" + shift + "]}\n  - {name: b, after: 15m, shifts: [" + shift + "]}\n",
			[]string{"line 4: tiers[1] (b).after: 15m: want later than the tier before's 15m"}},
		{"negative after", "timezone: UTC\ntiers:\n  - {name: a, after: -5m, shifts: [" + shift + "]}\n",
			[]string{`line 3: after: "-5m": want whole minutes, 0 or more, such as 0m, 15m or 1h`}},
		{"after with no unit", "timezone: UTC\ntiers:\n  - {name: a, after: 15, shifts: [" + shift + "]}\n",
			[]string{`line 3: after: "15": want whole minutes, 0 or more, such as 0m, 15m or 1h`}},
		{"after not whole minutes", "timezone: UTC\ntiers:\n  - {name: a, after: 1.5m, shifts: [" + shift + "]}\n",
			[]string{`line 3: after: "1.5m": want whole minutes, 0 or more, such as 0m, 15m or 1h`}},
		{"missing staff, days, from and to", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {}\n",
			[]string{"line 5: tiers[0] (a).shifts[0].staff: required, at least one username",
				"line 5: tiers[0] (a).shifts[0].days: required, such as [mon, tue] or [weekdays]",
				"line 5: tiers[0] (a).shifts[0].from: required, a time of day such as 08:00",
				"line 5: tiers[0] (a).shifts[0].to: required, a time of day such as 08:00"}},
		{"empty days", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [], from: \"08:00\", to: \"18:00\"}\n",
			[]string{"line 5: tiers[0] (a).shifts[0].days: required, such as [mon, tue] or [weekdays]"}},
		{"from 24:00", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [mon], from: \"24:00\", to: \"08:00\"}\n",
			[]string{"line 5: tiers[0] (a).shifts[0].from: 24:00 is only an end: start at 00:00"}},
		{"from 00:00 to 00:00", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [mon], from: \"00:00\", to: \"00:00\"}\n",
			[]string{"line 5: tiers[0] (a).shifts[0]: from and to are both 00:00, an empty shift (a whole day is 00:00 to 24:00)"}},
		{"one-digit hour", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [mon], from: \"8:00\", to: \"18:00\"}\n",
			[]string{`line 5: "8:00" is not a time of day: want HH:MM, 00:00 to 24:00`}},
		{"a day in capitals", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [Mon], from: \"08:00\", to: \"18:00\"}\n",
			[]string{`line 5: "Mon" is not a day: want mon, tue, wed, thu, fri, sat, sun, weekdays, weekend or all`}},
		{"a key twice", "timezone: UTC\ntiers:\n  - name: a\n    shifts:\n      - {staff: [otto], days: [mon], from: \"08:00\", from: \"09:00\", to: \"18:00\"}\n",
			[]string{`line 5: mapping key "from" already defined at line 5`}},
		{"a top-level key twice", "timezone: UTC\ntimezone: UTC\ntiers: []\n",
			[]string{`line 2: mapping key "timezone" already defined at line 1`}},
		{"a tier key twice, and a problem in the next tier", "timezone: UTC\ntiers:\n  - {name: a, name: b}\n  - {name: c, after: 5m, shifts: []}\n",
			[]string{`line 3: mapping key "name" already defined at line 3`, "line 4: tiers[1] (c).shifts: required, at least one shift"}},
	} {
		t.Run(c.name, func(t *testing.T) { ocSameProblems(t, ocProblems(t, c.src), c.want) })
	}
}

func TestOnCallParseAccepts(t *testing.T) {
	for _, c := range []struct {
		name  string
		src   string
		check func(*OnCallSchedule) bool
	}{
		{"first tier's after defaults to 0m", "timezone: UTC\ntiers:\n  - {name: a, shifts: [{staff: [otto], days: [mon], from: \"08:00\", to: \"18:00\"}]}\n",
			func(s *OnCallSchedule) bool { return s.Tiers[0].After == 0 }},
		{"after in hours and over an hour", "timezone: UTC\ntiers:\n  - {name: a, after: 1h, shifts: [{staff: [otto], days: [mon], from: \"08:00\", to: \"18:00\"}]}\n  - {name: b, after: 90m, shifts: [{staff: [otto], days: [mon], from: \"08:00\", to: \"18:00\"}]}\n",
			func(s *OnCallSchedule) bool {
				return s.Tiers[0].After == time.Hour && s.Tiers[1].After == 90*time.Minute
			}},
		{"unquoted times, days and staff as single values", "timezone: UTC\ntiers:\n  - {name: a, shifts: [{staff: otto, days: weekend, from: 08:00, to: 18:00}]}\n",
			func(s *OnCallSchedule) bool {
				sh := s.Tiers[0].Shifts[0]
				return slices.Equal(sh.Staff, []string{"otto"}) && slices.Equal(sh.Days, []time.Weekday{time.Sunday, time.Saturday}) && sh.From == 480 && sh.To == 1080
			}},
		{"repeated days and staff collapse", "timezone: UTC\ntiers:\n  - {name: a, shifts: [{staff: [sam, otto, sam], days: [weekdays, mon, all], from: \"00:00\", to: \"24:00\"}]}\n",
			func(s *OnCallSchedule) bool {
				sh := s.Tiers[0].Shifts[0]
				return slices.Equal(sh.Staff, []string{"otto", "sam"}) && len(sh.Days) == 7 && sh.From == 0 && sh.To == 1440
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if s := ocTestParse(t, c.src); !c.check(s) {
				t.Errorf("parsed as %+v", s)
			}
		})
	}
}

func TestOnCallParseNotAMapping(t *testing.T) {
	for _, src := range []string{"", "- primary\n- secondary\n", "just words\n", "tiers: [\n"} {
		s, err := ParseOnCall([]byte(src))
		var oerr *OnCallError
		if err == nil || errors.As(err, &oerr) || s != nil {
			t.Errorf("ParseOnCall(%q) = %v, %v; want a plain error", src, s, err)
		}
	}
}

func TestOnCallExampleFile(t *testing.T) {
	s, _, err := LoadOnCall("../examples/oncall.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var afters []time.Duration
	for _, tier := range s.Tiers {
		names = append(names, tier.Name)
		afters = append(afters, tier.After)
	}
	if !slices.Equal(names, []string{"primary", "secondary", "consultant"}) || !slices.Equal(afters, []time.Duration{0, 15 * time.Minute, 45 * time.Minute}) {
		t.Errorf("tiers %v after %v", names, afters)
	}
	lon := ocLondon(t)
	// Every tier has someone on call every minute of a week, in a week
	// with a change of summer time too.
	for _, monday := range []time.Time{time.Date(2026, 3, 2, 0, 0, 0, 0, lon), time.Date(2026, 3, 23, 0, 0, 0, 0, lon), time.Date(2026, 10, 19, 0, 0, 0, 0, lon)} {
		for at := monday; at.Before(monday.AddDate(0, 0, 7)); at = at.Add(time.Minute) {
			for i := range s.Tiers {
				if s.OnCall(i, at) == nil {
					t.Fatalf("nobody on call in %s at %v", s.Tiers[i].Name, at)
				}
			}
		}
	}
	for _, c := range []struct {
		tier int
		at   time.Time
		want []string
	}{
		{0, time.Date(2026, 3, 6, 23, 0, 0, 0, lon), []string{"nina"}}, // Friday night
		{0, time.Date(2026, 3, 7, 3, 0, 0, 0, lon), []string{"nina"}},  // into Saturday
		{0, time.Date(2026, 3, 7, 12, 0, 0, 0, lon), []string{"nina", "sam"}},
		{0, time.Date(2026, 3, 9, 3, 0, 0, 0, lon), []string{"sam"}},      // Sunday's night into Monday
		{1, time.Date(2026, 3, 5, 12, 0, 0, 0, lon), []string{"dr-khan"}}, // Thursday
		{2, time.Date(2026, 3, 5, 12, 0, 0, 0, lon), []string{"dr-lee"}},
	} {
		if got := s.OnCall(c.tier, c.at); !slices.Equal(got, c.want) {
			t.Errorf("OnCall(%d, %v) = %q, want %q", c.tier, c.at, got, c.want)
		}
	}
}

func TestOnCallLoadMissingFile(t *testing.T) {
	if _, _, err := LoadOnCall("testdata/no-such-oncall.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadOnCall(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestOnCallCheckStaff(t *testing.T) {
	s := ocTestParse(t, ocTestSchedule)
	enabled := map[string]bool{"otto": true, "nina": true, "dr-lee": true}
	var asked []string
	err := s.CheckStaff(func(u string) bool { asked = append(asked, u); return enabled[u] })
	var oerr *OnCallError
	if !errors.As(err, &oerr) {
		t.Fatalf("CheckStaff = %v, want an *OnCallError", err)
	}
	ocSameProblems(t, oerr.Problems, []string{
		"tiers[0] (primary).shifts[2].staff: sam is not a member of staff, or is disabled",
		"tiers[2] (consultant).shifts[0].staff: dr-khan is not a member of staff, or is disabled",
	})
	if !slices.Equal(asked, []string{"otto", "nina", "sam", "dr-lee", "dr-khan"}) {
		t.Errorf("asked about %q: want each name once, in order", asked)
	}
	enabled["sam"], enabled["dr-khan"] = true, true
	if err := s.CheckStaff(func(u string) bool { return enabled[u] }); err != nil {
		t.Errorf("CheckStaff with everyone enabled = %v", err)
	}
}
