package ingest

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// allReasons are the metric label values; dashboards and alerts on the
// metrics rely on them staying the same.
var allReasons = map[string]string{
	ReasonMalformed: "malformed", ReasonMissingField: "missing_field", ReasonUnknownField: "unknown_field",
	ReasonUnknownType: "unknown_type", ReasonOutOfRange: "out_of_range", ReasonBadTime: "bad_time",
	ReasonInvertedInterval: "inverted_interval", ReasonTooOld: "too_old", ReasonInFuture: "in_future",
	ReasonUnknownItem: "unknown_item", ReasonTooManySamples: "too_many_samples", ReasonInvalidValue: "invalid_value",
	ReasonNoSamples: "no_samples", ReasonBadSeq: "bad_seq",
}

func TestReasonValues(t *testing.T) {
	if len(allReasons) != 14 {
		t.Fatalf("%d distinct reasons, want 14", len(allReasons))
	}
	for got, want := range allReasons {
		if got != want {
			t.Errorf("reason %q, want %q", got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/decode/*.json")
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil && !strings.HasSuffix(in, ".golden.json") {
			f.Add(b)
		}
	}
	f.Add(benchEnvelope())
	f.Add(one(`{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "ams", "items": ` + amsAll + `}`))
	f.Add(one(`{"type": "symptoms", "time": "2026-11-22T10:00:00Z", "instrument": "custom", "items": {"fog": 3, "fog": 4, "A": 1}}`))
	f.Add(one(`{"type": "vitals", "time": "2026-11-22T08:05:00+01:00", "systolic": 1e400, "diastolic": -0}`))
	f.Add([]byte(`{"seq": 1, "samples": [null, 1, "x", [], {}]}`))
	f.Add([]byte(`{"seq": 1e3, "samples": [{"type": "heart_rate", "time": "2026-11-22T09:15:00.999999999Z", "bpm": 20}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		lim := DefaultLimits()
		env, err := Decode(payload, testNow, lim)
		if notJSON := err != nil && strings.Contains(err.Error(), "not valid JSON"); notJSON == json.Valid(payload) {
			t.Fatalf("Decode = %v, but json.Valid = %v", err, !notJSON)
		}
		if err != nil {
			checkEnvelopeError(t, env, err)
			return
		}
		checkEnvelope(t, env, lim)
	})
}

func checkEnvelopeError(t *testing.T, env *Envelope, err error) {
	var ee *EnvelopeError
	if !errors.As(err, &ee) || env != nil {
		t.Fatalf("Decode = %v, %T %v; want nil and an *EnvelopeError", env, err, err)
	}
	if len(ee.Doc.Details) == 0 || ee.Error() == "" || allReasons[ee.Reason] == "" {
		t.Fatalf("EnvelopeError %+v: want details, a message and a reason", ee)
	}
	for _, p := range ee.Doc.Details {
		if p.Sample != -1 || p.Problem == "" || allReasons[p.Reason] == "" {
			t.Fatalf("envelope problem %+v", p)
		}
	}
	if _, err := json.Marshal(ee.Doc); err != nil {
		t.Fatalf("marshal error document: %v", err)
	}
}

// checkEnvelope checks that every sample ended up exactly once, either as
// a point or as problems, and that points and answers are well formed.
func checkEnvelope(t *testing.T, env *Envelope, lim Limits) {
	if env.Samples < 1 || env.Samples > lim.MaxSamples {
		t.Fatalf("%d samples decoded, limit %d", env.Samples, lim.MaxSamples)
	}
	seen := make([]int, env.Samples)
	for i := range env.Points {
		p := &env.Points[i]
		if p.Sample < 0 || p.Sample >= env.Samples {
			t.Fatalf("point of sample %d out of %d", p.Sample, env.Samples)
		}
		seen[p.Sample]++
		checkPoint(t, p, env.Seq, lim)
	}
	for i, p := range env.Problems {
		if p.Sample < 0 || p.Sample >= env.Samples || p.Problem == "" || allReasons[p.Reason] == "" {
			t.Fatalf("problem %+v", p)
		}
		if i > 0 {
			prev := env.Problems[i-1]
			if prev.Sample > p.Sample || prev.Sample == p.Sample && prev.Field > p.Field {
				t.Fatalf("problems not sorted: %+v before %+v", prev, p)
			}
		}
		if i == 0 || env.Problems[i-1].Sample != p.Sample {
			seen[p.Sample]++
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d ended up %d times among points and problems", i, n)
		}
	}
	if len(env.Points)+env.Rejected() != env.Samples {
		t.Fatalf("%d points + %d rejected != %d samples", len(env.Points), env.Rejected(), env.Samples)
	}
	doc := env.ErrorDoc()
	if (doc == nil) != (len(env.Problems) == 0) {
		t.Fatalf("ErrorDoc() = %+v with %d problems", doc, len(env.Problems))
	}
	if b, err := json.Marshal(doc); err != nil || doc != nil && !json.Valid(b) {
		t.Fatalf("marshal error document: %v", err)
	}
}

// checkPoint checks p and that its line reads back as p.
func checkPoint(t *testing.T, p *Point, seq int64, lim Limits) {
	if kinds[p.Measurement] == nil {
		t.Fatalf("measurement %q", p.Measurement)
	}
	if p.Time.Before(testNow.Add(-lim.Backfill)) || p.Time.After(testNow.Add(lim.FutureSkew)) {
		t.Fatalf("point time %v outside the window", p.Time)
	}
	if !slices.IsSortedFunc(p.Tags, compareTags) {
		t.Fatalf("tags not sorted: %+v", p.Tags)
	}
	for i, f := range p.Fields {
		if f.Key == "" || math.IsNaN(f.Value) || math.IsInf(f.Value, 0) || i > 0 && p.Fields[i-1].Key >= f.Key {
			t.Fatalf("fields not sorted, unique and finite: %+v", p.Fields)
		}
	}
	line := string(AppendLine(nil, p, "p-001", "watch-7", seq))
	got, err := parseLine(line)
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	tags := append([]Tag{{"device", "watch-7"}, {"patient", "p-001"}}, p.Tags...)
	slices.SortFunc(tags, compareTags)
	want := parsedLine{measurement: p.Measurement, tags: tags, fields: p.Fields, seq: seq, time: p.Time.UnixNano()}
	if len(want.fields) == 0 {
		want.fields = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("line %q reads back as\n%+v\nwant\n%+v", line, got, want)
	}
}
