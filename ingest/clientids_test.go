package ingest

import "testing"

func TestReservedClientID(t *testing.T) {
	for _, tc := range []struct {
		name, base, id string
		want           bool
	}{
		{"the single instance's id", "patientpulse", "patientpulse", true},
		{"a session slot", "patientpulse", SessionClientID("patientpulse", 3), true},
		{"a feed", "patientpulse", FeedClientID("patientpulse", "i-1"), true},
		{"a feed's publisher", "patientpulse", FeedClientID("patientpulse", "i-1") + "-pub", true},
		{"any id under the base", "patientpulse", "patientpulse-watch", true},
		{"another base's session slot", "clinic-a", "patientpulse-s3", false},
		{"under another base", "clinic-a", "clinic-a-s0", true},
		{"the base as a prefix without the dash", "patientpulse", "patientpulse2", false},
		{"the base with a dot", "patientpulse", "patientpulse.s3", false},
		{"case differs", "patientpulse", "PatientPulse-s3", false},
		{"the base inside the id", "patientpulse", "watch-patientpulse-s3", false},
		{"a device", "patientpulse", "watch-001", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReservedClientID(tc.base, tc.id); got != tc.want {
				t.Errorf("ReservedClientID(%q, %q) = %v, want %v", tc.base, tc.id, got, tc.want)
			}
		})
	}
}
