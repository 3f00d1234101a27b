package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits bound what one envelope may carry.
type Limits struct {
	MaxSamples int           // samples per message; default 500
	Backfill   time.Duration // oldest accepted sample time = now - Backfill; default 90*24h
	FutureSkew time.Duration // newest accepted = now + FutureSkew; default 5m
}

// Bounds of the limits themselves. The backfill stays far inside the range
// of nanosecond timestamps, so that every accepted time can be written.
const (
	maxMaxSamples = 10000
	minBackfill   = time.Hour
	maxBackfill   = 3650 * 24 * time.Hour
	maxFutureSkew = 24 * time.Hour
)

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	return Limits{MaxSamples: 500, Backfill: 90 * 24 * time.Hour, FutureSkew: 5 * time.Minute}
}

// Validate reports every problem at once.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxSamples < 1 || l.MaxSamples > maxMaxSamples {
		errs = append(errs, fmt.Errorf("max-samples must be between 1 and %d", maxMaxSamples))
	}
	if l.Backfill < minBackfill || l.Backfill > maxBackfill {
		errs = append(errs, fmt.Errorf("backfill must be between %s and %s", words(minBackfill), words(maxBackfill)))
	}
	if l.FutureSkew < 0 || l.FutureSkew > maxFutureSkew {
		errs = append(errs, fmt.Errorf("future-skew must be between 0 and %s", words(maxFutureSkew)))
	}
	return errors.Join(errs...)
}

// Reasons are the stable, low-cardinality labels of rejections, used in
// metrics and logs. They never carry patient data.
const (
	ReasonMalformed        = "malformed"         // not JSON, not an object, duplicate key
	ReasonMissingField     = "missing_field"     // a required field is absent or null
	ReasonUnknownField     = "unknown_field"     // a field the sample type does not have
	ReasonUnknownType      = "unknown_type"      // type is not a known sample type
	ReasonOutOfRange       = "out_of_range"      // a number outside its physiological or instrument range
	ReasonBadTime          = "bad_time"          // a time that is not RFC 3339
	ReasonInvertedInterval = "inverted_interval" // end not after start
	ReasonTooOld           = "too_old"           // before the backfill horizon
	ReasonInFuture         = "in_future"         // beyond the allowed clock skew
	ReasonUnknownItem      = "unknown_item"      // an item the symptom instrument does not have
	ReasonTooManySamples   = "too_many_samples"  // more samples than Limits.MaxSamples
	ReasonInvalidValue     = "invalid_value"     // wrong JSON type, not an integer, not an allowed name
	ReasonNoSamples        = "no_samples"        // samples absent or empty
	ReasonBadSeq           = "bad_seq"           // seq not a non-negative integer
)

// Problem names one problem of one sample.
type Problem struct {
	Sample  int    `json:"sample"`  // index in samples; -1 for the envelope itself
	Field   string `json:"field"`   // e.g. "bpm", "items.hot_flushes", "end", "type"; "" for the whole sample or message
	Problem string `json:"problem"` // human sentence, e.g. "must be between 20 and 250 (got 400)"
	Reason  string `json:"-"`       // one of the Reason* constants
}

// ErrorDoc is answered on pp/v1/devices/{id}/errors and in HTTP 400 bodies.
type ErrorDoc struct {
	Seq     *int64    `json:"seq"`     // null when the seq could not be read
	Error   string    `json:"error"`   // one sentence, e.g. "2 of 5 samples rejected"
	Details []Problem `json:"details"` // never null in JSON: [] when empty
}

// MarshalJSON encodes d, with nil Details as [] so that devices can always
// iterate over them.
func (d ErrorDoc) MarshalJSON() ([]byte, error) {
	type plain ErrorDoc // without this method
	if d.Details == nil {
		d.Details = []Problem{}
	}
	return json.Marshal(plain(d))
}

// Tag is an InfluxDB tag.
type Tag struct{ Key, Value string }

// Field is a numeric InfluxDB field.
type Field struct {
	Key   string
	Value float64
}

// Point is one valid sample, ready to be written.
type Point struct {
	Sample      int       // its index in the envelope
	Measurement string    // sleep|activity|heart_rate|symptoms|dose|vitals
	Tags        []Tag     // tags besides patient and device, sorted by key
	Fields      []Field   // numeric fields sorted by key (not seq)
	Time        time.Time // end for intervals, time otherwise; UTC
}

