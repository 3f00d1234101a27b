package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/patientpulse/patientpulse/registry"
)

// FHIR R4 ingest (DESIGN.md, "Standard formats"): an Observation, or a
// Bundle of them, is read into envelope samples, which Intake.DecodeSamples
// then judges with the envelope's own checks; its problems come back as
// OperationOutcome issues whose expression names the element they came
// from. The patient is the device token's: subject is never read.

// Reasons for refusing a FHIR resource, besides the envelope's.
const (
	ReasonUnknownCode   = "unknown_code"         // no LOINC code patientpulse stores
	ReasonNotSupported  = "not_supported"        // a resource, value type, comparator or Bundle type patientpulse does not take
	ReasonStatus        = "refused_status"       // entered-in-error, cancelled, registered, unknown
	ReasonTransaction   = "transaction_rejected" // a transaction Bundle with a bad entry: nothing stored
	ReasonWrongResource = "wrong_resource"       // not a FHIR resource, or not the one the endpoint takes
)

// The LOINC system, the blood-pressure panel and its components.
const (
	loincSystem = "http://loinc.org"
	loincBP     = "85354-9"
	loincSys    = "8480-6"
	loincDia    = "8462-4"
)

// The FHIR documents read; only the elements patientpulse uses.
type (
	// fhirDocument is an Observation, or a Bundle of them, read at once.
	fhirDocument struct {
		fhirObservation
		Type  string `json:"type"`
		Entry []struct {
			Resource *fhirObservation `json:"resource"`
			Request  *fhirRequest     `json:"request"`
		} `json:"entry"`
	}
	// fhirBundle is a Bundle whose entries are read one by one.
	fhirBundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
			Request  *fhirRequest    `json:"request"`
		} `json:"entry"`
	}
	fhirRequest struct {
		Method string `json:"method"`
	}
	fhirObservation struct {
		ResourceType      string          `json:"resourceType"`
		Status            string          `json:"status"`
		Code              fhirConcept     `json:"code"`
		EffectiveDateTime string          `json:"effectiveDateTime"`
		EffectiveInstant  string          `json:"effectiveInstant"`
		EffectivePeriod   *fhirPeriod     `json:"effectivePeriod"`
		EffectiveTiming   json.RawMessage `json:"effectiveTiming"`
		ValueQuantity     *fhirQuantity   `json:"valueQuantity"`
		DataAbsentReason  json.RawMessage `json:"dataAbsentReason"`
		Component         []fhirComponent `json:"component"`
		ReferenceRange    []fhirRange     `json:"referenceRange"`
		otherValues
	}
	// otherValues are the value[x] types patientpulse does not take.
	otherValues struct {
		ValueCodeableConcept json.RawMessage `json:"valueCodeableConcept"`
		ValueString          json.RawMessage `json:"valueString"`
		ValueBoolean         json.RawMessage `json:"valueBoolean"`
		ValueInteger         json.RawMessage `json:"valueInteger"`
		ValueRange           json.RawMessage `json:"valueRange"`
		ValueRatio           json.RawMessage `json:"valueRatio"`
		ValueSampledData     json.RawMessage `json:"valueSampledData"`
		ValueTime            json.RawMessage `json:"valueTime"`
		ValueDateTime        json.RawMessage `json:"valueDateTime"`
		ValuePeriod          json.RawMessage `json:"valuePeriod"`
	}
	fhirConcept struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	}
	fhirPeriod struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	fhirQuantity struct {
		Value      json.RawMessage `json:"value"`
		Comparator string          `json:"comparator"`
		Unit       string          `json:"unit"`
		Code       string          `json:"code"`
	}
	fhirComponent struct {
		Code          fhirConcept   `json:"code"`
		ValueQuantity *fhirQuantity `json:"valueQuantity"`
	}
	fhirRange struct {
		Low  *fhirQuantity `json:"low"`
		High *fhirQuantity `json:"high"`
	}
)

// other returns the name of a value[x] other than valueQuantity, "" if none.
func (v *otherValues) other() string {
	for _, o := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"valueCodeableConcept", v.ValueCodeableConcept}, {"valueString", v.ValueString},
		{"valueBoolean", v.ValueBoolean}, {"valueInteger", v.ValueInteger}, {"valueRange", v.ValueRange},
		{"valueRatio", v.ValueRatio}, {"valueSampledData", v.ValueSampledData}, {"valueTime", v.ValueTime},
		{"valueDateTime", v.ValueDateTime}, {"valuePeriod", v.ValuePeriod},
	} {
		if o.raw != nil {
			return o.name
		}
	}
	return ""
}

