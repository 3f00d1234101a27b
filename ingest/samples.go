package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// numberSpec describes one numeric field of a sample type: the catalog
// (GET /v1/catalog) of what it means and how it is checked.
type numberSpec struct {
	name     string
	min, max float64
	aboveMin bool // min itself is not allowed
	integer  bool
	required bool
	label    string             // for people: "Total sleep"
	unit     string             // UCUM: "min", "/min", "kg", "mm[Hg]"
	units    map[string]float64 // other UCUM units the standard formats may send: value × factor is in unit
	loinc    []string           // LOINC codes of an observation of it
}

// unitList is the field's accepted units, its own first.
func (n numberSpec) unitList() []string { return unitList(n.unit, n.units) }

// stringSpec describes one required string field, stored as a tag.
type stringSpec struct {
	name  string
	valid func(string) bool
	want  string // what valid accepts, completing "must be "
}

// kind is the schema of one sample type.
type kind struct {
	label       string
	measurement string // where its points are stored; "": the sample type's name
	interval    bool   // start and end, the point at end; else a single time
	numbers     []numberSpec
	strings     []stringSpec
	objects     []string      // further fields, read by check
	check       func(*sample) // rules across fields; may add fields and problems
}

// kinds maps a sample type to its schema.
var kinds = map[string]*kind{
	"sleep": {label: "Sleep", interval: true, check: checkSleep, numbers: []numberSpec{
		{name: "total_min", max: 1440, required: true, label: "Total sleep", unit: "min", units: minutes, loinc: []string{"93832-4"}},
		{name: "deep_min", max: 1440, label: "Deep sleep", unit: "min", units: minutes},
		{name: "rem_min", max: 1440, label: "REM sleep", unit: "min", units: minutes},
		{name: "light_min", max: 1440, label: "Light sleep", unit: "min", units: minutes},
		{name: "awake_min", max: 1440, label: "Awake", unit: "min", units: minutes},
		{name: "efficiency", max: 1, label: "Sleep efficiency", unit: "1", units: map[string]float64{"%": 0.01}},
		{name: "resting_hr", min: 20, max: 250, label: "Resting heart rate", unit: "/min"},
		{name: "hrv_rmssd_ms", min: 1, max: 300, label: "HRV (RMSSD)", unit: "ms"},
		{name: "skin_temp_dev_c", min: -5, max: 5, label: "Skin temperature deviation", unit: "Cel"},
	}},
	"activity": {label: "Activity", interval: true, check: checkActivity, numbers: []numberSpec{
		{name: "steps", max: 100000, integer: true, label: "Steps", unit: "{steps}", loinc: []string{"55423-8", "41950-7"}},
		{name: "active_min", max: 1440, label: "Active minutes", unit: "min", units: minutes},
		{name: "energy_kcal", max: 20000, label: "Active energy", unit: "kcal", units: map[string]float64{"kJ": 1 / 4.184}},
	}},
	"heart_rate": {label: "Heart rate", numbers: []numberSpec{
		{name: "bpm", min: 20, max: 250, required: true, label: "Heart rate", unit: "/min", loinc: []string{"8867-4"}},
	}},
	"symptoms": {label: "Symptoms", check: checkSymptoms, objects: []string{"items"}, strings: []stringSpec{
		{name: "instrument", valid: oneOf(instrumentNames...), want: "one of " + strings.Join(instrumentNames, ", ")},
	}},
	"dose": {label: "Doses", numbers: []numberSpec{
		{name: "amount", max: 10000, aboveMin: true, required: true, label: "Amount"},
	}, strings: []stringSpec{
		{name: "medication", valid: isMedication, want: "1 to 64 lowercase letters, digits, '_' or '-', starting with a letter"},
		{name: "route", valid: oneOf(routes...), want: "one of " + strings.Join(routes, ", ")},
		{name: "unit", valid: oneOf(units...), want: "one of " + strings.Join(units, ", ")},
	}},
	"vitals": {label: "Vitals", check: checkVitals, numbers: []numberSpec{
		{name: "weight_kg", min: 20, max: 400, label: "Weight", unit: "kg",
			units: map[string]float64{"[lb_av]": 0.45359237, "g": 0.001}, loinc: []string{"29463-7", "3141-9"}},
		{name: "systolic", min: 50, max: 260, label: "Systolic", unit: "mm[Hg]", loinc: []string{"8480-6"}},
		{name: "diastolic", min: 30, max: 160, label: "Diastolic", unit: "mm[Hg]", loinc: []string{"8462-4"}},
		{name: "hematocrit_pct", min: 10, max: 75, label: "Hematocrit", unit: "%"},
	}},
	"lab": {label: "Laboratory results", measurement: "labs", check: checkLab, numbers: []numberSpec{
		{name: "value", max: 1e9, required: true, label: "Value"},
		{name: "ref_low", max: 1e9, label: "Reference range, low"},
		{name: "ref_high", max: 1e9, label: "Reference range, high"},
	}, strings: []stringSpec{
		{name: "analyte", valid: oneOf(analyteNames...), want: "one of " + strings.Join(analyteNames, ", ")},
		{name: "unit", valid: isUnitText, want: "a unit such as pmol/L or ng/dL"},
	}},
}

