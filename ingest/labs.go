package ingest

import (
	"slices"
	"strings"
)

// analyte is a laboratory test patientpulse stores: measurement labs, tag
// analyte, field value in unit (the canonical one), as DESIGN.md says.
type analyte struct {
	name     string
	label    string
	unit     string             // canonical UCUM unit
	units    map[string]float64 // UCUM units accepted: value × factor is in unit
	min, max float64            // the values accepted, in unit: what a laboratory can report, not a reference range
	loinc    []string           // laboratory LOINC codes that report it, in any of units
}

// analytes are the laboratory tests of HRT monitoring, in the order a
// clinician reads them (DESIGN.md, "Laboratory results"). Conversion
// factors are the usual clinical-chemistry ones (molar mass for the
// hormones, 38.67 for cholesterol, 88.57 for triglycerides, 21.2 mIU/L a
// ng/mL for prolactin, 60 U/L a µkat/L for ALT).
var analytes = []*analyte{
	{name: "estradiol", label: "Estradiol", unit: "pmol/L", max: 100000,
		units: map[string]float64{"pmol/L": 1, "pg/mL": 3.671, "ng/L": 3.671},
		loinc: []string{"2243-4", "14715-7"}},
	{name: "testosterone", label: "Testosterone, total", unit: "nmol/L", max: 500,
		units: map[string]float64{"nmol/L": 1, "ng/dL": 0.03467, "ng/mL": 3.467},
		loinc: []string{"2986-8", "14913-8"}},
	{name: "free_testosterone", label: "Testosterone, free", unit: "pmol/L", max: 20000,
		units: map[string]float64{"pmol/L": 1, "pg/mL": 3.467, "ng/dL": 34.67, "nmol/L": 1000},
		loinc: []string{"2991-8", "14914-6"}},
	{name: "shbg", label: "SHBG", unit: "nmol/L", max: 1000,
		units: map[string]float64{"nmol/L": 1}, loinc: []string{"13967-5"}},
	{name: "progesterone", label: "Progesterone", unit: "nmol/L", max: 2000,
		units: map[string]float64{"nmol/L": 1, "ng/mL": 3.18, "ug/L": 3.18},
		loinc: []string{"2839-9", "14890-8"}},
	{name: "fsh", label: "FSH", unit: "[IU]/L", max: 1000,
		units: map[string]float64{"[IU]/L": 1, "m[IU]/mL": 1}, loinc: []string{"15067-2"}},
	{name: "lh", label: "LH", unit: "[IU]/L", max: 1000,
		units: map[string]float64{"[IU]/L": 1, "m[IU]/mL": 1}, loinc: []string{"10501-5"}},
	{name: "prolactin", label: "Prolactin", unit: "ug/L", max: 20000,
		units: map[string]float64{"ug/L": 1, "ng/mL": 1, "m[IU]/L": 1 / 21.2}, loinc: []string{"2842-3"}},
	{name: "psa", label: "PSA", unit: "ug/L", max: 10000,
		units: map[string]float64{"ug/L": 1, "ng/mL": 1}, loinc: []string{"2857-1"}},
	{name: "hematocrit", label: "Hematocrit", unit: "%", min: 10, max: 75,
		units: map[string]float64{"%": 1, "L/L": 100}, loinc: []string{"4544-3", "20570-8"}},
	{name: "hemoglobin", label: "Hemoglobin", unit: "g/dL", min: 1, max: 30,
		units: map[string]float64{"g/dL": 1, "g/L": 0.1, "mmol/L": 1.611}, loinc: []string{"718-7"}},
	{name: "tsh", label: "TSH", unit: "m[IU]/L", max: 1000,
		units: map[string]float64{"m[IU]/L": 1, "u[IU]/mL": 1}, loinc: []string{"3016-3", "11580-8"}},
	{name: "free_t4", label: "Free T4", unit: "pmol/L", max: 500,
		units: map[string]float64{"pmol/L": 1, "ng/dL": 12.87}, loinc: []string{"3024-7", "14920-3"}},
	{name: "ldl", label: "LDL cholesterol", unit: "mmol/L", max: 50,
		units: map[string]float64{"mmol/L": 1, "mg/dL": 1 / 38.67}, loinc: []string{"13457-7", "2089-1", "18262-6", "22748-8"}},
	{name: "hdl", label: "HDL cholesterol", unit: "mmol/L", max: 20,
		units: map[string]float64{"mmol/L": 1, "mg/dL": 1 / 38.67}, loinc: []string{"2085-9", "14646-4"}},
	{name: "triglycerides", label: "Triglycerides", unit: "mmol/L", max: 200,
		units: map[string]float64{"mmol/L": 1, "mg/dL": 1 / 88.57}, loinc: []string{"2571-8", "14927-8"}},
	{name: "alt", label: "ALT", unit: "U/L", max: 20000,
		units: map[string]float64{"U/L": 1, "ukat/L": 60}, loinc: []string{"1742-6", "1743-4"}},
	{name: "vitamin_d", label: "Vitamin D (25-OH)", unit: "nmol/L", max: 2000,
		units: map[string]float64{"nmol/L": 1, "ng/mL": 2.496}, loinc: []string{"1989-3", "62292-8"}},
}

