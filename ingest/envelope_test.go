package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// testNow is the fixed time of every decoding test.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// one wraps a single sample in an envelope with seq 7.
func one(sample string) []byte { return []byte(`{"seq": 7, "samples": [` + sample + `]}`) }

func decodeOK(t testing.TB, payload []byte) *Envelope {
	t.Helper()
	env, err := Decode(payload, testNow, DefaultLimits())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return env
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestDecodeNegativeZeroIsZero(t *testing.T) {
	env := decodeOK(t, one(`{"type": "sleep", "start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z", "total_min": 410, "skin_temp_dev_c": -0}`))
	if len(env.Points) != 1 {
		t.Fatalf("problems: %+v", env.Problems)
	}
	for _, f := range env.Points[0].Fields {
		if math.Signbit(f.Value) {
			t.Errorf("field %s = %v: the sign of zero would reach InfluxDB", f.Key, f.Value)
		}
	}
}

func TestDecodeMixedEnvelopeKeepsGoodSamples(t *testing.T) {
	payload := []byte(`{"seq": 1042, "samples": [
		{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72},
		{"type": "heart_rate", "time": "2026-11-22T09:16:00Z", "bpm": 400},
		{"type": "heart_rate", "time": "2026-11-22T09:17:00Z", "bpm": 74},
		{"type": "vitals", "time": "2026-11-22T08:05:00Z", "weight_kg": 68.2},
		{"type": "sleep", "start": "2026-11-22T06:40:00Z", "end": "2026-11-21T23:10:00Z", "total_min": 2000}
	]}`)
	env := decodeOK(t, payload)
	var kept []int
	for _, p := range env.Points {
		kept = append(kept, p.Sample)
	}
	if want := []int{0, 2, 3}; !reflect.DeepEqual(kept, want) {
		t.Errorf("kept samples %v, want %v", kept, want)
	}
	want := []Problem{
		{Sample: 1, Field: "bpm", Problem: "must be between 20 and 250 (got 400)", Reason: ReasonOutOfRange},
		{Sample: 4, Field: "end", Problem: "must be after start", Reason: ReasonInvertedInterval},
		{Sample: 4, Field: "total_min", Problem: "must be between 0 and 1440 (got 2000)", Reason: ReasonOutOfRange},
	}
	if !reflect.DeepEqual(env.Problems, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", env.Problems, want)
	}
	if env.Rejected() != 2 {
		t.Errorf("Rejected() = %d, want 2", env.Rejected())
	}
	doc := env.ErrorDoc()
	if doc == nil || doc.Seq == nil || *doc.Seq != 1042 || doc.Error != "2 of 5 samples rejected" || len(doc.Details) != 3 {
		t.Fatalf("ErrorDoc() = %+v", doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"seq":1042,"error":"2 of 5 samples rejected","details":[` +
		`{"sample":1,"field":"bpm","problem":"must be between 20 and 250 (got 400)"},` +
		`{"sample":4,"field":"end","problem":"must be after start"},` +
		`{"sample":4,"field":"total_min","problem":"must be between 0 and 1440 (got 2000)"}]}`
	if string(b) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", b, wantJSON)
	}
}

func TestErrorDocCapsDetails(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"seq": 1, "samples": [{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72`)
	for i := range 1500 {
		fmt.Fprintf(&sb, `, "x%d": 1`, i)
	}
	sb.WriteString(`}]}`)
	env := decodeOK(t, []byte(sb.String()))
	doc := env.ErrorDoc()
	if len(env.Problems) != 1500 || len(doc.Details) != 1000 {
		t.Fatalf("%d problems, %d details; want 1500 and 1000", len(env.Problems), len(doc.Details))
	}
	if want := "1 of 1 sample rejected (first 1000 of 1500 problems listed)"; doc.Error != want {
		t.Errorf("Error = %q, want %q", doc.Error, want)
	}
}

func TestErrorDocDetailsNeverNull(t *testing.T) {
	b, err := json.Marshal(ErrorDoc{Error: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"seq":null,"error":"x","details":[]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = json.Marshal(&ErrorDoc{Error: "x"})
	if want := `{"seq":null,"error":"x","details":[]}`; string(b) != want {
		t.Errorf("through a pointer: got %s, want %s", b, want)
	}
}

func seqp(n int64) *int64 { return &n }

func TestDecodeEnvelopeErrors(t *testing.T) {
	hr := `{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72}`
	tests := []struct {
		name    string
		payload string
		reason  string
		err     string
		seq     *int64
	}{
		{"empty", ``, ReasonMalformed, "invalid envelope: the message is not valid JSON (it ends early)", nil},
		{"not JSON", `{"seq": 1, samples: []}`, ReasonMalformed, "invalid envelope: the message is not valid JSON (syntax error near byte 12)", nil},
		{"cut short", `{"seq": 1, "samples": [` + hr, ReasonMalformed, "invalid envelope: the message is not valid JSON (it ends early)", nil},
		{"trailing data", `{"seq": 1, "samples": [` + hr + `]} {}`, ReasonMalformed, "invalid envelope: the message is not valid JSON (syntax error near byte 92)", nil},
		{"array", `[` + hr + `]`, ReasonMalformed, "invalid envelope: the message must be a JSON object", nil},
		{"string", `"hello"`, ReasonMalformed, "invalid envelope: the message must be a JSON object", nil},
		{"seq missing", `{"samples": [` + hr + `]}`, ReasonMissingField, "invalid envelope: seq: is required", nil},
		{"seq null", `{"seq": null, "samples": [` + hr + `]}`, ReasonMissingField, "invalid envelope: seq: is required", nil},
		{"seq negative", `{"seq": -1, "samples": [` + hr + `]}`, ReasonBadSeq, "invalid envelope: seq: must be a non-negative integer", nil},
		{"seq fraction", `{"seq": 1.5, "samples": [` + hr + `]}`, ReasonBadSeq, "invalid envelope: seq: must be a non-negative integer", nil},
		{"seq string", `{"seq": "1", "samples": [` + hr + `]}`, ReasonBadSeq, "invalid envelope: seq: must be a non-negative integer", nil},
		{"seq too large", `{"seq": 9223372036854775808, "samples": [` + hr + `]}`, ReasonBadSeq, "invalid envelope: seq: must be a non-negative integer", nil},
		{"samples missing", `{"seq": 3}`, ReasonNoSamples, "invalid envelope: samples: is required", seqp(3)},
		{"samples null", `{"seq": 3, "samples": null}`, ReasonNoSamples, "invalid envelope: samples: is required", seqp(3)},
		{"samples empty", `{"seq": 3, "samples": []}`, ReasonNoSamples, "invalid envelope: samples: must not be empty", seqp(3)},
		{"samples object", `{"seq": 3, "samples": {"a": 1}}`, ReasonMalformed, "invalid envelope: samples: must be an array", seqp(3)},
		{"too many samples", `{"seq": 3, "samples": [` + strings.Repeat(hr+",", 600) + hr + `]}`, ReasonTooManySamples,
			"invalid envelope: samples: 601 samples exceed the limit of 500", seqp(3)},
		{"unknown field", `{"seq": 3, "samples": [` + hr + `], "sent_at": "2026-11-22T09:15:00Z"}`, ReasonUnknownField,
			"invalid envelope: sent_at: is not a field of the envelope", seqp(3)},
		{"unknown field not echoed", `{"seq": 3, "samples": [` + hr + `], "Jane Doe": 1}`, ReasonUnknownField,
			"invalid envelope: has a field whose name is not a plain identifier", seqp(3)},
		{"seq twice", `{"seq": 3, "samples": [` + hr + `], "seq": 4}`, ReasonMalformed, "invalid envelope: seq: appears more than once", seqp(3)},
		{"every problem at once", `{"seq": -3, "samples": [], "extra": 1}`, ReasonUnknownField,
			"invalid envelope: extra: is not a field of the envelope; samples: must not be empty; seq: must be a non-negative integer", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := Decode([]byte(tt.payload), testNow, DefaultLimits())
			var ee *EnvelopeError
			if !errors.As(err, &ee) {
				t.Fatalf("Decode = %+v, %v; want an *EnvelopeError", env, err)
			}
			if env != nil {
				t.Errorf("envelope %+v returned with the error", env)
			}
			if ee.Error() != tt.err || ee.Doc.Error != tt.err {
				t.Errorf("Error() = %q, want %q", ee.Error(), tt.err)
			}
			if ee.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", ee.Reason, tt.reason)
			}
			if !reflect.DeepEqual(ee.Doc.Seq, tt.seq) {
				t.Errorf("Doc.Seq = %v, want %v", ee.Doc.Seq, tt.seq)
			}
			for _, d := range ee.Doc.Details {
				if d.Sample != -1 || d.Reason == "" {
					t.Errorf("detail %+v: want sample -1 and a reason", d)
				}
			}
		})
	}
}

func TestDecodeSeq(t *testing.T) {
	hr := `{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72}`
	for _, tt := range []struct {
		name string
		seq  string
		want int64
	}{
		{"zero", "0", 0},
		{"integer", "1042", 1042},
		{"float encoder", "1042.0", 1042},
		{"exponent", "1e3", 1000},
		{"largest", "9223372036854775807", math.MaxInt64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := decodeOK(t, []byte(`{"seq": `+tt.seq+`, "samples": [`+hr+`]}`))
			if env.Seq != tt.want {
				t.Errorf("Seq = %d, want %d", env.Seq, tt.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	tests := []struct {
		name string
		lim  Limits
		want []string
	}{
		{"zero", Limits{}, []string{
			"max-samples must be between 1 and 10000",
			"backfill must be between 1 hour and 3650 days",
			// FutureSkew 0 is allowed: a clinic may trust its devices' clocks.
		}},
		{"too large", Limits{MaxSamples: 10001, Backfill: 3651 * 24 * time.Hour, FutureSkew: 25 * time.Hour}, []string{
			"max-samples must be between 1 and 10000",
			"backfill must be between 1 hour and 3650 days",
			"future-skew must be between 0 and 1 day",
		}},
		{"negative skew", Limits{MaxSamples: 1, Backfill: time.Hour, FutureSkew: -time.Second}, []string{
			"future-skew must be between 0 and 1 day",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lim.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate():\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDecodeHonoursLimits(t *testing.T) {
	lim := Limits{MaxSamples: 2, Backfill: 36 * time.Hour, FutureSkew: 0}
	hr := func(at string) string { return `{"type": "heart_rate", "time": "` + at + `", "bpm": 72}` }
	env, err := Decode([]byte(`{"seq": 1, "samples": [`+hr("2026-11-20T23:00:00Z")+`,`+hr("2026-11-22T12:00:01Z")+`]}`), testNow, lim)
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{
		{Sample: 0, Field: "time", Problem: "is more than 36 hours in the past", Reason: ReasonTooOld},
		{Sample: 1, Field: "time", Problem: "is in the future", Reason: ReasonInFuture},
	}
	if !reflect.DeepEqual(env.Problems, want) {
		t.Errorf("problems:\n got %+v\nwant %+v", env.Problems, want)
	}
	_, err = Decode([]byte(`{"seq": 1, "samples": [`+hr("2026-11-22T09:00:00Z")+`,`+hr("2026-11-22T09:00:00Z")+`,`+hr("2026-11-22T09:00:00Z")+`]}`), testNow, lim)
	if err == nil || err.Error() != "invalid envelope: samples: 3 samples exceed the limit of 2" {
		t.Errorf("over MaxSamples: %v", err)
	}
}

func TestWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * 24 * time.Hour:     "90 days",
		24 * time.Hour:          "1 day",
		36 * time.Hour:          "36 hours",
		5 * time.Minute:         "5 minutes",
		90 * time.Second:        "90 seconds",
		1500 * time.Millisecond: "1.5s",
	} {
		if got := words(d); got != want {
			t.Errorf("words(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestDecodeGolden decodes each testdata/decode/NAME.json and compares the
// error document a device would receive with NAME.golden.json.
func TestDecodeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/decode/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			payload, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := errorDocJSON(t, payload)
			golden := strings.TrimSuffix(in, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("error document differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
	if n == 0 {
		t.Fatal("no inputs in testdata/decode")
	}
}

// errorDocJSON returns the indented error document answered for payload.
func errorDocJSON(t *testing.T, payload []byte) []byte {
	t.Helper()
	var doc *ErrorDoc
	env, err := Decode(payload, testNow, DefaultLimits())
	var ee *EnvelopeError
	switch {
	case errors.As(err, &ee):
		doc = &ee.Doc
	case err != nil:
		t.Fatalf("Decode: %v", err)
	default:
		doc = env.ErrorDoc()
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// BenchmarkDecode decodes a realistic 50-sample envelope: a night, a day's
// activity in a few intervals, heart rate every few minutes, a check-in, doses and vitals.
func BenchmarkDecode(b *testing.B) {
	payload := benchEnvelope()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		env, err := Decode(payload, testNow, DefaultLimits())
		if err != nil || len(env.Points) != 50 {
			b.Fatalf("Decode: %v, %+v", err, env.Problems)
		}
	}
}

func benchEnvelope() []byte {
	var sb strings.Builder
	sb.WriteString(`{"seq": 1042, "samples": [`)
	sb.WriteString(`{"type": "sleep", "start": "2026-11-21T23:10:00Z", "end": "2026-11-22T06:40:00Z", "total_min": 410, "deep_min": 70, "rem_min": 95, "light_min": 215, "awake_min": 30, "efficiency": 0.91, "resting_hr": 58, "hrv_rmssd_ms": 42, "skin_temp_dev_c": 0.3}`)
	for i := range 4 {
		fmt.Fprintf(&sb, `,{"type": "activity", "start": "2026-11-22T0%d:00:00Z", "end": "2026-11-22T0%d:15:00Z", "steps": %d, "active_min": 9, "energy_kcal": 45.5}`, 7+i%3, 7+i%3, 800+i)
	}
	for i := range 40 {
		fmt.Fprintf(&sb, `,{"type": "heart_rate", "time": "2026-11-22T%02d:%02d:00Z", "bpm": %d}`, 7+i/12, i%12*5, 60+i%30)
	}
	sb.WriteString(`,{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "mrs", "items": ` + mrsAll + `}`)
	sb.WriteString(`,{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg"}`)
	sb.WriteString(`,{"type": "dose", "time": "2026-11-22T08:00:00Z", "medication": "progesterone", "route": "oral", "amount": 100, "unit": "mg"}`)
	sb.WriteString(`,{"type": "vitals", "time": "2026-11-22T08:05:00Z", "weight_kg": 68.2, "systolic": 121, "diastolic": 79}`)
	sb.WriteString(`,{"type": "vitals", "time": "2026-11-22T08:06:00Z", "hematocrit_pct": 44}`)
	sb.WriteString(`]}`)
	return []byte(sb.String())
}
