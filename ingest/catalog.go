package ingest

import (
	"math"
	"slices"
	"sort"
)

// SampleTypes returns the sample types, which are also the measurements,
// sorted.
func SampleTypes() []string {
	ts := make([]string, 0, len(kinds))
	for t := range kinds {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// Fields returns the numeric fields stored for a sample type (seq left
// out), sorted; for symptoms, the items, subscales and total of the fixed
// instruments (a custom check-in's items are the clinic's own). It returns
// nil for an unknown type.
func Fields(sampleType string) []string {
	k, ok := kinds[sampleType]
	if !ok {
		return nil
	}
	var fs []string
	for _, n := range k.numbers {
		fs = append(fs, n.name)
	}
	if sampleType == "symptoms" {
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
// bounds ingest validates samples with: sleep.total_min 0–1440,
// heart_rate.bpm 20–250, an MRS item 0–4. A symptoms field's range is its
// instrument's: an item's scale (custom: any item key, 0–10), or for a
// subscale or the total the sums of its items' ranges (MRS total 0–44,
// AMS total 17–85). Without an instrument, it is the union of the ranges
// of the fixed instruments that have the field (depressive_mood: 0–5, MRS
// and AMS). ok is false for an unknown field, or an instrument given
// outside symptoms.
func Range(measurement, field, instrument string) (lo, hi float64, ok bool) {
	k, known := kinds[measurement]
	switch {
	case !known:
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
