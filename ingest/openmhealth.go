package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/patientpulse/patientpulse/registry"
)

// Open mHealth and IEEE 1752.1 ingest (DESIGN.md, "Standard formats"): a
// data point, an array of them or an IEEE 1752.1 data series (one header,
// a body array) is read into envelope samples, which Intake.DecodeSamples
// then judges with the envelope's own checks. Each problem comes back in
// the envelope's error document with field a JSON Pointer (RFC 6901) into
// the posted document and sample the index of the data point (of the body
// element in a data series). Nothing of the header is stored: its id or
// uuid, new on every resend, changes nothing, since a point with the same
// series and time overwrites.

// MediaOpenMHealth is the media type of Open mHealth JSON. Plain
// application/json is read as Open mHealth too when IsOpenMHealth says so.
const MediaOpenMHealth = "application/vnd.openmhealth+json"

// Reasons for refusing an Open mHealth data point, besides the envelope's.
const (
	ReasonUnknownSchema = "unknown_schema" // a schema (or version) patientpulse does not take
	ReasonBadUnit       = "bad_unit"       // a unit that does not measure the value
)

// omhSchema reads the body of one schema into an envelope sample.
type omhSchema struct {
	name     string
	versions []int // the major versions taken
	read     func(p *omhPoint, body []member)
}

// omhSchemas are the schemas taken, by name; the namespace may be omh or
// ieee (IEEE 1752.1 publishes physical-activity and sleep-episode).
var omhSchemas = []omhSchema{
	{name: "heart-rate", versions: []int{1, 2}, read: readHeartRate},
	{name: "step-count", versions: []int{1, 2, 3}, read: readStepCount},
	{name: "physical-activity", versions: []int{1}, read: readPhysicalActivity},
	{name: "sleep-duration", versions: []int{1, 2}, read: readSleepDuration},
	{name: "sleep-episode", versions: []int{1}, read: readSleepEpisode},
	{name: "body-weight", versions: []int{1, 2, 3}, read: readBodyWeight},
	{name: "blood-pressure", versions: []int{1, 2, 3, 4}, read: readBloodPressure},
}

// omhSchemaList names the schemas taken, for problem sentences.
var omhSchemaList = func() string {
	var parts []string
	for _, s := range omhSchemas {
		vs := make([]string, len(s.versions))
		for i, v := range s.versions {
			vs[i] = strconv.Itoa(v) + ".x"
		}
		parts = append(parts, s.name+" "+strings.Join(vs, "/"))
	}
	return strings.Join(parts, ", ")
}()

// omhNames are the keys of the data points patientpulse reads, interned
// (see names) so that splitting a data point into members does not
// allocate them.
var omhNames = []string{
	"header", "body", "id", "uuid", "creation_date_time", "source_creation_date_time", "acquisition_provenance",
	"source_name", "modality", "external_datasheets", "datasheet_type", "datasheet_reference", "user_id", "schema_id", "namespace", "name", "version",
	"effective_time_frame", "date_time", "time_interval", "start_date_time", "end_date_time", "duration",
	"date", "part_of_day", "value", "unit", "heart_rate", "step_count", "activity_name", "distance",
	"kcal_burned", "base_movement_quantity", "reported_activity_intensity", "met_value", "sleep_duration",
	"total_sleep_time", "wake_after_sleep_onset", "sleep_maintenance_efficiency_percentage",
	"latency_to_sleep_onset", "latency_to_arising", "number_of_awakenings", "is_main_sleep", "body_weight",
	"systolic_blood_pressure", "diastolic_blood_pressure", "position_during_measurement",
	"temporal_relationship_to_physical_activity", "temporal_relationship_to_sleep", "descriptive_statistic",
	"descriptive_statistic_denominator", "body_posture", "measurement_location",
}

// IsOpenMHealth reports whether body, sent as application/json, is Open
// mHealth rather than an envelope: an object, or an array whose first
// element is an object, with a header holding a schema_id. It reads no
// further than it must: an envelope is told by its first key.
func IsOpenMHealth(body []byte) bool {
	s := scanner{data: body}
	if s.peek() == '[' {
		s.enter()
		if !s.next(']', 0) {
			return false
		}
	}
	if s.peek() != '{' {
		return false
	}
	s.enter()
	for n := 0; s.next('}', n); n++ {
		switch key := s.key(); key {
		case "seq", "samples":
			return false
		case "header":
			if s.peek() != '{' {
				return false
			}
			for _, m := range objectMembers(nil, s.value()) {
				if m.key == "schema_id" {
					return true
				}
			}
			return false
		default:
			s.value()
		}
	}
	return false
}

