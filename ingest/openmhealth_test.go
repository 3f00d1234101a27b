package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/patientpulse/patientpulse/registry"
)

// Open mHealth documents written from the published schemas
// (github.com/openmhealth/schemas, schema/omh, and the IEEE 1752.1
// metadata and schemas): both header forms, each schema in the versions
// patientpulse takes, and the time frames and units real emitters send.

// omhHeader1 is an Open mHealth 1.x header: id, creation_date_time,
// acquisition_provenance.
func omhHeader1(ns, name, version string) string {
	return fmt.Sprintf(`{"id": "3f4c2a90-51b8-4c1e-9d5a-0c7e2b6f1a11", "creation_date_time": "2026-11-22T10:00:00Z",
		"acquisition_provenance": {"source_name": "HealthKit", "modality": "sensed"},
		"schema_id": {"namespace": %q, "name": %q, "version": %q}}`, ns, name, version)
}

// omhHeader2 is an IEEE 1752.1 / Open mHealth 2.x header: uuid,
// source_creation_date_time, modality.
func omhHeader2(ns, name, version string) string {
	return fmt.Sprintf(`{"uuid": "9b2e1d7c-0a4f-4e59-8f3b-6d1c2a7e5b40", "schema_id": {"namespace": %q, "name": %q, "version": %q},
		"source_creation_date_time": "2026-11-22T05:00:00-05:00", "modality": "sensed",
		"external_datasheets": [{"datasheet_type": "manufacturer", "datasheet_reference": "https://example.com/watch"}]}`, ns, name, version)
}

// dp1 and dp2 are data points with each header form; dpNS one in the
// ieee namespace.
func dp1(name, version, body string) string {
	return `{"header": ` + omhHeader1("omh", name, version) + `, "body": ` + body + `}`
}

func dp2(name, version, body string) string {
	return `{"header": ` + omhHeader2("omh", name, version) + `, "body": ` + body + `}`
}

func dpIEEE(name, version, body string) string {
	return `{"header": ` + omhHeader2("ieee", name, version) + `, "body": ` + body + `}`
}

const (
	tAt     = `"effective_time_frame": {"date_time": "2026-11-22T08:05:00+01:00"}`
	tWalk   = `"effective_time_frame": {"time_interval": {"start_date_time": "2026-11-22T09:00:00Z", "end_date_time": "2026-11-22T09:15:00Z"}}`
	tNight  = `"effective_time_frame": {"time_interval": {"start_date_time": "2026-11-21T23:10:00-02:00", "end_date_time": "2026-11-22T06:40:00-02:00"}}`
	atUTC8  = "2026-11-22T07:05:00Z"
	walkEnd = "2026-11-22T09:15:00Z"
)

