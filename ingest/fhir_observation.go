package ingest

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// sampleWriter writes the envelope samples that Observations become, as
// one JSON array for Intake.DecodeSamples.
type sampleWriter struct {
	buf []byte
	n   int // samples written
}

// observation reads the Observation raw into a sample, or gives e the
// issues that keep it from being one.
func (w *sampleWriter) observation(e *fhirEntry, raw []byte) {
	if isNull(raw) {
		e.bad("", "required", ReasonMissingField, "is required: an Observation")
		return
	}
	var o fhirObservation
	if err := json.Unmarshal(raw, &o); err != nil {
		var typeErr *json.UnmarshalTypeError
		path := ""
		if errors.As(err, &typeErr) {
			path = typeErr.Field
		}
		e.bad(path, "structure", ReasonMalformed, "must be a JSON %s, as FHIR R4 has it", typeKind(typeErr))
		e.issues[len(e.issues)-1].structural = true
		return
	}
	w.read(e, &o)
}

// read makes the Observation o, read, a sample, or gives e the issues
// that keep it from being one.
func (w *sampleWriter) read(e *fhirEntry, o *fhirObservation) {
	if o.ResourceType != "Observation" {
		e.bad("resourceType", "not-supported", ReasonNotSupported,
			"must be Observation: patientpulse stores observations, and the patient comes from the device token")
		return
	}
	if !checkStatus(e, o.Status) {
		return
	}
	code, c, known := loincCode(o.Code)
	switch {
	case code == "":
		e.bad("code", "required", ReasonMissingField, "needs a coding with system %s", loincSystem)
		return
	case !known:
		e.bad("code", "not-supported", ReasonUnknownCode,
			"LOINC %s is not a code patientpulse stores (GET /v1/catalog lists them)", safeText(code))
		return
	case code == loincBP:
		w.bloodPressure(e, o)
		return
	case code == loincSys || code == loincDia:
		e.bad("code", "not-supported", ReasonUnknownCode,
			"LOINC %s alone is not stored: send the blood-pressure panel %s with components %s and %s", code, loincBP, loincSys, loincDia)
		return
	}
	if c.Measurement == "sleep" && o.ValueQuantity == nil && o.ValueCodeableConcept != nil {
		w.sleepStage(e, o)
		return
	}
	v, ok := quantity(e, o)
	if !ok {
		return
	}
	if c.Analyte != "" {
		w.lab(e, o, c, v)
		return
	}
	w.measure(e, o, c, code, v)
}

func typeKind(err *json.UnmarshalTypeError) string {
	if err == nil {
		return "document"
	}
	return jsonKind(err.Type.Kind().String())
}

// checkStatus refuses an Observation that is not a result.
func checkStatus(e *fhirEntry, status string) bool {
	switch status {
	case "final", "amended", "corrected", "preliminary":
		return true
	case "":
		e.bad("status", "required", ReasonMissingField, "is required: final, amended, corrected or preliminary")
	case "entered-in-error", "cancelled":
		e.bad("status", "value", ReasonStatus, "an Observation %s is not stored (and removes nothing stored)", status)
	default:
		e.bad("status", "value", ReasonStatus, "must be final, amended, corrected or preliminary to be stored (got %s)", safeText(status))
	}
	return false
}

// loincCode returns the coding's LOINC code patientpulse stores and what
// it is stored as, else its first LOINC code with known false, else "".
func loincCode(c fhirConcept) (code string, as LOINCCode, known bool) {
	for _, cd := range c.Coding {
		if cd.System != loincSystem {
			continue
		}
		if as, ok := ByLOINC(cd.Code); ok || cd.Code == loincBP {
			return cd.Code, as, true
		}
		if code == "" {
			code = cd.Code
		}
	}
	return code, LOINCCode{}, false
}

// quantity returns the Observation's valueQuantity, or gives e the issue
// of its absence.
func quantity(e *fhirEntry, o *fhirObservation) (*fhirQuantity, bool) {
	q := o.ValueQuantity
	switch {
	case q == nil && o.DataAbsentReason != nil:
		e.bad("dataAbsentReason", "not-supported", ReasonMissingField, "an Observation without a value is not stored")
	case q == nil && o.other() != "":
		e.bad(o.other(), "not-supported", ReasonNotSupported, "must be a valueQuantity for this code")
	case q == nil:
		e.bad("value", "required", ReasonMissingField, "valueQuantity is required")
	case isNull(q.Value):
		e.bad("valueQuantity.value", "required", ReasonMissingField, "is required")
	case !isNumber(q.Value):
		e.bad("valueQuantity.value", "structure", ReasonInvalidValue, "must be a JSON number")
		e.issues[len(e.issues)-1].structural = true
	case q.Comparator != "":
		e.bad("valueQuantity.comparator", "not-supported", ReasonNotSupported,
			"a value with a comparator is not stored: only exact values are")
	default:
		return q, true
	}
	return nil, false
}

