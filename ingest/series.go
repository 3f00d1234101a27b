package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// SeriesPoint is one stored sample of a patient, as charts read it: its
// time, its tags other than patient, and its fields (seq left out).
type SeriesPoint struct {
	Time   time.Time          `json:"time"`
	Tags   map[string]string  `json:"tags"`
	Fields map[string]float64 `json:"fields"`
}

// ErrTooManyPoints reports a series read that would exceed its limit.
var ErrTooManyPoints = errors.New("too many points")

// IsMeasurement reports whether m is a measurement of the InfluxDB
// layout: a sample type's name, or labs.
func IsMeasurement(m string) bool { _, k := kindOf(m); return k != nil }

// StoredValue is one field value of a patient read back from InfluxDB.
type StoredValue struct {
	Measurement string
	Field       string
	Value       float64
	Time        time.Time
	Tags        map[string]string // besides patient
}

// Values calls fn with every stored value of the patient's measurements
// (sample types) with times in [from, to), seq left out, in no particular
// order. The patient id must be a registry id and the measurements sample
// types: both go into the Flux query, and are checked.
func (s *Influx) Values(ctx context.Context, patient string, measurements []string, from, to time.Time, fn func(StoredValue) error) error {
	if !safeFluxString(patient) || len(measurements) == 0 {
		return fmt.Errorf("values: bad patient or no measurement")
	}
	var ms []string
	for _, m := range measurements {
		if !IsMeasurement(m) {
			return fmt.Errorf("values: %q is not a measurement", m)
		}
		ms = append(ms, fmt.Sprintf("r._measurement == %q", m))
	}
	flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: %s, stop: %s)
		|> filter(fn: (r) => r.patient == %q and r._field != "seq" and (%s))`,
		s.cfg.Bucket, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), patient, strings.Join(ms, " or "))
	res, err := s.client.QueryAPI(s.cfg.Org).Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("%w: values query: %v", ErrUnavailable, unwrapNet(err))
	}
	defer res.Close()
	for res.Next() {
		rec := res.Record()
		v, ok := asFloat(rec.Value())
		if !ok {
			continue
		}
		tags := map[string]string{}
		for k, val := range rec.Values() {
			if str, isStr := val.(string); isStr && k != "patient" && k != "result" && k[0] != '_' {
				tags[k] = str
			}
		}
		if err := fn(StoredValue{Measurement: rec.Measurement(), Field: rec.Field(), Value: v, Time: rec.Time().UTC(), Tags: tags}); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("%w: values query: %v", ErrUnavailable, unwrapNet(err))
	}
	return nil
}

// Series returns the patient's points of one sample type with times in
// [from, to), oldest first, at most limit of them (ErrTooManyPoints
// beyond): the values of one time and tags make one point.
func (s *Influx) Series(ctx context.Context, patient, typ string, from, to time.Time, limit int) ([]SeriesPoint, error) {
	type key struct {
		t    int64
		tags string
	}
	byKey := map[key]*SeriesPoint{}
	err := s.Values(ctx, patient, []string{typ}, from, to, func(v StoredValue) error {
		names := make([]string, 0, len(v.Tags))
		for k := range v.Tags {
			names = append(names, k)
		}
		sort.Strings(names)
		tagKey := ""
		for _, k := range names {
			tagKey += k + "=" + v.Tags[k] + ","
		}
		k := key{v.Time.UnixNano(), tagKey}
		p := byKey[k]
		if p == nil {
			if len(byKey) == limit {
				return fmt.Errorf("series: %w (more than %d)", ErrTooManyPoints, limit)
			}
			p = &SeriesPoint{Time: v.Time, Tags: v.Tags, Fields: map[string]float64{}}
			byKey[k] = p
		}
		p.Fields[v.Field] = v.Value
		return nil
	})
	if err != nil {
		return nil, err
	}
	points := make([]SeriesPoint, 0, len(byKey))
	for _, p := range byKey {
		points = append(points, *p)
	}
	sort.Slice(points, func(i, j int) bool {
		if !points[i].Time.Equal(points[j].Time) {
			return points[i].Time.Before(points[j].Time)
		}
		return fmt.Sprint(points[i].Tags) < fmt.Sprint(points[j].Tags)
	})
	return points, nil
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// safeFluxString reports whether s can go inside a Flux string literal
// as it is: letters, digits, '.', '_' and '-' (what registry ids allow).
func safeFluxString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// LastData returns the time of the patient's newest stored sample of each
// measurement since the given time, and of labs, which come months apart,
// since labsSince. A measurement with none is absent.
func (s *Influx) LastData(ctx context.Context, patient string, since, labsSince time.Time) (map[string]time.Time, error) {
	if !safeFluxString(patient) {
		return nil, fmt.Errorf("last data: bad patient")
	}
	last := map[string]time.Time{}
	for _, q := range []struct {
		since time.Time
		which string
	}{{since, `r._measurement != "labs"`}, {labsSince, `r._measurement == "labs"`}} {
		flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: %s)
		|> filter(fn: (r) => r.patient == %q and %s and r._field == "seq")
		|> group(columns: ["_measurement"])
		|> last()`, s.cfg.Bucket, q.since.UTC().Format(time.RFC3339Nano), patient, q.which)
		res, err := s.client.QueryAPI(s.cfg.Org).Query(ctx, flux)
		if err != nil {
			return nil, fmt.Errorf("%w: last data query: %v", ErrUnavailable, unwrapNet(err))
		}
		for res.Next() {
			last[res.Record().Measurement()] = res.Record().Time().UTC()
		}
		err = res.Err()
		res.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: last data query: %v", ErrUnavailable, unwrapNet(err))
		}
	}
	return last, nil
}

