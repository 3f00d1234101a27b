package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

const (
	whTestSecret  = "0123456789abcdef-test-secret"
	whTestPatient = "patient-7f3a-secret"
)

// whFakeLog is a DeliveryLog in memory.
type whFakeLog struct {
	mu   sync.Mutex
	recs []registry.Delivery
}

func (f *whFakeLog) RecordDelivery(_ context.Context, d registry.Delivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, d)
	return nil
}

func (f *whFakeLog) all() []registry.Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]registry.Delivery(nil), f.recs...)
}

// waitFor returns the records once there are at least n.
func (f *whFakeLog) waitFor(t *testing.T, n int) []registry.Delivery {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		recs := f.all()
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d delivery records, want %d: %+v", len(recs), n, recs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// whRig is a webhook under test with its fakes.
type whRig struct {
	w    *Webhook
	dl   *whFakeLog
	reg  *prometheus.Registry
	logs *testservices.LogBuffer

	mu     sync.Mutex
	sleeps []time.Duration // asked of the fake sleep

	cancel context.CancelFunc
	done   chan error
}

func whTestConfig(url string) WebhookConfig {
	return WebhookConfig{URL: url, Secret: whTestSecret, Timeout: 2 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

// whNewRig returns a webhook not yet running. With fakeSleep its waits
// are recorded and return at once.
func whNewRig(t *testing.T, cfg WebhookConfig, fakeSleep bool) *whRig {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	r := &whRig{dl: &whFakeLog{}, reg: prometheus.NewRegistry(), logs: &testservices.LogBuffer{}}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.w = NewWebhook(cfg, r.dl, log, r.reg)
	if fakeSleep {
		r.w.sleep = func(ctx context.Context, d time.Duration) bool {
			r.mu.Lock()
			r.sleeps = append(r.sleeps, d)
			r.mu.Unlock()
			return ctx.Err() == nil
		}
	}
	return r
}

func (r *whRig) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
}

// stop ends Run and waits for it; a second call does nothing.
func (r *whRig) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of its context ending")
	}
}

func (r *whRig) waits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.sleeps...)
}

// metric returns the value of the named counter or gauge, of the series
// with outcome when outcome is not "".
func (r *whRig) metric(t *testing.T, name, outcome string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for _, lp := range m.GetLabel() {
				match = match && (lp.GetName() != "outcome" || lp.GetValue() == outcome)
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func whEvent(id int64, change string) Event {
	at := time.Date(2025, 11, 3, 9, 30, 0, 0, time.UTC)
	return Event{Change: change, At: at, Alert: Alert{
		ID: id, Patient: whTestPatient, Rule: "sleep-mean", State: "firing", Severity: "critical",
		Sentence: "7-day mean sleep 5.9 h is below the plan's 7.0 h", Value: 5.9, Bound: 7, PlanVersion: 3,
		OpenedAt: at, UpdatedAt: at,
	}}
}

// whCaptured is one request a test server received.
type whCaptured struct {
	header http.Header
	body   []byte
}

// whServer answers each request with answer(n) (n counts from 1) and
// keeps what it received.
type whServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []whCaptured
}

func whNewServer(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *whServer {
	t.Helper()
	s := &whServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, whCaptured{header: r.Header.Clone(), body: body})
		n := len(s.reqs)
		s.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *whServer) received() []whCaptured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]whCaptured(nil), s.reqs...)
}

func whAlertIDs(t *testing.T, reqs []whCaptured) []int64 {
	t.Helper()
	var ids []int64
	for _, r := range reqs {
		var ev Event
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("body %q: %v", r.body, err)
		}
		ids = append(ids, ev.Alert.ID)
	}
	return ids
}