// unitOf returns the quantity's unit, its UCUM code else its text, and the
// element it is in.
func unitOf(q *fhirQuantity, prefix string) (unit, path string) {
	if q.Code != "" {
		return q.Code, prefix + ".code"
	}
	return q.Unit, prefix + ".unit"
}

// measure writes a sample of one field of a measurement: heart rate,
// weight, steps, sleep duration.
func (w *sampleWriter) measure(e *fhirEntry, o *fhirObservation, c LOINCCode, code string, q *fhirQuantity) {
	k := kinds[c.Measurement]
	value, ok := convert(e, c, code, q, "valueQuantity")
	if !ok {
		return
	}
	if k.interval && o.EffectivePeriod == nil {
		e.bad("effective", "required", ReasonMissingField,
			"%s (LOINC %s) covers an interval: effectivePeriod with start and end is required", c.Measurement+"."+c.Field, code)
		return
	}
	w.begin(e, c.Measurement)
	if !w.times(e, o, k.interval) {
		return
	}
	w.number(c.Field, value)
	w.end(e, fieldPath{c.Field, "valueQuantity.value"})
	e.stored = c.Measurement + "." + c.Field
}

// convert returns q's value in the field's canonical unit, as JSON.
func convert(e *fhirEntry, c LOINCCode, code string, q *fhirQuantity, prefix string) ([]byte, bool) {
	unit, path := unitOf(q, prefix)
	u := UCUM(unit)
	if u == "" || u == "1" || u == "{count}" {
		if !strings.HasPrefix(c.Unit, "{") {
			e.bad(path, "required", ReasonMissingField, "a UCUM unit is required for LOINC %s: one of %s", code, strings.Join(c.Units, ", "))
			return nil, false
		}
		u = c.Unit // a count sent without its annotation
	}
	if u == c.Unit {
		return q.Value, true
	}
	v, _ := strconv.ParseFloat(string(q.Value), 64)
	conv, ok := Convert(c.Measurement, c.Field, v, u)
	if !ok {
		e.bad(path, "value", ReasonInvalidValue, "%s is not a unit of LOINC %s: use one of %s",
			safeText(unit), code, strings.Join(c.Units, ", "))
		return nil, false
	}
	e.note = "(converted from " + safeText(u) + " to " + c.Unit + ")"
	return strconv.AppendFloat(nil, conv, 'g', -1, 64), true
}

// sleepStages are the stages a segment of a night may name, by the
// stage's code or text as emitters write it (HealthKit's
// HKCategoryValueSleepAnalysis, Health Connect's SLEEP_STAGE_TYPE_, or
// plain words), folded by stageName: the field the segment's minutes go
// to besides total_min, and whether they are asleep (an awake segment
// has a total_min of 0).
var sleepStages = map[string]struct {
	field  string
	asleep bool
}{
	"deep": {"deep_min", true}, "asleepdeep": {"deep_min", true},
	"rem": {"rem_min", true}, "asleeprem": {"rem_min", true},
	"light": {"light_min", true}, "core": {"light_min", true}, "asleepcore": {"light_min", true},
	"asleep": {"", true}, "asleepunspecified": {"", true}, "sleeping": {"", true},
	"awake": {"awake_min", false}, "awakeinbed": {"awake_min", false}, "outofbed": {"awake_min", false},
}

// stageName folds a stage's code or text: lower case, without the
// emitters' prefixes, spaces, dashes and underscores.
func stageName(s string) string {
	s = strings.ToLower(s)
	for _, prefix := range []string{"hkcategoryvaluesleepanalysis", "sleep_stage_type_", "stage_type_"} {
		s = strings.TrimPrefix(s, prefix)
	}
	return stageSeparators.Replace(s)
}

var stageSeparators = strings.NewReplacer("_", "", "-", "", " ", "")