// fhirEntry is one Observation of a request: the sample it became, or the
// issues that kept it from becoming one.
type fhirEntry struct {
	where  string      // FHIRPath of the resource: "Observation", "Bundle.entry[2].resource"
	sample int         // index in the samples judged; -1 when none
	paths  []fieldPath // where each sample field came from
	note   string      // said after a value's problem: the unit it was converted from
	issues []issue
	stored string // what it was stored as, e.g. "heart_rate.bpm"
}

// fieldPath names the element, relative to the resource, that a sample
// field was read from.
type fieldPath struct{ field, path string }

func (e *fhirEntry) bad(path, code, reason, format string, args ...any) {
	expr := e.where
	if path != "" {
		expr += "." + path
	}
	e.issues = append(e.issues, issue{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...),
		Expression: []string{expr}, reason: reason})
}

// status is an entry's HTTP status line in a response Bundle.
func (e *fhirEntry) status() string {
	switch {
	case len(e.issues) == 0:
		return "201 Created"
	case e.structural():
		return "400 Bad Request"
	}
	return "422 Unprocessable Entity"
}

func (e *fhirEntry) structural() bool {
	for _, is := range e.issues {
		if is.structural {
			return true
		}
	}
	return false
}

// fhirDoc is a FHIR body read and judged.
type fhirDoc struct {
	bundleType string // "" for one Observation
	entries    []fhirEntry
	env        *Envelope // the valid entries' points; nil when no entry became a sample
}

// fhirRefusal is a FHIR body refused as a whole.
type fhirRefusal struct {
	status  int
	outcome *operationOutcome
	reason  string
}

func refuseFHIR(status int, code, reason, expr, format string, args ...any) *fhirRefusal {
	is := issue{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expr != "" {
		is.Expression = []string{expr}
	}
	return &fhirRefusal{status: status, outcome: outcome(is), reason: reason}
}

// decodeFHIR reads body, which expects ("Observation", "Bundle" or ""
// for either) says the endpoint takes, and judges each Observation. A body
// is read in one pass (fhirDocument); only one with an element of the
// wrong JSON type is read again entry by entry (fhirBundle), so that the
// issue names its entry and the other entries are judged.
func (in *Intake) decodeFHIR(body []byte, expects string) (*fhirDoc, *fhirRefusal) {
	var d fhirDocument
	var b fhirBundle
	fast := json.Unmarshal(body, &d) == nil
	if !fast {
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, unreadable(err, "Bundle")
		}
		d.ResourceType, d.Type = b.ResourceType, b.Type
	}
	n := max(len(d.Entry), len(b.Entry))
	doc := &fhirDoc{}
	switch {
	case d.ResourceType != "Observation" && d.ResourceType != "Bundle":
		return nil, refuseFHIR(http.StatusBadRequest, "not-supported", ReasonWrongResource, "",
			"the body must be a FHIR R4 Observation or Bundle (resourceType)")
	case expects != "" && d.ResourceType != expects:
		return nil, refuseFHIR(http.StatusBadRequest, "not-supported", ReasonWrongResource, d.ResourceType,
			"this endpoint takes a %s: POST an Observation to %s/Observation and a Bundle to %s", expects, FHIRBase, FHIRBase)
	case d.ResourceType == "Observation":
		doc.entries = []fhirEntry{{where: "Observation", sample: -1}}
	default:
		if r := in.checkBundle(d.Type, n); r != nil {
			return nil, r
		}
		doc.bundleType = d.Type
		doc.entries = make([]fhirEntry, n)
	}
	var m sampleWriter
	for i := range doc.entries {
		e := &doc.entries[i]
		switch {
		case doc.bundleType == "" && fast:
			m.read(e, &d.fhirObservation)
			continue
		case doc.bundleType == "":
			m.observation(e, body)
			continue
		}
		*e = fhirEntry{where: "Bundle.entry[" + strconv.Itoa(i) + "].resource", sample: -1}
		var req *fhirRequest
		if fast {
			req = d.Entry[i].Request
		} else {
			req = b.Entry[i].Request
		}
		if req != nil && req.Method != "POST" && req.Method != "PUT" {
			e.bad("", "not-supported", ReasonNotSupported, "request.method %s is not supported: entries are stored (POST)", safeText(req.Method))
			e.issues[0].Expression = []string{"Bundle.entry[" + strconv.Itoa(i) + "].request.method"}
			continue
		}
		switch {
		case !fast:
			m.observation(e, b.Entry[i].Resource)
		case d.Entry[i].Resource == nil:
			e.bad("", "required", ReasonMissingField, "is required: an Observation")
		default:
			m.read(e, d.Entry[i].Resource)
		}
	}
	if m.n > 0 {
		env, err := in.DecodeSamples(append(m.buf, ']'))
		if err != nil {
			return nil, tooMany(err)
		}
		doc.env = env
		doc.judge()
	}
	return doc, nil
}

