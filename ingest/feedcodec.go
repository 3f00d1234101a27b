package ingest

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The partition feed's message is one patient's points in a compact
// binary form that keeps every bit the evaluator and consoles see: the
// points' sample index, measurement, tags, fields (float64 bits as they
// are) and time to the nanosecond. Strings and counts are uvarint
// length-prefixed; a time is its Unix seconds (varint) and nanoseconds
// (uvarint), so that any time.Time in UTC comes back equal. The first
// byte is the format's version: a reader refuses a version it does not
// know rather than misread it.
//
// Line protocol was the other candidate, as the writer has built it
// already; but it rounds nothing only because AppendLine prints floats
// with 'g' -1, it carries device and seq, which the feed does not need,
// and reading it back needs an unescaping parser. See BenchmarkFeedCodec.
const feedVersion = 1

// errFeedMalformed is any message that does not decode.
var errFeedMalformed = errors.New("malformed feed message")

// minPointBytes is the least a point takes in a message: a count of
// points is refused when the rest of the message cannot hold it, before
// anything is allocated for it.
const minPointBytes = 6

// appendFeed appends the message for patient's points to b.
func appendFeed(b []byte, patient string, points []Point) []byte {
	b = append(b, feedVersion)
	b = appendString(b, patient)
	b = binary.AppendUvarint(b, uint64(len(points)))
	for i := range points {
		p := &points[i]
		b = binary.AppendUvarint(b, uint64(p.Sample))
		b = appendString(b, p.Measurement)
		b = binary.AppendUvarint(b, uint64(len(p.Tags)))
		for _, t := range p.Tags {
			b = appendString(appendString(b, t.Key), t.Value)
		}
		b = binary.AppendUvarint(b, uint64(len(p.Fields)))
		for _, f := range p.Fields {
			b = appendString(b, f.Key)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f.Value))
		}
		b = binary.AppendVarint(b, p.Time.Unix())
		b = binary.AppendUvarint(b, uint64(p.Time.Nanosecond()))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// feedReader reads a message; the first error sticks.
type feedReader struct {
	b    []byte
	err  error
	seen []string // strings read, reused: a message's points mostly repeat their keys and tags
}

// maxSeen bounds feedReader.seen, and so the time its look-ups take.
const maxSeen = 16

// decodeFeed reads a message made by appendFeed. Times come back in UTC.
// Tags and fields of all the points share one backing array each.
func decodeFeed(msg []byte) (patient string, points []Point, err error) {
	if len(msg) == 0 || msg[0] != feedVersion {
		return "", nil, errFeedMalformed
	}
	r := &feedReader{b: msg[1:]}
	patient = r.str()
	n := r.count(minPointBytes)
	points = make([]Point, n)
	var tags []Tag
	var fields []Field
	for i := range points {
		p := &points[i]
		p.Sample = int(r.uvarint())
		p.Measurement = r.measurement()
		nt := r.count(2)
		if tags == nil && nt > 0 {
			tags = make([]Tag, 0, nt*(n-i)) // points of a message mostly look alike
		}
		start := len(tags)
		for range nt {
			tags = append(tags, Tag{Key: r.shared(), Value: r.shared()})
		}
		p.Tags = tags[start:len(tags):len(tags)]
		nf := r.count(9)
		if fields == nil && nf > 0 {
			fields = make([]Field, 0, nf*(n-i))
		}
		start = len(fields)
		for range nf {
			fields = append(fields, Field{Key: r.shared(), Value: r.float()})
		}
		p.Fields = fields[start:len(fields):len(fields)]
		sec := r.varint()
		nsec := r.uvarint()
		if nsec >= 1e9 {
			r.fail()
		}
		p.Time = time.Unix(sec, int64(nsec)).UTC()
		if len(p.Tags) == 0 {
			p.Tags = nil
		}
		if len(p.Fields) == 0 {
			p.Fields = nil
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return "", nil, errFeedMalformed
	}
	return patient, points, nil
}

func (r *feedReader) fail() {
	r.err = errFeedMalformed
	r.b = nil
}

func (r *feedReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *feedReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least size bytes each, refusing one
// that the rest of the message cannot hold.
func (r *feedReader) count(size int) int {
	v := r.uvarint()
	if v > uint64(len(r.b)/size) {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *feedReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *feedReader) str() string { return string(r.bytes()) }

// shared reads a string, reusing an equal one read before.
func (r *feedReader) shared() string {
	b := r.bytes()
	for _, s := range r.seen {
		if string(b) == s {
			return s
		}
	}
	s := string(b)
	if len(r.seen) < maxSeen {
		r.seen = append(r.seen, s)
	}
	return s
}

// measurement reads a measurement name, without allocating for the
// catalog's own.
func (r *feedReader) measurement() string {
	b := r.bytes()
	for _, m := range feedMeasurements {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

// feedMeasurements are the catalog's measurements, read once.
var feedMeasurements = Measurements()

func (r *feedReader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}
