package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
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

// TestMQTTHandoffFailureNotAcked: a message whose hook fails is written
// but stays unacknowledged and is counted; the next one, handed on, is
// acknowledged.
func TestMQTTHandoffFailureNotAcked(t *testing.T) {
	var writes atomic.Int32
	tc := startCollector(t, MQTTConfig{}, newFakeClient(), func(context.Context, []byte) error { writes.Add(1); return nil })
	var fail atomic.Bool
	fail.Store(true)
	tc.intake.OnStored(func(context.Context, string, []Point) error {
		if fail.Load() {
			return errors.New("feed unavailable")
		}
		return nil
	})
	m := tc.fake.deliver(DataTopic("app-1"), heartRate(9, 60))
	waitFor(t, func() bool {
		return counterValue(tc.metrics.Deferred.WithLabelValues(TransportMQTT, reasonHandoff)) == 1
	})
	if waitClosed(m.acked, 200*time.Millisecond) {
		t.Fatal("a message whose points were not handed on was acknowledged")
	}
	if writes.Load() != 1 {
		t.Errorf("%d writes, want 1", writes.Load())
	}
	fail.Store(false)
	mustAck(t, tc.fake.deliver(DataTopic("app-1"), heartRate(10, 61)))
}
