package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// fakeDevices knows two active devices, "app-1" with token "tok-1" and
// "app-2" with token "tok-2", of patients p-1 and p-2.
type fakeDevices struct{}

func (fakeDevices) Device(_ context.Context, id string) (registry.Device, error) {
	switch id {
	case "app-1":
		return registry.Device{ID: "app-1", PatientID: "p-1"}, nil
	case "app-2":
		return registry.Device{ID: "app-2", PatientID: "p-2"}, nil
	}
	return registry.Device{}, registry.ErrNotFound
}

func (d fakeDevices) DeviceByToken(ctx context.Context, token string) (registry.Device, error) {
	switch token {
	case "tok-1":
		return d.Device(ctx, "app-1")
	case "tok-2":
		return d.Device(ctx, "app-2")
	}
	return registry.Device{}, registry.ErrNotFound
}

func newTestHTTP(t *testing.T, sink *fakeSink, cfg HTTPConfig) *HTTP {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewMetrics(nil)
	w := startWriter(t, testWriterConfig(), sink)
	intake := NewIntake(fakeDevices{}, 0, DefaultLimits(), m, log)
	cfg.MaxBytes, cfg.WriteWait = 1<<16, 200*time.Millisecond
	return NewHTTP(cfg, intake, w, m, log)
}

func ingestRequest() *http.Request {
	body := fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 60}]}`,
		time.Now().UTC().Format(time.RFC3339))
	r := httptest.NewRequest(http.MethodPost, "/v1/ingest", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer tok-1")
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	return r
}

func TestHTTPBackpressure(t *testing.T) {
	tests := []struct {
		name       string
		sink       *fakeSink
		busyFirst  bool // one request holds the only slot
		wantStatus int
		wantRetry  string
	}{
		{name: "stored", sink: &fakeSink{}, wantStatus: http.StatusAccepted},
		{name: "storage unreachable", sink: &fakeSink{failFor: 1 << 30}, wantStatus: http.StatusServiceUnavailable, wantRetry: "5"},
		{name: "all slots taken", sink: &fakeSink{block: make(chan struct{})}, busyFirst: true,
			wantStatus: http.StatusTooManyRequests, wantRetry: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHTTP(t, tc.sink, HTTPConfig{MaxInFlight: 1})
			if tc.busyFirst {
				held := make(chan struct{})
				go func() { defer close(held); h.ServeHTTP(httptest.NewRecorder(), ingestRequest()) }()
				waitFor(t, func() bool { return len(h.slots) == 1 })
				defer func() { close(tc.sink.block); <-held }()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, ingestRequest())
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.wantStatus)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
		})
	}
}

func TestHTTPDeviceRateLimit(t *testing.T) {
	h := newTestHTTP(t, &fakeSink{}, HTTPConfig{MaxInFlight: 8, DeviceRate: 0.5, DeviceBurst: 2})
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, ingestRequest())
		if rec.Code != want {
			t.Fatalf("request %d: status %d (%s), want %d", i+1, rec.Code, rec.Body, want)
		}
		if want == http.StatusTooManyRequests {
			if got := rec.Header().Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After %q, want 2 (one message per 2s)", got)
			}
		}
	}
}