func TestWebhookSignedRequest(t *testing.T) {
	srv := whNewServer(t, func(int, http.ResponseWriter, *http.Request) {})
	rig := whNewRig(t, whTestConfig(srv.URL+"/hook"), false)
	rig.start(t)
	sent := whEvent(41, ChangeEscalated)
	sent.Tier, sent.OnCall = "second", []string{"dr-who"}
	rig.w.Notify(sent)
	recs := rig.dl.waitFor(t, 1)
	reqs := srv.received()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	for h, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "patientpulse-webhook/1", WebhookEventHeader: ChangeEscalated,
	} {
		if v := got.header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	var ev Event
	if err := json.Unmarshal(got.body, &ev); err != nil || ev.Alert.ID != 41 || ev.Tier != "second" || ev.Alert.Patient != whTestPatient {
		t.Errorf("body decodes to %+v, %v; want the event sent", ev, err)
	}
	want := registry.Delivery{Delivery: got.header.Get(WebhookDeliveryHeader), AlertID: 41, Event: ChangeEscalated,
		Attempt: 1, At: recs[0].At, Status: 200, Outcome: "delivered"}
	if recs[0] != want || want.Delivery == "" {
		t.Errorf("record %+v, want %+v", recs[0], want)
	}
	if v := rig.metric(t, "patientpulse_webhook_deliveries_total", "delivered"); v != 1 {
		t.Errorf("delivered counter %v, want 1", v)
	}

	now := time.Now()
	verify := func(secret string, h http.Header, body []byte, at time.Time) error {
		r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		r.Header = h
		return VerifyWebhook([]byte(secret), r, body, time.Minute, at)
	}
	if err := verify(whTestSecret, got.header, got.body, now); err != nil {
		t.Fatalf("VerifyWebhook of the real request: %v", err)
	}
	tampered := bytes.Replace(got.body, []byte(`"second"`), []byte(`"third"`), 1)
	if bytes.Equal(tampered, got.body) {
		t.Fatal("test did not tamper with the body")
	}
	refreshed := got.header.Clone()
	refreshed.Set(WebhookTimestampHeader, strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	unsigned := got.header.Clone()
	unsigned.Del(WebhookSignatureHeader)
	for _, tc := range []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		at     time.Time
		want   error
	}{
		{"wrong secret", "0123456789abcdef-other-secret", got.header, got.body, now, ErrWebhookSignature},
		{"empty secret", "", got.header, got.body, now, ErrWebhookSignature},
		{"tampered body", whTestSecret, got.header, tampered, now, ErrWebhookSignature},
		{"old timestamp", whTestSecret, got.header, got.body, now.Add(10 * time.Minute), ErrWebhookTimestamp},
		{"timestamp in the future", whTestSecret, got.header, got.body, now.Add(-10 * time.Minute), ErrWebhookTimestamp},
		{"replayed with a new timestamp", whTestSecret, refreshed, got.body, now.Add(time.Hour), ErrWebhookSignature},
		{"no signature", whTestSecret, unsigned, got.body, now, ErrWebhookSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(tc.secret, tc.header, tc.body, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWebhookRetryThenDelivered(t *testing.T) {
	srv := whNewServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	rig := whNewRig(t, whTestConfig(srv.URL), false) // real waits of at most 10ms
	rig.start(t)
	rig.w.Notify(whEvent(7, ChangeOpened))
	recs := rig.dl.waitFor(t, 2)
	reqs := srv.received()
	if len(recs) != 2 || len(reqs) != 2 {
		t.Fatalf("%d records and %d requests, want 2 each: %+v", len(recs), len(reqs), recs)
	}
	id := reqs[0].header.Get(WebhookDeliveryHeader)
	for i, want := range []struct {
		outcome string
		status  int
		err     string
	}{{"retrying", 500, "HTTP 500"}, {"delivered", 200, ""}} {
		r := recs[i]
		if r.Outcome != want.outcome || r.Status != want.status || r.Error != want.err || r.Attempt != i+1 ||
			r.Delivery != id || r.AlertID != 7 || r.Event != ChangeOpened {
			t.Errorf("record %d = %+v, want attempt %d %s %d %q of delivery %s", i, r, i+1, want.outcome, want.status, want.err, id)
		}
	}
	if id == "" || reqs[1].header.Get(WebhookDeliveryHeader) != id {
		t.Errorf("delivery ids %q and %q, want the same on each attempt", id, reqs[1].header.Get(WebhookDeliveryHeader))
	}
	for _, r := range reqs {
		if err := VerifyWebhook([]byte(whTestSecret), &http.Request{Header: r.header}, r.body, time.Minute, time.Now()); err != nil {
			t.Errorf("attempt not signed: %v", err)
		}
	}
	if d, f := rig.metric(t, "patientpulse_webhook_deliveries_total", "delivered"),
		rig.metric(t, "patientpulse_webhook_deliveries_total", "failed"); d != 1 || f != 0 {
		t.Errorf("delivered %v, failed %v; want 1, 0", d, f)
	}
}

func TestWebhookStatuses(t *testing.T) {
	elsewhere := whNewServer(t, func(int, http.ResponseWriter, *http.Request) {})
	for _, tc := range []struct {
		status  int
		retried bool
	}{
		{400, false}, {401, false}, {404, false}, {410, false}, {422, false}, {307, false},
		{408, true}, {429, true}, {500, true}, {502, true}, {503, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := whNewServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", elsewhere.URL)
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, "no thanks, %s", whTestPatient) // echoes PHI
			})
			cfg := whTestConfig(srv.URL)
			cfg.MaxAttempts = 3
			rig := whNewRig(t, cfg, true)
			rig.start(t)
			rig.w.Notify(whEvent(9, ChangeUpdated))
			want := 1
			if tc.retried {
				want = 3
			}
			recs := rig.dl.waitFor(t, want)
			rig.stop(t)
			if n := len(srv.received()); n != want || len(rig.dl.all()) != want {
				t.Fatalf("%d requests and %d records, want %d", n, len(rig.dl.all()), want)
			}
			last := recs[want-1]
			wantErr := fmt.Sprintf("HTTP %d", tc.status)
			if last.Outcome != "failed" || last.Status != tc.status || last.Error != wantErr || last.Attempt != want {
				t.Errorf("last record %+v, want attempt %d failed with %d %q", last, want, tc.status, wantErr)
			}
			for _, r := range recs[:want-1] {
				if r.Outcome != "retrying" || r.Error != wantErr {
					t.Errorf("record %+v, want retrying with %q", r, wantErr)
				}
			}
			if n := len(elsewhere.received()); n != 0 {
				t.Errorf("a redirect was followed: %d requests elsewhere", n)
			}
			if strings.Contains(rig.logs.String(), whTestPatient) {
				t.Errorf("logs name the patient: %s", rig.logs.String())
			}
		})
	}
}

