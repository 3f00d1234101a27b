package ingest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// FHIR documents written from the R4 specification's vital-signs and
// laboratory examples: real LOINC codes, UCUM units, and the subject a
// real emitter sends (which patientpulse ignores).

// obs returns an Observation of LOINC code with the given extra members
// (JSON, without braces), status final unless extra sets one.
func obs(code, extra string) string {
	status := `"status": "final",`
	if strings.Contains(extra, `"status"`) {
		status = ""
	}
	return fmt.Sprintf(`{"resourceType": "Observation", %s
		"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
		"code": {"coding": [{"system": "http://loinc.org", "code": %q}]},
		"subject": {"reference": "Patient/someone-else"}, %s}`, status, code, extra)
}

// qty is a valueQuantity member with a UCUM code.
func qty(v, unit string) string {
	return fmt.Sprintf(`"valueQuantity": {"value": %s, "unit": %q, "system": "http://unitsofmeasure.org", "code": %q}`, v, unit, unit)
}

const (
	fAt    = `"effectiveDateTime": "2026-11-22T08:05:00+01:00"`
	fNight = `"effectivePeriod": {"start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z"}`
	fWalk  = `"effectivePeriod": {"start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:15:00Z"}`
	fSeg   = `"effectivePeriod": {"start": "2026-11-21T23:40:00Z", "end": "2026-11-22T00:20:00Z"}`
	atUTC  = "2026-11-22T07:05:00Z"
	bpComp = `"component": [
		{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": %s, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
		{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": %s, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]`
)

func bp(sys, dia string) string { return obs("85354-9", fAt+", "+fmt.Sprintf(bpComp, sys, dia)) }