// analyteNames lists the analytes for problem sentences.
var analyteNames = func() []string {
	names := make([]string, len(analytes))
	for i, a := range analytes {
		names[i] = a.name
	}
	return names
}()

func findAnalyte(name string) *analyte {
	for _, a := range analytes {
		if a.name == name {
			return a
		}
	}
	return nil
}

// Analytes returns the laboratory analytes, in the catalog's order.
func Analytes() []string { return slices.Clone(analyteNames) }

// AnalyteUnit returns an analyte's canonical unit, "" for an unknown one.
func AnalyteUnit(name string) string {
	if a := findAnalyte(name); a != nil {
		return a.unit
	}
	return ""
}

// AnalyteLabel returns an analyte's label for people, "" for an unknown one.
func AnalyteLabel(name string) string {
	if a := findAnalyte(name); a != nil {
		return a.label
	}
	return ""
}

// UnitText writes a UCUM unit for people: [IU]/L as IU/L, mm[Hg] as
// mmHg, /min as bpm, {steps} as steps, Cel as °C, 1 as nothing.
func UnitText(ucum string) string {
	switch ucum {
	case "/min":
		return "bpm"
	case "Cel":
		return "°C"
	case "1":
		return ""
	}
	return strings.NewReplacer("[IU]", "IU", "mm[Hg]", "mmHg", "{steps}", "steps", "ug", "µg", "ukat", "µkat").Replace(ucum)
}

// UCUM returns the UCUM code of a unit as people and some devices write
// it: "mIU/mL" is m[IU]/mL, "mmHg" mm[Hg], "lb" [lb_av], "µg/L" ug/L,
// "bpm" and "beats/min" /min; a UCUM code is returned as it is.
func UCUM(unit string) string {
	u := strings.TrimSpace(unit)
	if strings.ContainsAny(u, "µμ") {
		u = microSign.Replace(u)
	}
	if alias, ok := unitAliases[strings.ToLower(u)]; ok {
		return alias
	}
	if strings.Contains(u, "IU") && !strings.Contains(u, "[IU]") {
		u = strings.Replace(u, "IU", "[IU]", 1)
	}
	return u
}

// microSign spells the micro prefix as UCUM does; made once, as UCUM is
// called for every value of the standard formats.
var microSign = strings.NewReplacer("µ", "u", "μ", "u")

var unitAliases = map[string]string{
	"mmhg": "mm[Hg]", "lb": "[lb_av]", "lbs": "[lb_av]", "bpm": "/min", "beats/min": "/min", "{beats}/min": "/min",
	"1/min": "/min", "sec": "s", "hr": "h", "hours": "h", "minutes": "min", "steps": "{steps}", "kcal": "kcal",
	"percent": "%", "l/l": "L/L",
}

