package notify

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// The live feed's sample messages are written by hand rather than by
// encoding/json: they are the hub's hottest path (every stored point of a
// watched patient), and building maps for the encoder cost more than the
// websocket writes. They are byte for byte what encoding/json writes for
// samplesMsg and sampleMsg (hub_test.go checks it).

// appendSamples appends the samples message of a patient's points: one
// message for them all.
func appendSamples(b []byte, patient string, points []ingest.Point) []byte {
	b = append(b, `{"type":"samples","patient":`...)
	b = appendString(b, patient)
	b = append(b, `,"samples":[`...)
	for i, p := range points {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendPoint(b, p)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendSample appends the sample message of one point.
func appendSample(b []byte, patient string, p ingest.Point) []byte {
	b = append(b, `{"type":"sample","patient":`...)
	b = appendString(b, patient)
	b = append(b, ',')
	b = appendPoint(b, p)
	return append(b, '}')
}

// appendPoint appends a samplePoint's members: measurement, time, tags
// (left out when there are none) and fields, whose keys, like the
// encoder's map keys, are sorted (ingest sorts a point's tags and fields).
func appendPoint(b []byte, p ingest.Point) []byte {
	b = append(b, `"measurement":`...)
	b = appendString(b, p.Measurement)
	b = append(b, `,"time":"`...)
	b = p.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(p.Tags) > 0 {
		b = append(b, `,"tags":{`...)
		for i, t := range p.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t.Key)
			b = append(b, ':')
			b = appendString(b, t.Value)
		}
		b = append(b, '}')
	}
	b = append(b, `,"fields":{`...)
	for i, f := range p.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Key)
		b = append(b, ':')
		b = appendFloat(b, f.Value)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Ingest's names (measurements,
// tags, fields, ids) are plain ASCII and are copied; anything else goes
// through encoding/json, escapes and all.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json does: the shortest decimal
// form, exponent notation below 1e-6 and from 1e21. Ingest stores no NaN
// or infinity, which JSON cannot carry; they are written as null.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' { // e-09 to e-9, as encoding/json writes it
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}