func newTestIntake() *Intake {
	in := NewIntake(fakeDevices{}, 0, DefaultLimits(), NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.now = func() time.Time { return testNow }
	return in
}

func TestFHIRMapping(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // points as "measurement field=value ... @time"
	}{
		{name: "heart rate", body: obs("8867-4", fAt+", "+qty("72", "/min")),
			want: []string{"heart_rate bpm=72 @" + atUTC}},
		{name: "heart rate in beats/min text, effectiveInstant", body: obs("8867-4",
			`"effectiveInstant": "2026-11-22T07:05:00Z", "valueQuantity": {"value": 72, "unit": "beats/min"}`),
			want: []string{"heart_rate bpm=72 @" + atUTC}},
		{name: "heart rate over a period is at its end", body: obs("8867-4", fWalk+", "+qty("88", "/min")),
			want: []string{"heart_rate bpm=88 @2026-11-22T09:15:00Z"}},
		{name: "weight in kg, amended", body: obs("29463-7", `"status": "amended", `+fAt+", "+qty("68.2", "kg")),
			want: []string{"vitals weight_kg=68.2 @" + atUTC}},
		{name: "weight in [lb_av]", body: obs("29463-7", fAt+", "+qty("154", "[lb_av]")),
			want: []string{"vitals weight_kg=69.8532 @" + atUTC}},
		{name: "weight in lb text, preliminary", body: obs("29463-7", `"status": "preliminary", `+fAt+`, "valueQuantity": {"value": 154, "unit": "lb"}`),
			want: []string{"vitals weight_kg=69.8532 @" + atUTC}},
		{name: "blood-pressure panel", body: bp("121", "79"),
			want: []string{"vitals diastolic=79 systolic=121 @" + atUTC}},
		{name: "steps with {steps}", body: obs("55423-8", fWalk+", "+qty("812", "{steps}")),
			want: []string{"activity steps=812 @2026-11-22T09:15:00Z"}},
		{name: "steps with no unit system (41950-7)", body: obs("41950-7", fWalk+`, "valueQuantity": {"value": 812, "unit": "steps"}`),
			want: []string{"activity steps=812 @2026-11-22T09:15:00Z"}},
		{name: "steps with no unit at all", body: obs("55423-8", fWalk+`, "valueQuantity": {"value": 812}`),
			want: []string{"activity steps=812 @2026-11-22T09:15:00Z"}},
		{name: "sleep duration in hours", body: obs("93832-4", fNight+", "+qty("7.5", "h")),
			want: []string{"sleep total_min=450 @2026-11-22T06:40:00Z"}},
		// Stage segments as HealthKit bridges, Health Connect and plain
		// emitters name them: a valueCodeableConcept over the segment.
		{name: "sleep stage segment, HealthKit deep", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"coding": [
			{"system": "http://developer.apple.com/documentation/healthkit", "code": "HKCategoryValueSleepAnalysisAsleepDeep"}]}`),
			want: []string{"sleep deep_min=40 total_min=40 @2026-11-22T00:20:00Z"}},
		{name: "sleep stage segment, Health Connect REM", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"coding": [{"code": "SLEEP_STAGE_TYPE_REM"}]}`),
			want: []string{"sleep rem_min=40 total_min=40 @2026-11-22T00:20:00Z"}},
		{name: "sleep stage segment, core by text", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"text": "Asleep Core"}`),
			want: []string{"sleep light_min=40 total_min=40 @2026-11-22T00:20:00Z"}},
		{name: "sleep stage segment, awake", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"coding": [{"code": "awake"}], "text": "Awake"}`),
			want: []string{"sleep awake_min=40 total_min=0 @2026-11-22T00:20:00Z"}},
		{name: "sleep stage segment, asleep with an offset", body: obs("93832-4",
			`"effectivePeriod": {"start": "2026-11-22T00:40:00+01:00", "end": "2026-11-22T01:20:00+01:00"}, "valueCodeableConcept": {"coding": [{"code": "HKCategoryValueSleepAnalysisAsleepUnspecified"}]}`),
			want: []string{"sleep total_min=40 @2026-11-22T00:20:00Z"}},
		{name: "estradiol in pmol/L with its reference range", body: obs("2243-4", fAt+", "+qty("412", "pmol/L")+
			`, "referenceRange": [{"low": {"value": 98, "unit": "pmol/L", "system": "http://unitsofmeasure.org", "code": "pmol/L"},
			  "high": {"value": 571, "unit": "pmol/L", "system": "http://unitsofmeasure.org", "code": "pmol/L"}}]`),
			want: []string{"labs analyte=estradiol ref_high=571 ref_low=98 reported_value=412 value=412 @" + atUTC}},
		{name: "estradiol in pg/mL with a range without units", body: obs("2243-4", fAt+", "+qty("100", "pg/mL")+
			`, "referenceRange": [{"low": {"value": 26.7}, "high": {"value": 155.5}}]`),
			want: []string{"labs analyte=estradiol ref_high=570.8405 ref_low=98.0157 reported_value=100 value=367.1 @" + atUTC}},
		{name: "testosterone in ng/dL", body: obs("2986-8", fAt+", "+qty("500", "ng/dL")),
			want: []string{"labs analyte=testosterone reported_value=500 value=17.335 @" + atUTC}},
		{name: "hematocrit also feeds the vital", body: obs("4544-3", fAt+", "+qty("52", "%")),
			want: []string{"labs analyte=hematocrit reported_value=52 value=52 @" + atUTC, "vitals hematocrit_pct=52 @" + atUTC}},
	}
	in := newTestIntake()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, r := in.decodeFHIR([]byte(tc.body), "")
			if r != nil {
				t.Fatalf("refused: %+v", r.outcome)
			}
			if e := doc.entries[0]; len(e.issues) > 0 {
				t.Fatalf("issues: %+v", e.issues)
			}
			if got := pointStrings(doc.env.Points); !slices.Equal(got, tc.want) {
				t.Errorf("points\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestFHIRSleepStages reads a night sent as its stage segments, in a
// batch Bundle as a HealthKit bridge posts it: each segment is a point at
// its end, and a day's total_min adds up to the minutes asleep.
func TestFHIRSleepStages(t *testing.T) {
	seg := func(start, end, stage string) string {
		return obs("93832-4", fmt.Sprintf(`"effectivePeriod": {"start": %q, "end": %q}, "valueCodeableConcept": {"coding": [
			{"system": "http://developer.apple.com/documentation/healthkit", "code": "HKCategoryValueSleepAnalysis%s"}]}`, start, end, stage))
	}
	body := bundle("batch",
		seg("2026-11-22T00:00:00Z", "2026-11-22T01:30:00Z", "AsleepCore"),
		seg("2026-11-22T01:30:00Z", "2026-11-22T02:15:00Z", "AsleepDeep"),
		seg("2026-11-22T02:15:00Z", "2026-11-22T02:25:00Z", "Awake"),
		seg("2026-11-22T02:25:00Z", "2026-11-22T03:05:00Z", "AsleepREM"))
	doc, r := newTestIntake().decodeFHIR([]byte(body), "")
	if r != nil {
		t.Fatalf("refused: %+v", r.outcome)
	}
	want := []string{
		"sleep light_min=90 total_min=90 @2026-11-22T01:30:00Z",
		"sleep deep_min=45 total_min=45 @2026-11-22T02:15:00Z",
		"sleep awake_min=10 total_min=0 @2026-11-22T02:25:00Z",
		"sleep rem_min=40 total_min=40 @2026-11-22T03:05:00Z",
	}
	if got := pointStrings(doc.env.Points); !slices.Equal(got, want) {
		t.Errorf("points\n got %q\nwant %q", got, want)
	}
	total := 0.0
	for _, p := range doc.env.Points {
		for _, f := range p.Fields {
			if f.Key == "total_min" {
				total += f.Value
			}
		}
	}
	if total != 175 {
		t.Errorf("the night's total_min adds up to %v, want 175 (its 185 minutes less 10 awake)", total)
	}
}

// pointStrings writes points for comparison, values rounded to 4 decimals.
func pointStrings(points []Point) []string {
	var out []string
	for _, p := range points {
		var parts []string
		for _, tag := range p.Tags {
			parts = append(parts, tag.Key+"="+tag.Value)
		}
		for _, f := range p.Fields {
			parts = append(parts, f.Key+"="+num(math.Round(f.Value*1e4)/1e4))
		}
		slices.Sort(parts)
		out = append(out, p.Measurement+" "+strings.Join(parts, " ")+" @"+p.Time.Format(time.RFC3339))
	}
	return out
}

// TestFHIREstradiolUnits checks that one estradiol level, reported in
// pmol/L by one laboratory and in pg/mL by another, is stored as one
// canonical value.
func TestFHIREstradiolUnits(t *testing.T) {
	in := newTestIntake()
	value := func(body string) float64 {
		doc, r := in.decodeFHIR([]byte(body), "Observation")
		if r != nil || len(doc.env.Points) != 1 {
			t.Fatalf("not stored: %+v %+v", r, doc)
		}
		for _, f := range doc.env.Points[0].Fields {
			if f.Key == "value" {
				return f.Value
			}
		}
		t.Fatal("no value")
		return 0
	}
	molar := value(obs("2243-4", fAt+", "+qty("440.52", "pmol/L")))
	mass := value(obs("14715-7", fAt+`, "valueQuantity": {"value": 120, "unit": "pg/mL"}`))
	if math.Abs(molar-mass) > 1e-9 || math.Abs(molar-440.52) > 1e-9 {
		t.Errorf("440.52 pmol/L stored as %v, 120 pg/mL as %v: want both 440.52", molar, mass)
	}
}

// fhirAnswer is an answer read back: an OperationOutcome or a Bundle.
type fhirAnswer struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Issue        []struct {
		Severity, Code, Diagnostics string
		Expression                  []string
	} `json:"issue"`
	Entry []struct {
		Response struct {
			Status  string      `json:"status"`
			Outcome *fhirAnswer `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

// expressions lists the outcome's issues as "code expression".
func (a *fhirAnswer) expressions() []string {
	var out []string
	for _, is := range a.Issue {
		out = append(out, is.Code+" "+strings.Join(is.Expression, ","))
	}
	return out
}

func postFHIR(t *testing.T, h *HTTP, path, contentType, body string) (*httptest.ResponseRecorder, *fhirAnswer) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer tok-1")
	r.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, MediaFHIR) {
		t.Fatalf("Content-Type %q, want %s", ct, MediaFHIR)
	}
	var a fhirAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, rec.Body)
	}
	return rec, &a
}

func newFHIRHTTP(t *testing.T, sink *fakeSink) *HTTP {
	h := newTestHTTP(t, sink, HTTPConfig{MaxInFlight: 8})
	h.intake.now = func() time.Time { return testNow }
	return h
}

func entries(rs ...string) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, `{"fullUrl": "urn:uuid:x", "resource": `+r+`, "request": {"method": "POST", "url": "Observation"}}`)
	}
	return strings.Join(parts, ",")
}

func bundle(typ string, rs ...string) string {
	return `{"resourceType": "Bundle", "type": "` + typ + `", "entry": [` + entries(rs...) + `]}`
}

// TestFHIRRefusals checks every refusal's status, issue type and the
// expression that names the bad element.
func TestFHIRRefusals(t *testing.T) {
	hr := func(extra string) string { return obs("8867-4", extra) }
	tests := []struct {
		name   string
		path   string // default /v1/ingest
		ctype  string // default application/fhir+json
		body   string
		status int
		want   []string // "code expression" of each issue
		says   string   // in the first diagnostics
	}{
		{name: "not JSON", body: `{"resourceType": "Observation",`, status: 400, want: []string{"invalid "}, says: "not valid JSON"},
		{name: "not a resource", body: `[1, 2]`, status: 400, want: []string{"structure "}, says: "a JSON object with a resourceType"},
		{name: "a Patient", body: `{"resourceType": "Patient"}`, status: 400, want: []string{"not-supported "}},
		{name: "a Bundle posted as an Observation", path: "/v1/fhir/Observation", body: bundle("batch", hr(fAt+", "+qty("72", "/min"))),
			status: 400, want: []string{"not-supported Bundle"}, says: "POST an Observation to /v1/fhir/Observation"},
		{name: "an Observation posted to the base", path: "/v1/fhir", ctype: "application/json", body: hr(fAt + ", " + qty("72", "/min")),
			status: 400, want: []string{"not-supported Observation"}},
		{name: "heart rate of 900", body: hr(fAt + ", " + qty("900", "/min")), status: 422,
			want: []string{"value Observation.valueQuantity.value"}, says: "must be between 20 and 250 (got 900)"},
		{name: "weight converted out of range", body: obs("29463-7", fAt+", "+qty("1000", "[lb_av]")), status: 422,
			want: []string{"value Observation.valueQuantity.value"}, says: "(converted from [lb_av] to kg)"},
		{name: "value as a string", body: hr(fAt + `, "valueQuantity": {"value": "72", "code": "/min"}`), status: 400,
			want: []string{"structure Observation.valueQuantity.value"}},
		{name: "status as a number", body: hr(`"status": 1, ` + fAt + ", " + qty("72", "/min")), status: 400,
			want: []string{"structure Observation.status"}},
		{name: "unknown LOINC code", body: obs("1234-5", fAt+", "+qty("1", "kg")), status: 422,
			want: []string{"not-supported Observation.code"}, says: "LOINC 1234-5"},
		{name: "no LOINC coding", body: strings.Replace(hr(fAt+", "+qty("72", "/min")), "http://loinc.org", "http://snomed.info/sct", 1),
			status: 422, want: []string{"required Observation.code"}},
		{name: "systolic alone", body: obs("8480-6", fAt+", "+qty("120", "mm[Hg]")), status: 422,
			want: []string{"not-supported Observation.code"}, says: "85354-9"},
		{name: "entered in error", body: hr(`"status": "entered-in-error", ` + fAt + ", " + qty("72", "/min")), status: 422,
			want: []string{"value Observation.status"}},
		{name: "cancelled", body: hr(`"status": "cancelled", ` + fAt + ", " + qty("72", "/min")), status: 422,
			want: []string{"value Observation.status"}},
		{name: "no status", body: hr(`"status": "", ` + fAt + ", " + qty("72", "/min")), status: 422,
			want: []string{"required Observation.status"}},
		{name: "steps at an instant", body: obs("55423-8", fAt+", "+qty("812", "{steps}")), status: 422,
			want: []string{"required Observation.effective"}, says: "effectivePeriod with start and end"},
		{name: "steps without a period end", body: obs("55423-8", `"effectivePeriod": {"start": "2026-11-22T09:00:00Z"}, `+qty("812", "{steps}")),
			status: 422, want: []string{"required Observation.effectivePeriod.end"}},
		{name: "sleep inverted", body: obs("93832-4", `"effectivePeriod": {"start": "2026-11-22T06:40:00Z", "end": "2026-11-21T23:10:00Z"}, `+qty("400", "min")),
			status: 422, want: []string{"value Observation.effectivePeriod.end"}},
		{name: "sleep longer than its night", body: obs("93832-4", fNight+", "+qty("9", "h")), status: 422,
			want: []string{"value Observation.valueQuantity.value"}},
		{name: "sleep stage: time in bed", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"coding": [{"code": "HKCategoryValueSleepAnalysisInBed"}]}`),
			status: 422, want: []string{"not-supported Observation.valueCodeableConcept"}, says: "time in bed is not stored"},
		{name: "sleep stage: not a stage", body: obs("93832-4", fSeg+`, "valueCodeableConcept": {"text": "dreaming of sheep"}`),
			status: 422, want: []string{"value Observation.valueCodeableConcept"}, says: "must name a sleep stage"},
		{name: "sleep stage: at an instant", body: obs("93832-4", fAt+`, "valueCodeableConcept": {"text": "deep"}`),
			status: 422, want: []string{"required Observation.effectivePeriod"}},
		{name: "sleep stage: inverted", body: obs("93832-4", `"effectivePeriod": {"start": "2026-11-22T00:20:00Z", "end": "2026-11-21T23:40:00Z"}, "valueCodeableConcept": {"text": "deep"}`),
			status: 422, want: []string{"value Observation.effectivePeriod.end"}},
		{name: "no effective time", body: hr(qty("72", "/min")), status: 422, want: []string{"required Observation.effective"}},
		{name: "a date without a time", body: hr(`"effectiveDateTime": "2026-11-22", ` + qty("72", "/min")), status: 422,
			want: []string{"value Observation.effectiveDateTime"}},
		{name: "in the future", body: hr(`"effectiveDateTime": "2026-11-23T08:00:00Z", ` + qty("72", "/min")), status: 422,
			want: []string{"processing Observation.effectiveDateTime"}},
		{name: "a weight in mm[Hg]", body: obs("29463-7", fAt+", "+qty("68", "mm[Hg]")), status: 422,
			want: []string{"value Observation.valueQuantity.code"}, says: "use one of kg"},
		{name: "a weight without a unit", body: obs("29463-7", fAt+`, "valueQuantity": {"value": 68}`), status: 422,
			want: []string{"required Observation.valueQuantity.unit"}},
		{name: "a coded value", body: hr(fAt + `, "valueCodeableConcept": {"text": "normal"}`), status: 422,
			want: []string{"not-supported Observation.valueCodeableConcept"}},
		{name: "no value", body: hr(fAt + `, "dataAbsentReason": {"text": "not worn"}`), status: 422,
			want: []string{"not-supported Observation.dataAbsentReason"}},
		{name: "a comparator", body: obs("2857-1", fAt+`, "valueQuantity": {"value": 0.1, "comparator": "<", "code": "ug/L"}`), status: 422,
			want: []string{"not-supported Observation.valueQuantity.comparator"}},
		{name: "blood pressure without diastolic", body: obs("85354-9", fAt+`, "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "code": "mm[Hg]"}}]`),
			status: 422, want: []string{"required Observation.component"}},
		{name: "systolic out of range", body: bp("300", "80"), status: 422, want: []string{"value Observation.component[0].valueQuantity.value"}},
		{name: "diastolic above systolic", body: bp("100", "110"), status: 422, want: []string{"value Observation.component[1].valueQuantity.value"}},
		{name: "estradiol in mg", body: obs("2243-4", fAt+", "+qty("1", "mg")), status: 422,
			want: []string{"value Observation.valueQuantity.code"}, says: "is not a unit of estradiol"},
		{name: "estradiol without a unit", body: obs("2243-4", fAt+`, "valueQuantity": {"value": 412}`), status: 422,
			want: []string{"required Observation.valueQuantity.unit"}},
		{name: "a reference range in another unit", body: obs("2243-4", fAt+", "+qty("412", "pmol/L")+`, "referenceRange": [{"low": {"value": 26, "code": "pg/mL"}}]`),
			status: 422, want: []string{"value Observation.referenceRange[0].low.code"}},
		{name: "a reference range upside down", body: obs("2243-4", fAt+", "+qty("412", "pmol/L")+`, "referenceRange": [{"low": {"value": 500}, "high": {"value": 100}}]`),
			status: 422, want: []string{"value Observation.referenceRange[0].high.value"}},
		{name: "a searchset", body: bundle("searchset", hr(fAt+", "+qty("72", "/min"))), status: 422, want: []string{"not-supported Bundle.type"}},
		{name: "a Bundle without a type", body: `{"resourceType": "Bundle", "entry": []}`, status: 400, want: []string{"required Bundle.type"}},
		{name: "an empty Bundle", body: bundle("batch"), status: 422, want: []string{"required Bundle.entry"}},
		{name: "a transaction with two bad entries", body: bundle("transaction", hr(fAt+", "+qty("72", "/min")),
			hr(fAt+", "+qty("900", "/min")), obs("29463-7", fAt+", "+qty("68", "mm[Hg]"))), status: 422,
			want: []string{"value Bundle.entry[1].resource.valueQuantity.value", "value Bundle.entry[2].resource.valueQuantity.code"}},
		{name: "a transaction with an unreadable entry", body: bundle("transaction", hr(fAt+", "+qty("72", "/min")), `{"resourceType": "Observation", "code": []}`),
			status: 400, want: []string{"structure Bundle.entry[1].resource.code"}},
		{name: "a transaction deleting", body: strings.Replace(bundle("transaction", hr(fAt+", "+qty("72", "/min"))), `"POST"`, `"DELETE"`, 1),
			status: 422, want: []string{"not-supported Bundle.entry[0].request.method"}},
		{name: "a text body under the FHIR base", path: "/v1/fhir", ctype: "text/plain", body: "hello", status: 415, want: []string{"not-supported "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newFHIRHTTP(t, sink)
			path, ctype := cmp.Or(tc.path, "/v1/ingest"), cmp.Or(tc.ctype, MediaFHIR)
			rec, a := postFHIR(t, h, path, ctype, tc.body)
			if rec.Code != tc.status || a.ResourceType != "OperationOutcome" {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if got := a.expressions(); !slices.Equal(got, tc.want) {
				t.Errorf("issues %q, want %q: %s", got, tc.want, rec.Body)
			}
			if !strings.Contains(a.Issue[0].Diagnostics, tc.says) || a.Issue[0].Severity != "error" {
				t.Errorf("diagnostics %q, want it to say %q", a.Issue[0].Diagnostics, tc.says)
			}
			if n := len(sink.stored()); n != 0 {
				t.Errorf("%d lines stored, want none", n)
			}
		})
	}
}

func TestFHIRStored(t *testing.T) {
	hr := func(v string) string { return obs("8867-4", fAt+", "+qty(v, "/min")) }
	weight := obs("29463-7", fAt+", "+qty("154", "[lb_av]"))
	steps := obs("55423-8", fWalk+", "+qty("812", "{steps}"))
	tests := []struct {
		name     string
		path     string
		body     string
		status   int
		typ      string   // resourceType/type of the answer
		statuses []string // of the response Bundle's entries
		lines    int      // stored
	}{
		{name: "an Observation", path: "/v1/fhir/Observation", body: hr("72"), status: 201, typ: "OperationOutcome", lines: 1},
		{name: "a transaction", path: "/v1/fhir", body: bundle("transaction", hr("72"), weight, bp("121", "79"), steps),
			status: 200, typ: "transaction-response", statuses: []string{"201 Created", "201 Created", "201 Created", "201 Created"}, lines: 4},
		{name: "a batch, judged entry by entry", path: "/v1/fhir", body: bundle("batch", hr("72"), hr("900"), weight, `{"resourceType": "Patient"}`),
			status: 200, typ: "batch-response", statuses: []string{"201 Created", "422 Unprocessable Entity", "201 Created", "422 Unprocessable Entity"}, lines: 2},
		{name: "a collection, judged entry by entry", path: "/v1/ingest", body: bundle("collection", hr("900"), steps),
			status: 200, typ: "batch-response", statuses: []string{"422 Unprocessable Entity", "201 Created"}, lines: 1},
		{name: "a batch of nothing valid", path: "/v1/ingest", body: bundle("batch", hr("900")),
			status: 200, typ: "batch-response", statuses: []string{"422 Unprocessable Entity"}, lines: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newFHIRHTTP(t, sink)
			rec, a := postFHIR(t, h, tc.path, MediaFHIR, tc.body)
			if rec.Code != tc.status || cmp.Or(a.Type, a.ResourceType) != tc.typ {
				t.Fatalf("status %d, want %d %s: %s", rec.Code, tc.status, tc.typ, rec.Body)
			}
			var statuses []string
			for _, e := range a.Entry {
				statuses = append(statuses, e.Response.Status)
				if strings.HasPrefix(e.Response.Status, "422") && (e.Response.Outcome == nil || len(e.Response.Outcome.Issue) == 0) {
					t.Errorf("a refused entry without an outcome: %s", rec.Body)
				}
			}
			if !slices.Equal(statuses, tc.statuses) {
				t.Errorf("entry statuses %q, want %q", statuses, tc.statuses)
			}
			if a.ResourceType == "OperationOutcome" && (len(a.Issue) != 1 || a.Issue[0].Severity != "information") {
				t.Errorf("want one information issue: %s", rec.Body)
			}
			lines := sink.stored()
			if len(lines) != tc.lines {
				t.Errorf("stored %d lines, want %d: %q", len(lines), tc.lines, lines)
			}
			for _, l := range lines {
				if !strings.Contains(l, "patient=p-1") {
					t.Errorf("line %q is not the token's patient's", l)
				}
			}
		})
	}
}

// TestFHIRCounted checks that refused entries and documents are counted
// by their reasons.
func TestFHIRCounted(t *testing.T) {
	h := newFHIRHTTP(t, &fakeSink{})
	postFHIR(t, h, "/v1/fhir", MediaFHIR, bundle("batch", obs("8867-4", fAt+", "+qty("900", "/min")), obs("1234-5", fAt+", "+qty("1", "kg"))))
	postFHIR(t, h, "/v1/fhir", MediaFHIR, bundle("transaction", obs("8867-4", fAt+", "+qty("900", "/min"))))
	postFHIR(t, h, "/v1/fhir", MediaFHIR, `{"resourceType": "Patient"}`)
	m := h.metrics
	for _, c := range []struct {
		vec    *prometheus.CounterVec
		reason string
		want   float64
	}{
		{m.SamplesRejected, ReasonOutOfRange, 2},
		{m.SamplesRejected, ReasonUnknownCode, 1},
		{m.MessagesRejected, ReasonTransaction, 1},
		{m.MessagesRejected, ReasonWrongResource, 1},
	} {
		var d dto.Metric
		if err := c.vec.WithLabelValues(TransportHTTP, c.reason).Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s counted %v times, want %v", c.reason, got, c.want)
		}
	}
}

