package notify

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// The messages as encoding/json writes them: what the hand-written
// encoding must equal.
type (
	samplesMsg struct {
		Type    string        `json:"type"`
		Patient string        `json:"patient"`
		Samples []samplePoint `json:"samples"`
	}
	sampleMsg struct {
		Type    string `json:"type"`
		Patient string `json:"patient"`
		samplePoint
	}
	samplePoint struct {
		Measurement string             `json:"measurement"`
		Time        time.Time          `json:"time"`
		Tags        map[string]string  `json:"tags,omitempty"`
		Fields      map[string]float64 `json:"fields"`
	}
)

func TestSampleMessagesAsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 120000000, time.UTC)
	points := []ingest.Point{
		{Measurement: "heart_rate", Time: at, Fields: []ingest.Field{{Key: "bpm", Value: 72}}},
		{Measurement: "dose", Time: at.Add(time.Second), Tags: []ingest.Tag{{Key: "medication", Value: "estradiol"},
			{Key: "route", Value: "transdermal"}, {Key: "unit", Value: "mg"}},
			Fields: []ingest.Field{{Key: "amount", Value: 0.05}}},
		{Measurement: "vitals", Time: at, Fields: []ingest.Field{{Key: "a", Value: 1e-7}, {Key: "b", Value: 2.5e21},
			{Key: "c", Value: -0.000001}, {Key: "d", Value: 123456789.125}, {Key: "e", Value: 0}, {Key: "f", Value: math.MaxFloat64}}},
		{Measurement: "symptoms", Time: at, Tags: []ingest.Tag{{Key: "instrument", Value: `odd "<&>" \ é` + "\x01"}},
			Fields: []ingest.Field{{Key: "hot_flushes", Value: 3}}},
	}
	convert := func(p ingest.Point) samplePoint {
		s := samplePoint{Measurement: p.Measurement, Time: p.Time, Fields: map[string]float64{}}
		for _, t := range p.Tags {
			if s.Tags == nil {
				s.Tags = map[string]string{}
			}
			s.Tags[t.Key] = t.Value
		}
		for _, f := range p.Fields {
			s.Fields[f.Key] = f.Value
		}
		return s
	}
	var all []samplePoint
	for _, p := range points {
		all = append(all, convert(p))
		want, _ := json.Marshal(sampleMsg{Type: "sample", Patient: "p-1", samplePoint: convert(p)})
		if got := appendSample(nil, "p-1", p); string(got) != string(want) {
			t.Errorf("sample:\n got %s\nwant %s", got, want)
		}
	}
	want, _ := json.Marshal(samplesMsg{Type: "samples", Patient: "p<1>", Samples: all})
	if got := appendSamples(nil, "p<1>", points); string(got) != string(want) {
		t.Errorf("samples:\n got %s\nwant %s", got, want)
	}
}