// sleepStage writes the sleep sample of one stage segment of a night: a
// sleep-duration Observation whose valueCodeableConcept names the stage
// and whose effectivePeriod is the segment. Stored at the segment's end
// like any night, its minutes count toward the day it ends in (rules on
// sleep.total_min add a day's segments up with per_day: sum).
func (w *sampleWriter) sleepStage(e *fhirEntry, o *fhirObservation) {
	var concept struct {
		fhirConcept
		Text string `json:"text"`
	}
	if err := json.Unmarshal(o.ValueCodeableConcept, &concept); err != nil {
		e.bad("valueCodeableConcept", "structure", ReasonMalformed, "must be a CodeableConcept naming a sleep stage")
		e.issues[len(e.issues)-1].structural = true
		return
	}
	names := []string{concept.Text}
	for _, c := range concept.Coding {
		names = append(names, c.Code)
	}
	stage, named := "", false
	for _, n := range names {
		if stage = stageName(n); stage == "inbed" {
			e.bad("valueCodeableConcept", "not-supported", ReasonNotSupported,
				"time in bed is not stored: send the night's asleep and awake segments, or its sleep duration")
			return
		}
		if _, named = sleepStages[stage]; named {
			break
		}
	}
	if !named {
		e.bad("valueCodeableConcept", "value", ReasonInvalidValue,
			"must name a sleep stage (deep, rem, light or core, asleep, awake) in a coding's code or in text")
		return
	}
	p := o.EffectivePeriod
	var start, end time.Time
	var err error
	if p != nil {
		if start, err = time.Parse(time.RFC3339, p.Start); err == nil {
			end, err = time.Parse(time.RFC3339, p.End)
		}
	}
	if p == nil || err != nil {
		e.bad("effectivePeriod", "required", ReasonMissingField,
			"a sleep stage segment needs an effectivePeriod whose start and end are date-times with a time zone")
		return
	}
	if !end.After(start) {
		e.bad("effectivePeriod.end", "value", ReasonInvertedInterval, "must be after start")
		return
	}
	minutes := strconv.AppendFloat(nil, end.Sub(start).Minutes(), 'g', -1, 64)
	st := sleepStages[stage]
	w.begin(e, "sleep")
	w.times(e, o, true)
	paths := []fieldPath{{"total_min", "effectivePeriod"}}
	if st.asleep {
		w.number("total_min", minutes)
	} else {
		w.number("total_min", []byte("0"))
	}
	if st.field != "" {
		w.number(st.field, minutes)
		paths = append(paths, fieldPath{st.field, "effectivePeriod"})
	}
	w.end(e, paths...)
	e.stored = "sleep.total_min"
}

// bloodPressure writes the vitals sample of a blood-pressure panel.
func (w *sampleWriter) bloodPressure(e *fhirEntry, o *fhirObservation) {
	var vals [2][]byte
	var paths [2]fieldPath
	for i, comp := range o.Component {
		code, c, _ := loincCode(comp.Code)
		j := 0
		if code == loincDia {
			j = 1
		}
		if code != loincSys && code != loincDia || vals[j] != nil {
			continue
		}
		prefix := "component[" + strconv.Itoa(i) + "]"
		field := [2]string{"systolic", "diastolic"}[j]
		q := comp.ValueQuantity
		if q == nil || !isNumber(q.Value) {
			e.bad(prefix+".valueQuantity.value", "required", ReasonMissingField, "is required: a number in mm[Hg]")
			return
		}
		v, ok := convert(e, c, code, q, prefix+".valueQuantity")
		if !ok {
			return
		}
		vals[j], paths[j] = v, fieldPath{field, prefix + ".valueQuantity.value"}
	}
	if vals[0] == nil || vals[1] == nil {
		e.bad("component", "required", ReasonMissingField,
			"the blood-pressure panel needs components %s (systolic) and %s (diastolic) with valueQuantity", loincSys, loincDia)
		return
	}
	w.begin(e, "vitals")
	if !w.times(e, o, false) {
		return
	}
	w.number("systolic", vals[0])
	w.number("diastolic", vals[1])
	w.end(e, paths[0], paths[1])
	e.stored = "vitals.systolic+diastolic"
}

