package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

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
	fAt = `"effectiveDateTime": "2026-11-22T08:05:00+01:00"`
	fNight = `"effectivePeriod": {"start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z"}`
	fWalk = `"effectivePeriod": {"start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:15:00Z"}`
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