// IngestOpenMHealth handles body, Open mHealth from the enrolled, active
// device dev, as Ingest does an envelope. The answer's seq is null: Open
// mHealth has none.
func (in *Intake) IngestOpenMHealth(ctx context.Context, transport string, dev registry.Device, body []byte,
	write func(context.Context, []byte) error) (Outcome, error) {
	env, err := in.DecodeOpenMHealth(body)
	if err != nil {
		eerr := err.(*EnvelopeError) // DecodeOpenMHealth fails with nothing else
		in.refused(transport, eerr.Reason)
		return Outcome{Answer: &eerr.Doc}, nil
	}
	out, err := in.Store(ctx, transport, dev, env, write)
	if out.Answer != nil {
		out.Answer.Seq = nil
	}
	return out, err
}

// DecodeOpenMHealth reads body, one Open mHealth data point, an array of
// them or a data series, and validates it as DecodeSamples does samples:
// the envelope returned has a point for each valid data point and problems
// for the others, with Sample the data point's index and Field a JSON
// Pointer into body. It fails only with *EnvelopeError, whose seq is null,
// when body is unusable as a whole.
func (in *Intake) DecodeOpenMHealth(body []byte) (*Envelope, error) {
	points, err := splitOpenMHealth(body, in.limits.MaxSamples)
	if err != nil {
		return nil, err
	}
	samples := make([]byte, 0, len(body)/2)
	samples = append(samples, '[')
	var problems []Problem
	judged := make([]*omhPoint, 0, len(points)) // those read into a sample, in samples' order
	for i := range points {
		p := &points[i]
		before := len(samples)
		if len(judged) > 0 {
			samples = append(samples, ',')
		}
		var ok bool
		// A sample with problems of its own is judged too, so that every
		// problem of the data point is answered at once; it stores nothing.
		if samples, ok = p.read(samples); ok {
			judged = append(judged, p)
		} else {
			samples = samples[:before]
		}
		problems = append(problems, p.problems...)
	}
	samples = append(samples, ']')
	env := &Envelope{Unsequenced: true}
	if len(judged) > 0 {
		dec, err := in.DecodeSamples(samples)
		if err != nil {
			return nil, err // not reached: the samples are valid JSON, at most MaxSamples
		}
		env.Points = dec.Points[:0]
		for _, pt := range dec.Points {
			if p := judged[pt.Sample]; len(p.problems) == 0 {
				pt.Sample = p.index
				env.Points = append(env.Points, pt)
			}
		}
		for _, pr := range dec.Problems {
			p := judged[pr.Sample]
			ptr, ok := p.pointer(pr.Field)
			if len(p.problems) > 0 && !ok {
				continue // a field left out for a problem already answered
			}
			pr.Sample, pr.Field = p.index, ptr
			problems = append(problems, pr)
		}
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.Sample - b.Sample })
	env.Problems, env.Samples = problems, len(points)
	return env, nil
}

// omhPoint is one data point (or data series element) being read into an
// envelope sample.
type omhPoint struct {
	index  int    // in the document: the array's, or the series body's
	ptr    string // JSON Pointer to the data point, "" for the document itself
	header []member
	hptr   jptr // to its header
	body   []byte
	bptr   jptr // to its body
	mem    *arena[member]

	sample   []byte // the envelope sample being written, JSON
	fields   [6]omhField
	nfields  int
	problems []Problem
}

// omhField is a field of the sample and the element it came from.
type omhField struct {
	name string
	ptr  jptr
}

// pointer returns the JSON Pointer of the element the sample's field came
// from; ok is false when the field was not written, and the pointer is
// the data point's own.
func (p *omhPoint) pointer(field string) (string, bool) {
	for _, f := range p.fields[:p.nfields] {
		if f.name == field {
			return f.ptr.String(), true
		}
	}
	return p.ptr, false
}

// members splits raw, a valid JSON object, into its members, from the
// decoding's shared arrays.
func (p *omhPoint) members(raw []byte) []member {
	if p.mem == nil {
		return objectMembers(nil, raw)
	}
	return p.mem.keep(objectMembers(p.mem.take(12), raw))
}

