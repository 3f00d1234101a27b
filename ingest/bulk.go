package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ValuesQuery asks PatientsValues for one measurement of several
// patients: one Flux query, whatever the number of patients.
type ValuesQuery struct {
	Patients    []string  // registry ids
	Measurement string    // a sample type, or labs
	Fields      []string  // the fields to read; "seq" reads one value per stored point
	Tags        []string  // the tags to read back, besides patient (nil: none)
	From, To    time.Time // times in [From, To)
	Latest      bool      // only each stored series' newest value in [From, To)
	// Unfiltered reads every stored patient's values: the query has no
	// patient filter, and fn is called also for patients not in
	// Patients, for the caller to drop. Cheaper than the filter when
	// Patients are most of the patients stored (see PatientsValues).
	Unfiltered bool
}

// PatientsValues calls fn with every stored value of q, in no particular
// order, as InfluxDB streams them: the result is read row by row and
// never held whole. v.Tags holds q.Tags that the point has; it is reused
// from one call to the next, so fn must copy what it keeps of it.
//
// Patients are matched with an anchored regular expression on the patient
// tag: both InfluxDB 1.8's Flux and 2.x's take =~ on a tag, and 1.8
// pushes it down to storage (measured here with 300 patients: the regex
// 0.5 s, an "or" of equalities 0.9 s, contains(), which is evaluated row
// by row, 2.9 s; 2.x was not measured). With q.Unfiltered the query has
// no patient filter, and is the same Flux for 1.8 and 2.x: with 10,000
// patients stored, reading every one of them and dropping rows here cost
// influxd 27 to 28 s of CPU where chunks of 500 matched by the regex cost
// 42 to 46 s (analysis's cold start, 5 December 2026).
// The ids, measurement, fields and tags must be registry ids and sample
// types' names: they go into the query, and are checked.
func (s *Influx) PatientsValues(ctx context.Context, q ValuesQuery, fn func(patient string, v StoredValue) error) error {
	if !IsMeasurement(q.Measurement) || len(q.Fields) == 0 || !allSafe(q.Fields) || !allSafe(q.Tags) {
		return errors.New("patients values: bad measurement, fields or tags")
	}
	patients := ""
	if !q.Unfiltered {
		match, err := patientsMatch(q.Patients)
		if err != nil {
			return fmt.Errorf("patients values: %w", err)
		}
		patients = " and r.patient =~ " + match
	}
	fields := make([]string, len(q.Fields))
	for i, f := range q.Fields {
		fields[i] = fmt.Sprintf("r._field == %q", f)
	}
	keep := []string{`"_time"`, `"_value"`, `"_field"`, `"patient"`}
	for _, t := range q.Tags {
		keep = append(keep, strconv.Quote(t))
	}
	last := ""
	if q.Latest {
		last = "|> last()"
	}
	flux := fmt.Sprintf(`from(bucket: %q)
		|> range(start: %s, stop: %s)
		|> filter(fn: (r) => r._measurement == %q and (%s)%s)
		%s
		|> keep(columns: [%s])`,
		s.cfg.Bucket, q.From.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano),
		q.Measurement, strings.Join(fields, " or "), patients, last, strings.Join(keep, ", "))
	tags := make(map[string]string, len(q.Tags))
	return s.stream(ctx, "patients values", flux, func(row csvRow) error {
		v, err := strconv.ParseFloat(row.get("_value"), 64)
		if err != nil {
			return nil // not a number: nothing analysis reads
		}
		t, err := time.Parse(time.RFC3339Nano, row.get("_time"))
		if err != nil {
			return fmt.Errorf("bad _time: %w", err)
		}
		clear(tags)
		for _, k := range q.Tags {
			if val := row.get(k); val != "" {
				tags[k] = val
			}
		}
		return fn(row.get("patient"), StoredValue{Measurement: q.Measurement, Field: row.get("_field"), Value: v, Time: t.UTC(), Tags: tags})
	})
}

// PatientsNewest calls fn with the time of each of the patients' newest
// stored sample of a measurement (field ""), or of one field of it (of
// labs: an analyte's result), over all time, as Newest does for one
// patient; patients with none are left out.
func (s *Influx) PatientsNewest(ctx context.Context, patients []string, measurement, field string, fn func(patient string, t time.Time) error) error {
	if !IsMeasurement(measurement) || (field != "" && !safeFluxString(field)) {
		return errors.New("patients newest: bad measurement or field")
	}
	match, err := patientsMatch(patients)
	if err != nil {
		return fmt.Errorf("patients newest: %w", err)
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
		|> filter(fn: (r) => r._measurement == %q and %s and r.patient =~ %s)
		|> last()
		|> keep(columns: ["_time", "patient"])`, s.cfg.Bucket, measurement, filter, match)
	newest := map[string]time.Time{} // a patient has a table a series: the newest of them
	err = s.stream(ctx, "patients newest", flux, func(row csvRow) error {
		t, err := time.Parse(time.RFC3339Nano, row.get("_time"))
		if err != nil {
			return fmt.Errorf("bad _time: %w", err)
		}
		if p := row.get("patient"); t.After(newest[p]) {
			newest[p] = t.UTC()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for p, t := range newest {
		if err := fn(p, t); err != nil {
			return err
		}
	}
	return nil
}

// patientsMatch is a Flux regular expression literal that matches
// exactly the patients' ids.
func patientsMatch(patients []string) (string, error) {
	if len(patients) == 0 {
		return "", errors.New("no patient")
	}
	quoted := make([]string, len(patients))
	for i, p := range patients {
		if !safeFluxString(p) {
			return "", errors.New("bad patient id")
		}
		quoted[i] = regexp.QuoteMeta(p) // registry ids hold no "/", which would end the literal
	}
	return "/^(?:" + strings.Join(quoted, "|") + ")$/", nil
}

func allSafe(names []string) bool {
	for _, n := range names {
		if !safeFluxString(n) {
			return false
		}
	}
	return true
}

// csvRow is one row of a Flux CSV result, by column name.
type csvRow struct {
	cols   map[string]int // of the current table's header
	record []string
}

// get is the row's value in column name, "" when the table has no such
// column.
func (r csvRow) get(name string) string {
	if i, ok := r.cols[name]; ok && i < len(r.record) {
		return r.record[i]
	}
	return ""
}

// stream runs a Flux query and calls fn with each row of its result as it
// arrives (CSV without annotations: a header line starts each table).
// Errors never quote InfluxDB's message, which may echo the query and so
// patient ids.
func (s *Influx) stream(ctx context.Context, what, flux string, fn func(csvRow) error) error {
	body, _ := json.Marshal(map[string]any{
		"query": flux, "type": "flux",
		"dialect": map[string]any{"header": true, "annotations": []string{}, "delimiter": ","},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+"/api/v2/query?org="+url.QueryEscape(s.cfg.Org), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+s.cfg.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/csv")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s query: %v", ErrUnavailable, what, unwrapNet(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%w: %s query: influxdb answered %d", ErrUnavailable, what, resp.StatusCode)
	}
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1 // tables differ in their columns
	r.ReuseRecord = true
	row := csvRow{cols: map[string]int{}}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s query: %v", ErrUnavailable, what, unwrapNet(err))
		}
		if len(rec) > 1 && rec[0] == "" && (rec[1] == "result" || rec[1] == "error") {
			clear(row.cols)
			for i, c := range rec {
				row.cols[c] = i
			}
			continue
		}
		row.record = rec
		if _, failed := row.cols["error"]; failed {
			return fmt.Errorf("%w: %s query failed in influxdb", ErrUnavailable, what)
		}
		if err := fn(row); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}
