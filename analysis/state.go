package analysis

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Sample is one stored field value of a patient, as analysis takes it in:
// from the writer after a durable write, or from InfluxDB when a patient's
// state is rebuilt.
type Sample struct {
	Measurement string
	Field       string
	Value       float64
	Time        time.Time
	Instrument  string // symptoms
	Medication  string // dose
}

// SamplesOf flattens stored points into samples.
func SamplesOf(points []ingest.Point) []Sample {
	var out []Sample
	for _, p := range points {
		var instrument, medication, analyte string
		for _, t := range p.Tags {
			switch t.Key {
			case "instrument":
				instrument = t.Value
			case "medication":
				medication = t.Value
			case "analyte":
				analyte = t.Value
			}
		}
		for _, f := range p.Fields {
			if field, ok := fieldOf(p.Measurement, f.Key, analyte); ok {
				out = append(out, Sample{Measurement: p.Measurement, Field: field, Value: f.Value, Time: p.Time,
					Instrument: instrument, Medication: medication})
			}
		}
	}
	return out
}

// sampleOf is the sample of a value read back from InfluxDB.
func sampleOf(v ingest.StoredValue) (Sample, bool) {
	field, ok := fieldOf(v.Measurement, v.Field, v.Tags["analyte"])
	return Sample{Measurement: v.Measurement, Field: field, Value: v.Value, Time: v.Time,
		Instrument: v.Tags["instrument"], Medication: v.Tags["medication"]}, ok
}

// fieldOf is the field analysis reads a stored field as: a lab result's
// value is labs.<analyte>; its reported value and reference range are
// not judged.
func fieldOf(measurement, field, analyte string) (string, bool) {
	if measurement != "labs" {
		return field, true
	}
	return analyte, field == "value" && analyte != ""
}

// patient is what analysis holds of one patient: their plan versions, the
// daily stats of the series their rules read, their logged doses, and the
// verdicts last recorded.
type patient struct {
	id       string
	versions []*Plan // oldest first
	series   []*series
	doses    []medDoses    // logged doses of the medications adherence rules count
	keepDose time.Duration // how far back doses are kept
	states   ruleStates
	// procedures are the planned and done ones, read only for a patient
	// with timing rules.
	procedures []Procedure

	dirty    bool                  // has data not yet evaluated
	announce bool                  // its plan changed: the next evaluation passes on the rules that hold on
	lastEval time.Time             // when it was last evaluated
	view     *registry.PatientView // the view last kept for writing (views.go); nil: none yet
}

// ruleState is a rule's verdict as recorded: evaluation reports changes
// from it.
type ruleState struct {
	Holds    bool      `json:"holds"`
	Forecast bool      `json:"forecast,omitempty"`
	Judged   bool      `json:"judged"`
	Version  int       `json:"version"`
	Since    time.Time `json:"since"`
}

// newPatient prepares the series the versions' rules read, their rules
// shared with every other patient's of the same content.
func newPatient(id string, versions []*Plan) *patient {
	for _, v := range versions {
		v.intern()
	}
	return buildPatient(id, versions)
}

// buildPatient is newPatient for versions kept only for a while (a
// preview's draft), whose rules are not shared.
func buildPatient(id string, versions []*Plan) *patient {
	p := &patient{id: id, versions: versions}
	keep := map[seriesKey]int{}
	for _, v := range versions {
		for i := range v.Rules {
			r := &v.Rules[i]
			if k, days, _, ok := r.seriesKey(); ok {
				keep[k] = max(keep[k], days)
			}
			if r.Kind == KindAdherence {
				for _, d := range v.Regimen {
					if d.Medication == r.Medication {
						p.keepDose = max(p.keepDose, time.Duration(r.Over)+d.Schedule.Interval())
					}
				}
			}
		}
	}
	keys := make([]seriesKey, 0, len(keep))
	for k := range keep {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b seriesKey) int {
		return strings.Compare(a.measurement+"."+a.field+"|"+a.instrument, b.measurement+"."+b.field+"|"+b.instrument)
	})
	for _, k := range keys {
		p.series = append(p.series, newSeries(k, keep[k]))
	}
	return p
}

// sharedRules holds one copy of each distinct rule list (by content):
// most patients' plans come from a few templates, and a rule list is
// read-only once loaded.
var sharedRules sync.Map // JSON of the rules → []Rule

// intern makes the plan's rule list, and its strings, share one copy with
// every other plan's: ten thousand patients' plans repeat the same rules.
func (p *Plan) intern() {
	if key, err := json.Marshal(p.Rules); err == nil {
		if shared, ok := sharedRules.Load(string(key)); ok {
			p.Rules = shared.([]Rule)
		} else {
			p.internStrings()
			sharedRules.Store(string(key), p.Rules)
		}
		return
	}
	p.internStrings()
}

