package ingest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeValidSamples(t *testing.T) {
	tests := []struct {
		name   string
		sample string
		want   Point
	}{
		{
			name: "sleep, every field",
			sample: `{"type": "sleep", "start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z",
				"total_min": 410, "deep_min": 70, "rem_min": 95, "light_min": 215, "awake_min": 30,
				"efficiency": 0.91, "resting_hr": 58, "hrv_rmssd_ms": 42, "skin_temp_dev_c": 0.3}`,
			want: Point{Measurement: "sleep", Time: utc("2026-11-22T06:40:00Z"), Fields: []Field{
				{"awake_min", 30}, {"deep_min", 70}, {"efficiency", 0.91}, {"hrv_rmssd_ms", 42}, {"light_min", 215},
				{"rem_min", 95}, {"resting_hr", 58}, {"skin_temp_dev_c", 0.3}, {"total_min", 410}}},
		},
		{
			name:   "sleep, required only, time at end in UTC, null optional ignored",
			sample: `{"type": "sleep", "start": "2026-11-22T00:10:00+01:00", "end": "2026-11-22T07:40:00+01:00", "total_min": 450, "deep_min": null}`,
			want:   Point{Measurement: "sleep", Time: utc("2026-11-22T06:40:00Z"), Fields: []Field{{"total_min", 450}}},
		},
		{
			name:   "sleep, a full day",
			sample: `{"type": "sleep", "start": "2026-11-21T06:00:00Z", "end": "2026-11-22T06:00:00Z", "total_min": 1440}`,
			want:   Point{Measurement: "sleep", Time: utc("2026-11-22T06:00:00Z"), Fields: []Field{{"total_min", 1440}}},
		},
		{
			name:   "activity, every field",
			sample: `{"type": "activity", "start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:15:00Z", "steps": 812, "active_min": 9, "energy_kcal": 45}`,
			want: Point{Measurement: "activity", Time: utc("2026-11-22T09:15:00Z"),
				Fields: []Field{{"active_min", 9}, {"energy_kcal", 45}, {"steps", 812}}},
		},
		{
			name:   "activity, steps only, written as a float",
			sample: `{"type": "activity", "start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:15:00Z", "steps": 812.0}`,
			want:   Point{Measurement: "activity", Time: utc("2026-11-22T09:15:00Z"), Fields: []Field{{"steps", 812}}},
		},
		{
			name:   "heart_rate",
			sample: `{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72}`,
			want:   Point{Measurement: "heart_rate", Time: utc("2026-11-22T09:15:00Z"), Fields: []Field{{"bpm", 72}}},
		},
		{
			name:   "heart_rate at the bounds of range and window",
			sample: `{"type": "heart_rate", "time": "2026-08-24T12:00:00Z", "bpm": 250}`,
			want:   Point{Measurement: "heart_rate", Time: utc("2026-08-24T12:00:00Z"), Fields: []Field{{"bpm", 250}}},
		},
		{
			name:   "heart_rate at the future bound",
			sample: `{"type": "heart_rate", "time": "2026-11-22T12:05:00Z", "bpm": 20}`,
			want:   Point{Measurement: "heart_rate", Time: utc("2026-11-22T12:05:00Z"), Fields: []Field{{"bpm", 20}}},
		},
		{
			name:   "symptoms, mrs, some items: no subscale",
			sample: `{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "mrs", "items": {"hot_flushes": 3, "sleep_problems": 2, "irritability": 1}}`,
			want: Point{Measurement: "symptoms", Time: utc("2026-11-22T10:00:00Z"), Tags: []Tag{{"instrument", "mrs"}},
				Fields: []Field{{"hot_flushes", 3}, {"irritability", 1}, {"sleep_problems", 2}}},
		},
		{
			name: "symptoms, mrs, one complete subscale",
			sample: `{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "mrs",
				"items": {"sexual_problems": 1, "bladder": 2, "vaginal_dryness": 4, "anxiety": 0}}`,
			want: Point{Measurement: "symptoms", Time: utc("2026-11-22T10:00:00Z"), Tags: []Tag{{"instrument", "mrs"}},
				Fields: []Field{{"anxiety", 0}, {"bladder", 2}, {"sexual_problems", 1}, {"urogenital", 7}, {"vaginal_dryness", 4}}},
		},
		{
			name:   "symptoms, mrs, all items: subscales and total",
			sample: `{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "mrs", "items": ` + mrsAll + `}`,
			want: Point{Measurement: "symptoms", Time: utc("2026-11-22T10:00:00Z"), Tags: []Tag{{"instrument", "mrs"}},
				Fields: []Field{{"anxiety", 1}, {"bladder", 0}, {"depressive_mood", 2}, {"exhaustion", 3},
					{"heart_discomfort", 1}, {"hot_flushes", 4}, {"irritability", 2}, {"joint_muscle", 2},
					{"psychological", 8}, {"sexual_problems", 1}, {"sleep_problems", 3}, {"somatic", 10},
					{"total", 20}, {"urogenital", 2}, {"vaginal_dryness", 1}}},
		},
		{
			name:   "symptoms, ams, all items: subscales and total",
			sample: `{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "ams", "items": ` + amsAll + `}`,
			want: Point{Measurement: "symptoms", Time: utc("2026-11-22T10:00:00Z"), Tags: []Tag{{"instrument", "ams"}},
				Fields: []Field{{"anxiety", 2}, {"beard_growth", 1}, {"burnt_out", 3}, {"depressive_mood", 2},
					{"general_wellbeing", 3}, {"irritability", 1}, {"joint_muscle_pain", 2}, {"libido", 4},
					{"morning_erections", 4}, {"muscle_strength", 2}, {"nervousness", 1}, {"passed_peak", 3},
					{"physical_exhaustion", 3}, {"psychological", 9}, {"sexual", 17}, {"sexual_performance", 5},
					{"sleep_problems", 4}, {"somatic", 21}, {"sweating", 5}, {"tiredness", 2}, {"total", 47}}},
		},
		{
			name:   "symptoms, custom: items only",
			sample: `{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "custom", "items": {"brain_fog": 7, "night_sweats2": 0, "energy": 10}}`,
			want: Point{Measurement: "symptoms", Time: utc("2026-11-22T10:00:00Z"), Tags: []Tag{{"instrument", "custom"}},
				Fields: []Field{{"brain_fog", 7}, {"energy", 10}, {"night_sweats2", 0}}},
		},
		{
			name:   "dose",
			sample: `{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg"}`,
			want: Point{Measurement: "dose", Time: utc("2026-11-22T08:00:00Z"),
				Tags:   []Tag{{"medication", "estradiol"}, {"route", "transdermal"}, {"unit", "mg"}},
				Fields: []Field{{"amount", 0.05}}},
		},
		{
			name:   "dose, medication with digits and dashes",
			sample: `{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": "testosterone-cypionate_200", "route": "intramuscular", "amount": 10000, "unit": "iu"}`,
			want: Point{Measurement: "dose", Time: utc("2026-11-22T08:00:00Z"),
				Tags:   []Tag{{"medication", "testosterone-cypionate_200"}, {"route", "intramuscular"}, {"unit", "iu"}},
				Fields: []Field{{"amount", 10000}}},
		},
		{
			name:   "vitals, every field",
			sample: `{"type": "vitals", "time": "2026-11-22T08:05:00Z", "weight_kg": 68.2, "systolic": 121, "diastolic": 79, "hematocrit_pct": 44}`,
			want: Point{Measurement: "vitals", Time: utc("2026-11-22T08:05:00Z"),
				Fields: []Field{{"diastolic", 79}, {"hematocrit_pct", 44}, {"systolic", 121}, {"weight_kg", 68.2}}},
		},
		{
			name:   "vitals, hematocrit only",
			sample: `{"type": "vitals", "time": "2026-11-22T08:05:00Z", "hematocrit_pct": 52.5}`,
			want:   Point{Measurement: "vitals", Time: utc("2026-11-22T08:05:00Z"), Fields: []Field{{"hematocrit_pct", 52.5}}},
		},
		{
			name:   "vitals, blood pressure only",
			sample: `{"type": "vitals", "time": "2026-11-22T08:05:00Z", "systolic": 121, "diastolic": 79}`,
			want:   Point{Measurement: "vitals", Time: utc("2026-11-22T08:05:00Z"), Fields: []Field{{"diastolic", 79}, {"systolic", 121}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := decodeOK(t, one(tt.sample))
			if len(env.Problems) != 0 {
				t.Fatalf("problems: %+v", env.Problems)
			}
			if len(env.Points) != 1 {
				t.Fatalf("got %d points, want 1", len(env.Points))
			}
			got := env.Points[0]
			if !got.Time.Equal(tt.want.Time) || got.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v in UTC", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("point:\n got %+v\nwant %+v", got, tt.want)
			}
			if env.Seq != 7 || env.Samples != 1 || env.Rejected() != 0 || env.ErrorDoc() != nil {
				t.Errorf("seq %d, samples %d, rejected %d, doc %v", env.Seq, env.Samples, env.Rejected(), env.ErrorDoc())
			}
		})
	}
}

