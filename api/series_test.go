package api

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// fakeSeries answers no points and remembers the ranges asked for.
type fakeSeries struct {
	mu    sync.Mutex
	asked [][2]time.Time
}

func (s *fakeSeries) Series(_ context.Context, _, _ string, from, to time.Time, _ int) ([]ingest.SeriesPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, [2]time.Time{from, to})
	return nil, nil
}

func (s *fakeSeries) DeviceLastData(context.Context, string, time.Time) (map[string]map[string]time.Time, error) {
	return nil, nil
}

func (s *fakeSeries) LastData(context.Context, string, time.Time, time.Time) (map[string]time.Time, error) {
	return nil, nil
}

// TestSeriesRange: from and to outside the years InfluxDB can hold, or
// further apart than 400 days, are refused before InfluxDB is asked.
func TestSeriesRange(t *testing.T) {
	series := &fakeSeries{}
	ta := newTestAPI(t, series)
	if err := ta.reg.AddPatient(t.Context(), registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	admin := ta.staff(t, "ada", registry.RoleAdmin)
	tests := []struct {
		name      string
		from, to  string
		want      int
		wantError string // the answer's error starts with it or, with a space before, holds it
	}{
		{name: "a month", from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z", want: 200},
		{name: "400 days", from: "2025-01-01T00:00:00Z", to: "2026-02-05T00:00:00Z", want: 200},
		{name: "from year 0000", from: "0000-01-01T00:00:00Z", want: 422, wantError: "from:"},
		{name: "a year in year 0000", from: "0000-01-01T00:00:00Z", to: "0000-12-31T00:00:00Z", want: 422, wantError: "to:"},
		{name: "to year 9999", to: "9999-12-31T00:00:00Z", want: 422, wantError: "to:"},
		{name: "a month in year 9999", from: "9999-11-30T00:00:00Z", to: "9999-12-31T00:00:00Z", want: 422, wantError: "to:"},
		{name: "to past 2262", from: "2262-04-01T00:00:00Z", to: "2262-05-01T00:00:00Z", want: 422, wantError: "to:"},
		{name: "over 400 days", from: "2025-01-01T00:00:00Z", to: "2026-03-01T00:00:00Z", want: 422, wantError: "400 days"},
		{name: "from after to", from: "2026-03-01T00:00:00Z", to: "2026-01-01T00:00:00Z", want: 422, wantError: "before"},
		{name: "not a time", from: "yesterday", want: 400, wantError: "from:"},
		{name: "from in 1899", from: "1899-12-31T00:00:00Z", to: "1900-01-02T00:00:00Z", want: 422, wantError: "from:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"type": {"heart_rate"}}
			if tc.from != "" {
				q.Set("from", tc.from)
			}
			if tc.to != "" {
				q.Set("to", tc.to)
			}
			series.mu.Lock()
			series.asked = nil
			series.mu.Unlock()
			var doc struct {
				Error string `json:"error"`
			}
			code := ta.get(t, admin, "/v1/patients/p-1/series?"+q.Encode(), &doc)
			if code != tc.want {
				t.Fatalf("status %d (%q), want %d", code, doc.Error, tc.want)
			}
			if !strings.HasPrefix(doc.Error, tc.wantError) && !strings.Contains(doc.Error, " "+tc.wantError) {
				t.Errorf("error %q does not name %q", doc.Error, tc.wantError)
			}
			series.mu.Lock()
			defer series.mu.Unlock()
			if asked := len(series.asked) > 0; asked != (tc.want == 200) {
				t.Errorf("InfluxDB asked for %v, want asked only for a 200", series.asked)
			}
			for _, r := range series.asked {
				if r[1].Sub(r[0]) > 400*24*time.Hour {
					t.Errorf("InfluxDB asked for %s to %s, over 400 days", r[0], r[1])
				}
			}
		})
	}
}

func TestCatalogServed(t *testing.T) {
	ta := newTestAPI(t, &fakeSeries{})
	oncall := ta.staff(t, "olu", registry.RoleOnCall)
	var c ingest.Catalog
	if code := ta.get(t, oncall, "/v1/catalog", &c); code != 200 {
		t.Fatalf("GET /v1/catalog: %d", code)
	}
	if code := ta.get(t, "", "/v1/catalog", nil); code != 401 {
		t.Errorf("GET /v1/catalog signed out: %d, want 401", code)
	}
	var lab *ingest.CatalogType
	for i := range c.SampleTypes {
		if c.SampleTypes[i].Type == "lab" {
			lab = &c.SampleTypes[i]
		}
	}
	if lab == nil || lab.Measurement != "labs" || len(c.Analytes) != len(ingest.Analytes()) || c.Analytes[0].Name != "estradiol" ||
		c.Analytes[0].Unit != "pmol/L" || len(c.Instruments) != 3 || c.Instruments[0].Subscales[0].Items[0] != "hot_flushes" {
		t.Errorf("catalog: lab %+v, analytes %+v, instruments %+v", lab, c.Analytes, c.Instruments)
	}
}