// BenchmarkDecodeFHIRBundle50 reads and judges a 50-entry transaction
// Bundle, the FHIR counterpart of BenchmarkDecode's 50 samples: a night's
// sleep, four walks, 40 heart rates, a weight, a blood pressure, and three
// laboratory results (in pg/mL, ng/dL and %).
func BenchmarkDecodeFHIRBundle50(b *testing.B) {
	body := []byte(benchBundle())
	in := newTestIntake()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		doc, r := in.decodeFHIR(body, "Bundle")
		if r != nil || len(doc.env.Points) != 51 || doc.env.Samples != 50 { // a hematocrit is also a vital
			b.Fatalf("decodeFHIR: %+v %+v", r, doc)
		}
	}
}

func benchBundle() string {
	rs := []string{obs("93832-4", fNight+", "+qty("410", "min"))}
	for i := range 4 {
		rs = append(rs, obs("55423-8", fmt.Sprintf(`"effectivePeriod": {"start": "2026-11-22T0%d:00:00Z", "end": "2026-11-22T0%d:15:00Z"}, `, 7+i%3, 7+i%3)+
			qty(fmt.Sprint(800+i), "{steps}")))
	}
	for i := range 40 {
		rs = append(rs, obs("8867-4", fmt.Sprintf(`"effectiveDateTime": "2026-11-22T%02d:%02d:00Z", `, 7+i/12, i%12*5)+qty(fmt.Sprint(60+i%30), "/min")))
	}
	rs = append(rs, obs("29463-7", fAt+", "+qty("150", "[lb_av]")), bp("121", "79"),
		obs("2243-4", fAt+", "+qty("112", "pg/mL")+`, "referenceRange": [{"low": {"value": 26.7, "code": "pg/mL"}, "high": {"value": 155.5, "code": "pg/mL"}}]`),
		obs("2986-8", fAt+", "+qty("500", "ng/dL")), obs("4544-3", fAt+", "+qty("47", "%")))
	return bundle("transaction", rs...)
}