// omhIntake is an intake at testNow with the default limits.
func omhIntake() *Intake {
	in := NewIntake(fakeDevices{}, 0, DefaultLimits(), NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.now = func() time.Time { return testNow }
	return in
}

// omhPoints writes points as "sample: measurement field=value ... @time",
// values rounded to 4 decimals.
func omhPoints(points []Point) []string {
	var out []string
	for _, p := range points {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d: %s", p.Sample, p.Measurement)
		for _, f := range p.Fields {
			sb.WriteString(" " + f.Key + "=" + strconv.FormatFloat(math.Round(f.Value*1e4)/1e4, 'f', -1, 64))
		}
		sb.WriteString(" @" + p.Time.Format(time.RFC3339))
		out = append(out, sb.String())
	}
	return out
}

// omhProblems writes problems as "sample field reason".
func omhProblems(probs []Problem) []string {
	var out []string
	for _, p := range probs {
		out = append(out, fmt.Sprintf("%d %s %s", p.Sample, p.Field, p.Reason))
	}
	return out
}

func TestOpenMHealthMapping(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{name: "heart-rate 1.0, 1.x header, +01:00 offset", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, `+tAt+`}`),
			want: []string{"0: heart_rate bpm=72 @" + atUTC8}},
		{name: "heart-rate 1.1, IEEE header", body: dp2("heart-rate", "1.1", `{"heart_rate": {"value": 67.5, "unit": "beats/min"}, `+tAt+`, "temporal_relationship_to_physical_activity": "at rest"}`),
			want: []string{"0: heart_rate bpm=67.5 @" + atUTC8}},
		{name: "heart-rate 2.0 over a time interval is at its end", body: dp2("heart-rate", "2.0", `{"heart_rate": {"value": 88, "unit": "beats/min"}, `+tWalk+`}`),
			want: []string{"0: heart_rate bpm=88 @" + walkEnd}},
		{name: "step-count 1.0, a number, start and end", body: dp1("step-count", "1.0", `{"step_count": 812, `+tWalk+`}`),
			want: []string{"0: activity steps=812 @" + walkEnd}},
		{name: "step-count 2.0, start and duration in min", body: dp2("step-count", "2.0",
			`{"step_count": 812, "effective_time_frame": {"time_interval": {"start_date_time": "2026-11-22T10:00:00+01:00", "duration": {"value": 15, "unit": "min"}}}}`),
			want: []string{"0: activity steps=812 @" + walkEnd}},
		{name: "step-count 3.0, unit value, end and duration in sec", body: dp2("step-count", "3.0",
			`{"step_count": {"value": 812, "unit": "steps"}, "effective_time_frame": {"time_interval": {"end_date_time": "2026-11-22T09:15:00Z", "duration": {"value": 900, "unit": "sec"}}}}`),
			want: []string{"0: activity steps=812 @" + walkEnd}},
		{name: "physical-activity 1.2: length and kcal", body: dp1("physical-activity", "1.2",
			`{"activity_name": "walking", "distance": {"value": 1.2, "unit": "km"}, "kcal_burned": {"value": 45, "unit": "kcal"}, "reported_activity_intensity": "moderate", `+tWalk+`}`),
			want: []string{"0: activity active_min=15 energy_kcal=45 @" + walkEnd}},
		{name: "physical-activity ieee 1.0: steps in base_movement_quantity", body: dpIEEE("physical-activity", "1.0",
			`{"activity_name": "walking", "base_movement_quantity": {"value": 1500, "unit": "steps"}, "kcal_burned": {"value": 200, "unit": "kJ"}, `+tWalk+`}`),
			want: []string{"0: activity active_min=15 energy_kcal=47.8011 steps=1500 @" + walkEnd}},
		{name: "sleep-duration 2.0 in h, night with -02:00 offsets", body: dp2("sleep-duration", "2.0", `{"sleep_duration": {"value": 6.5, "unit": "h"}, `+tNight+`}`),
			want: []string{"0: sleep total_min=390 @2026-11-22T08:40:00Z"}},
		{name: "sleep-duration 1.0 in min", body: dp1("sleep-duration", "1.0", `{"sleep_duration": {"value": 410, "unit": "min"}, `+tNight+`}`),
			want: []string{"0: sleep total_min=410 @2026-11-22T08:40:00Z"}},
		{name: "sleep-episode 1.1: the interval, efficiency in %, time awake", body: dp1("sleep-episode", "1.1",
			`{"latency_to_sleep_onset": {"value": 12, "unit": "min"}, "wake_after_sleep_onset": {"value": 30, "unit": "min"}, "number_of_awakenings": 3, "is_main_sleep": true,
			  "sleep_maintenance_efficiency_percentage": {"value": 91, "unit": "%"}, `+tNight+`}`),
			want: []string{"0: sleep awake_min=30 efficiency=0.91 total_min=450 @2026-11-22T08:40:00Z"}},
		{name: "sleep-episode ieee 1.0: total_sleep_time in sec", body: dpIEEE("sleep-episode", "1.0",
			`{"total_sleep_time": {"value": 24600, "unit": "sec"}, `+tNight+`}`),
			want: []string{"0: sleep total_min=410 @2026-11-22T08:40:00Z"}},
		{name: "body-weight 1.0 in kg", body: dp1("body-weight", "1.0", `{"body_weight": {"value": 68.2, "unit": "kg"}, `+tAt+`}`),
			want: []string{"0: vitals weight_kg=68.2 @" + atUTC8}},
		{name: "body-weight 2.0 in lb", body: dp2("body-weight", "2.0", `{"body_weight": {"value": 154, "unit": "lb"}, `+tAt+`}`),
			want: []string{"0: vitals weight_kg=69.8532 @" + atUTC8}},
		{name: "body-weight 3.0 in g", body: dp2("body-weight", "3.0", `{"body_weight": {"value": 68200, "unit": "g"}, `+tAt+`}`),
			want: []string{"0: vitals weight_kg=68.2 @" + atUTC8}},
		{name: "blood-pressure 1.0", body: dp1("blood-pressure", "1.0",
			`{"systolic_blood_pressure": {"value": 121, "unit": "mmHg"}, "diastolic_blood_pressure": {"value": 79, "unit": "mmHg"}, "position_during_measurement": "sitting", `+tAt+`}`),
			want: []string{"0: vitals diastolic=79 systolic=121 @" + atUTC8}},
		{name: "blood-pressure 4.0, IEEE header", body: dp2("blood-pressure", "4.0",
			`{"systolic_blood_pressure": {"value": 115, "unit": "mmHg"}, "diastolic_blood_pressure": {"value": 60, "unit": "mmHg"}, `+tAt+`}`),
			want: []string{"0: vitals diastolic=60 systolic=115 @" + atUTC8}},
		{name: "an array of both header forms", body: "[" + dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, `+tAt+`}`) + "," +
			dp2("step-count", "3.0", `{"step_count": {"value": 812, "unit": "steps"}, `+tWalk+`}`) + "]",
			want: []string{"0: heart_rate bpm=72 @" + atUTC8, "1: activity steps=812 @" + walkEnd}},
		{name: "a night as stage segments: sleep-duration over each", body: "[" +
			dp2("sleep-duration", "2.0", `{"sleep_duration": {"value": 40, "unit": "min"}, "effective_time_frame": {"time_interval": {"start_date_time": "2026-11-21T23:40:00Z", "end_date_time": "2026-11-22T00:20:00Z"}}}`) + "," +
			dp2("sleep-duration", "2.0", `{"sleep_duration": {"value": 1.5, "unit": "h"}, "effective_time_frame": {"time_interval": {"start_date_time": "2026-11-22T00:30:00Z", "duration": {"value": 90, "unit": "min"}}}}`) + "]",
			want: []string{"0: sleep total_min=40 @2026-11-22T00:20:00Z", "1: sleep total_min=90 @2026-11-22T02:00:00Z"}},
		{name: "an IEEE 1752.1 data series", body: `{"header": ` + omhHeader2("omh", "heart-rate", "2.0") + `, "body": [
			{"heart_rate": {"value": 61, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2026-11-22T09:00:00Z"}},
			{"heart_rate": {"value": 64, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2026-11-22T09:05:00Z"}}]}`,
			want: []string{"0: heart_rate bpm=61 @2026-11-22T09:00:00Z", "1: heart_rate bpm=64 @2026-11-22T09:05:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := omhIntake().DecodeOpenMHealth([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(env.Problems) > 0 {
				t.Fatalf("problems: %v", omhProblems(env.Problems))
			}
			if got := omhPoints(env.Points); !slices.Equal(got, tc.want) {
				t.Errorf("points\n got %q\nwant %q", got, tc.want)
			}
			if !env.Unsequenced || env.Samples != len(tc.want) {
				t.Errorf("Unsequenced %v, Samples %d; want true, %d", env.Unsequenced, env.Samples, len(tc.want))
			}
		})
	}
}

