package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The tests of the OnStored hook's error: the points are stored, but the
// message is not acknowledged, so that it comes again.

// TestHTTPHandoffFailure: a failing hook answers 503 with Retry-After,
// counted as handoff; a hook returning nil answers 202, and the hook saw
// the request's patient and points, after they were stored.
func TestHTTPHandoffFailure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		hookErr    error
		wantStatus int
		wantRetry  string
	}{
		{name: "handed on", wantStatus: http.StatusAccepted},
		{name: "feed unavailable", hookErr: errors.New("feed unavailable"), wantStatus: http.StatusServiceUnavailable, wantRetry: "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newTestHTTP(t, sink, HTTPConfig{MaxInFlight: 1})
			var calls atomic.Int32
			h.intake.OnStored(func(ctx context.Context, patient string, points []Point) error {
				calls.Add(1)
				if patient != "p-1" || len(points) != 1 || points[0].Measurement != "heart_rate" {
					t.Errorf("hook got patient %q, points %+v", patient, points)
				}
				if len(sink.stored()) == 0 {
					t.Error("hook called before the points were stored")
				}
				if _, ok := ctx.Deadline(); !ok {
					t.Error("hook's context has no deadline: it could hold the request forever")
				}
				return tc.hookErr
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, ingestRequest())
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.wantStatus)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
			if calls.Load() != 1 {
				t.Errorf("hook called %d times, want 1", calls.Load())
			}
			want := 0.0
			if tc.hookErr != nil {
				want = 1
			}
			if got := counterValue(h.metrics.Deferred.WithLabelValues(TransportHTTP, reasonHandoff)); got != want {
				t.Errorf("deferred handoff %v, want %v", got, want)
			}
			if got := counterValue(h.metrics.SamplesAccepted.WithLabelValues(TransportHTTP, "heart_rate")); got != 1-want {
				t.Errorf("samples accepted %v, want %v (counted only once handed on)", got, 1-want)
			}
		})
	}
}

// TestMQTTHandoffFailureNotAcked: a message whose hook fails is stored
// but stays unacknowledged, counted, and is stored and handed on again
// until the hook succeeds, then acknowledged (the broker would redeliver
// it only after a reconnect); stopping meanwhile leaves it unacknowledged.
func TestMQTTHandoffFailureNotAcked(t *testing.T) {
	var writes, handoffs atomic.Int32
	tc := startCollector(t, MQTTConfig{}, newFakeClient(), func(context.Context, []byte) error { writes.Add(1); return nil })
	var fail atomic.Bool
	fail.Store(true)
	tc.intake.OnStored(func(context.Context, string, []Point) error {
		handoffs.Add(1)
		if fail.Load() {
			return errors.New("feed unavailable")
		}
		return nil
	})
	m := tc.fake.deliver(DataTopic("app-1"), heartRate(9, 60))
	waitFor(t, func() bool {
		return counterValue(tc.metrics.Deferred.WithLabelValues(TransportMQTT, reasonHandoff)) >= 2
	})
	if m.isAcked() {
		t.Fatal("a message whose points were not handed on was acknowledged")
	}
	if writes.Load() < 2 || writes.Load() != handoffs.Load() {
		t.Errorf("%d writes and %d hand-offs: want each hand-off after a write of its own, at least 2", writes.Load(), handoffs.Load())
	}
	fail.Store(false)
	mustAck(t, m)

	fail.Store(true)
	m = tc.fake.deliver(DataTopic("app-1"), heartRate(10, 61))
	waitFor(t, func() bool {
		return counterValue(tc.metrics.Deferred.WithLabelValues(TransportMQTT, reasonHandoff)) >= 3
	})
	tc.stop()
	if m.isAcked() {
		t.Error("acknowledged at stop without being handed on")
	}
}
