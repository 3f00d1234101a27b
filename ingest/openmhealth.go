package ingest

import (
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
	samples := make([]byte, 0, len(body))
	samples = append(samples, '[')
	var problems []Problem
	judged := make([]*omhPoint, 0, len(points)) // those read into a sample, in samples' order
	for i := range points {
		p := &points[i]
		p.read()
		problems = append(problems, p.problems...)
		if p.sample == nil {
			continue
		}
		// A sample with problems of its own is judged too, so that
		// every problem of the data point is answered at once; it
		// stores nothing.
		if len(judged) > 0 {
			samples = append(samples, ',')
		}
		samples = append(samples, p.sample...)
		judged = append(judged, p)
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
			ptr, ok := p.fields[pr.Field]
			if len(p.problems) > 0 && !ok {
				continue // a field left out for a problem already answered
			}
			if !ok {
				ptr = p.ptr
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
	hptr   string // JSON Pointer to its header
	body   []byte
	bptr   string // JSON Pointer to its body

	sample   []byte            // the envelope sample, JSON
	fields   map[string]string // sample field → JSON Pointer of the element it came from
	problems []Problem
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
			return splitSeries(ms, limit, refuse)
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
		p.body = nil
		if len(raw) == 0 || raw[0] != '{' {
			p.add(p.ptr, ReasonMalformed, "must be a data point: an object with a header and a body")
			continue
		}
		ms := objectMembers(nil, raw)
		if !p.noDuplicates(p.ptr, ms) {
			continue
		}
		p.hptr = p.ptr + "/header"
		p.header, _ = p.object(p.hptr, memberValue(ms, "header"))
		p.body, p.bptr = memberValue(ms, "body"), p.ptr+"/body"
	}
	return points, nil
}

// splitSeries splits an IEEE 1752.1 data series: each element of its body
// is a measure under its one header.
func splitSeries(ms []member, limit int, refuse func(field, reason, format string, args ...any) error) ([]omhPoint, error) {
	els := arrayElements(memberValue(ms, "body"))
	switch {
	case len(els) == 0:
		return nil, refuse("/body", ReasonNoSamples, "must not be empty")
	case len(els) > limit:
		return nil, refuse("/body", ReasonTooManySamples, "%d measures exceed the limit of %d", len(els), limit)
	}
	var first omhPoint
	if !first.noDuplicates("", ms) {
		return nil, refuse("", ReasonMalformed, "has a key that appears more than once")
	}
	header, _ := first.object("/header", memberValue(ms, "header"))
	points := make([]omhPoint, len(els))
	for i, el := range els {
		points[i] = omhPoint{index: i, ptr: "/body/" + strconv.Itoa(i), header: header, hptr: "/header",
			body: el, bptr: "/body/" + strconv.Itoa(i)}
		points[i].problems = append(points[i].problems, first.problems...)
		for j := range points[i].problems {
			points[i].problems[j].Sample = i
		}
	}
	return points, nil
}

// read reads the data point's header and body into its sample, or finds
// its problems.
func (p *omhPoint) read() {
	if len(p.problems) > 0 {
		return
	}
	schema, ok := p.schema()
	if !ok {
		return
	}
	body, _ := p.object(p.bptr, p.body)
	if len(p.problems) > 0 {
		return
	}
	p.fields = make(map[string]string, 4)
	p.sample = make([]byte, 0, 160)
	schema.read(p, body)
	p.sample = append(p.sample, '}')
}

// schema finds the schema the header names.
func (p *omhPoint) schema() (omhSchema, bool) {
	idPtr := p.hptr + "/schema_id"
	id, ok := p.object(idPtr, memberValue(p.header, "schema_id"))
	if !ok {
		return omhSchema{}, false
	}
	ns, nsOK := p.str(idPtr+"/namespace", memberValue(id, "namespace"))
	name, nameOK := p.str(idPtr+"/name", memberValue(id, "name"))
	version, versionOK := p.str(idPtr+"/version", memberValue(id, "version"))
	if !nsOK || !nameOK || !versionOK {
		return omhSchema{}, false
	}
	if ns != "omh" && ns != "ieee" {
		p.add(idPtr+"/namespace", ReasonUnknownSchema, "must be omh or ieee")
		return omhSchema{}, false
	}
	major, _, _ := strings.Cut(version, ".")
	v, err := strconv.Atoi(major)
	for _, s := range omhSchemas {
		if s.name != name {
			continue
		}
		if err != nil || !slices.Contains(s.versions, v) {
			p.add(idPtr+"/version", ReasonUnknownSchema, "is not a version of %s patientpulse takes: %s", name, omhSchemaList)
			return omhSchema{}, false
		}
		return s, true
	}
	p.add(idPtr+"/name", ReasonUnknownSchema, "is not a schema patientpulse takes: %s", omhSchemaList)
	return omhSchema{}, false
}

// add records a problem of the data point at the element ptr.
func (p *omhPoint) add(ptr, reason, format string, args ...any) {
	p.problems = append(p.problems, Problem{Sample: p.index, Field: ptr, Problem: fmt.Sprintf(format, args...), Reason: reason})
}

// object reads raw, the element at ptr, as an object whose keys appear
// once.
func (p *omhPoint) object(ptr string, raw []byte) ([]member, bool) {
	switch {
	case isNull(raw):
		p.add(ptr, ReasonMissingField, "is required")
		return nil, false
	case raw[0] != '{':
		p.add(ptr, ReasonInvalidValue, "must be an object")
		return nil, false
	}
	ms := objectMembers(nil, raw)
	return ms, p.noDuplicates(ptr, ms)
}

// noDuplicates reports whether each key of the object at ptr appears once.
// A key is echoed only when it is a plain identifier.
func (p *omhPoint) noDuplicates(ptr string, ms []member) bool {
	for _, m := range ms {
		if m.dup {
			if isSafeName(m.key) {
				p.add(ptr+"/"+m.key, ReasonMalformed, "appears more than once")
			} else {
				p.add(ptr, ReasonMalformed, "has a key that appears more than once")
			}
			return false
		}
	}
	return true
}

// str reads the required string at ptr. Its value is never echoed.
func (p *omhPoint) str(ptr string, raw []byte) (string, bool) {
	if isNull(raw) {
		p.add(ptr, ReasonMissingField, "is required")
		return "", false
	}
	s, ok := unquote(raw)
	if !ok {
		p.add(ptr, ReasonInvalidValue, "must be a string")
	}
	return s, ok
}

// number reads the number at ptr.
func (p *omhPoint) number(ptr string, raw []byte) (float64, bool) {
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

// put adds the sample's field, whose value came from the element ptr.
func (p *omhPoint) put(field string, v float64, ptr string) {
	p.sample = append(append(append(p.sample, `,"`...), field...), `":`...)
	p.sample = strconv.AppendFloat(p.sample, v, 'g', -1, 64)
	p.fields[field] = ptr
}

// unitValue reads the {value, unit} at ptr as the field of measurement,
// converting its unit to the field's, and adds it to the sample; want
// lists the units taken, for the problem of another. A missing element is
// a problem only when required.
func (p *omhPoint) unitValue(body []member, key, measurement, field, want string, required bool) bool {
	ptr := p.bptr + "/" + key
	raw := memberValue(body, key)
	if isNull(raw) && !required {
		return false
	}
	uv, ok := p.object(ptr, raw)
	if !ok {
		return false
	}
	v, vOK := p.number(ptr+"/value", memberValue(uv, "value"))
	unit, uOK := p.str(ptr+"/unit", memberValue(uv, "unit"))
	if !vOK || !uOK {
		return false
	}
	c, ok := Convert(measurement, field, v, unit)
	if !ok {
		p.add(ptr+"/unit", ReasonBadUnit, "must be %s", want)
		return false
	}
	p.put(field, c, ptr+"/value")
	return true
}