// lab writes a lab sample; its own checks convert the unit, and refuse one
// that does not measure the analyte.
func (w *sampleWriter) lab(e *fhirEntry, o *fhirObservation, c LOINCCode, q *fhirQuantity) {
	unit, unitPath := unitOf(q, "valueQuantity")
	var low, high []byte
	paths := []fieldPath{{"value", "valueQuantity.value"}, {"unit", unitPath}, {"analyte", "code"}}
	if len(o.ReferenceRange) > 0 {
		rr := o.ReferenceRange[0]
		for _, b := range []struct {
			q     *fhirQuantity
			name  string
			field string
			dst   *[]byte
		}{{rr.Low, "low", "ref_low", &low}, {rr.High, "high", "ref_high", &high}} {
			if b.q == nil || isNull(b.q.Value) {
				continue
			}
			prefix := "referenceRange[0]." + b.name
			if u, p := unitOf(b.q, prefix); u != "" && UCUM(u) != UCUM(unit) {
				e.bad(p, "value", ReasonInvalidValue, "must be in the value's unit (%s)", safeText(unit))
				return
			}
			*b.dst = b.q.Value
			paths = append(paths, fieldPath{b.field, prefix + ".value"})
		}
	}
	w.begin(e, "lab")
	if !w.times(e, o, false) {
		return
	}
	w.str("analyte", c.Analyte)
	w.number("value", q.Value)
	if unit != "" {
		w.str("unit", unit)
	}
	if low != nil {
		w.number("ref_low", low)
	}
	if high != nil {
		w.number("ref_high", high)
	}
	w.end(e, paths...)
	e.stored = "labs." + c.Analyte
}

// begin starts e's sample of type typ.
func (w *sampleWriter) begin(e *fhirEntry, typ string) {
	if w.n == 0 {
		w.buf = append(w.buf, '[')
	} else {
		w.buf = append(w.buf, ',')
	}
	e.sample = w.n
	w.buf = append(w.buf, `{"type":"`...)
	w.buf = append(w.buf, typ...)
	w.buf = append(w.buf, '"')
}

// times writes the sample's time, or start and end, from the effective
// element. An instant sample given a period is taken at its end. With no
// effective time it drops the sample begun and gives e the issue.
func (w *sampleWriter) times(e *fhirEntry, o *fhirObservation, interval bool) bool {
	p := o.EffectivePeriod
	switch {
	case interval:
		w.str("start", p.Start)
		w.str("end", p.End)
		e.paths = append(e.paths, fieldPath{"start", "effectivePeriod.start"}, fieldPath{"end", "effectivePeriod.end"})
	case o.EffectiveDateTime != "":
		w.str("time", o.EffectiveDateTime)
		e.paths = append(e.paths, fieldPath{"time", "effectiveDateTime"})
	case o.EffectiveInstant != "":
		w.str("time", o.EffectiveInstant)
		e.paths = append(e.paths, fieldPath{"time", "effectiveInstant"})
	case p != nil && (p.End != "" || p.Start != ""):
		t, path := p.End, "effectivePeriod.end"
		if t == "" {
			t, path = p.Start, "effectivePeriod.start"
		}
		w.str("time", t)
		e.paths = append(e.paths, fieldPath{"time", path})
	default:
		w.drop(e)
		if o.EffectiveTiming != nil {
			e.bad("effectiveTiming", "not-supported", ReasonNotSupported, "is not supported: use effectiveDateTime or effectivePeriod")
		} else {
			e.bad("effective", "required", ReasonMissingField, "effectiveDateTime or effectivePeriod is required")
		}
		return false
	}
	return true
}

// drop takes back the sample begun for e.
func (w *sampleWriter) drop(e *fhirEntry) {
	i := strings.LastIndex(string(w.buf), `{"type":"`)
	w.buf = w.buf[:i]
	if w.n == 0 {
		w.buf = w.buf[:0]
	} else {
		w.buf = w.buf[:len(w.buf)-1] // its comma
	}
	e.sample, e.paths = -1, nil
}

// end closes e's sample.
func (w *sampleWriter) end(e *fhirEntry, paths ...fieldPath) {
	w.buf = append(w.buf, '}')
	w.n++
	e.paths = append(e.paths, paths...)
}

func (w *sampleWriter) number(key string, raw []byte) {
	w.buf = append(w.buf, `,"`...)
	w.buf = append(w.buf, key...)
	w.buf = append(w.buf, `":`...)
	w.buf = append(w.buf, raw...)
}

// str writes a string member, none when s is empty. A string that would
// need escaping is written empty: no time, unit or name patientpulse takes
// needs it, and the sample's checks then refuse it.
func (w *sampleWriter) str(key, s string) {
	if s == "" {
		return // absent: the sample's checks say it is required
	}
	w.buf = append(w.buf, `,"`...)
	w.buf = append(w.buf, key...)
	w.buf = append(w.buf, `":"`...)
	if safeText(s) == s {
		w.buf = append(w.buf, s...)
	}
	w.buf = append(w.buf, '"')
}

// safeText returns s when it can be quoted in an answer or a sample as it
// is: at most 64 bytes without quotes, backslashes or control characters;
// else "(unreadable)".
func safeText(s string) string {
	if len(s) > 64 {
		return "(unreadable)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			return "(unreadable)"
		}
	}
	return s
}