const (
	mrsAll = `{"hot_flushes": 4, "heart_discomfort": 1, "sleep_problems": 3, "joint_muscle": 2,
		"depressive_mood": 2, "irritability": 2, "anxiety": 1, "exhaustion": 3,
		"sexual_problems": 1, "bladder": 0, "vaginal_dryness": 1}`
	amsAll = `{"general_wellbeing": 3, "joint_muscle_pain": 2, "sweating": 5, "sleep_problems": 4,
		"tiredness": 2, "physical_exhaustion": 3, "muscle_strength": 2,
		"irritability": 1, "nervousness": 1, "anxiety": 2, "depressive_mood": 2, "burnt_out": 3,
		"passed_peak": 3, "beard_growth": 1, "sexual_performance": 5, "morning_erections": 4, "libido": 4}`
)

// want is an expected problem of sample 0: field, reason, sentence.
type want struct{ field, reason, problem string }

const (
	at    = `"time": "2026-11-22T09:15:00Z"`
	night = `"start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z"`
	walk  = `"start": "2026-11-22T09:00:00Z", "end": "2026-11-22T09:15:00Z"`
)

func TestDecodeRejectsInvalidSamples(t *testing.T) {
	tests := []struct {
		name   string
		sample string
		want   []want
	}{
		// Every sample type.
		{"not an object", `[1, 2]`, []want{{"", ReasonMalformed, "must be a JSON object"}}},
		{"null sample", `null`, []want{{"", ReasonMalformed, "must be a JSON object"}}},
		{"type missing", `{` + at + `, "bpm": 72}`, []want{{"type", ReasonMissingField, "is required"}}},
		{"type unknown, not echoed", `{"type": "weight", ` + at + `}`, []want{
			{"type", ReasonUnknownType, "must be one of sleep, activity, heart_rate, symptoms, dose, vitals, lab"}}},
		{"type not a string", `{"type": 3, ` + at + `}`, []want{
			{"type", ReasonUnknownType, "must be one of sleep, activity, heart_rate, symptoms, dose, vitals, lab"}}},
		{"type is case-sensitive", `{"type": "Heart_Rate", ` + at + `, "bpm": 72}`, []want{
			{"type", ReasonUnknownType, "must be one of sleep, activity, heart_rate, symptoms, dose, vitals, lab"}}},
		{"unknown field", `{"type": "heart_rate", ` + at + `, "bpm": 72, "bmp": 72}`, []want{
			{"bmp", ReasonUnknownField, "is not a field of heart_rate samples"}}},
		{"unknown field with an unsafe name", `{"type": "heart_rate", ` + at + `, "bpm": 72, "note: Jane D.": 1}`, []want{
			{"", ReasonUnknownField, "has a field whose name is not a plain identifier"}}},
		{"field of another type", `{"type": "heart_rate", ` + at + `, "bpm": 72, "steps": 3}`, []want{
			{"steps", ReasonUnknownField, "is not a field of heart_rate samples"}}},
		{"duplicate field", `{"type": "heart_rate", ` + at + `, "bpm": 72, "bpm": 400}`, []want{
			{"bpm", ReasonMalformed, "appears more than once"}}},
		{"time missing", `{"type": "heart_rate", "bpm": 72}`, []want{{"time", ReasonMissingField, "is required"}}},
		{"time not RFC 3339", `{"type": "heart_rate", "time": "22/11/2026 09:15", "bpm": 72}`, []want{
			{"time", ReasonBadTime, "must be an RFC 3339 time such as 2026-11-22T09:15:00Z"}}},
		{"time without zone", `{"type": "heart_rate", "time": "2026-11-22T09:15:00", "bpm": 72}`, []want{
			{"time", ReasonBadTime, "must be an RFC 3339 time such as 2026-11-22T09:15:00Z"}}},
		{"time a number", `{"type": "heart_rate", "time": 1795338900, "bpm": 72}`, []want{
			{"time", ReasonBadTime, "must be an RFC 3339 time such as 2026-11-22T09:15:00Z"}}},
		{"too old", `{"type": "heart_rate", "time": "2026-08-24T11:59:59Z", "bpm": 72}`, []want{
			{"time", ReasonTooOld, "is more than 90 days in the past"}}},
		{"in the future", `{"type": "heart_rate", "time": "2026-11-22T12:05:01Z", "bpm": 72}`, []want{
			{"time", ReasonInFuture, "is more than 5 minutes in the future"}}},
		{"far future", `{"type": "heart_rate", "time": "9999-12-31T23:59:59Z", "bpm": 72}`, []want{
			{"time", ReasonInFuture, "is more than 5 minutes in the future"}}},
		{"number as a string", `{"type": "heart_rate", ` + at + `, "bpm": "72"}`, []want{{"bpm", ReasonInvalidValue, "must be a number"}}},
		{"number as a bool", `{"type": "heart_rate", ` + at + `, "bpm": true}`, []want{{"bpm", ReasonInvalidValue, "must be a number"}}},
		{"number too large to read", `{"type": "heart_rate", ` + at + `, "bpm": 1e400}`, []want{
			{"bpm", ReasonOutOfRange, "must be between 20 and 250 (got a number too large to read)"}}},

		// heart_rate
		{"bpm missing", `{"type": "heart_rate", ` + at + `}`, []want{{"bpm", ReasonMissingField, "is required"}}},
		{"bpm null", `{"type": "heart_rate", ` + at + `, "bpm": null}`, []want{{"bpm", ReasonMissingField, "is required"}}},
		{"bpm high", `{"type": "heart_rate", ` + at + `, "bpm": 400}`, []want{{"bpm", ReasonOutOfRange, "must be between 20 and 250 (got 400)"}}},
		{"bpm low", `{"type": "heart_rate", ` + at + `, "bpm": 19.5}`, []want{{"bpm", ReasonOutOfRange, "must be between 20 and 250 (got 19.5)"}}},
		{"all problems of a sample", `{"type": "heart_rate", "time": "yesterday", "bpm": 400, "spo2": 97}`, []want{
			{"bpm", ReasonOutOfRange, "must be between 20 and 250 (got 400)"},
			{"spo2", ReasonUnknownField, "is not a field of heart_rate samples"},
			{"time", ReasonBadTime, "must be an RFC 3339 time such as 2026-11-22T09:15:00Z"}}},

		// sleep
		{"sleep start missing", `{"type": "sleep", "end": "2026-11-22T06:40:00Z", "total_min": 410}`, []want{
			{"start", ReasonMissingField, "is required"}}},
		{"sleep end missing", `{"type": "sleep", "start": "2026-11-22T06:40:00Z", "total_min": 410}`, []want{
			{"end", ReasonMissingField, "is required"}}},
		{"sleep inverted", `{"type": "sleep", "start": "2026-11-22T06:40:00Z", "end": "2026-11-21T23:10:00Z", "total_min": 410}`, []want{
			{"end", ReasonInvertedInterval, "must be after start"}}},
		{"sleep empty interval", `{"type": "sleep", "start": "2026-11-22T06:40:00Z", "end": "2026-11-22T06:40:00Z", "total_min": 0}`, []want{
			{"end", ReasonInvertedInterval, "must be after start"}}},
		{"sleep longer than a day", `{"type": "sleep", "start": "2026-11-21T06:00:00Z", "end": "2026-11-22T06:00:01Z", "total_min": 410}`, []want{
			{"end", ReasonOutOfRange, "must be at most 1 day after start"}}},
		{"sleep ended too long ago", `{"type": "sleep", "start": "2026-08-23T23:00:00Z", "end": "2026-08-24T06:00:00Z", "total_min": 410}`, []want{
			{"end", ReasonTooOld, "is more than 90 days in the past"}}},
		{"sleep total missing", `{"type": "sleep", ` + night + `}`, []want{{"total_min", ReasonMissingField, "is required"}}},
		{"sleep total beyond a day", `{"type": "sleep", ` + night + `, "total_min": 1441}`, []want{
			{"total_min", ReasonOutOfRange, "must be between 0 and 1440 (got 1441)"}}},
		{"sleep total beyond the interval", `{"type": "sleep", ` + night + `, "total_min": 451}`, []want{
			{"total_min", ReasonOutOfRange, "must not exceed the 450 minutes between start and end (got 451)"}}},
		{"sleep optional fields out of range", `{"type": "sleep", ` + night + `, "total_min": 410, "deep_min": -1, "rem_min": 1500,
			"light_min": "215", "awake_min": 2000, "efficiency": 1.2, "resting_hr": 10, "hrv_rmssd_ms": 0.5, "skin_temp_dev_c": -5.5}`, []want{
			{"awake_min", ReasonOutOfRange, "must be between 0 and 1440 (got 2000)"},
			{"deep_min", ReasonOutOfRange, "must be between 0 and 1440 (got -1)"},
			{"efficiency", ReasonOutOfRange, "must be between 0 and 1 (got 1.2)"},
			{"hrv_rmssd_ms", ReasonOutOfRange, "must be between 1 and 300 (got 0.5)"},
			{"light_min", ReasonInvalidValue, "must be a number"},
			{"rem_min", ReasonOutOfRange, "must be between 0 and 1440 (got 1500)"},
			{"resting_hr", ReasonOutOfRange, "must be between 20 and 250 (got 10)"},
			{"skin_temp_dev_c", ReasonOutOfRange, "must be between -5 and 5 (got -5.5)"}}},
		{"sleep has no time field", `{"type": "sleep", ` + night + `, ` + at + `, "total_min": 410}`, []want{
			{"time", ReasonUnknownField, "is not a field of sleep samples"}}},

		// activity
		{"activity without a measure", `{"type": "activity", ` + walk + `}`, []want{
			{"steps", ReasonMissingField, "at least one of steps, active_min and energy_kcal is required"}}},
		{"activity with only nulls", `{"type": "activity", ` + walk + `, "steps": null, "energy_kcal": null}`, []want{
			{"steps", ReasonMissingField, "at least one of steps, active_min and energy_kcal is required"}}},
		{"activity steps not an integer", `{"type": "activity", ` + walk + `, "steps": 2.5}`, []want{
			{"steps", ReasonInvalidValue, "must be an integer (got 2.5)"}}},
		{"activity steps as a string", `{"type": "activity", ` + walk + `, "steps": "812"}`, []want{
			{"steps", ReasonInvalidValue, "must be an integer"}}},
		{"activity steps out of range", `{"type": "activity", ` + walk + `, "steps": 100001}`, []want{
			{"steps", ReasonOutOfRange, "must be between 0 and 100000 (got 100001)"}}},
		{"activity active beyond the interval", `{"type": "activity", ` + walk + `, "active_min": 15.5}`, []want{
			{"active_min", ReasonOutOfRange, "must not exceed the 15 minutes between start and end (got 15.5)"}}},
		{"activity energy out of range", `{"type": "activity", ` + walk + `, "energy_kcal": 20001}`, []want{
			{"energy_kcal", ReasonOutOfRange, "must be between 0 and 20000 (got 20001)"}}},
		{"activity inverted", `{"type": "activity", "start": "2026-11-22T09:15:00Z", "end": "2026-11-22T09:00:00Z", "steps": 10}`, []want{
			{"end", ReasonInvertedInterval, "must be after start"}}},

		// symptoms
		{"symptoms instrument missing", `{"type": "symptoms", ` + at + `, "items": {"hot_flushes": 3}}`, []want{
			{"instrument", ReasonMissingField, "is required"}}},
		{"symptoms instrument unknown", `{"type": "symptoms", ` + at + `, "instrument": "phq9", "items": {"hot_flushes": 3}}`, []want{
			{"instrument", ReasonInvalidValue, "must be one of mrs, ams, custom"}}},
		{"symptoms items missing", `{"type": "symptoms", ` + at + `, "instrument": "mrs"}`, []want{
			{"items", ReasonMissingField, "is required"}}},
		{"symptoms items not an object", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": [3]}`, []want{
			{"items", ReasonInvalidValue, "must be an object of item scores"}}},
		{"symptoms items empty", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {}}`, []want{
			{"items", ReasonMissingField, "must score at least one item"}}},
		{"symptoms items all null", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"anxiety": null}}`, []want{
			{"items", ReasonMissingField, "must score at least one item"}}},
		{"mrs score out of range", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"hot_flushes": 5, "anxiety": -1}}`, []want{
			{"items.anxiety", ReasonOutOfRange, "must be between 0 and 4 (got -1)"},
			{"items.hot_flushes", ReasonOutOfRange, "must be between 0 and 4 (got 5)"}}},
		{"mrs score not an integer", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"hot_flushes": 2.5, "bladder": "1"}}`, []want{
			{"items.bladder", ReasonInvalidValue, "must be an integer"},
			{"items.hot_flushes", ReasonInvalidValue, "must be an integer (got 2.5)"}}},
		{"mrs unknown item", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"hot_flashes": 3, "anxiety": 1}}`, []want{
			{"items.hot_flashes", ReasonUnknownItem, "is not an item of the mrs instrument"}}},
		{"mrs unknown item, unsafe key", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"my husband": 3, "anxiety": 1}}`, []want{
			{"items", ReasonUnknownItem, "has an item of the mrs instrument whose key is not a plain identifier"}}},
		{"mrs only unknown items", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"sweating": 3}}`, []want{
			{"items", ReasonMissingField, "must score at least one item"},
			{"items.sweating", ReasonUnknownItem, "is not an item of the mrs instrument"}}},
		{"mrs duplicate item", `{"type": "symptoms", ` + at + `, "instrument": "mrs", "items": {"anxiety": 1, "anxiety": 4}}`, []want{
			{"items.anxiety", ReasonMalformed, "appears more than once"}}},
		{"ams score out of range", `{"type": "symptoms", ` + at + `, "instrument": "ams", "items": {"libido": 0, "sweating": 6}}`, []want{
			{"items.libido", ReasonOutOfRange, "must be between 1 and 5 (got 0)"},
			{"items.sweating", ReasonOutOfRange, "must be between 1 and 5 (got 6)"}}},
		{"ams item of mrs", `{"type": "symptoms", ` + at + `, "instrument": "ams", "items": {"hot_flushes": 3, "libido": 2}}`, []want{
			{"items.hot_flushes", ReasonUnknownItem, "is not an item of the ams instrument"}}},
		{"custom bad keys counted, not echoed", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {"Mood": 3, "jane's pain": 2, "ok": 1}}`, []want{
			{"items", ReasonInvalidValue, "has 2 item keys that are not 1 to 64 lowercase letters, digits or '_', starting with a letter"}}},
		{"custom one bad key", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {"1st": 3}}`, []want{
			{"items", ReasonInvalidValue, "has an item key that is not 1 to 64 lowercase letters, digits or '_', starting with a letter"},
			{"items", ReasonMissingField, "must score at least one item"}}},
		{"custom reserved key", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {"seq": 3, "time": 1, "ok": 1}}`, []want{
			{"items.seq", ReasonInvalidValue, "is a reserved name"},
			{"items.time", ReasonInvalidValue, "is a reserved name"}}},
		{"custom score out of range", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {"fog": 11}}`, []want{
			{"items.fog", ReasonOutOfRange, "must be between 0 and 10 (got 11)"}}},
		{"custom duplicate item among many", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {` + manyItems(40) + `, "i3": 2}}`, []want{
			{"items.i3", ReasonMalformed, "appears more than once"}}},
		{"custom too many items", `{"type": "symptoms", ` + at + `, "instrument": "custom", "items": {` + manyItems(65) + `}}`, []want{
			{"items", ReasonOutOfRange, "must have at most 64 items (got 65)"}}},

		// dose
		{"dose fields missing", `{"type": "dose", ` + at + `}`, []want{
			{"amount", ReasonMissingField, "is required"},
			{"medication", ReasonMissingField, "is required"},
			{"route", ReasonMissingField, "is required"},
			{"unit", ReasonMissingField, "is required"}}},
		{"dose medication not echoed", `{"type": "dose", ` + at + `, "medication": "Estradiol for Jane", "route": "oral", "amount": 1, "unit": "mg"}`, []want{
			{"medication", ReasonInvalidValue, "must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter"}}},
		{"dose medication too long", `{"type": "dose", ` + at + `, "medication": "` + strings.Repeat("e", 65) + `", "route": "oral", "amount": 1, "unit": "mg"}`, []want{
			{"medication", ReasonInvalidValue, "must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter"}}},
		{"dose medication not a string", `{"type": "dose", ` + at + `, "medication": 7, "route": "oral", "amount": 1, "unit": "mg"}`, []want{
			{"medication", ReasonInvalidValue, "must be a string"}}},
		{"dose route and unit unknown", `{"type": "dose", ` + at + `, "medication": "estradiol", "route": "by mouth", "amount": 1, "unit": "tablet"}`, []want{
			{"route", ReasonInvalidValue, "must be one of oral, transdermal, intramuscular, subcutaneous, vaginal, sublingual, buccal, nasal, topical, implant"},
			{"unit", ReasonInvalidValue, "must be one of mg, mcg, g, ml, iu, pump, patch, pellet, application, drop"}}},
		{"dose amount zero", `{"type": "dose", ` + at + `, "medication": "estradiol", "route": "oral", "amount": 0, "unit": "mg"}`, []want{
			{"amount", ReasonOutOfRange, "must be above 0 and at most 10000 (got 0)"}}},
		{"dose amount too large", `{"type": "dose", ` + at + `, "medication": "estradiol", "route": "oral", "amount": 10000.5, "unit": "mg"}`, []want{
			{"amount", ReasonOutOfRange, "must be above 0 and at most 10000 (got 10000.5)"}}},

		// vitals
		{"vitals empty", `{"type": "vitals", ` + at + `}`, []want{
			{"weight_kg", ReasonMissingField, "at least one of weight_kg, systolic with diastolic, and hematocrit_pct is required"}}},
		{"vitals systolic alone", `{"type": "vitals", ` + at + `, "systolic": 120}`, []want{
			{"diastolic", ReasonMissingField, "is required with systolic"}}},
		{"vitals diastolic alone", `{"type": "vitals", ` + at + `, "diastolic": 80, "weight_kg": 70}`, []want{
			{"systolic", ReasonMissingField, "is required with diastolic"}}},
		{"vitals diastolic not below systolic", `{"type": "vitals", ` + at + `, "systolic": 90, "diastolic": 90}`, []want{
			{"diastolic", ReasonOutOfRange, "must be below systolic (got 90, systolic 90)"}}},
		{"vitals out of range", `{"type": "vitals", ` + at + `, "weight_kg": 19.9, "systolic": 261, "diastolic": 29, "hematocrit_pct": 76}`, []want{
			{"diastolic", ReasonOutOfRange, "must be between 30 and 160 (got 29)"},
			{"hematocrit_pct", ReasonOutOfRange, "must be between 10 and 75 (got 76)"},
			{"systolic", ReasonOutOfRange, "must be between 50 and 260 (got 261)"},
			{"weight_kg", ReasonOutOfRange, "must be between 20 and 400 (got 19.9)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := decodeOK(t, one(tt.sample))
			if len(env.Points) != 0 {
				t.Errorf("sample accepted as %+v", env.Points)
			}
			var got []want
			for _, p := range env.Problems {
				if p.Sample != 0 {
					t.Errorf("problem %+v: want sample 0", p)
				}
				got = append(got, want{p.Field, p.Reason, p.Problem})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// manyItems returns n custom items "i0": 1, "i1": 1, ...
func manyItems(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`"i%d": 1`, i)
	}
	return strings.Join(items, ", ")
}

// TestDecodeEchoesNoDeviceStrings sends strings that stand for patient data
// in every place a device can put a string, and checks that no answer
// carries them back.
func TestDecodeEchoesNoDeviceStrings(t *testing.T) {
	const secret = "Jane Roe"
	samples := `[
		{"type": "Jane Roe", "time": "2026-11-22T09:15:00Z"},
		{"type": "heart_rate", "time": "Jane Roe", "bpm": "Jane Roe", "Jane Roe": 1},
		{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": "Jane Roe", "route": "Jane Roe", "amount": 1, "unit": "Jane Roe"},
		{"type": "symptoms", "time": "2026-11-22T08:00:00Z", "instrument": "Jane Roe", "items": {"Jane Roe": 1}},
		{"type": "symptoms", "time": "2026-11-22T08:00:00Z", "instrument": "mrs", "items": {"Jane Roe": 1, "Jane Roe": 2}},
		{"type": "symptoms", "time": "2026-11-22T08:00:00Z", "instrument": "custom", "items": {"Jane Roe": "Jane Roe"}},
		{"type": "vitals", "time": "2026-11-22T08:00:00Z", "weight_kg": "Jane Roe", "Jane Roe": 1, "Jane Roe": 2}
	]`
	_, err := Decode([]byte(`{"seq": 9, "samples": `+samples+`, "Jane Roe": 1}`), testNow, DefaultLimits())
	var ee *EnvelopeError
	if !errors.As(err, &ee) || strings.Contains(ee.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", ee.Doc), secret) {
		t.Errorf("envelope error %v echoes the device's string", err)
	}
	payload := []byte(`{"seq": 9, "samples": ` + samples + `}`)
	env := decodeOK(t, payload)
	if env.Rejected() != 7 {
		t.Errorf("Rejected() = %d, want 7", env.Rejected())
	}
	if doc := errorDocJSON(t, payload); strings.Contains(string(doc), secret) {
		t.Errorf("error document echoes the device's string:\n%s", doc)
	}
}

// TestDecodePointsKeepTheirOwnSlices checks that appending to one point's
// fields or tags leaves the next point's alone, although Decode cuts them
// from shared arrays, and that a rejected sample leaves nothing behind.
func TestDecodePointsKeepTheirOwnSlices(t *testing.T) {
	dose := func(medication string, amount int) string {
		return fmt.Sprintf(`{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": %q, "route": "oral", "amount": %d, "unit": "mg"}`, medication, amount)
	}
	env := decodeOK(t, []byte(`{"seq": 1, "samples": [`+dose("estradiol", 1)+`, `+dose("rejected", 0)+`, `+dose("progesterone", 100)+`]}`))
	if len(env.Points) != 2 || env.Rejected() != 1 {
		t.Fatalf("%d points, %d rejected; want 2 and 1", len(env.Points), env.Rejected())
	}
	_ = append(env.Points[0].Fields, Field{"overwrite", 7})
	_ = append(env.Points[0].Tags, Tag{"overwrite", "x"})
	want := Point{Sample: 2, Measurement: "dose", Time: utc("2026-11-22T08:00:00Z"),
		Tags:   []Tag{{"medication", "progesterone"}, {"route", "oral"}, {"unit", "mg"}},
		Fields: []Field{{"amount", 100}}}
	if got := env.Points[1]; !reflect.DeepEqual(got, want) {
		t.Errorf("second point:\n got %+v\nwant %+v", got, want)
	}
}
