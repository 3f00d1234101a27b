package alerts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patientpulse/patientpulse/registry"
)

// OnCallSchedule is who is on call when, in tiers. An unacknowledged
// critical alert is notified to each tier in turn, After its opening.
type OnCallSchedule struct {
	Location *time.Location // the zone of the shifts' wall-clock times; nil is UTC
	Tiers    []OnCallTier   // in order of escalation, After strictly increasing
}

// OnCallTier is one level of escalation.
type OnCallTier struct {
	Name   string
	After  time.Duration // how long after an alert opens unacknowledged this tier is notified
	Shifts []Shift
}

// Shift is when some staff are on call: from From to To, in minutes of
// the local day (0..1440), on each of Days. A shift with To < From runs
// past midnight into the next day and belongs to the day it starts on.
type Shift struct {
	Staff    []string
	Days     []time.Weekday
	From, To int
}

// OnCallError is every problem of an on-call schedule, one per line.
type OnCallError struct{ Problems []string }

func (e *OnCallError) Error() string {
	return fmt.Sprintf("on-call schedule has %d problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// LoadOnCall reads the schedule file at path, as ParseOnCall does, and
// returns it with the file's text.
func LoadOnCall(path string) (*OnCallSchedule, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("on-call: %w", err)
	}
	s, err := ParseOnCall(data)
	return s, string(data), err
}

// ParseOnCall reads a schedule (YAML: timezone and tiers), refusing
// unknown keys, and validates it. An *OnCallError names every problem at
// once, ordered by line, with the line wherever it is known. A file that
// is not a YAML mapping gets a plain error.
func ParseOnCall(data []byte) (*OnCallSchedule, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("on-call: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("on-call: want a mapping of timezone and tiers")
	}
	f := ocFile{tiersBad: ocMalformed(root.Content[0], "tiers"), bad: ocDuplicateKeys(root.Content[0])}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var problems []string
	err := dec.Decode(&f)
	var terr *yaml.TypeError
	switch {
	case errors.As(err, &terr):
		problems = terr.Errors
	case err != nil:
		return nil, fmt.Errorf("on-call: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	v := &ocValidator{problems: problems}
	s := v.schedule(&f)
	if len(v.problems) > 0 {
		for i, p := range v.problems {
			v.problems[i] = ocTidy(p)
		}
		sort.SliceStable(v.problems, func(i, j int) bool { return ocLineOf(v.problems[i]) < ocLineOf(v.problems[j]) })
		return nil, &OnCallError{Problems: v.problems}
	}
	return s, nil
}

// CheckStaff reports, as an *OnCallError, every username of the schedule
// that known says is not an enabled member of staff, each once, with the
// first shift it is on. A nil schedule has no staff.
func (s *OnCallSchedule) CheckStaff(known func(username string) bool) error {
	if s == nil {
		return nil
	}
	var problems []string
	seen := map[string]bool{}
	for i, tier := range s.Tiers {
		for j, sh := range tier.Shifts {
			for _, name := range sh.Staff {
				if seen[name] {
					continue
				}
				seen[name] = true
				if !known(name) {
					problems = append(problems, fmt.Sprintf("tiers[%d] (%s).shifts[%d].staff: %s is not a member of staff, or is disabled", i, tier.Name, j, name))
				}
			}
		}
	}
	if len(problems) > 0 {
		return &OnCallError{Problems: problems}
	}
	return nil
}

// OnCall returns the staff on call in tier i at t, judged by the wall
// clock of the schedule's zone (so a 08:00–18:00 shift keeps to 08:00–18:00
// across a change of summer time), sorted and without duplicates. It
// returns nil for a tier out of range or when nobody is on call.
func (s *OnCallSchedule) OnCall(i int, t time.Time) []string {
	if s == nil || i < 0 || i >= len(s.Tiers) {
		return nil
	}
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	local := t.In(loc)
	day, minute := local.Weekday(), local.Hour()*60+local.Minute()
	var out []string
	for _, sh := range s.Tiers[i].Shifts {
		if ocCovers(sh, day, minute) {
			out = append(out, sh.Staff...)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ocCovers reports whether sh covers the given minute of the given local
// day: a shift past midnight covers the early hours of the day after its
// start day.
func ocCovers(sh Shift, day time.Weekday, minute int) bool {
	if sh.From < sh.To {
		return slices.Contains(sh.Days, day) && sh.From <= minute && minute < sh.To
	}
	if sh.To < sh.From {
		if minute >= sh.From {
			return slices.Contains(sh.Days, day)
		}
		return minute < sh.To && slices.Contains(sh.Days, (day+6)%7)
	}
	return false
}

// TierDue returns the highest tier whose After has passed since openedAt
// (After <= now-openedAt), or -1 when none has (or s is nil).
func (s *OnCallSchedule) TierDue(openedAt, now time.Time) int {
	if s == nil {
		return -1
	}
	elapsed := now.Sub(openedAt)
	due := -1
	for i, tier := range s.Tiers {
		if tier.After <= elapsed {
			due = i
		}
	}
	return due
}

// NextEscalation returns when tier i+1 becomes due for an alert opened at
// openedAt, and false when there is no tier i+1. i may be -1 (no tier due
// yet, as TierDue says): the answer is then when tier 0 becomes due. A
// nil schedule has no tiers.
func (s *OnCallSchedule) NextEscalation(i int, openedAt time.Time) (time.Time, bool) {
	if s == nil || i < -1 || i+1 >= len(s.Tiers) {
		return time.Time{}, false
	}
	return openedAt.Add(s.Tiers[i+1].After), true
}

// The file as decoded. Scalars keep their line for the problems that
// validation finds; a scalar that could not be read is marked bad, its
// problem reported already by the decoder.
type (
	ocFile struct {
		Timezone ocString `yaml:"timezone"`
		Tiers    []ocTier `yaml:"tiers"`
		tiersBad bool     // tiers is not a list: reported by the decoder
		bad      bool     // a key is repeated: the decoder reports it, and reads nothing
	}
	ocTier struct {
		line      int
		bad       bool
		shiftsBad bool // shifts is not a list: reported by the decoder
		problems  []string
		fields    struct {
			Name   ocString  `yaml:"name"`
			After  ocAfter   `yaml:"after"`
			Shifts []ocShift `yaml:"shifts"`
		}
	}
	ocShift struct {
		line     int
		bad      bool
		problems []string
		fields   struct {
			Staff ocStaff `yaml:"staff"`
			Days  ocDays  `yaml:"days"`
			From  ocClock `yaml:"from"`
			To    ocClock `yaml:"to"`
		}
	}
	ocString struct {
		v    string
		line int
		bad  bool
	}
	ocAfter struct {
		d        time.Duration
		line     int
		set, bad bool
	}
	ocClock struct {
		minute   int
		line     int
		set, bad bool
	}
	ocDays struct {
		days []time.Weekday
		line int
		bad  bool
	}
	ocStaff struct {
		names []string
		line  int
		bad   bool
	}
)

// UnmarshalYAML reads a tier. Node.Decode does not carry the decoder's
// KnownFields, so the keys are checked here. The tier keeps its problems
// rather than returning them: the decoder would drop a list item whose
// UnmarshalYAML fails, and the tiers after it would be misnumbered.
func (t *ocTier) UnmarshalYAML(n *yaml.Node) error {
	t.line = n.Line
	if n.Kind != yaml.MappingNode {
		t.bad = true
		t.problems = []string{fmt.Sprintf("line %d: want a tier: a mapping of name, after and shifts", n.Line)}
		return nil
	}
	t.shiftsBad = ocMalformed(n, "shifts")
	var err error
	t.problems, err = ocDecodeMapping(n, &t.fields, "tier", "name", "after", "shifts")
	t.bad = ocDuplicateKeys(n)
	return err
}

// UnmarshalYAML reads a shift, checking its keys and keeping its problems
// (see ocTier).
func (s *ocShift) UnmarshalYAML(n *yaml.Node) error {
	s.line = n.Line
	if n.Kind != yaml.MappingNode {
		s.bad = true
		s.problems = []string{fmt.Sprintf("line %d: want a shift: a mapping of staff, days, from and to", n.Line)}
		return nil
	}
	var err error
	s.problems, err = ocDecodeMapping(n, &s.fields, "shift", "staff", "days", "from", "to")
	s.bad = ocDuplicateKeys(n)
	return err
}

// ocDecodeMapping decodes mapping n into out, refusing keys not in keys,
// and returns every problem, each with its line. An error is one that is
// not about a value (such as excessive aliasing) and ends the parse.
func ocDecodeMapping(n *yaml.Node, out any, what string, keys ...string) ([]string, error) {
	var problems []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(keys, k.Value) {
			problems = append(problems, fmt.Sprintf("line %d: unknown key %q in a %s: want %s", k.Line, k.Value, what, strings.Join(keys, ", ")))
		}
	}
	err := n.Decode(out)
	var terr *yaml.TypeError
	switch {
	case errors.As(err, &terr):
		problems = append(problems, terr.Errors...)
	case err != nil:
		return nil, err
	}
	return problems, nil
}

func (s *ocString) UnmarshalYAML(n *yaml.Node) error {
	s.line = n.Line
	if n.Kind != yaml.ScalarNode {
		s.bad = true
		return ocLineError(n, "want a single value")
	}
	s.v = n.Value
	return nil
}

func (a *ocAfter) UnmarshalYAML(n *yaml.Node) error {
	a.line, a.set = n.Line, true
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 || d%time.Minute != 0 {
		a.bad = true
		return ocLineError(n, fmt.Sprintf("after: %q: want whole minutes, 0 or more, such as 0m, 15m or 1h", n.Value))
	}
	a.d = d
	return nil
}

var ocClockRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

func (c *ocClock) UnmarshalYAML(n *yaml.Node) error {
	c.line, c.set = n.Line, true
	if n.Kind == yaml.ScalarNode && n.Value == "24:00" {
		c.minute = 24 * 60
		return nil
	}
	m := ocClockRE.FindStringSubmatch(n.Value)
	if n.Kind != yaml.ScalarNode || m == nil {
		c.bad = true
		return ocLineError(n, fmt.Sprintf("%q is not a time of day: want HH:MM, 00:00 to 24:00", n.Value))
	}
	h, _ := strconv.Atoi(m[1])
	mm, _ := strconv.Atoi(m[2])
	c.minute = h*60 + mm
	return nil
}

// ocDayNames are the words days accepts, each the days it stands for.
var ocDayNames = map[string][]time.Weekday{
	"mon": {time.Monday}, "tue": {time.Tuesday}, "wed": {time.Wednesday}, "thu": {time.Thursday},
	"fri": {time.Friday}, "sat": {time.Saturday}, "sun": {time.Sunday},
	"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
	"weekend":  {time.Saturday, time.Sunday},
	"all":      {time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday},
}

// UnmarshalYAML reads a list of days (or a single one), each a day or a
// group of days; repeats are harmless.
func (d *ocDays) UnmarshalYAML(n *yaml.Node) error {
	d.line = n.Line
	var problems []string
	for _, item := range ocItems(n) {
		days, ok := ocDayNames[item.Value]
		if item.Kind != yaml.ScalarNode || !ok {
			d.bad = true
			problems = append(problems, fmt.Sprintf("line %d: %q is not a day: want mon, tue, wed, thu, fri, sat, sun, weekdays, weekend or all", item.Line, item.Value))
			continue
		}
		d.days = append(d.days, days...)
	}
	slices.Sort(d.days)
	d.days = slices.Compact(d.days)
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	return nil
}

// UnmarshalYAML reads a list of usernames (or a single one); repeats are
// harmless.
func (s *ocStaff) UnmarshalYAML(n *yaml.Node) error {
	s.line = n.Line
	var problems []string
	for _, item := range ocItems(n) {
		if item.Kind != yaml.ScalarNode || !registry.ValidID(item.Value) {
			s.bad = true
			problems = append(problems, fmt.Sprintf("line %d: %q is not a username: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", item.Line, item.Value))
			continue
		}
		s.names = append(s.names, item.Value)
	}
	slices.Sort(s.names)
	s.names = slices.Compact(s.names)
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	return nil
}

// ocMalformed reports whether mapping m has key with a value that is
// neither a list nor null: the decoder reports that, and validation need
// not say the list is missing as well.
func ocMalformed(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if v := m.Content[i+1]; m.Content[i].Value == key {
			return v.Kind != yaml.SequenceNode && v.ShortTag() != "!!null"
		}
	}
	return false
}

// ocDuplicateKeys reports whether mapping m has a key twice: the decoder
// reports it, and decodes nothing of m.
func ocDuplicateKeys(m *yaml.Node) bool {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i].Value
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// ocItems is the items of a sequence node, or n itself when it is not one.
func ocItems(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return []*yaml.Node{n}
}

// ocLineError is the decode error of node n, with its line.
func ocLineError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

// ocUnknownRE and ocShapeRE match the decoder's own words for what this
// file's types do not catch themselves: an unknown top-level key, or a
// list of the wrong shape.
var (
	ocUnknownRE = regexp.MustCompile(`^(line \d+): field (.*) not found in type alerts\.ocFile$`)
	ocShapeRE   = regexp.MustCompile(`^(line \d+): cannot unmarshal (\S+)(?: .*)? into (.*)$`)
)

// ocTidy rewords a problem of the decoder that names this file's types.
func ocTidy(p string) string {
	if m := ocUnknownRE.FindStringSubmatch(p); m != nil {
		return fmt.Sprintf("%s: unknown key %q: want timezone, tiers", m[1], m[2])
	}
	if m := ocShapeRE.FindStringSubmatch(p); m != nil && strings.Contains(m[3], "alerts.oc") {
		want := "a list"
		if strings.Contains(m[3], "ocShift") {
			want = "a list of shifts"
		} else if strings.Contains(m[3], "ocTier") {
			want = "a list of tiers"
		}
		kinds := map[string]string{"!!str": "a string", "!!int": "a number", "!!float": "a number", "!!bool": "true or false", "!!map": "a mapping", "!!seq": "a list"}
		got, ok := kinds[m[2]]
		if !ok {
			got = m[2]
		}
		return fmt.Sprintf("%s: want %s, not %s", m[1], want, got)
	}
	return p
}

// ocLineOf is the line a problem names, or 0.
func ocLineOf(p string) int {
	rest, ok := strings.CutPrefix(p, "line ")
	if !ok {
		return 0
	}
	digits, _, _ := strings.Cut(rest, ":")
	n, _ := strconv.Atoi(digits)
	return n
}

var ocTierNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

type ocValidator struct{ problems []string }

// add reports a problem, at line when it is known (not 0).
func (v *ocValidator) add(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	v.problems = append(v.problems, msg)
}

// schedule validates f and builds the schedule it describes.
func (v *ocValidator) schedule(f *ocFile) *OnCallSchedule {
	s := &OnCallSchedule{}
	if f.bad {
		return s
	}
	switch tz := f.Timezone; {
	case tz.bad:
	case tz.v == "":
		v.add(tz.line, "timezone: required, an IANA zone such as Europe/London")
	default:
		loc, err := time.LoadLocation(tz.v)
		if err != nil || tz.v == "Local" {
			v.add(tz.line, "timezone: %q: want an IANA zone such as Europe/London or UTC", tz.v)
		}
		s.Location = loc
	}
	if len(f.Tiers) == 0 && !f.tiersBad {
		v.add(0, "tiers: required, at least one tier")
	}
	names := map[string]bool{}
	for i := range f.Tiers {
		t := &f.Tiers[i]
		v.problems = append(v.problems, t.problems...)
		if t.bad {
			continue
		}
		at := fmt.Sprintf("tiers[%d]", i)
		name := t.fields.Name
		switch {
		case name.bad:
		case name.v == "":
			v.add(t.line, "%s.name: required", at)
		case !ocTierNameRE.MatchString(name.v):
			v.add(name.line, "%s.name: %q: want 1 to 64 lowercase letters, digits, '_' or '-'", at, name.v)
		case names[name.v]:
			v.add(name.line, "%s.name: duplicate tier %s", at, name.v)
		}
		names[name.v] = true
		if name.v != "" {
			at += " (" + name.v + ")"
		}
		tier := OnCallTier{Name: name.v, After: t.fields.After.d}
		v.after(at, t, i, f.Tiers)
		if len(t.fields.Shifts) == 0 && !t.shiftsBad {
			v.add(t.line, "%s.shifts: required, at least one shift", at)
		}
		for j := range t.fields.Shifts {
			if sh, ok := v.shift(fmt.Sprintf("%s.shifts[%d]", at, j), &t.fields.Shifts[j]); ok {
				tier.Shifts = append(tier.Shifts, sh)
			}
		}
		s.Tiers = append(s.Tiers, tier)
	}
	return s
}

// after checks tier i's after: optional on the first tier (0m), required
// on the others and later than the tier before's.
func (v *ocValidator) after(at string, t *ocTier, i int, tiers []ocTier) {
	a := t.fields.After
	if a.bad || i == 0 {
		return
	}
	if !a.set {
		v.add(t.line, "%s.after: required on every tier but the first: how long after the alert opens it is notified, such as 15m", at)
		return
	}
	prev := tiers[i-1].fields.After
	if !tiers[i-1].bad && !prev.bad && a.d <= prev.d {
		v.add(a.line, "%s.after: %v: want later than the tier before's %v", at, ocMinutes(a.d), ocMinutes(prev.d))
	}
}

// ocMinutes writes d, whole minutes, as 15m.
func ocMinutes(d time.Duration) string { return fmt.Sprintf("%dm", d/time.Minute) }

// shift validates one shift and returns it, or false when it has a
// problem.
func (v *ocValidator) shift(at string, s *ocShift) (Shift, bool) {
	v.problems = append(v.problems, s.problems...)
	if s.bad {
		return Shift{}, false
	}
	before := len(v.problems)
	f := &s.fields
	if len(f.Staff.names) == 0 && !f.Staff.bad {
		v.add(ocLine(f.Staff.line, s.line), "%s.staff: required, at least one username", at)
	}
	if len(f.Days.days) == 0 && !f.Days.bad {
		v.add(ocLine(f.Days.line, s.line), "%s.days: required, such as [mon, tue] or [weekdays]", at)
	}
	for _, c := range []struct {
		name string
		c    ocClock
	}{{"from", f.From}, {"to", f.To}} {
		if !c.c.set {
			v.add(s.line, "%s.%s: required, a time of day such as 08:00", at, c.name)
		}
	}
	switch {
	case !f.From.set || !f.To.set || f.From.bad || f.To.bad:
	case f.From.minute == 24*60:
		v.add(f.From.line, "%s.from: 24:00 is only an end: start at 00:00", at)
	case f.From.minute == f.To.minute:
		v.add(f.From.line, "%s: from and to are both %s, an empty shift (a whole day is 00:00 to 24:00)", at, ocClockString(f.From.minute))
	}
	if f.Staff.bad || f.Days.bad || f.From.bad || f.To.bad || len(v.problems) > before {
		return Shift{}, false
	}
	return Shift{Staff: f.Staff.names, Days: f.Days.days, From: f.From.minute, To: f.To.minute}, true
}

// ocLine is line, or else fallback.
func ocLine(line, fallback int) int {
	if line > 0 {
		return line
	}
	return fallback
}

func ocClockString(minute int) string { return fmt.Sprintf("%02d:%02d", minute/60, minute%60) }