// internStrings makes the plan's strings share one copy with every other
// plan's.
func (p *Plan) internStrings() {
	in := func(s *string) { *s = unique.Make(*s).Value() }
	for i := range p.Regimen {
		d := &p.Regimen[i]
		in(&d.Medication)
		in(&d.Route)
		in(&d.Unit)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		for _, s := range []*string{&r.ID, &r.Kind, &r.Severity, &r.Metric, &r.Instrument, &r.PerDay,
			&r.Aggregate, &r.Band, &r.Medication, &r.Score, &r.Procedure} {
			in(s)
		}
	}
}

// readBack returns, by measurement, how many days back the patient's data
// must be read from InfluxDB on a rebuild. It is worked out when needed:
// kept, it would cost every patient a map.
func (p *patient) readBack() map[string]int {
	back := map[string]int{}
	for _, v := range p.versions {
		for i := range v.Rules {
			if k, _, days, ok := v.Rules[i].seriesKey(); ok {
				back[k.measurement] = max(back[k.measurement], days)
			}
		}
	}
	if p.keepDose > 0 {
		back["dose"] = int(p.keepDose.Hours()/24) + 1
	}
	return back
}

// read is one query's worth of what a rebuild in bulk reads of a
// patient: fields of a measurement, so many days back, and every value or
// only each stored series' newest.
type read struct {
	measurement string
	days        int
	fields      string // comma-separated, sorted
	latest      bool
}

// reads returns what a rebuild in bulk reads of the patient: each stored
// field as far back as the rules that read it look (readBack, by field
// rather than by measurement), and only its newest values when those
// rules read nothing else (a silence; a score of the latest check-in).
// Of labs the field is the results' value; a silence of every field and
// the doses read seq, one value per stored point, whose time and tags
// are all they need, as Newest reads it. InfluxDB's cost goes by the
// series and points read: a sleep record has 8 fields, a check-in 15.
func (p *patient) reads() []read {
	type stored struct{ measurement, field string }
	days := map[stored]int{}
	full := map[stored]bool{}
	need := func(k stored, d int, all bool) {
		days[k] = max(days[k], d)
		full[k] = full[k] || all
	}
	for _, v := range p.versions {
		for i := range v.Rules {
			r := &v.Rules[i]
			k, _, d, ok := r.seriesKey()
			if !ok {
				continue
			}
			f := k.field
			switch {
			case k.measurement == "labs": // a result's value is what analysis takes of labs (fieldOf)
				f = "value"
			case f == "":
				f = "seq"
			}
			need(stored{k.measurement, f}, d, !(r.Kind == KindSilence || r.Kind == KindScore && r.Over == 0))
		}
	}
	if p.keepDose > 0 {
		need(stored{"dose", "seq"}, int(p.keepDose.Hours()/24)+1, true)
	}
	byRead := map[read][]string{}
	for k, d := range days {
		r := read{measurement: k.measurement, days: d, latest: !full[k]}
		byRead[r] = append(byRead[r], k.field)
	}
	out := make([]read, 0, len(byRead))
	for r, fields := range byRead {
		slices.Sort(fields)
		r.fields = strings.Join(fields, ",")
		out = append(out, r)
	}
	return out
}

// seriesKey returns the series a rule reads, how many days of daily stats
// it needs, and how many days back its data must be read on a rebuild (a
// silence or a latest check-in may be older than any window); ok is false
// for adherence, which reads doses.
func (r *Rule) seriesKey() (k seriesKey, days, readBack int, ok bool) {
	m, field, _ := strings.Cut(r.Metric, ".")
	switch r.Kind {
	case KindThreshold, KindTrend:
		return seriesKey{m, field, r.Instrument}, r.Over.Days() + 1, r.Over.Days() + 1, true
	case KindBaseline:
		n := r.Baseline.Days() + r.Recent.Days() + 1
		return seriesKey{m, field, r.Instrument}, n, n, true
	case KindSilence:
		return seriesKey{m, field, ""}, 1, r.For.Days() + 1, true
	case KindFollowUp:
		if r.Metric == "" {
			return seriesKey{}, 0, 0, false // a procedure
		}
		return seriesKey{m, field, ""}, 1, r.DueAfter.Days() + r.Every.Days() + r.grace().Days() + 1, true
	case KindScore:
		if r.Over == 0 {
			return seriesKey{"symptoms", r.Score, r.Instrument}, 1, maxCheckInAge.Days() + 1, true
		}
		return seriesKey{"symptoms", r.Score, r.Instrument}, r.Over.Days() + 1, r.Over.Days() + 1, true
	}
	return seriesKey{}, 0, 0, false
}

// take adds the samples of one message, and reports whether the patient
// must be read back from InfluxDB because a series may have counted one
// of them twice (series.add).
func (p *patient) take(clk clock, samples []Sample) (unsure bool) {
	for _, se := range p.series {
		se.held = se.newest
	}
	for _, s := range samples {
		unsure = p.add(clk, s) || unsure
	}
	for _, se := range p.series {
		se.held = 0
	}
	return unsure
}