// labReading converts a lab's value and reference range from unit to the
// analyte's canonical unit; ok is false when unit does not measure it.
func (a *analyte) factor(unit string) (float64, bool) {
	f, ok := a.units[UCUM(unit)]
	return f, ok
}

// unitList is an analyte's accepted units for sentences: canonical first.
func (a *analyte) unitList() []string { return unitList(a.unit, a.units) }

// unitList lists own and then, sorted, the other units of factors.
func unitList(own string, factors map[string]float64) []string {
	us := []string{own}
	for u := range factors {
		if u != own {
			us = append(us, u)
		}
	}
	slices.Sort(us[1:])
	return us
}

// LOINCCode is what patientpulse stores of a LOINC-coded observation:
// a field of a measurement (Field set), or a laboratory analyte (Analyte
// set; measurement labs).
type LOINCCode struct {
	Measurement string
	Field       string
	Analyte     string
	Unit        string   // canonical UCUM unit
	Units       []string // UCUM units accepted, canonical first
}

// ByLOINC returns what a LOINC code is stored as; ok is false for a code
// patientpulse does not take. The blood-pressure panel (85354-9) is not
// one: its components are.
func ByLOINC(code string) (LOINCCode, bool) {
	for _, a := range analytes {
		if slices.Contains(a.loinc, code) {
			return LOINCCode{Measurement: "labs", Analyte: a.name, Unit: a.unit, Units: a.unitList()}, true
		}
	}
	for _, typ := range SampleTypes() {
		for _, n := range kinds[typ].numbers {
			if slices.Contains(n.loinc, code) {
				return LOINCCode{Measurement: kinds[typ].measurementOf(typ), Field: n.name, Unit: n.unit, Units: n.unitList()}, true
			}
		}
	}
	return LOINCCode{}, false
}

// Convert returns v, in unit (UCUM, or a spelling UCUM accepts), in the
// canonical unit of a field of a measurement (e.g. 154 [lb_av] as
// vitals.weight_kg: 69.85); ok is false when the unit does not measure
// the field.
func Convert(measurement, field string, v float64, unit string) (float64, bool) {
	_, k := kindOf(measurement)
	if k == nil {
		return 0, false
	}
	for _, n := range k.numbers {
		if n.name != field {
			continue
		}
		if u := UCUM(unit); u == n.unit {
			return v, true
		} else if f, ok := n.units[u]; ok {
			return v * f, true
		}
		return 0, false
	}
	return 0, false
}

// checkLab converts a lab sample's value and reference range to the
// analyte's canonical unit, keeps the reported value, and checks the
// converted value against what a laboratory can report; the unit is not
// stored (it is implied by the analyte).
func checkLab(s *sample) {
	name, _ := s.tag("analyte")
	unit, unitOK := s.tag("unit")
	s.tags = slices.DeleteFunc(s.tags, func(t Tag) bool { return t.Key == "unit" })
	a := findAnalyte(name)
	if a == nil || !unitOK {
		return
	}
	f, ok := a.factor(unit)
	if !ok {
		s.add("unit", ReasonInvalidValue, "is not a unit of %s: use one of %s", name, strings.Join(a.unitList(), ", "))
		return
	}
	low, lowOK := s.value("ref_low")
	high, highOK := s.value("ref_high")
	if lowOK && highOK && low > high {
		s.add("ref_high", ReasonOutOfRange, "must not be below ref_low (got %s, ref_low %s)", num(high), num(low))
	}
	for i, fl := range s.fields {
		switch fl.Key {
		case "value":
			v := fl.Value * f
			if v < a.min || v > a.max {
				s.add("value", ReasonOutOfRange, "must be between %s and %s %s for %s (got %s %s)",
					num(a.min), num(a.max), a.unit, name, num(fl.Value), UCUM(unit))
			}
			s.fields[i].Value = v
			s.fields = append(s.fields, Field{Key: "reported_value", Value: fl.Value})
		case "ref_low", "ref_high":
			s.fields[i].Value = fl.Value * f
		}
	}
}