// splitOpenMHealth splits body into its data points; the error is an
// *EnvelopeError.
func splitOpenMHealth(body []byte, limit int) ([]omhPoint, error) {
	refuse := func(field, reason, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		text := "invalid Open mHealth document: " + msg
		if field != "" {
			text = "invalid Open mHealth document: " + field + ": " + msg
		}
		return &EnvelopeError{Reason: reason, Doc: ErrorDoc{Error: text,
			Details: []Problem{{Sample: -1, Field: field, Problem: msg, Reason: reason}}}}
	}
	s := scanner{data: body}
	s.value()
	if !s.end() {
		return nil, refuse("", ReasonMalformed, "the document is not valid JSON (%s)", syntaxPlace(body))
	}
	var points []omhPoint
	mem := &arena[member]{chunk: 1024}
	top := scanner{data: body}
	switch top.peek() {
	case '[':
		for i, el := range arrayElements(body) {
			points = append(points, omhPoint{index: i, ptr: "/" + strconv.Itoa(i), body: el})
		}
		if len(points) == 0 {
			return nil, refuse("", ReasonNoSamples, "the array must not be empty")
		}
	case '{':
		ms := objectMembers(nil, body)
		if b := memberValue(ms, "body"); len(b) > 0 && b[0] == '[' {
			return splitSeries(ms, limit, mem, refuse)
		}
		points = append(points, omhPoint{body: body})
	default:
		return nil, refuse("", ReasonMalformed, "the document must be a data point, an array of data points or a data series")
	}
	if len(points) > limit {
		return nil, refuse("", ReasonTooManySamples, "%d data points exceed the limit of %d", len(points), limit)
	}
	// Each element is a whole data point until now: split it.
	for i := range points {
		p := &points[i]
		raw := p.body
		p.body, p.mem = nil, mem
		if len(raw) == 0 || raw[0] != '{' {
			p.add(jptr{base: p.ptr}, ReasonMalformed, "must be a data point: an object with a header and a body")
			continue
		}
		ms := p.members(raw)
		if !p.noDuplicates(jptr{base: p.ptr}, ms) {
			continue
		}
		p.hptr, p.bptr = jptr{base: p.ptr}.at("header"), jptr{base: p.ptr}.at("body")
		p.header, _ = p.object(p.hptr, memberValue(ms, "header"))
		p.body = memberValue(ms, "body")
	}
	return points, nil
}

// splitSeries splits an IEEE 1752.1 data series: each element of its body
// is a measure under its one header.
func splitSeries(ms []member, limit int, mem *arena[member], refuse func(field, reason, format string, args ...any) error) ([]omhPoint, error) {
	els := arrayElements(memberValue(ms, "body"))
	switch {
	case len(els) == 0:
		return nil, refuse("/body", ReasonNoSamples, "must not be empty")
	case len(els) > limit:
		return nil, refuse("/body", ReasonTooManySamples, "%d measures exceed the limit of %d", len(els), limit)
	}
	first := omhPoint{mem: mem}
	if !first.noDuplicates(jptr{}, ms) {
		return nil, refuse("", ReasonMalformed, "has a key that appears more than once")
	}
	hptr := jptr{}.at("header")
	header, _ := first.object(hptr, memberValue(ms, "header"))
	points := make([]omhPoint, len(els))
	for i, el := range els {
		ptr := "/body/" + strconv.Itoa(i)
		points[i] = omhPoint{index: i, ptr: ptr, header: header, hptr: hptr, body: el, bptr: jptr{base: ptr}, mem: mem}
		for _, pr := range first.problems {
			pr.Sample = i
			points[i].problems = append(points[i].problems, pr)
		}
	}
	return points, nil
}

// read reads the data point's header and body into its sample, which it
// appends to out, and finds its problems; ok is false when it could not
// write a sample.
func (p *omhPoint) read(out []byte) (_ []byte, ok bool) {
	if len(p.problems) > 0 {
		return out, false
	}
	schema, ok := p.schema()
	if !ok {
		return out, false
	}
	body, ok := p.object(p.bptr, p.body)
	if !ok {
		return out, false
	}
	p.sample = out
	schema.read(p, body)
	return append(p.sample, '}'), true
}

// schema finds the schema the header names.
func (p *omhPoint) schema() (omhSchema, bool) {
	idPtr := p.hptr.at("schema_id")
	id, ok := p.object(idPtr, memberValue(p.header, "schema_id"))
	if !ok {
		return omhSchema{}, false
	}
	ns, nsOK := p.str(idPtr.at("namespace"), memberValue(id, "namespace"))
	name, nameOK := p.str(idPtr.at("name"), memberValue(id, "name"))
	version, versionOK := p.str(idPtr.at("version"), memberValue(id, "version"))
	if !nsOK || !nameOK || !versionOK {
		return omhSchema{}, false
	}
	if string(ns) != "omh" && string(ns) != "ieee" {
		p.add(idPtr.at("namespace"), ReasonUnknownSchema, "must be omh or ieee")
		return omhSchema{}, false
	}
	major, _, _ := bytes.Cut(version, []byte("."))
	v, err := strconv.Atoi(string(major))
	for _, s := range omhSchemas {
		if s.name != string(name) {
			continue
		}
		if err != nil || !slices.Contains(s.versions, v) {
			p.add(idPtr.at("version"), ReasonUnknownSchema, "is not a version of %s patientpulse takes: %s", s.name, omhSchemaList)
			return omhSchema{}, false
		}
		return s, true
	}
	p.add(idPtr.at("name"), ReasonUnknownSchema, "is not a schema patientpulse takes: %s", omhSchemaList)
	return omhSchema{}, false
}