// minutes are the units a duration in minutes may come in.
var minutes = map[string]float64{"h": 60, "s": 1.0 / 60}

// measurementOf returns where the points of the kind's sample type typ
// are stored.
func (k *kind) measurementOf(typ string) string {
	if k.measurement != "" {
		return k.measurement
	}
	return typ
}

// isUnitText reports whether u can be a unit: 1 to 24 printable ASCII
// characters (or µ) without quotes or backslashes.
func isUnitText(u string) bool {
	u = strings.NewReplacer("µ", "u", "μ", "u").Replace(u)
	if len(u) == 0 || len(u) > 24 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// kindNames lists the sample types for problem sentences.
const kindNames = "sleep, activity, heart_rate, symptoms, dose, vitals, lab"

var (
	routes = []string{"oral", "transdermal", "intramuscular", "subcutaneous", "vaginal",
		"sublingual", "buccal", "nasal", "topical", "implant"}
	units = []string{"mg", "mcg", "g", "ml", "iu", "pump", "patch", "pellet", "application", "drop"}
)

// maxSpan is the longest interval one sample may cover.
const maxSpan = 24 * time.Hour

// window is the range of accepted point times.
type window struct {
	oldest, newest time.Time
	lim            Limits
}

// sample is one sample under validation.
type sample struct {
	index    int
	members  []member
	kind     *kind
	typ      string
	span     time.Duration // end - start, set only for a valid interval
	fields   []Field
	tags     []Tag
	problems []Problem
	items    []member // the members of symptoms' items
}

// decoder decodes the samples of one envelope. It reuses one sample and
// its scratch slices from sample to sample, and cuts the points' fields
// and tags from a few shared arrays rather than one array per point.
type decoder struct {
	scan    scanner
	env     *Envelope
	win     window
	members []member // the current sample's members
	s       sample
	fields  arena[Field]
	tags    arena[Tag]
}

func newDecoder(payload []byte, now time.Time, lim Limits) *decoder {
	// Room for as many points as there can be: each comes from an object
	// with a '{' of its own besides the envelope's, and takes more than 32
	// bytes, as its type and time alone do. The second bound keeps a
	// message of braces in a string from reserving much room.
	points := max(min(bytes.Count(payload, []byte("{"))-1, len(payload)/32, lim.MaxSamples), 0)
	return &decoder{
		scan:    scanner{data: payload},
		env:     &Envelope{Points: make([]Point, 0, points)},
		win:     window{oldest: now.Add(-lim.Backfill), newest: now.Add(lim.FutureSkew), lim: lim},
		members: make([]member, 0, 16),
		fields:  arena[Field]{chunk: 2 * points},
		tags:    arena[Tag]{chunk: 16},
	}
}

// sample reads the sample at index i of the envelope and adds its point,
// or every problem found in it, to the envelope.
func (d *decoder) sample(i int) {
	sc := &d.scan
	if sc.peek() != '{' {
		sc.value()
		d.env.Problems = append(d.env.Problems, Problem{Sample: i, Problem: "must be a JSON object", Reason: ReasonMalformed})
		return
	}
	d.members = sc.object(d.members, nil)
	if sc.err {
		return // the whole message is rejected
	}
	s := &d.s
	*s = sample{index: i, members: d.members, fields: d.fields.take(len(d.members)), problems: s.problems[:0], items: s.items}
	if p, ok := s.decode(d.win, &d.tags); ok {
		p.Fields, p.Tags = d.fields.keep(s.fields), d.tags.keep(s.tags)
		d.env.Points = append(d.env.Points, p)
		if v, ok := hematocritVital(p); ok {
			d.env.Points = append(d.env.Points, v)
		}
		return
	}
	d.env.Problems = append(d.env.Problems, s.sorted()...)
}

// decode validates the sample: it returns its point, or false when it
// found problems. tags is where the sample's tags are taken from.
func (s *sample) decode(win window, tags *arena[Tag]) (Point, bool) {
	if !s.readType() {
		return Point{}, false
	}
	s.checkMembers()
	t, timeOK := s.readTimes()
	for _, spec := range s.kind.numbers {
		if v, ok := s.parseNumber("", spec.name, s.get(spec.name), spec); ok {
			s.fields = append(s.fields, Field{Key: spec.name, Value: v})
		}
	}
	if len(s.kind.strings) > 0 {
		s.tags = tags.take(len(s.kind.strings))
	}
	for _, spec := range s.kind.strings {
		s.readString(spec)
	}
	if s.kind.check != nil {
		s.kind.check(s)
	}
	if timeOK {
		s.checkWindow(t, win)
	}
	if len(s.problems) > 0 {
		return Point{}, false
	}
	slices.SortFunc(s.fields, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(s.tags, compareTags)
	return Point{Sample: s.index, Measurement: s.kind.measurementOf(s.typ), Time: t}, true
}

// arena hands out the slices of many points from shared arrays.
type arena[T any] struct {
	free  []T // the unused end of the current array
	chunk int // the least size of a new array
}

// take returns an empty slice with room for n elements. More may be
// appended, moving it to an array of its own.
func (a *arena[T]) take(n int) []T {
	if cap(a.free) < n {
		a.free = make([]T, 0, max(n, a.chunk))
	}
	return a.free[:0]
}

// keep gives s, taken and appended to, for good: it returns s with its
// capacity cut so that appending to it cannot overwrite the next slice,
// which starts after it. A slice not kept is reused by the next take; nil,
// never taken, stays nil.
func (a *arena[T]) keep(s []T) []T {
	if s == nil {
		return nil
	}
	a.free = s[len(s):]
	return s[:len(s):len(s)]
}

// add records a problem of the sample.
func (s *sample) add(field, reason, format string, args ...any) {
	s.problems = append(s.problems, Problem{Sample: s.index, Field: field, Problem: fmt.Sprintf(format, args...), Reason: reason})
}

// sorted returns the problems sorted by field, keeping the order in which
// problems of one field were found.
func (s *sample) sorted() []Problem {
	slices.SortStableFunc(s.problems, func(a, b Problem) int { return strings.Compare(a.Field, b.Field) })
	return s.problems
}

// get returns the raw value of the first member named name, nil if none.
func (s *sample) get(name string) json.RawMessage {
	for _, m := range s.members {
		if m.key == name {
			return m.val
		}
	}
	return nil
}

// given reports whether the sample has a non-null value for name.
func (s *sample) given(name string) bool { return !isNull(s.get(name)) }

// value returns the valid value of the numeric field name.
func (s *sample) value(name string) (float64, bool) {
	for _, f := range s.fields {
		if f.Key == name {
			return f.Value, true
		}
	}
	return 0, false
}

// readType finds the sample's kind; without one nothing else can be judged.
func (s *sample) readType() bool {
	for _, m := range s.members {
		if m.dup {
			s.problems = append(s.problems, duplicate(s.index, m.key, ""))
		}
	}
	raw := s.get("type")
	if isNull(raw) {
		s.add("type", ReasonMissingField, "is required")
		return false
	}
	typ, ok := unquote(raw)
	k := kinds[typ]
	if !ok || k == nil {
		s.add("type", ReasonUnknownType, "must be one of %s", kindNames)
		return false
	}
	s.typ, s.kind = typ, k
	return true
}

// checkMembers reports the fields the sample's kind does not have, so that
// a misspelt optional field is not silently lost.
func (s *sample) checkMembers() {
	for _, m := range s.members {
		if !m.dup && !s.known(m.key) {
			s.problems = append(s.problems, unknownField(s.index, m.key, s.typ+" samples"))
		}
	}
}

func (s *sample) known(name string) bool {
	k := s.kind
	switch {
	case name == "type",
		k.interval && (name == "start" || name == "end"),
		!k.interval && name == "time",
		slices.ContainsFunc(k.numbers, func(n numberSpec) bool { return n.name == name }),
		slices.ContainsFunc(k.strings, func(n stringSpec) bool { return n.name == name }),
		slices.Contains(k.objects, name):
		return true
	}
	return false
}

// readTimes reads the sample's time or interval and returns the point time.
func (s *sample) readTimes() (time.Time, bool) {
	if !s.kind.interval {
		return s.readTime("time")
	}
	start, startOK := s.readTime("start")
	end, endOK := s.readTime("end")
	if startOK && endOK {
		switch span := end.Sub(start); {
		case span <= 0:
			s.add("end", ReasonInvertedInterval, "must be after start")
		case span > maxSpan:
			s.add("end", ReasonOutOfRange, "must be at most %s after start", words(maxSpan))
		default:
			s.span = span
		}
	}
	return end, endOK
}

// readTime reads the required RFC 3339 time name, in UTC.
func (s *sample) readTime(name string) (time.Time, bool) {
	raw := s.get(name)
	if isNull(raw) {
		s.add(name, ReasonMissingField, "is required")
		return time.Time{}, false
	}
	if b, ok := unquoteBytes(raw); ok {
		if t, err := time.Parse(time.RFC3339, string(b)); err == nil {
			return t.UTC(), true
		}
	}
	s.add(name, ReasonBadTime, "must be an RFC 3339 time such as 2026-11-22T09:15:00Z")
	return time.Time{}, false
}

// checkWindow rejects a point time outside the accepted window.
func (s *sample) checkWindow(t time.Time, win window) {
	field := "time"
	if s.kind.interval {
		field = "end"
	}
	switch {
	case t.Before(win.oldest):
		s.add(field, ReasonTooOld, "is more than %s in the past", words(win.lim.Backfill))
	case t.After(win.newest) && win.lim.FutureSkew <= 0:
		s.add(field, ReasonInFuture, "is in the future")
	case t.After(win.newest):
		s.add(field, ReasonInFuture, "is more than %s in the future", words(win.lim.FutureSkew))
	}
}

// parseNumber checks raw, the value of the field prefix+name, against
// spec. A null or absent value is only a problem when spec.required. -0
// reads as 0. The field's name is only put together for a problem.
func (s *sample) parseNumber(prefix, name string, raw json.RawMessage, spec numberSpec) (float64, bool) {
	if isNull(raw) {
		if spec.required {
			s.add(prefix+name, ReasonMissingField, "is required")
		}
		return 0, false
	}
	what := "a number"
	if spec.integer {
		what = "an integer"
	}
	if !isNumber(raw) {
		s.add(prefix+name, ReasonInvalidValue, "must be %s", what)
		return 0, false
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	switch {
	case err != nil || math.IsInf(v, 0):
		s.add(prefix+name, ReasonOutOfRange, "%s (got a number too large to read)", rangeText(spec))
	case spec.integer && v != math.Trunc(v):
		s.add(prefix+name, ReasonInvalidValue, "must be an integer (got %s)", num(v))
	case v > spec.max || v < spec.min || spec.aboveMin && v == spec.min:
		s.add(prefix+name, ReasonOutOfRange, "%s (got %s)", rangeText(spec), num(v))
	default:
		return v + 0, true // v + 0 turns -0 into 0
	}
	return 0, false
}

// rangeText states spec's range, e.g. "must be between 20 and 250".
func rangeText(spec numberSpec) string {
	if spec.aboveMin {
		return fmt.Sprintf("must be above %s and at most %s", num(spec.min), num(spec.max))
	}
	return fmt.Sprintf("must be between %s and %s", num(spec.min), num(spec.max))
}

// readString reads the required string spec.name and stores it as a tag.
// An invalid value is never echoed: it could be anything the device typed.
func (s *sample) readString(spec stringSpec) (string, bool) {
	raw := s.get(spec.name)
	if isNull(raw) {
		s.add(spec.name, ReasonMissingField, "is required")
		return "", false
	}
	str, ok := unquote(raw)
	if !ok {
		s.add(spec.name, ReasonInvalidValue, "must be a string")
		return "", false
	}
	if !spec.valid(str) {
		s.add(spec.name, ReasonInvalidValue, "must be %s", spec.want)
		return "", false
	}
	s.tags = append(s.tags, Tag{Key: spec.name, Value: str})
	return str, true
}

// tag returns the value of the valid tag key.
func (s *sample) tag(key string) (string, bool) {
	for _, t := range s.tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// checkSleep holds the night's total to the time between start and end.
func checkSleep(s *sample) {
	total, ok := s.value("total_min")
	if span := s.span.Minutes(); ok && s.span > 0 && total > span {
		s.add("total_min", ReasonOutOfRange, "must not exceed the %s minutes between start and end (got %s)", num(span), num(total))
	}
}

// checkActivity wants some measure of activity within the interval.
func checkActivity(s *sample) {
	if !s.given("steps") && !s.given("active_min") && !s.given("energy_kcal") {
		s.add("steps", ReasonMissingField, "at least one of steps, active_min and energy_kcal is required")
	}
	active, ok := s.value("active_min")
	if span := s.span.Minutes(); ok && s.span > 0 && active > span {
		s.add("active_min", ReasonOutOfRange, "must not exceed the %s minutes between start and end (got %s)", num(span), num(active))
	}
}

// checkVitals wants some vital, and blood pressure as a pair.
func checkVitals(s *sample) {
	if !slices.ContainsFunc(s.kind.numbers, func(n numberSpec) bool { return s.given(n.name) }) {
		s.add("weight_kg", ReasonMissingField, "at least one of weight_kg, systolic with diastolic, and hematocrit_pct is required")
	}
	switch sys, dia := s.given("systolic"), s.given("diastolic"); {
	case sys && !dia:
		s.add("diastolic", ReasonMissingField, "is required with systolic")
	case dia && !sys:
		s.add("systolic", ReasonMissingField, "is required with diastolic")
	}
	sys, sysOK := s.value("systolic")
	dia, diaOK := s.value("diastolic")
	if sysOK && diaOK && dia >= sys {
		s.add("diastolic", ReasonOutOfRange, "must be below systolic (got %s, systolic %s)", num(dia), num(sys))
	}
}

// hematocritVital returns the vitals.hematocrit_pct point a hematocrit
// lab also feeds, so that plans on the vital keep working.
func hematocritVital(p Point) (Point, bool) {
	if p.Measurement != "labs" || len(p.Tags) != 1 || p.Tags[0].Value != "hematocrit" {
		return Point{}, false
	}
	for _, f := range p.Fields {
		if f.Key == "value" {
			return Point{Sample: p.Sample, Measurement: "vitals", Time: p.Time, Fields: []Field{{Key: "hematocrit_pct", Value: f.Value}}}, true
		}
	}
	return Point{}, false
}

// num writes a number in problem sentences: 400, 0.05, 1e+21.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// oneOf returns a check that s is one of names.
func oneOf(names ...string) func(string) bool {
	return func(s string) bool { return slices.Contains(names, s) }
}

// isMedication reports whether s matches ^[a-z][a-z0-9_-]{0,63}$.
func isMedication(s string) bool {
	return matchName(s, isLower, func(c byte) bool { return isLower(c) || isDigit(c) || c == '_' || c == '-' })
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
