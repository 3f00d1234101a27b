package ingest

import (
	"math"
	"slices"
	"sort"
)

// SampleTypes returns the sample types, sorted.
func SampleTypes() []string {
	ts := make([]string, 0, len(kinds))
	for t := range kinds {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// Measurements returns the measurements the sample types are stored in,
// sorted: the sample types' names, but labs for lab.
func Measurements() []string {
	ms := make([]string, 0, len(kinds))
	for t, k := range kinds {
		ms = append(ms, k.measurementOf(t))
	}
	sort.Strings(ms)
	return ms
}

// kindOf returns the sample type stored in a measurement, and its kind;
// nil for none.
func kindOf(measurement string) (string, *kind) {
	for t, k := range kinds {
		if k.measurementOf(t) == measurement {
			return t, k
		}
	}
	return "", nil
}

// Fields returns the fields of a measurement that plans may name (seq
// left out), sorted: its numeric fields; for symptoms also the items,
// subscales and total of the fixed instruments (a custom check-in's items
// are the clinic's own); for labs the analytes (labs.estradiol is the
// value of the latest estradiol result). It returns nil for an unknown
// measurement.
func Fields(measurement string) []string {
	_, k := kindOf(measurement)
	switch {
	case k == nil:
		return nil
	case measurement == "labs":
		fs := Analytes()
		sort.Strings(fs)
		return fs
	}
	var fs []string
	for _, n := range k.numbers {
		fs = append(fs, n.name)
	}
	if measurement == "symptoms" {
		for _, name := range instrumentNames {
			fs = append(fs, InstrumentFields(name)...)
		}
	}
	sort.Strings(fs)
	return slices.Compact(fs)
}

// InstrumentFields returns the fields a complete check-in of a fixed
// instrument stores: its items, its subscales and "total"; nil for an
// unknown or custom instrument.
func InstrumentFields(instrument string) []string {
	in, ok := instruments[instrument]
	if !ok || len(in.groups) == 0 {
		return nil
	}
	fs := []string{"total"}
	for _, g := range in.groups {
		fs = append(fs, g.name)
		fs = append(fs, g.items...)
	}
	sort.Strings(fs)
	return fs
}

// Subscales returns a fixed instrument's subscale names, in order.
func Subscales(instrument string) []string {
	in, ok := instruments[instrument]
	if !ok {
		return nil
	}
	var names []string
	for _, g := range in.groups {
		names = append(names, g.name)
	}
	return names
}

// Instruments returns the symptom instruments' names.
func Instruments() []string { return slices.Clone(instrumentNames) }

// IsRoute reports whether r is a dose route.
func IsRoute(r string) bool { return slices.Contains(routes, r) }

// IsUnit reports whether u is a dose unit.
func IsUnit(u string) bool { return slices.Contains(units, u) }

// IsMedication reports whether m is a valid medication name.
func IsMedication(m string) bool { return isMedication(m) }

// ValidItemKey reports whether key may be an item of a custom check-in.
func ValidItemKey(key string) bool { return isItemKey(key) && !slices.Contains(reservedItems, key) }

// InstrumentItems returns a fixed instrument's items, subscale by
// subscale, in the instrument's order; nil for custom or unknown.
func InstrumentItems(instrument string) []string {
	in, ok := instruments[instrument]
	if !ok {
		return nil
	}
	var items []string
	for _, g := range in.groups {
		items = append(items, g.items...)
	}
	return items
}

// Range returns the range of values a field of a measurement takes, the
// bounds ingest validates samples with: sleep.total_min 0–1440, labs.hematocrit 10–75,
// heart_rate.bpm 20–250, an MRS item 0–4. A symptoms field's range is its
// instrument's: an item's scale (custom: any item key, 0–10), or for a
// subscale or the total the sums of its items' ranges (MRS total 0–44,
// AMS total 17–85). Without an instrument, it is the union of the ranges
// of the fixed instruments that have the field (depressive_mood: 0–5, MRS
// and AMS). ok is false for an unknown field, or an instrument given
// outside symptoms.
func Range(measurement, field, instrument string) (lo, hi float64, ok bool) {
	_, k := kindOf(measurement)
	switch {
	case k == nil:
		return 0, 0, false
	case measurement == "labs":
		if a := findAnalyte(field); a != nil && instrument == "" {
			return a.min, a.max, true
		}
		return 0, 0, false
	case measurement == "symptoms":
		return symptomRange(field, instrument)
	case instrument != "":
		return 0, 0, false
	}
	for _, n := range k.numbers {
		if n.name == field {
			return n.min, n.max, true
		}
	}
	return 0, 0, false
}

// symptomRange is Range for a symptoms field.
func symptomRange(field, instrument string) (lo, hi float64, ok bool) {
	if instrument != "" {
		in, known := instruments[instrument]
		switch {
		case !known:
			return 0, 0, false
		case in.name == "custom" && ValidItemKey(field):
			return in.min, in.max, true
		}
		return in.fieldRange(field)
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, name := range instrumentNames {
		if l, h, has := instruments[name].fieldRange(field); has {
			lo, hi, ok = min(lo, l), max(hi, h), true
		}
	}
	if !ok {
		return 0, 0, false
	}
	return lo, hi, true
}

// fieldRange is the range of a fixed instrument's item, subscale or
// total, the last two the sums of their items' ranges; ok is false for a
// field it does not have (any, for custom).
func (in *instrument) fieldRange(field string) (lo, hi float64, ok bool) {
	items := 0
	for _, g := range in.groups {
		switch {
		case field == "total" || field == g.name:
			items += len(g.items)
		case slices.Contains(g.items, field):
			items++
		}
	}
	if items == 0 {
		return 0, 0, false
	}
	return float64(items) * in.min, float64(items) * in.max, true
}

// Catalog is the vocabulary the decoder, the plan validator and the web
// app share, as GET /v1/catalog serves it: every sample type with its
// fields (label, UCUM unit, accepted range and units, LOINC codes), the
// symptom instruments, the laboratory analytes, and the dose routes and
// units.
type Catalog struct {
	SampleTypes []CatalogType       `json:"sample_types"`
	Instruments []CatalogInstrument `json:"instruments"`
	Analytes    []CatalogAnalyte    `json:"analytes"`
	DoseRoutes  []string            `json:"dose_routes"`
	DoseUnits   []string            `json:"dose_units"`
}

// CatalogType is a sample type and the measurement it is stored in.
type CatalogType struct {
	Type        string         `json:"type"`
	Measurement string         `json:"measurement"`
	Label       string         `json:"label"`
	Interval    bool           `json:"interval"` // start and end, stored at end; else time
	Fields      []CatalogField `json:"fields"`
	Tags        []string       `json:"tags"` // string fields stored as tags
}

// CatalogField is a numeric field.
type CatalogField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Unit     string   `json:"unit,omitempty"` // UCUM
	Min      float64  `json:"min"`
	Max      float64  `json:"max"`
	Integer  bool     `json:"integer,omitempty"`
	Required bool     `json:"required,omitempty"`
	Units    []string `json:"units,omitempty"` // UCUM units the standard formats may send, Unit first
	LOINC    []string `json:"loinc,omitempty"`
}

// CatalogInstrument is a symptom questionnaire.
type CatalogInstrument struct {
	Name      string            `json:"name"`
	Label     string            `json:"label"`
	Min       float64           `json:"min"` // an item's score
	Max       float64           `json:"max"`
	Subscales []CatalogSubscale `json:"subscales"` // none for custom
}

// CatalogSubscale is a subscale and its items; its score, like the
// total, is stored when every item of it is present.
type CatalogSubscale struct {
	Name  string   `json:"name"`
	Items []string `json:"items"`
}

// CatalogAnalyte is a laboratory analyte: labs.<name> in plans.
type CatalogAnalyte struct {
	Name  string   `json:"name"`
	Label string   `json:"label"`
	Unit  string   `json:"unit"` // canonical UCUM unit, that of the stored value
	Units []string `json:"units"`
	Min   float64  `json:"min"`
	Max   float64  `json:"max"`
	LOINC []string `json:"loinc"`
}

// TheCatalog returns the catalog.
func TheCatalog() Catalog {
	c := Catalog{DoseRoutes: slices.Clone(routes), DoseUnits: slices.Clone(units)}
	for _, t := range SampleTypes() {
		k := kinds[t]
		ct := CatalogType{Type: t, Measurement: k.measurementOf(t), Label: k.label, Interval: k.interval,
			Fields: []CatalogField{}, Tags: []string{}}
		for _, n := range k.numbers {
			f := CatalogField{Name: n.name, Label: n.label, Unit: n.unit, Min: n.min, Max: n.max,
				Integer: n.integer, Required: n.required, LOINC: n.loinc}
			if n.unit != "" {
				f.Units = n.unitList()
			}
			ct.Fields = append(ct.Fields, f)
		}
		for _, str := range k.strings {
			if t != "lab" || str.name != "unit" { // a lab's unit is not stored
				ct.Tags = append(ct.Tags, str.name)
			}
		}
		c.SampleTypes = append(c.SampleTypes, ct)
	}
	for _, name := range instrumentNames {
		in := instruments[name]
		ci := CatalogInstrument{Name: name, Label: in.label, Min: in.min, Max: in.max, Subscales: []CatalogSubscale{}}
		for _, g := range in.groups {
			ci.Subscales = append(ci.Subscales, CatalogSubscale{Name: g.name, Items: slices.Clone(g.items)})
		}
		c.Instruments = append(c.Instruments, ci)
	}
	for _, a := range analytes {
		c.Analytes = append(c.Analytes, CatalogAnalyte{Name: a.name, Label: a.label, Unit: a.unit, Units: a.unitList(),
			Min: a.min, Max: a.max, LOINC: slices.Clone(a.loinc)})
	}
	return c
}
