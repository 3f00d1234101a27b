package ingest

import (
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
