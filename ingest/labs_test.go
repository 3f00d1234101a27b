package ingest

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestLabSamples(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	lab := func(fields string) string {
		return `{"seq": 1, "samples": [{"type": "lab", "time": "2026-12-01T08:00:00Z", ` + fields + `}]}`
	}
	tests := []struct {
		name   string
		in     string
		points string // measurement tags fields, each point
		probs  string
	}{
		{name: "estradiol in pmol/L as reported",
			in:     lab(`"analyte": "estradiol", "value": 412, "unit": "pmol/L", "ref_low": 98, "ref_high": 571`),
			points: "labs [analyte=estradiol] [ref_high=571 ref_low=98 reported_value=412 value=412]"},
		{name: "estradiol in pg/mL converted, the reported value kept",
			in:     lab(`"analyte": "estradiol", "value": 150, "unit": "pg/mL", "ref_low": 30, "ref_high": 400`),
			points: "labs [analyte=estradiol] [ref_high=1468.4 ref_low=110.13 reported_value=150 value=550.65]"},
		{name: "testosterone in ng/dL",
			in:     lab(`"analyte": "testosterone", "value": 600, "unit": "ng/dL"`),
			points: "labs [analyte=testosterone] [reported_value=600 value=20.802]"},
		{name: "FSH spelt mIU/mL",
			in:     lab(`"analyte": "fsh", "value": 45, "unit": "mIU/mL"`),
			points: "labs [analyte=fsh] [reported_value=45 value=45]"},
		{name: "hematocrit also feeds the vital",
			in:     lab(`"analyte": "hematocrit", "value": 0.55, "unit": "L/L"`),
			points: "labs [analyte=hematocrit] [reported_value=0.55 value=55]; vitals [] [hematocrit_pct=55]"},
		{name: "a unit that does not fit the analyte",
			in:    lab(`"analyte": "estradiol", "value": 412, "unit": "mg"`),
			probs: "unit invalid_value: is not a unit of estradiol: use one of pmol/L, ng/L, pg/mL"},
		{name: "out of range once converted",
			in:    lab(`"analyte": "hematocrit", "value": 90, "unit": "%"`),
			probs: "value out_of_range: must be between 10 and 75 % for hematocrit (got 90 %)"},
		{name: "an unknown analyte",
			in:    lab(`"analyte": "cortisol", "value": 300, "unit": "nmol/L"`),
			probs: "analyte invalid_value: must be one of " + strings.Join(analyteNames, ", ")},
		{name: "no unit",
			in:    lab(`"analyte": "psa", "value": 1.2`),
			probs: "unit missing_field: is required"},
		{name: "reference range upside down",
			in:    lab(`"analyte": "psa", "value": 1.2, "unit": "ng/mL", "ref_low": 4, "ref_high": 0`),
			probs: "ref_high out_of_range: must not be below ref_low (got 0, ref_low 4)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := Decode([]byte(tc.in), now, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			var points, probs []string
			for _, p := range env.Points {
				var tags, fields []string
				for _, tg := range p.Tags {
					tags = append(tags, tg.Key+"="+tg.Value)
				}
				for _, f := range p.Fields {
					fields = append(fields, fmt.Sprintf("%s=%v", f.Key, math.Round(f.Value*1000)/1000))
				}
				points = append(points, fmt.Sprintf("%s [%s] [%s]", p.Measurement, strings.Join(tags, " "), strings.Join(fields, " ")))
			}
			for _, p := range env.Problems {
				probs = append(probs, p.Field+" "+p.Reason+": "+p.Problem)
			}
			if got := strings.Join(points, "; "); got != tc.points {
				t.Errorf("points %q, want %q", got, tc.points)
			}
			if got := strings.Join(probs, "; "); got != tc.probs {
				t.Errorf("problems %q, want %q", got, tc.probs)
			}
		})
	}
}

func TestByLOINCAndConvert(t *testing.T) {
	for code, want := range map[string]string{
		"8867-4": "heart_rate.bpm /min", "29463-7": "vitals.weight_kg kg", "8480-6": "vitals.systolic mm[Hg]",
		"55423-8": "activity.steps {steps}", "93832-4": "sleep.total_min min",
		"2243-4": "labs:estradiol pmol/L", "2986-8": "labs:testosterone nmol/L", "4544-3": "labs:hematocrit %",
	} {
		c, ok := ByLOINC(code)
		got := c.Measurement + "." + c.Field + " " + c.Unit
		if c.Analyte != "" {
			got = c.Measurement + ":" + c.Analyte + " " + c.Unit
		}
		if !ok || got != want {
			t.Errorf("ByLOINC(%s) = %q, %v; want %q", code, got, ok, want)
		}
	}
	if _, ok := ByLOINC("85354-9"); ok {
		t.Error("the blood-pressure panel is its components, not a field")
	}
	for _, tc := range []struct {
		m, f, unit string
		v, want    float64
		ok         bool
	}{
		{"vitals", "weight_kg", "[lb_av]", 154, 69.853, true},
		{"vitals", "weight_kg", "lb", 154, 69.853, true},
		{"vitals", "weight_kg", "kg", 70, 70, true},
		{"sleep", "total_min", "h", 7.5, 450, true},
		{"heart_rate", "bpm", "beats/min", 61, 61, true},
		{"vitals", "systolic", "mmHg", 120, 120, true},
		{"vitals", "weight_kg", "mm[Hg]", 70, 0, false},
		{"labs", "value", "pmol/L", 1, 0, false},
	} {
		got, ok := Convert(tc.m, tc.f, tc.v, tc.unit)
		if ok != tc.ok || math.Abs(got-tc.want) > 0.001 {
			t.Errorf("Convert(%s.%s, %v %s) = %v, %v; want %v, %v", tc.m, tc.f, tc.v, tc.unit, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCatalogIsTheDecodersTable(t *testing.T) {
	c := TheCatalog()
	if len(c.SampleTypes) != len(kinds) || len(c.Analytes) != len(analytes) || len(c.Instruments) != len(instrumentNames) {
		t.Fatalf("catalog has %d types, %d analytes, %d instruments", len(c.SampleTypes), len(c.Analytes), len(c.Instruments))
	}
	for _, ct := range c.SampleTypes {
		for _, f := range ct.Fields {
			if f.Label == "" {
				t.Errorf("%s.%s has no label", ct.Type, f.Name)
			}
			if lo, hi, ok := Range(ct.Measurement, f.Name, ""); ct.Measurement != "symptoms" && ct.Measurement != "labs" && (!ok || lo != f.Min || hi != f.Max) {
				t.Errorf("%s.%s: catalog range %v–%v, Range %v–%v %v", ct.Measurement, f.Name, f.Min, f.Max, lo, hi, ok)
			}
		}
		if ct.Type == "lab" && (ct.Measurement != "labs" || strings.Join(ct.Tags, ",") != "analyte") {
			t.Errorf("lab: %+v", ct)
		}
	}
	for _, a := range c.Analytes {
		if lo, hi, ok := Range("labs", a.Name, ""); !ok || lo != a.Min || hi != a.Max || a.Units[0] != a.Unit || len(a.LOINC) == 0 {
			t.Errorf("analyte %+v: Range %v–%v %v", a, lo, hi, ok)
		}
	}
}