// DeviceLastData returns, for each of the patient's devices that stored
// a sample since the given time, the time of its newest sample of each
// measurement.
func (s *Influx) DeviceLastData(ctx context.Context, patient string, since time.Time) (map[string]map[string]time.Time, error) {
	if !safeFluxString(patient) {
		return nil, fmt.Errorf("device last data: bad patient")
	}
	flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: %s)
		|> filter(fn: (r) => r.patient == %q and r._field == "seq")
		|> group(columns: ["device", "_measurement"])
		|> last()`, s.cfg.Bucket, since.UTC().Format(time.RFC3339Nano), patient)
	res, err := s.client.QueryAPI(s.cfg.Org).Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("%w: device last data query: %v", ErrUnavailable, unwrapNet(err))
	}
	defer res.Close()
	last := map[string]map[string]time.Time{}
	for res.Next() {
		rec := res.Record()
		device, _ := rec.ValueByKey("device").(string)
		if last[device] == nil {
			last[device] = map[string]time.Time{}
		}
		last[device][rec.Measurement()] = rec.Time().UTC()
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("%w: device last data query: %v", ErrUnavailable, unwrapNet(err))
	}
	return last, nil
}

// Newest returns the time of the patient's newest stored sample of a
// measurement (field ""), or of one field of it (of labs: an analyte's
// result), over all time; false when none was ever stored.
func (s *Influx) Newest(ctx context.Context, patient, measurement, field string) (time.Time, bool, error) {
	if !safeFluxString(patient) || !IsMeasurement(measurement) || (field != "" && !safeFluxString(field)) {
		return time.Time{}, false, fmt.Errorf("newest: bad patient, measurement or field")
	}
	filter := fmt.Sprintf("r._field == %q", field)
	switch {
	case field == "":
		filter = `r._field == "seq"` // every stored point has one
	case measurement == "labs": // labs.<analyte>
		filter = fmt.Sprintf(`r._field == "value" and r.analyte == %q`, field)
	}
	flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: 1970-01-01T00:00:00Z)
		|> filter(fn: (r) => r.patient == %q and r._measurement == %q and %s)
		|> last()`, s.cfg.Bucket, patient, measurement, filter)
	return s.newestOf(ctx, "newest", flux)
}

// newestOf runs a query of last() records and returns the newest time.
func (s *Influx) newestOf(ctx context.Context, what, flux string) (time.Time, bool, error) {
	res, err := s.client.QueryAPI(s.cfg.Org).Query(ctx, flux)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%w: %s query: %v", ErrUnavailable, what, unwrapNet(err))
	}
	defer res.Close()
	var newest time.Time
	for res.Next() {
		if t := res.Record().Time(); t.After(newest) {
			newest = t
		}
	}
	if err := res.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("%w: %s query: %v", ErrUnavailable, what, unwrapNet(err))
	}
	return newest.UTC(), !newest.IsZero(), nil
}