func TestWebhookMaxAttempts(t *testing.T) {
	srv := whNewServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	cfg := whTestConfig(srv.URL)
	cfg.MaxAttempts, cfg.MinBackoff, cfg.MaxBackoff = 5, 100*time.Millisecond, 300*time.Millisecond
	rig := whNewRig(t, cfg, true)
	rig.start(t)
	rig.w.Notify(whEvent(3, ChangeSeverityRaised))
	recs := rig.dl.waitFor(t, 5)
	rig.stop(t)
	if len(recs) != 5 || len(srv.received()) != 5 {
		t.Fatalf("%d records, %d requests; want 5 each", len(recs), len(srv.received()))
	}
	for i, r := range recs {
		want := "retrying"
		if i == 4 {
			want = "failed"
		}
		if r.Attempt != i+1 || r.Outcome != want || r.Status != 502 || r.Delivery != recs[0].Delivery {
			t.Errorf("record %d = %+v, want attempt %d %s 502 of delivery %s", i, r, i+1, want, recs[0].Delivery)
		}
	}
	waits := rig.waits()
	ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	if len(waits) != len(ceilings) {
		t.Fatalf("waits %v, want %d", waits, len(ceilings))
	}
	for i, w := range waits {
		if w < 0 || w > ceilings[i] {
			t.Errorf("wait %d = %v, want within [0, %v]", i, w, ceilings[i])
		}
	}
	if f := rig.metric(t, "patientpulse_webhook_deliveries_total", "failed"); f != 1 {
		t.Errorf("failed counter %v, want 1", f)
	}
}

