package ingest

import "testing"

// TestRange: the ranges plans are checked against are the ones samples
// are validated with, and an instrument's sums are its items' ranges
// added up.
func TestRange(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		measurement, field, instrument string
		lo, hi                         float64
		ok                             bool
	}{
		{"sleep minutes", "sleep", "total_min", "", 0, 1440, true},
		{"hrv", "sleep", "hrv_rmssd_ms", "", 1, 300, true},
		{"skin temperature", "sleep", "skin_temp_dev_c", "", -5, 5, true},
		{"heart rate", "heart_rate", "bpm", "", 20, 250, true},
		{"steps", "activity", "steps", "", 0, 100000, true},
		{"hematocrit", "vitals", "hematocrit_pct", "", 10, 75, true},
		{"dose amount", "dose", "amount", "", 0, 10000, true},
		{"mrs item", "symptoms", "hot_flushes", "mrs", 0, 4, true},
		{"mrs somatic", "symptoms", "somatic", "mrs", 0, 16, true},
		{"mrs urogenital", "symptoms", "urogenital", "mrs", 0, 12, true},
		{"mrs total", "symptoms", "total", "mrs", 0, 44, true},
		{"ams item", "symptoms", "libido", "ams", 1, 5, true},
		{"ams somatic", "symptoms", "somatic", "ams", 7, 35, true},
		{"ams sexual", "symptoms", "sexual", "ams", 5, 25, true},
		{"ams total", "symptoms", "total", "ams", 17, 85, true},
		{"custom item", "symptoms", "pain_level", "custom", 0, 10, true},
		{"mrs-only item, no instrument", "symptoms", "hot_flushes", "", 0, 4, true},
		{"item of both, no instrument", "symptoms", "depressive_mood", "", 0, 5, true},
		{"total, no instrument", "symptoms", "total", "", 0, 85, true},
		{"ams-only subscale, no instrument", "symptoms", "sexual", "", 5, 25, true},
		{"item of another instrument", "symptoms", "hot_flushes", "ams", 0, 0, false},
		{"custom key, no instrument", "symptoms", "pain_level", "", 0, 0, false},
		{"bad custom key", "symptoms", "Pain", "custom", 0, 0, false},
		{"unknown instrument", "symptoms", "hot_flushes", "phq9", 0, 0, false},
		{"unknown field", "sleep", "nap_min", "", 0, 0, false},
		{"seq is no metric", "sleep", "seq", "", 0, 0, false},
		{"unknown measurement", "blood", "pressure", "", 0, 0, false},
		{"instrument outside symptoms", "sleep", "total_min", "mrs", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := Range(tc.measurement, tc.field, tc.instrument)
			if lo != tc.lo || hi != tc.hi || ok != tc.ok {
				t.Errorf("Range(%q, %q, %q) = %v, %v, %v; want %v, %v, %v",
					tc.measurement, tc.field, tc.instrument, lo, hi, ok, tc.lo, tc.hi, tc.ok)
			}
		})
	}
}