// checkBundle refuses a Bundle of a type patientpulse does not take, or
// with no entries or more than a message may carry.
func (in *Intake) checkBundle(typ string, n int) *fhirRefusal {
	switch typ {
	case "transaction", "batch", "collection":
	case "":
		return refuseFHIR(http.StatusBadRequest, "required", ReasonMissingField, "Bundle.type", "is required: transaction, batch or collection")
	default:
		return refuseFHIR(http.StatusUnprocessableEntity, "not-supported", ReasonNotSupported, "Bundle.type",
			"must be transaction, batch or collection (got %s)", safeText(typ))
	}
	switch {
	case n == 0:
		return refuseFHIR(http.StatusUnprocessableEntity, "required", ReasonNoSamples, "Bundle.entry", "is required: at least one Observation")
	case n > in.limits.MaxSamples:
		return refuseFHIR(http.StatusUnprocessableEntity, "too-costly", ReasonTooManySamples, "Bundle.entry",
			"%d entries exceed the limit of %d a Bundle", n, in.limits.MaxSamples)
	}
	return nil
}

// unreadable refuses a body that is not JSON, or whose elements have the
// wrong JSON types.
func unreadable(err error, resource string) *fhirRefusal {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return refuseFHIR(http.StatusBadRequest, "structure", ReasonMalformed, "",
			"the body must be a FHIR resource: a JSON object with a resourceType")
	case errors.As(err, &typeErr):
		return refuseFHIR(http.StatusBadRequest, "structure", ReasonMalformed, resource+"."+typeErr.Field,
			"must be a JSON %s, as FHIR R4 has it", jsonKind(typeErr.Type.Kind().String()))
	default:
		return refuseFHIR(http.StatusBadRequest, "invalid", ReasonMalformed, "", "the body is not valid JSON")
	}
}

// tooMany refuses what DecodeSamples refused as a whole, which after
// checkBundle is only more samples than a message may carry.
func tooMany(err error) *fhirRefusal {
	reason := ReasonTooManySamples
	var eerr *EnvelopeError
	if errors.As(err, &eerr) {
		reason = eerr.Reason
	}
	return refuseFHIR(http.StatusUnprocessableEntity, "too-costly", reason, "Bundle.entry", "%s", err.Error())
}

// jsonKind names a Go kind the way JSON does.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return "value of another type"
}

// judge turns the problems DecodeSamples found into the entries' issues.
func (doc *fhirDoc) judge() {
	entryOf := make([]int, doc.env.Samples)
	for i := range doc.entries {
		if s := doc.entries[i].sample; s >= 0 {
			entryOf[s] = i
		}
	}
	for _, p := range doc.env.Problems {
		if p.Sample < 0 || p.Sample >= len(entryOf) {
			continue
		}
		e := &doc.entries[entryOf[p.Sample]]
		path, note := e.path(p.Field)
		e.bad(path, issueCode(p.Reason), p.Reason, "%s%s", p.Problem, note)
	}
	for _, p := range doc.env.Points {
		if e := &doc.entries[entryOf[p.Sample]]; e.stored == "" && p.Measurement != "" {
			e.stored = p.Measurement
		}
	}
	doc.env.Problems = nil // answered here, not as an error document
}

// path returns the element a sample field came from, and what to add to
// a problem of it.
func (e *fhirEntry) path(field string) (string, string) {
	for _, fp := range e.paths {
		if fp.field == field {
			if strings.HasSuffix(fp.path, ".value") && e.note != "" {
				return fp.path, " " + e.note
			}
			return fp.path, ""
		}
	}
	return "", ""
}

