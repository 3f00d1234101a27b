package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOpenMHealthOverHTTPS posts an Open mHealth array of step counts, as
// plain application/json, and reads back that InfluxDB holds each interval
// at its end under the token's patient, and the same array again (new
// header uuids) nothing new; a heart rate of 900 is refused
// with a JSON Pointer at its value.
func TestOpenMHealthOverHTTPS(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-omh", "app-omh")
	srv := startServe(t, dir, "t-omh")

	now := time.Now().UTC().Truncate(time.Second)
	var points, want []string
	array := func(id string) []byte { // id: 11 hex digits of the header uuids, new on each resend as some apps make them
		return []byte("[" + strings.ReplaceAll(strings.Join(points, ","), "-1f2b3c4d5e6", "-"+id) + "]")
	}
	for i, steps := range []int{812, 1040, 95} {
		start, end := now.Add(-time.Duration(3-i)*time.Hour), now.Add(-time.Duration(3-i)*time.Hour+15*time.Minute)
		// An offset, as phones send: stored in UTC.
		zone := time.FixedZone("", -5*3600)
		points = append(points, fmt.Sprintf(`{"header": {"uuid": "5d3c9a1e-7b2f-4c8d-9e0a-1f2b3c4d5e6%d",
			"schema_id": {"namespace": "omh", "name": "step-count", "version": "3.0"},
			"source_creation_date_time": %q, "modality": "sensed"},
			"body": {"step_count": {"value": %d, "unit": "steps"},
			"effective_time_frame": {"time_interval": {"start_date_time": %q, "end_date_time": %q}}}}`,
			i, end.Format(time.RFC3339), steps, start.In(zone).Format(time.RFC3339), end.In(zone).Format(time.RFC3339)))
		want = append(want, fmt.Sprintf("activity.steps=%d@%s", steps, ts(end)))
	}
	status, doc, _ := post(t, srv.url, token, "application/json", array("1f2b3c4d5e6"))
	if status != 202 || doc["accepted"] != 3.0 {
		t.Fatalf("answered %d %v, want 202 with 3 accepted", status, doc)
	}
	stored := query(t, "app-omh")
	var got []string
	for _, r := range stored {
		if r.Field == "seq" {
			continue // 0: Open mHealth has none
		}
		got = append(got, fmt.Sprintf("%s.%s=%v@%s", r.Measurement, r.Field, r.Value, ts(r.Time)))
		if r.Tags["patient"] != "p-omh" {
			t.Errorf("%s stored for patient %q, want p-omh", r.Measurement, r.Tags["patient"])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("InfluxDB holds\n%q\nwant\n%q", got, want)
	}

	// The same document again, its header uuids new: nothing new stored.
	if status, doc, _ := post(t, srv.url, token, "application/vnd.openmhealth+json", array("a7c9e0b4d21")); status != 202 || doc["accepted"] != 3.0 {
		t.Fatalf("the resend answered %d %v, want 202 with 3 accepted", status, doc)
	}
	if again := rowStrings(query(t, "app-omh")); !slices.Equal(again, rowStrings(stored)) {
		t.Errorf("after a resend InfluxDB holds\n%q\nwant what it held before\n%q", again, rowStrings(stored))
	}

	tooFast := fmt.Sprintf(`{"header": {"id": "x", "creation_date_time": %q,
		"schema_id": {"namespace": "omh", "name": "heart-rate", "version": "1.1"}},
		"body": {"heart_rate": {"value": 900, "unit": "beats/min"}, "effective_time_frame": {"date_time": %q}}}`, ts(now), ts(now))
	status, doc, _ = post(t, srv.url, token, "application/vnd.openmhealth+json", []byte(tooFast))
	details := fmt.Sprint(doc["details"])
	if status != 400 || doc["seq"] != nil || !strings.Contains(details, "field:/body/heart_rate/value") {
		t.Errorf("a heart rate of 900 answered %d %v, want 400 with seq null and field /body/heart_rate/value", status, doc)
	}
	srv.stop()
	assertNoPHI(t, srv.logs.String(), token, "p-omh")
}