// add takes a sample into every series that reads it, and a dose into
// the doses when an adherence rule counts its medication. It reports
// whether a series was unsure of it (series.add).
func (p *patient) add(clk clock, s Sample) (unsure bool) {
	if s.Measurement == "dose" && p.keepDose > 0 && s.Medication != "" {
		p.addDose(s.Medication, s.Time.Unix())
	}
	local := s.Time.In(clk.loc)
	d, minute := clk.dayOf(s.Time), local.Hour()*60+local.Minute()
	for _, se := range p.series {
		if se.key.takes(s) && se.add(d, s.Time, minute, s.Value) {
			unsure = true
		}
	}
	p.dirty = true
	return unsure
}

// medDoses are the logged doses of one medication: unix seconds, sorted.
type medDoses struct {
	medication string
	times      []int64
}

// dosesOf returns the logged doses of a medication.
func (p *patient) dosesOf(medication string) []int64 {
	for _, d := range p.doses {
		if d.medication == medication {
			return d.times
		}
	}
	return nil
}

// addDose records a dose time once (a redelivered message repeats it).
func (p *patient) addDose(medication string, t int64) {
	i := slices.IndexFunc(p.doses, func(d medDoses) bool { return d.medication == medication })
	if i < 0 {
		p.doses = append(p.doses, medDoses{medication: medication})
		i = len(p.doses) - 1
	}
	ts := p.doses[i].times
	if j, found := slices.BinarySearch(ts, t); !found {
		p.doses[i].times = slices.Insert(ts, j, t)
	}
}

// trimDoses forgets doses older than any adherence window needs, and lets
// go of the room they took.
func (p *patient) trimDoses(now time.Time) {
	cut := now.Add(-p.keepDose).Unix()
	for i := range p.doses {
		ts := p.doses[i].times
		if j, _ := slices.BinarySearch(ts, cut); j > 0 {
			p.doses[i].times = slices.Clone(ts[j:])
		}
	}
}

// ruleStates are a patient's rule states: a few, so a slice.
type ruleStates []namedState

type namedState struct {
	rule  string
	state ruleState
}

func (s ruleStates) get(rule string) (ruleState, bool) {
	for _, n := range s {
		if n.rule == rule {
			return n.state, true
		}
	}
	return ruleState{}, false
}

func (s *ruleStates) set(rule string, st ruleState) {
	for i := range *s {
		if (*s)[i].rule == rule {
			(*s)[i].state = st
			return
		}
	}
	*s = append(*s, namedState{rule, st})
}

func (s *ruleStates) del(rule string) {
	*s = slices.DeleteFunc(*s, func(n namedState) bool { return n.rule == rule })
}

// apply records the rule states judgeAll changed (nil: the rule left the
// plan).
func (p *patient) apply(changed map[string]*ruleState) {
	for rule, st := range changed {
		if st == nil {
			p.states.del(rule)
		} else {
			p.states.set(rule, *st)
		}
	}
}

// versionAt returns the plan version in force at t, or nil.
func (p *patient) versionAt(t time.Time) *Plan {
	for i := len(p.versions) - 1; i >= 0; i-- {
		if !p.versions[i].Effective.After(t) {
			return p.versions[i]
		}
	}
	return nil
}

// lastRule returns the rule of that id in the newest version that has it.
func (p *patient) lastRule(id string) *Rule {
	for i := len(p.versions) - 1; i >= 0; i-- {
		for j := range p.versions[i].Rules {
			if p.versions[i].Rules[j].ID == id {
				return &p.versions[i].Rules[j]
			}
		}
	}
	return nil
}

// timed reports whether a version has a rule that reads procedures: a
// timing rule, or a follow-up by one.
func (p *patient) timed() bool {
	for _, v := range p.versions {
		for i := range v.Rules {
			if r := &v.Rules[i]; r.Kind == KindTiming || r.Kind == KindFollowUp && r.Procedure != "" {
				return true
			}
		}
	}
	return false
}

// silenced reports whether a silence or follow-up rule reads the series
// of k: its newest sample, however old.
func (p *patient) silenced(k seriesKey) bool {
	for _, v := range p.versions {
		for i := range v.Rules {
			r := &v.Rules[i]
			if sk, _, _, ok := r.seriesKey(); ok && (r.Kind == KindSilence || r.Kind == KindFollowUp) && sk == k {
				return true
			}
		}
	}
	return false
}

// seriesFor returns the series a rule reads, or nil.
func (p *patient) seriesFor(r *Rule) *series {
	k, _, _, ok := r.seriesKey()
	if !ok {
		return nil
	}
	for _, s := range p.series {
		if s.key == k {
			return s
		}
	}
	return nil
}