// issueCode is the OperationOutcome issue type of a sample problem.
func issueCode(reason string) string {
	switch reason {
	case ReasonMissingField:
		return "required"
	case ReasonOutOfRange, ReasonInvalidValue, ReasonBadTime, ReasonInvertedInterval:
		return "value"
	case ReasonTooOld, ReasonInFuture:
		return "processing"
	}
	return "invalid"
}

// IngestFHIR handles a FHIR body from the enrolled, active device dev,
// posted where expects says (see decodeFHIR), and stores what it may with
// write: a transaction all or nothing, a batch or collection entry by
// entry, one Observation alone. It returns the HTTP status and the FHIR
// answer, or an error as Ingest does when nothing could be judged now.
func (in *Intake) IngestFHIR(ctx context.Context, transport string, dev registry.Device, body []byte, expects string,
	write func(context.Context, []byte) error) (int, any, error) {
	doc, r := in.decodeFHIR(body, expects)
	if r != nil {
		in.refused(transport, r.reason)
		return r.status, r.outcome, nil
	}
	bad := in.countFHIRRejected(transport, doc)
	if bad > 0 && doc.bundleType != "collection" && doc.bundleType != "batch" {
		if doc.bundleType == "transaction" {
			in.refused(transport, ReasonTransaction)
		}
		return doc.refusal()
	}
	stored := true
	if doc.env != nil && len(doc.env.Points) > 0 {
		out, err := in.Store(ctx, transport, dev, doc.env, write)
		if err != nil {
			return 0, nil, err
		}
		stored = out.Accepted > 0 || out.Answer == nil
	}
	if doc.bundleType == "" {
		if !stored {
			return http.StatusUnprocessableEntity, outcome(storageRefused("Observation")), nil
		}
		return http.StatusCreated, outcome(issue{Severity: "information", Code: "informational",
			Diagnostics: "stored as " + doc.entries[0].stored}), nil
	}
	return http.StatusOK, doc.response(stored), nil
}

func storageRefused(where string) issue {
	return issue{Severity: "error", Code: "processing", Expression: []string{where},
		Diagnostics: "storage refused the entry; some of it may be stored, do not rely on any"}
}

// refusal answers a transaction or an Observation with a bad entry: 400
// when one does not read as FHIR, else 422, naming every bad entry.
func (doc *fhirDoc) refusal() (int, any, error) {
	status := http.StatusUnprocessableEntity
	var issues []issue
	for i := range doc.entries {
		e := &doc.entries[i]
		if e.structural() {
			status = http.StatusBadRequest
		}
		issues = append(issues, e.issues...)
	}
	return status, outcome(issues...), nil
}

// response is the answer to a Bundle that was judged entry by entry, or a
// transaction that was stored; stored is false when storage refused the
// valid entries.
func (doc *fhirDoc) response(stored bool) *responseBundle {
	typ := "batch-response"
	if doc.bundleType == "transaction" {
		typ = "transaction-response"
	}
	rb := &responseBundle{ResourceType: "Bundle", Type: typ, Entry: make([]responseEntry, len(doc.entries))}
	for i := range doc.entries {
		e := &doc.entries[i]
		switch {
		case len(e.issues) > 0:
			rb.Entry[i].Response = entryResponse{Status: e.status(), Outcome: outcome(e.issues...)}
		case !stored:
			rb.Entry[i].Response = entryResponse{Status: "422 Unprocessable Entity", Outcome: outcome(storageRefused(e.where))}
		default:
			rb.Entry[i].Response = entryResponse{Status: "201 Created"}
		}
	}
	return rb
}

// countFHIRRejected counts and logs each bad entry once, by its first
// issue, and returns how many there are. Expressions name elements, never
// values.
func (in *Intake) countFHIRRejected(transport string, doc *fhirDoc) int {
	n := 0
	for i := range doc.entries {
		if e := &doc.entries[i]; len(e.issues) > 0 {
			n++
			in.metrics.SamplesRejected.WithLabelValues(transport, e.issues[0].reason).Inc()
			in.log.Info("sample rejected", "transport", transport, "reason", e.issues[0].reason, "field", e.issues[0].Expression[0])
		}
	}
	return n
}
