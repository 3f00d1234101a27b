package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// IsSampleType reports whether t is a sample type, and so a measurement.
func IsSampleType(t string) bool { _, ok := kinds[t]; return ok }

// Series returns the patient's points of one sample type with times in
// [from, to), oldest first, at most limit of them (ErrTooManyPoints
// beyond). The patient id must be a registry id and typ a sample type:
// both are checked, since they go into the Flux query.
func (s *Influx) Series(ctx context.Context, patient, typ string, from, to time.Time, limit int) ([]SeriesPoint, error) {
	if !IsSampleType(typ) || !safeFluxString(patient) {
		return nil, fmt.Errorf("series: bad patient or type")
	}
	flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: %s, stop: %s)
		|> filter(fn: (r) => r._measurement == %q and r.patient == %q and r._field != "seq")`,
		s.cfg.Bucket, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), typ, patient)
	res, err := s.client.QueryAPI(s.cfg.Org).Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("%w: series query: %v", ErrUnavailable, unwrapNet(err))
	}
	defer res.Close()
	type key struct {
		t    int64
		tags string
	}
	byKey := map[key]*SeriesPoint{}
	for res.Next() {
		rec := res.Record()
		v, ok := asFloat(rec.Value())
		if !ok {
			continue
		}
		tags := map[string]string{}
		tagKey := ""
		for k, val := range rec.Values() {
			str, isStr := val.(string)
			if !isStr || k == "patient" || k == "result" || k[0] == '_' {
				continue
			}
			tags[k] = str
		}
		names := make([]string, 0, len(tags))
		for k := range tags {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			tagKey += k + "=" + tags[k] + ","
		}
		k := key{rec.Time().UnixNano(), tagKey}
		p := byKey[k]
		if p == nil {
			if len(byKey) == limit {
				return nil, fmt.Errorf("series: %w (more than %d)", ErrTooManyPoints, limit)
			}
			p = &SeriesPoint{Time: rec.Time().UTC(), Tags: tags, Fields: map[string]float64{}}
			byKey[k] = p
		}
		p.Fields[rec.Field()] = v
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("%w: series query: %v", ErrUnavailable, unwrapNet(err))
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