func TestOpenMHealthProblems(t *testing.T) {
	hr := func(v string) string { return `{"heart_rate": {"value": ` + v + `, "unit": "beats/min"}, ` + tAt + `}` }
	steps := func(tf string) string { return `{"step_count": 812, "effective_time_frame": ` + tf + `}` }
	tests := []struct {
		name   string
		body   string
		want   []string // problems as "sample pointer reason"
		points int      // points stored besides
	}{
		{name: "heart rate of 900", body: dp1("heart-rate", "1.0", hr("900")),
			want: []string{"0 /body/heart_rate/value out_of_range"}},
		{name: "heart rate of 900 in an array, the other stored", body: "[" + dp2("heart-rate", "2.0", hr("72")) + "," + dp2("heart-rate", "2.0", hr("900")) + "]",
			want: []string{"1 /1/body/heart_rate/value out_of_range"}, points: 1},
		{name: "heart rate of 900 in a data series", body: `{"header": ` + omhHeader2("omh", "heart-rate", "2.0") + `, "body": [` + hr("72") + `,` + hr("900") + `]}`,
			want: []string{"1 /body/1/heart_rate/value out_of_range"}, points: 1},
		{name: "heart rate in kg", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "kg"}, `+tAt+`}`),
			want: []string{"0 /body/heart_rate/unit bad_unit"}},
		{name: "heart rate without unit", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72}, `+tAt+`}`),
			want: []string{"0 /body/heart_rate/unit missing_field"}},
		{name: "heart rate as a string", body: dp1("heart-rate", "1.0", hr(`"72"`)),
			want: []string{"0 /body/heart_rate/value invalid_value"}},
		{name: "heart rate missing", body: dp1("heart-rate", "1.0", `{`+tAt+`}`),
			want: []string{"0 /body/heart_rate missing_field"}},
		{name: "heart rate twice", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, "heart_rate": {"value": 400, "unit": "beats/min"}, `+tAt+`}`),
			want: []string{"0 /body/heart_rate malformed"}},
		{name: "unknown schema", body: dp1("blood-glucose", "3.0", `{"blood_glucose": {"value": 5.4, "unit": "mmol/L"}, `+tAt+`}`),
			want: []string{"0 /header/schema_id/name unknown_schema"}},
		{name: "unknown version", body: dp2("heart-rate", "9.0", hr("72")),
			want: []string{"0 /header/schema_id/version unknown_schema"}},
		{name: "unknown namespace", body: `{"header": ` + omhHeader2("acme", "heart-rate", "1.0") + `, "body": ` + hr("72") + `}`,
			want: []string{"0 /header/schema_id/namespace unknown_schema"}},
		{name: "no header", body: `[{"body": ` + hr("72") + `}]`,
			want: []string{"0 /0/header missing_field"}},
		{name: "header without schema_id", body: `{"header": {"uuid": "x"}, "body": ` + hr("72") + `}`,
			want: []string{"0 /header/schema_id missing_field"}},
		{name: "no body", body: `{"header": ` + omhHeader1("omh", "heart-rate", "1.0") + `}`,
			want: []string{"0 /body missing_field"}},
		{name: "not a data point in an array", body: "[" + dp1("heart-rate", "1.0", hr("72")) + `, 42]`,
			want: []string{"1 /1 malformed"}, points: 1},
		{name: "a time that is not RFC 3339", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, "effective_time_frame": {"date_time": "22/11/2026 08:05"}}`),
			want: []string{"0 /body/effective_time_frame/date_time bad_time"}},
		{name: "too old", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2025-01-01T08:05:00Z"}}`),
			want: []string{"0 /body/effective_time_frame/date_time too_old"}},
		{name: "in the future", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2026-11-22T14:00:00+01:00"}}`),
			want: []string{"0 /body/effective_time_frame/date_time in_future"}},
		{name: "no time frame", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}}`),
			want: []string{"0 /body/effective_time_frame missing_field"}},
		{name: "an empty time frame", body: dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, "effective_time_frame": {}}`),
			want: []string{"0 /body/effective_time_frame missing_field"}},
		{name: "steps at a date_time", body: dp1("step-count", "2.0", steps(`{"date_time": "2026-11-22T09:15:00Z"}`)),
			want: []string{"0 /body/effective_time_frame/date_time invalid_value"}},
		{name: "inverted interval", body: dp1("step-count", "2.0", steps(`{"time_interval": {"start_date_time": "2026-11-22T09:15:00Z", "end_date_time": "2026-11-22T09:00:00Z"}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval/end_date_time inverted_interval"}},
		{name: "a duration beyond a day", body: dp1("step-count", "2.0", steps(`{"time_interval": {"start_date_time": "2026-11-20T09:00:00Z", "duration": {"value": 30, "unit": "h"}}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval/duration out_of_range"}},
		{name: "a duration in weeks", body: dp1("step-count", "2.0", steps(`{"time_interval": {"start_date_time": "2026-11-22T09:00:00Z", "duration": {"value": 1, "unit": "wk"}}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval/duration/unit bad_unit"}},
		{name: "a negative duration", body: dp1("step-count", "2.0", steps(`{"time_interval": {"end_date_time": "2026-11-22T09:00:00Z", "duration": {"value": -5, "unit": "min"}}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval/duration/value out_of_range"}},
		{name: "a part of the day", body: dp1("step-count", "2.0", steps(`{"time_interval": {"date": "2026-11-22", "part_of_day": "morning"}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval invalid_value"}},
		{name: "an interval with a start only", body: dp1("step-count", "2.0", steps(`{"time_interval": {"start_date_time": "2026-11-22T09:00:00Z"}}`)),
			want: []string{"0 /body/effective_time_frame/time_interval missing_field"}},
		{name: "negative steps", body: dp1("step-count", "2.0", `{"step_count": -3, `+tWalk+`}`),
			want: []string{"0 /body/step_count out_of_range"}},
		{name: "steps in km", body: dp2("step-count", "3.0", `{"step_count": {"value": 3, "unit": "km"}, `+tWalk+`}`),
			want: []string{"0 /body/step_count/unit bad_unit"}},
		{name: "more sleep than the night", body: dp2("sleep-duration", "2.0", `{"sleep_duration": {"value": 10, "unit": "h"}, `+tNight+`}`),
			want: []string{"0 /body/sleep_duration/value out_of_range"}},
		{name: "sleep duration in weeks", body: dp2("sleep-duration", "2.0", `{"sleep_duration": {"value": 1, "unit": "wk"}, `+tNight+`}`),
			want: []string{"0 /body/sleep_duration/unit bad_unit"}},
		{name: "diastolic above systolic", body: dp1("blood-pressure", "1.0",
			`{"systolic_blood_pressure": {"value": 80, "unit": "mmHg"}, "diastolic_blood_pressure": {"value": 95, "unit": "mmHg"}, `+tAt+`}`),
			want: []string{"0 /body/diastolic_blood_pressure/value out_of_range"}},
		{name: "systolic missing", body: dp1("blood-pressure", "1.0", `{"diastolic_blood_pressure": {"value": 79, "unit": "mmHg"}, `+tAt+`}`),
			want: []string{"0 /body/systolic_blood_pressure missing_field"}},
		{name: "weight in stone", body: dp1("body-weight", "1.0", `{"body_weight": {"value": 11, "unit": "st"}, `+tAt+`}`),
			want: []string{"0 /body/body_weight/unit bad_unit"}},
		{name: "weight of 5 lb", body: dp1("body-weight", "1.0", `{"body_weight": {"value": 5, "unit": "lb"}, `+tAt+`}`),
			want: []string{"0 /body/body_weight/value out_of_range"}},
		{name: "several problems of one point, by pointer", body: dp1("blood-pressure", "1.0",
			`{"systolic_blood_pressure": {"value": 400, "unit": "mmHg"}, "diastolic_blood_pressure": {"value": 79, "unit": "cmH2O"}, "effective_time_frame": {"date_time": "yesterday"}}`),
			want: []string{"0 /body/diastolic_blood_pressure/unit bad_unit", "0 /body/effective_time_frame/date_time bad_time",
				"0 /body/systolic_blood_pressure/value out_of_range"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := omhIntake().DecodeOpenMHealth([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := omhProblems(env.Problems)
			slices.Sort(got) // the order within a data point is the decoders'
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems\n got %q\nwant %q", got, tc.want)
			}
			if len(env.Points) != tc.points {
				t.Errorf("%d points stored, want %d", len(env.Points), tc.points)
			}
			for _, p := range env.Problems {
				if p.Problem == "" {
					t.Errorf("problem at %s has no sentence", p.Field)
				}
			}
		})
	}
}

func TestOpenMHealthRefused(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxSamples = 3
	in := omhIntake()
	in.limits = lim
	hr := dp1("heart-rate", "1.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, `+tAt+`}`)
	tests := []struct {
		name, body, field, reason string
	}{
		{name: "not JSON", body: `[{"header": `, reason: ReasonMalformed},
		{name: "a number", body: `42`, reason: ReasonMalformed},
		{name: "an empty array", body: `[]`, reason: ReasonNoSamples},
		{name: "too many data points", body: "[" + strings.Repeat(hr+",", 3) + hr + "]", reason: ReasonTooManySamples},
		{name: "an empty data series", body: `{"header": ` + omhHeader2("omh", "heart-rate", "2.0") + `, "body": []}`, field: "/body", reason: ReasonNoSamples},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := in.DecodeOpenMHealth([]byte(tc.body))
			eerr, ok := err.(*EnvelopeError)
			if !ok {
				t.Fatalf("err %v, want *EnvelopeError", err)
			}
			if eerr.Reason != tc.reason || eerr.Doc.Seq != nil || len(eerr.Doc.Details) != 1 || eerr.Doc.Details[0].Field != tc.field {
				t.Errorf("reason %q, doc %+v; want %q at %q, seq null", eerr.Reason, eerr.Doc, tc.reason, tc.field)
			}
		})
	}
}

func TestIsOpenMHealth(t *testing.T) {
	hr := dp2("heart-rate", "2.0", `{"heart_rate": {"value": 72, "unit": "beats/min"}, `+tAt+`}`)
	tests := []struct {
		name string
		body string
		want bool
	}{
		{name: "a data point", body: hr, want: true},
		{name: "an array", body: "[" + hr + "]", want: true},
		{name: "body before header", body: `{"body": {}, "header": {"schema_id": {}}}`, want: true},
		{name: "an envelope", body: `{"seq": 1, "samples": [` + hr + `]}`},
		{name: "a header without schema_id", body: `{"header": {"uuid": "x"}, "body": {}}`},
		{name: "an empty array", body: `[]`},
		{name: "not JSON", body: `{"header": `},
		{name: "a FHIR resource", body: `{"resourceType": "Observation"}`},
	}
	for _, tc := range tests {
		if got := IsOpenMHealth([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOpenMHealthOverHTTP posts Open mHealth as its media type and as plain
// JSON, and checks the answers and what is written.
func TestOpenMHealthOverHTTP(t *testing.T) {
	at := func(d time.Duration) string {
		return time.Now().UTC().Add(-d).Truncate(time.Second).Format(time.RFC3339)
	}
	hr := func(bpm int, d time.Duration) string {
		return dp2("heart-rate", "2.0", fmt.Sprintf(`{"heart_rate": {"value": %d, "unit": "beats/min"}, "effective_time_frame": {"date_time": %q}}`, bpm, at(d)))
	}
	tests := []struct {
		name, contentType, body string
		wantStatus              int
		wantAccepted            int
		wantField               string // the first detail's pointer
		wantLines               int
	}{
		{name: "vnd.openmhealth+json", contentType: MediaOpenMHealth, body: "[" + hr(72, time.Hour) + "," + hr(74, 2*time.Hour) + "]",
			wantStatus: http.StatusAccepted, wantAccepted: 2, wantLines: 2},
		{name: "application/json recognised", contentType: "application/json", body: hr(72, time.Hour),
			wantStatus: http.StatusAccepted, wantAccepted: 1, wantLines: 1},
		{name: "some refused", contentType: MediaOpenMHealth, body: "[" + hr(72, time.Hour) + "," + hr(900, 2*time.Hour) + "]",
			wantStatus: http.StatusAccepted, wantAccepted: 1, wantField: "/1/body/heart_rate/value", wantLines: 1},
		{name: "all refused", contentType: "application/json", body: "[" + hr(900, time.Hour) + "]",
			wantStatus: http.StatusBadRequest, wantField: "/0/body/heart_rate/value"},
		{name: "an envelope sent as Open mHealth", contentType: MediaOpenMHealth, body: `{"seq": 1, "samples": []}`,
			wantStatus: http.StatusBadRequest, wantField: "/header"},
		{name: "not JSON", contentType: MediaOpenMHealth, body: `[{`, wantStatus: http.StatusBadRequest},
		{name: "another media type", contentType: "text/csv", body: hr(72, time.Hour), wantStatus: http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newTestHTTP(t, sink, HTTPConfig{MaxInFlight: 4})
			r := httptest.NewRequest(http.MethodPost, "/v1/ingest", strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer tok-1")
			r.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.wantStatus)
			}
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if tc.wantStatus == http.StatusAccepted && string(doc["accepted"]) != strconv.Itoa(tc.wantAccepted) {
				t.Errorf("accepted %s, want %d", doc["accepted"], tc.wantAccepted)
			}
			if tc.wantStatus == http.StatusBadRequest && string(doc["seq"]) != "null" {
				t.Errorf("seq %s, want null", doc["seq"])
			}
			if seq, ok := doc["seq"]; tc.wantStatus == http.StatusAccepted && ok {
				t.Errorf("seq %s in a 202, want none", seq)
			}
			var details []Problem
			_ = json.Unmarshal(doc["details"], &details)
			if tc.wantField != "" && (len(details) == 0 || details[0].Field != tc.wantField) {
				t.Errorf("details %+v, want the first at %s", details, tc.wantField)
			}
			if n := len(sink.stored()); n != tc.wantLines {
				t.Errorf("%d lines written, want %d", n, tc.wantLines)
			}
		})
	}
}

// TestOpenMHealthCounted checks that refusals are counted by reason.
func TestOpenMHealthCounted(t *testing.T) {
	in := omhIntake()
	body := "[" + dp1("heart-rate", "1.0", `{"heart_rate": {"value": 900, "unit": "beats/min"}, `+tAt+`}`) + "," +
		dp1("blood-glucose", "3.0", `{"blood_glucose": {"value": 5.4, "unit": "mmol/L"}, `+tAt+`}`) + "]"
	out, err := in.IngestOpenMHealth(t.Context(), TransportHTTP, registry.Device{ID: "app-1", PatientID: "p-1"}, []byte(body), func(_ context.Context, _ []byte) error { return nil })
	if err != nil || out.Accepted != 0 || out.Answer == nil || out.Answer.Seq != nil {
		t.Fatalf("outcome %+v, %v; want none accepted and an answer without seq", out, err)
	}
	for reason, want := range map[string]float64{ReasonOutOfRange: 1, ReasonUnknownSchema: 1} {
		var m dto.Metric
		if err := in.metrics.SamplesRejected.WithLabelValues(TransportHTTP, reason).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%s rejections counted %v, want %v", reason, got, want)
		}
	}
}

// BenchmarkDecodeOpenMHealth decodes and validates a 50-point Open mHealth
// array, to set beside BenchmarkDecode's 50-sample envelope: a night, four
// walks as step counts, 40 heart rates, two weights and three blood
// pressures.
func BenchmarkDecodeOpenMHealth(b *testing.B) {
	body := benchOpenMHealth()
	in := omhIntake()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		env, err := in.DecodeOpenMHealth(body)
		if err != nil || len(env.Points) != 50 {
			b.Fatalf("DecodeOpenMHealth: %v, %+v", err, env.Problems)
		}
	}
}

func benchOpenMHealth() []byte {
	var parts []string
	parts = append(parts, dp2("sleep-episode", "1.1", `{"total_sleep_time": {"value": 410, "unit": "min"}, "sleep_maintenance_efficiency_percentage": {"value": 91, "unit": "%"},
		"effective_time_frame": {"time_interval": {"start_date_time": "2026-11-21T23:10:00Z", "end_date_time": "2026-11-22T06:40:00Z"}}}`))
	for i := range 4 {
		parts = append(parts, dp2("step-count", "3.0", fmt.Sprintf(`{"step_count": {"value": %d, "unit": "steps"},
			"effective_time_frame": {"time_interval": {"start_date_time": "2026-11-22T%02d:00:00Z", "end_date_time": "2026-11-22T%02d:15:00Z"}}}`, 800+i, 7+i, 7+i)))
	}
	for i := range 40 {
		parts = append(parts, dp2("heart-rate", "2.0", fmt.Sprintf(`{"heart_rate": {"value": %d, "unit": "beats/min"},
			"effective_time_frame": {"date_time": "2026-11-22T%02d:%02d:00+01:00"}}`, 60+i%30, 8+i/12, i%12*5)))
	}
	for i := range 2 {
		parts = append(parts, dp1("body-weight", "2.0", fmt.Sprintf(`{"body_weight": {"value": %d, "unit": "lb"}, "effective_time_frame": {"date_time": "2026-11-22T08:0%d:00Z"}}`, 150+i, i)))
	}
	for i := range 3 {
		parts = append(parts, dp2("blood-pressure", "4.0", fmt.Sprintf(`{"systolic_blood_pressure": {"value": %d, "unit": "mmHg"},
			"diastolic_blood_pressure": {"value": 79, "unit": "mmHg"}, "effective_time_frame": {"date_time": "2026-11-22T08:1%d:00Z"}}`, 120+i, i)))
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// FuzzDecodeOpenMHealth checks that any document is either refused as a
// whole or judged data point by data point: every point and problem names
// a data point of the document, every problem a JSON Pointer, and nothing
// panics.
func FuzzDecodeOpenMHealth(f *testing.F) {
	f.Add(benchOpenMHealth())
	f.Add([]byte(dp1("heart-rate", "1.0", `{"heart_rate": {"value": 900, "unit": "beats/min"}, `+tAt+`}`)))
	f.Add([]byte(`{"header": ` + omhHeader2("omh", "step-count", "3.0") + `, "body": [{"step_count": {"value": 1e400, "unit": "steps"},
		"effective_time_frame": {"time_interval": {"end_date_time": "2026-11-22T09:15:00Z", "duration": {"value": 1e30, "unit": "d"}}}}, null, []]}`))
	f.Add([]byte(`[{"header": {"schema_id": {"namespace": "ieee", "name": "sleep-episode", "version": "1"}}, "body": {"effective_time_frame":
		{"time_interval": {"start_date_time": "2026-11-21T23:10:00-02:00", "end_date_time": "2026-11-22T06:40:00-02:00"}}, "a\u0000": 1, "a\u0000": 2}}, 7]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := omhIntake().DecodeOpenMHealth(body)
		if err != nil {
			checkEnvelopeError(t, nil, err)
			return
		}
		if !env.Unsequenced || env.Samples < 1 || env.Samples > DefaultLimits().MaxSamples {
			t.Fatalf("envelope %+v", env)
		}
		for _, p := range env.Points {
			if p.Sample < 0 || p.Sample >= env.Samples {
				t.Fatalf("point of sample %d of %d", p.Sample, env.Samples)
			}
		}
		for _, p := range env.Problems {
			known := allReasons[p.Reason] != "" || p.Reason == ReasonUnknownSchema || p.Reason == ReasonBadUnit
			if p.Sample < 0 || p.Sample >= env.Samples || p.Problem == "" || !known ||
				p.Field != "" && p.Field[0] != '/' {
				t.Fatalf("problem %+v", p)
			}
		}
		if _, err := json.Marshal(env.ErrorDoc()); err != nil {
			t.Fatal(err)
		}
	})
}