// Envelope is a decoded message: its valid samples as points and the
// problems of the others.
type Envelope struct {
	Seq         int64
	Unsequenced bool // from a standard format, which has no seq: Seq is 0 and not tracked
	Samples     int  // number of samples in the message
	Points      []Point
	Problems    []Problem // sorted by sample index then field; a sample may have several
}

// maxDetails caps the problems listed in an error document: a hostile or
// broken device must not make the answer many times larger than its message.
const maxDetails = 1000

// Rejected returns the number of distinct rejected samples.
func (e *Envelope) Rejected() int {
	n := 0
	for i, p := range e.Problems {
		if i == 0 || p.Sample != e.Problems[i-1].Sample {
			n++
		}
	}
	return n
}

// ErrorDoc returns the answer to the device, or nil when no sample was
// rejected. At most 1000 problems are listed; Error then says how many
// there were.
func (e *Envelope) ErrorDoc() *ErrorDoc {
	if len(e.Problems) == 0 {
		return nil
	}
	seq := e.Seq
	msg := fmt.Sprintf("%d of %d %s rejected", e.Rejected(), e.Samples, plural(e.Samples, "sample"))
	details := e.Problems
	if len(details) > maxDetails {
		msg += fmt.Sprintf(" (first %d of %d problems listed)", maxDetails, len(details))
		details = details[:maxDetails]
	}
	return &ErrorDoc{Seq: &seq, Error: msg, Details: slices.Clone(details)}
}

// EnvelopeError reports a message unusable as a whole (not JSON / not an
// object, seq missing or not a non-negative integer, samples missing or
// empty, more than MaxSamples samples, an unknown or repeated top-level
// field).
type EnvelopeError struct {
	Doc    ErrorDoc
	Reason string // Reason* constant of the first problem in Doc.Details
}

// Error describes the problems by field, e.g. "invalid envelope: samples:
// 600 samples exceed the limit of 500". It carries no sample values.
func (e *EnvelopeError) Error() string { return e.Doc.Error }

func newEnvelopeError(seq *int64, probs []Problem) *EnvelopeError {
	slices.SortStableFunc(probs, func(a, b Problem) int { return strings.Compare(a.Field, b.Field) })
	parts := make([]string, len(probs))
	for i, p := range probs {
		parts[i] = p.Problem
		if p.Field != "" {
			parts[i] = p.Field + ": " + p.Problem
		}
	}
	return &EnvelopeError{
		Doc:    ErrorDoc{Seq: seq, Error: "invalid envelope: " + strings.Join(parts, "; "), Details: probs},
		Reason: probs[0].Reason,
	}
}

// Decode parses and validates payload at time now. Invalid samples do not
// make it fail: they become Problems while valid ones become Points. It
// fails only with *EnvelopeError. lim should have passed Validate.
func Decode(payload []byte, now time.Time, lim Limits) (*Envelope, error) {
	d := newDecoder(payload, now, lim)
	seq, n, err := d.readEnvelope(lim.MaxSamples)
	if err != nil {
		return nil, err
	}
	d.env.Seq, d.env.Samples = seq, n
	return d.env, nil
}

// readEnvelope checks the message as a whole and returns its seq and its
// number of samples. It reads the message in one pass, decoding each of the
// first limit samples as it comes: the work done on them is wasted when the
// message turns out unusable, which is rare, and saves reading the samples
// twice when it is not.
func (d *decoder) readEnvelope(limit int) (int64, int, error) {
	s, payload := &d.scan, d.scan.data
	env := func(field, reason, format string, args ...any) Problem {
		return Problem{Sample: -1, Field: field, Problem: fmt.Sprintf(format, args...), Reason: reason}
	}
	notJSON := func() error {
		return newEnvelopeError(nil, []Problem{env("", ReasonMalformed, "the message is not valid JSON (%s)", syntaxPlace(payload))})
	}
	if s.peek() != '{' {
		if s.value(); !s.end() {
			return 0, 0, notJSON()
		}
		return 0, 0, newEnvelopeError(nil, []Problem{env("", ReasonMalformed, "the message must be a JSON object")})
	}
	n := 0 // samples
	var buf [4]member
	members := s.object(buf[:0], func(key string, dup bool) []byte {
		if dup || key != "samples" || s.peek() != '[' {
			return s.value()
		}
		start := s.pos
		s.enter()
		for ; s.next(']', n); n++ {
			if n < limit {
				d.sample(n)
			} else {
				s.value()
			}
		}
		return payload[start:s.pos]
	})
	if !s.end() {
		return 0, 0, notJSON()
	}
	var probs []Problem
	var seqRaw, samplesRaw json.RawMessage
	for _, m := range members {
		switch {
		case m.dup:
			probs = append(probs, duplicate(-1, m.key, ""))
		case m.key == "seq":
			seqRaw = m.val
		case m.key == "samples":
			samplesRaw = m.val
		default:
			probs = append(probs, unknownField(-1, m.key, "the envelope"))
		}
	}
	seq, seqOK := parseSeq(seqRaw)
	switch {
	case isNull(seqRaw):
		probs = append(probs, env("seq", ReasonMissingField, "is required"))
	case !seqOK:
		probs = append(probs, env("seq", ReasonBadSeq, "must be a non-negative integer"))
	}
	if prob := checkSamples(samplesRaw, n, limit); prob != nil {
		probs = append(probs, *prob)
	}
	if len(probs) > 0 {
		var seqp *int64
		if seqOK {
			seqp = new(int64) // not &seq, which would allocate it for every message
			*seqp = seq
		}
		return 0, 0, newEnvelopeError(seqp, probs)
	}
	return seq, n, nil
}