// add records a problem of the data point at the element ptr.
func (p *omhPoint) add(ptr jptr, reason, format string, args ...any) {
	p.problems = append(p.problems, Problem{Sample: p.index, Field: ptr.String(), Problem: fmt.Sprintf(format, args...), Reason: reason})
}

// object reads raw, the element at ptr, as an object whose keys appear
// once.
func (p *omhPoint) object(ptr jptr, raw []byte) ([]member, bool) {
	switch {
	case isNull(raw):
		p.add(ptr, ReasonMissingField, "is required")
		return nil, false
	case raw[0] != '{':
		p.add(ptr, ReasonInvalidValue, "must be an object")
		return nil, false
	}
	ms := p.members(raw)
	return ms, p.noDuplicates(ptr, ms)
}

// noDuplicates reports whether each key of the object at ptr appears once.
// A key is echoed only when it is a plain identifier.
func (p *omhPoint) noDuplicates(ptr jptr, ms []member) bool {
	for _, m := range ms {
		if m.dup {
			if isSafeName(m.key) {
				p.add(ptr.at(m.key), ReasonMalformed, "appears more than once")
			} else {
				p.add(ptr, ReasonMalformed, "has a key that appears more than once")
			}
			return false
		}
	}
	return true
}

// str reads the required string at ptr, without copying it when it has no
// escapes. Its value is never echoed.
func (p *omhPoint) str(ptr jptr, raw []byte) ([]byte, bool) {
	if isNull(raw) {
		p.add(ptr, ReasonMissingField, "is required")
		return nil, false
	}
	s, ok := unquoteBytes(raw)
	if !ok {
		p.add(ptr, ReasonInvalidValue, "must be a string")
	}
	return s, ok
}

// number reads the number at ptr.
func (p *omhPoint) number(ptr jptr, raw []byte) (float64, bool) {
	if isNull(raw) {
		p.add(ptr, ReasonMissingField, "is required")
		return 0, false
	}
	if !isNumber(raw) {
		p.add(ptr, ReasonInvalidValue, "must be a number")
		return 0, false
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) {
		p.add(ptr, ReasonOutOfRange, "is a number too large to read")
		return 0, false
	}
	return v, true
}

// begin starts the sample of type typ.
func (p *omhPoint) begin(typ string) {
	p.sample = append(append(append(p.sample, `{"type":"`...), typ...), '"')
}

// field records that the sample's field came from the element ptr.
func (p *omhPoint) field(name string, ptr jptr) {
	if p.nfields < len(p.fields) {
		p.fields[p.nfields] = omhField{name: name, ptr: ptr}
		p.nfields++
	}
}

// put adds the sample's field, whose value came from the element ptr.
func (p *omhPoint) put(field string, v float64, ptr jptr) {
	p.sample = append(append(append(p.sample, `,"`...), field...), `":`...)
	p.sample = strconv.AppendFloat(p.sample, v, 'g', -1, 64)
	p.field(field, ptr)
}

// unitValue reads the {value, unit} body.key as the field of measurement,
// converting its unit to the field's, and adds it to the sample; want
// lists the units taken, for the problem of another. A missing element is
// a problem only when required; ok is false when nothing was added.
func (p *omhPoint) unitValue(body []member, key, measurement, field, want string, required bool) bool {
	ptr := p.bptr.at(key)
	raw := memberValue(body, key)
	if isNull(raw) && !required {
		return false
	}
	uv, ok := p.object(ptr, raw)
	if !ok {
		return false
	}
	v, vOK := p.number(ptr.at("value"), memberValue(uv, "value"))
	unit, uOK := p.str(ptr.at("unit"), memberValue(uv, "unit"))
	if !vOK || !uOK {
		return false
	}
	c, ok := Convert(measurement, field, v, string(unit))
	if !ok {
		p.add(ptr.at("unit"), ReasonBadUnit, "must be %s", want)
		return false
	}
	p.put(field, c, ptr.at("value"))
	return true
}