// FuzzDecodeFHIR checks that no body makes the FHIR reader panic, and that
// every entry is either a sample or refused with an expression.
func FuzzDecodeFHIR(f *testing.F) {
	f.Add(bundle("transaction", obs("8867-4", fAt+", "+qty("72", "/min")), obs("29463-7", fAt+", "+qty("154", "[lb_av]"))))
	f.Add(bp("121", "79"))
	f.Add(obs("93832-4", fSeg+`, "valueCodeableConcept": {"coding": [{"code": "HKCategoryValueSleepAnalysisAsleepDeep"}]}`))
	f.Add(obs("2243-4", fAt+", "+qty("100", "pg/mL")+`, "referenceRange": [{"low": {"value": 26.7}, "high": {"value": 155.5}}]`))
	f.Add(bundle("batch", obs("55423-8", `"effectivePeriod": {"start": "x"}, `+qty("1", "1"))))
	in := newTestIntake()
	f.Fuzz(func(t *testing.T, body string) {
		doc, r := in.decodeFHIR([]byte(body), "")
		if r != nil {
			if len(r.outcome.Issue) == 0 || r.status < 400 {
				t.Fatalf("refusal without an issue: %+v", r)
			}
			return
		}
		for _, e := range doc.entries {
			for _, is := range e.issues {
				if len(is.Expression) != 1 || !strings.HasPrefix(is.Expression[0], e.where) && !strings.HasPrefix(is.Expression[0], "Bundle.entry[") {
					t.Fatalf("issue %+v does not name its entry %s", is, e.where)
				}
			}
			if len(e.issues) == 0 && (e.sample < 0 || e.stored == "") {
				t.Fatalf("entry %s neither stored nor refused", e.where)
			}
		}
	})
}
