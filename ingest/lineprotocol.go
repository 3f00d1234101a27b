package ingest

import (
	"slices"
	"strconv"
	"strings"
)

// AppendLine appends p to b as one InfluxDB line-protocol line without a
// trailing newline: the measurement; the tags device, patient and p.Tags,
// merged and sorted by key; the fields p.Fields as floats followed by seq
// as an integer ("seq=1042i"); and the time in nanoseconds.
//
// Commas, spaces and equals signs in names and tag values are escaped with
// a backslash, and control characters are written as \n, \t and so on, so
// that whatever the values the result stays one line. Line protocol cannot
// carry an empty tag value, so a tag with one is left out; a tag of p
// named device or patient is left out too, as the arguments name them,
// and so is a field named seq.
// Line protocol has no escape for a backslash that ends a value: patient
// and device ids are registry ids (registry.ValidID), which never contain
// one. Field values must be finite; Decode's always are.
func AppendLine(b []byte, p *Point, patient, device string, seq int64) []byte {
	b = appendEscaped(b, p.Measurement, false)
	own := []Tag{{Key: "device", Value: device}, {Key: "patient", Value: patient}}
	tags := p.Tags
	if !slices.IsSortedFunc(tags, compareTags) {
		tags = slices.SortedFunc(slices.Values(tags), compareTags)
	}
	for len(own) > 0 || len(tags) > 0 {
		var t Tag
		switch {
		case len(tags) == 0 || len(own) > 0 && own[0].Key <= tags[0].Key:
			t, own = own[0], own[1:]
		default:
			t, tags = tags[0], tags[1:]
			if t.Key == "device" || t.Key == "patient" {
				continue
			}
		}
		if t.Key == "" || t.Value == "" {
			continue
		}
		b = append(b, ',')
		b = appendEscaped(b, t.Key, true)
		b = append(b, '=')
		b = appendEscaped(b, t.Value, true)
	}
	sep := byte(' ')
	for _, f := range p.Fields {
		if f.Key == "" || f.Key == "seq" {
			continue
		}
		b = append(b, sep)
		b = appendEscaped(b, f.Key, true)
		b = append(b, '=')
		b = strconv.AppendFloat(b, f.Value, 'g', -1, 64)
		sep = ','
	}
	b = append(b, sep)
	b = append(b, "seq="...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "i "...)
	return strconv.AppendInt(b, p.Time.UnixNano(), 10)
}

func compareTags(a, b Tag) int { return strings.Compare(a.Key, b.Key) }

// appendEscaped appends s escaped for line protocol: commas and spaces
// everywhere, equals signs in keys and tag values (equals is true).
func appendEscaped(b []byte, s string, equals bool) []byte {
	plain := 0 // the usual case: nothing to escape, appended at once
	for plain < len(s) && !needsEscape(s[plain], equals) {
		plain++
	}
	b = append(b, s[:plain]...)
	for i := plain; i < len(s); i++ {
		switch c := s[i]; {
		case c == ',' || c == ' ' || c == '=' && equals:
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, c)
		}
	}
	return b
}

func needsEscape(c byte, equals bool) bool {
	switch c {
	case ',', ' ', '\n', '\r', '\t', '\f':
		return true
	}
	return c == '=' && equals
}