// checkSamples returns the problem that makes raw, the samples member with
// n elements if an array, unusable.
func checkSamples(raw json.RawMessage, n, limit int) *Problem {
	prob := func(reason, format string, args ...any) *Problem {
		return &Problem{Sample: -1, Field: "samples", Problem: fmt.Sprintf(format, args...), Reason: reason}
	}
	switch {
	case isNull(raw):
		return prob(ReasonNoSamples, "is required")
	case raw[0] != '[':
		return prob(ReasonMalformed, "must be an array")
	case n == 0:
		return prob(ReasonNoSamples, "must not be empty")
	case n > limit:
		return prob(ReasonTooManySamples, "%d samples exceed the limit of %d", n, limit)
	}
	return nil
}

// parseSeq reads a non-negative integer. 1042.0 counts as an integer, as
// some JSON encoders write every number as a float.
func parseSeq(raw json.RawMessage) (int64, bool) {
	if !isNumber(raw) {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, n >= 0
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// syntaxPlace says where payload stops being JSON, by byte offset only:
// the decoder's own message would quote the device's bytes.
func syntaxPlace(payload []byte) string {
	var raw json.RawMessage
	var serr *json.SyntaxError
	if err := json.Unmarshal(payload, &raw); errors.As(err, &serr) {
		if serr.Offset >= int64(len(bytes.TrimRight(payload, " \t\r\n"))) {
			return "it ends early"
		}
		return fmt.Sprintf("syntax error near byte %d", serr.Offset)
	}
	return "syntax error"
}

// unknownField is the problem of a field that object does not have. The
// name is echoed only when it is a plain identifier.
func unknownField(sample int, key, object string) Problem {
	if !isSafeName(key) {
		return Problem{Sample: sample, Problem: "has a field whose name is not a plain identifier", Reason: ReasonUnknownField}
	}
	return Problem{Sample: sample, Field: key, Problem: "is not a field of " + object, Reason: ReasonUnknownField}
}

// duplicate is the problem of a key repeated in one object; prefix is
// "items." inside symptom items. The key is echoed only when it is a plain
// identifier: other device strings could carry anything, patient data
// included.
func duplicate(sample int, key, prefix string) Problem {
	p := Problem{Sample: sample, Field: prefix + key, Problem: "appears more than once", Reason: ReasonMalformed}
	if !isSafeName(key) {
		p.Field, p.Problem = strings.TrimSuffix(prefix, "."), "has a key that appears more than once"
	}
	return p
}

// isSafeName reports whether s matches ^[A-Za-z][A-Za-z0-9_]{0,63}$.
func isSafeName(s string) bool {
	letter := func(c byte) bool { return isLower(c) || c >= 'A' && c <= 'Z' }
	return matchName(s, letter, func(c byte) bool { return letter(c) || isDigit(c) || c == '_' })
}

// matchName reports whether s is 1 to 64 bytes, the first accepted by
// first and the others by rest.
func matchName(s string, first, rest func(c byte) bool) bool {
	if len(s) == 0 || len(s) > 64 || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !rest(s[i]) {
			return false
		}
	}
	return true
}

// words writes d for people: "90 days", "5 minutes", "36 hours".
func words(d time.Duration) string {
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	for _, u := range units {
		if d >= u.size && d%u.size == 0 {
			n := int(d / u.size)
			return strconv.Itoa(n) + " " + plural(n, u.name)
		}
	}
	return d.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}