func TestWebhookBackoffJitter(t *testing.T) {
	w := NewWebhook(whTestConfig("https://pager.example/"), nil, nil, nil)
	w.cfg.MinBackoff, w.cfg.MaxBackoff = time.Second, time.Minute
	seen := map[time.Duration]bool{}
	for range 200 {
		d := w.whBackoff(4, whResult{}) // ceiling 8s
		if d < 0 || d > 8*time.Second {
			t.Fatalf("wait %v outside [0, 8s]", d)
		}
		seen[d/time.Second] = true
	}
	if len(seen) < 5 {
		t.Errorf("waits fell in %d of the 9 whole seconds up to 8s: not jittered across the range", len(seen))
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	clock := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		header string
		want   time.Duration // -1: the jittered backoff, at most MinBackoff
	}{
		{"seconds", 429, "7", 7 * time.Second},
		{"HTTP date", 503, clock.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"capped at MaxBackoff", 429, "3600", time.Minute},
		{"date passed", 503, clock.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"unparsable", 429, "soon", -1},
		{"on a 500 too", 500, "2", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := whNewServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", tc.header)
					w.WriteHeader(tc.status)
				}
			})
			cfg := whTestConfig(srv.URL)
			cfg.MaxBackoff = time.Minute
			rig := whNewRig(t, cfg, true)
			rig.w.now = func() time.Time { return clock }
			rig.start(t)
			rig.w.Notify(whEvent(5, ChangeOpened))
			recs := rig.dl.waitFor(t, 2)
			if recs[0].Outcome != "retrying" || recs[1].Outcome != "delivered" {
				t.Errorf("records %+v, want retrying then delivered", recs)
			}
			waits := rig.waits()
			if len(waits) != 1 {
				t.Fatalf("waits %v, want one", waits)
			}
			if tc.want >= 0 && waits[0] != tc.want || tc.want < 0 && (waits[0] < 0 || waits[0] > cfg.MinBackoff) {
				t.Errorf("waited %v, want %v", waits[0], tc.want)
			}
		})
	}
}

// whBlockingServer holds each request until release is closed or the
// client goes away; entered receives a value as each request arrives.
func whBlockingServer(t *testing.T) (srv *whServer, entered chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	entered = make(chan struct{}, 100)
	srv = whNewServer(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before srv.Close
	return srv, entered
}

func whWait(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(2 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestWebhookQueueFull(t *testing.T) {
	srv, entered := whBlockingServer(t)
	cfg := whTestConfig(srv.URL)
	cfg.QueueSize = 2
	rig := whNewRig(t, cfg, false)
	rig.start(t)
	rig.w.Notify(whEvent(1, ChangeOpened))
	whWait(t, entered, "the first request")

	notified := make(chan struct{})
	go func() {
		for id := int64(2); id <= 10; id++ {
			rig.w.Notify(whEvent(id, ChangeOpened))
		}
		close(notified)
	}()
	whWait(t, notified, "Notify to return while the endpoint hangs")
	recs := rig.dl.waitFor(t, 7) // 1 in flight, 2 queued, 7 refused
	for i, r := range recs {
		if r.Outcome != "failed" || r.Error != "queue full" || r.Attempt != 0 || r.Status != 0 ||
			r.AlertID != int64(4+i) || r.Delivery == "" {
			t.Errorf("record %+v, want alert %d failed with \"queue full\" at attempt 0", r, 4+i)
		}
	}
	if v := rig.metric(t, "patientpulse_webhook_deliveries_total", "queue_full"); v != 7 {
		t.Errorf("queue_full counter %v, want 7", v)
	}
	if v := rig.metric(t, "patientpulse_webhook_queue", ""); v != 2 {
		t.Errorf("queue gauge %v, want 2", v)
	}
	if len(srv.received()) != 1 {
		t.Errorf("%d requests while the first hangs, want 1", len(srv.received()))
	}
}

func TestWebhookShutdown(t *testing.T) {
	t.Run("in flight and queued", func(t *testing.T) {
		srv, entered := whBlockingServer(t)
		rig := whNewRig(t, whTestConfig(srv.URL), false)
		rig.start(t)
		rig.w.Notify(whEvent(1, ChangeOpened))
		whWait(t, entered, "the first request")
		rig.w.Notify(whEvent(2, ChangeUpdated))
		rig.w.Notify(whEvent(3, ChangeResolved))
		rig.stop(t)
		recs := rig.dl.all()
		if len(recs) != 3 {
			t.Fatalf("records %+v, want 3", recs)
		}
		for i, r := range recs {
			attempt := 0
			if i == 0 {
				attempt = 1
			}
			if r.AlertID != int64(i+1) || r.Outcome != "failed" || r.Error != "shutting down" || r.Attempt != attempt {
				t.Errorf("record %+v, want alert %d failed with \"shutting down\" at attempt %d", r, i+1, attempt)
			}
		}
		rig.w.Notify(whEvent(4, ChangeAcknowledged)) // after Run returned
		recs = rig.dl.all()
		if len(recs) != 4 || recs[3].AlertID != 4 || recs[3].Outcome != "failed" || recs[3].Error != "shutting down" {
			t.Errorf("records %+v, want alert 4 recorded as failed at once", recs)
		}
		if v := rig.metric(t, "patientpulse_webhook_deliveries_total", "shutting_down"); v != 4 {
			t.Errorf("shutting_down counter %v, want 4", v)
		}
		if v := rig.metric(t, "patientpulse_webhook_queue", ""); v != 0 {
			t.Errorf("queue gauge %v, want 0", v)
		}
	})
	t.Run("waiting to retry", func(t *testing.T) {
		srv := whNewServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
		cfg := whTestConfig(srv.URL)
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
		rig := whNewRig(t, cfg, false)
		rig.start(t)
		rig.w.Notify(whEvent(1, ChangeOpened))
		rig.dl.waitFor(t, 1)
		rig.stop(t) // fails the test unless the hour's wait ends at once
		recs := rig.dl.all()
		if len(recs) != 2 || recs[1].Outcome != "failed" || recs[1].Error != "shutting down" || recs[1].Attempt != 1 {
			t.Errorf("records %+v, want retrying then failed with \"shutting down\"", recs)
		}
	})
	t.Run("refused before Run", func(t *testing.T) {
		cfg := whTestConfig("http://127.0.0.1:9/")
		cfg.QueueSize = 1
		rig := whNewRig(t, cfg, false)
		notified := make(chan struct{})
		go func() {
			rig.w.Notify(whEvent(1, ChangeOpened))
			rig.w.Notify(whEvent(2, ChangeOpened))
			close(notified)
		}()
		whWait(t, notified, "Notify to return with the queue full and Run not started")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := rig.w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		recs := rig.dl.all()
		if len(recs) != 2 {
			t.Fatalf("records %+v, want 2", recs)
		}
		got := map[int64]string{recs[0].AlertID: recs[0].Error, recs[1].AlertID: recs[1].Error}
		if got[1] != "shutting down" || got[2] != "queue full" {
			t.Errorf("errors by alert %v, want 1 shutting down, 2 queue full", got)
		}
	})
}

func TestWebhookEventsFilterAndOrder(t *testing.T) {
	srv := whNewServer(t, func(int, http.ResponseWriter, *http.Request) {})
	cfg := whTestConfig(srv.URL)
	cfg.Events = []string{ChangeOpened, ChangeEscalated}
	rig := whNewRig(t, cfg, false)
	for i, c := range []string{ChangeOpened, ChangeUpdated, ChangeEscalated, ChangeResolved, ChangeOpened, ChangeOpened} {
		rig.w.Notify(whEvent(int64(i+1), c))
	}
	if v := rig.metric(t, "patientpulse_webhook_queue", ""); v != 4 {
		t.Errorf("queue gauge %v before Run, want 4", v)
	}
	rig.start(t)
	rig.dl.waitFor(t, 4)
	rig.stop(t)
	reqs := srv.received()
	if got := fmt.Sprint(whAlertIDs(t, reqs)); got != "[1 3 5 6]" {
		t.Errorf("alerts sent %s, want [1 3 5 6] in order", got)
	}
	for _, r := range rig.dl.all() {
		if r.Outcome != "delivered" {
			t.Errorf("record %+v, want delivered", r)
		}
	}
}

func TestWebhookKeepsSecretsOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // connections are refused
	cfg := whTestConfig("http://relay:hunter2pw@" + addr + "/hook?token=tok3nvalue")
	cfg.MaxAttempts = 2
	rig := whNewRig(t, cfg, true)
	rig.start(t)
	rig.w.Notify(whEvent(1, ChangeOpened))
	recs := rig.dl.waitFor(t, 2)
	rig.stop(t)
	for _, r := range recs {
		if r.Error == "" || r.Status != 0 {
			t.Errorf("record %+v, want a network error and no status", r)
		}
	}
	logs := rig.logs.String()
	if !strings.Contains(logs, "retrying") {
		t.Errorf("no retry logged: %s", logs)
	}
	for _, secret := range []string{"hunter2pw", "tok3nvalue", whTestSecret, whTestPatient, "sleep 5.9"} {
		for _, r := range recs {
			if strings.Contains(r.Error, secret) {
				t.Errorf("record error %q carries %q", r.Error, secret)
			}
		}
		if strings.Contains(logs, secret) {
			t.Errorf("logs carry %q: %s", secret, logs)
		}
	}
}

func TestWebhookDisabled(t *testing.T) {
	rig := whNewRig(t, WebhookConfig{}, false)
	rig.start(t)
	rig.w.Notify(whEvent(1, ChangeOpened))
	rig.stop(t)
	if recs := rig.dl.all(); len(recs) != 0 {
		t.Errorf("disabled webhook recorded %+v", recs)
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	const secret = "0123456789abcdef"
	for _, tc := range []struct {
		name string
		cfg  WebhookConfig
		want []string // each in the error; none: valid
	}{
		{name: "disabled", cfg: WebhookConfig{}},
		{name: "disabled ignores the rest", cfg: WebhookConfig{Secret: "x", MaxAttempts: -1}},
		{name: "https", cfg: WebhookConfig{URL: "https://pager.example/hook", Secret: secret}},
		{name: "http to 127.0.0.1", cfg: WebhookConfig{URL: "http://127.0.0.1:9000/hook", Secret: secret}},
		{name: "http to ::1", cfg: WebhookConfig{URL: "http://[::1]:9000/", Secret: secret}},
		{name: "http to localhost", cfg: WebhookConfig{URL: "http://localhost/", Secret: secret}},
		{name: "all set", cfg: WebhookConfig{URL: "https://pager.example/", Secret: secret, Timeout: time.Second,
			MaxAttempts: 3, MinBackoff: time.Second, MaxBackoff: time.Minute, QueueSize: 10, Events: []string{ChangeEscalated}}},
		{name: "http elsewhere", cfg: WebhookConfig{URL: "http://pager.example/", Secret: secret}, want: []string{"https://"}},
		{name: "other scheme", cfg: WebhookConfig{URL: "ftp://127.0.0.1/", Secret: secret}, want: []string{"https://"}},
		{name: "no host", cfg: WebhookConfig{URL: "https:///hook", Secret: secret}, want: []string{"no host"}},
		{name: "short secret", cfg: WebhookConfig{URL: "https://pager.example/", Secret: "short"}, want: []string{"16 bytes"}},
		{name: "default maximum below the minimum", cfg: WebhookConfig{URL: "https://pager.example/", Secret: secret,
			MinBackoff: 10 * time.Minute}, want: []string{"backoffs"}},
		{name: "every problem at once", cfg: WebhookConfig{URL: "http://relay:hunter2pw@pager.example/", Secret: "short",
			Timeout: -time.Second, MaxAttempts: 101, MinBackoff: 2 * time.Minute, MaxBackoff: time.Minute, QueueSize: -1,
			Events: []string{ChangeOpened, "paged"}},
			want: []string{"https://", "16 bytes", "timeout", "attempts", "backoffs", "queue size", `"paged"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("Validate() gave %d problems, want %d: %q", n, len(tc.want), err)
			}
			if strings.Contains(err.Error(), "hunter2pw") {
				t.Errorf("Validate() echoes the URL's password: %q", err)
			}
		})
	}
}
