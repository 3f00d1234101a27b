package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// noSamples is a Source with nothing stored.
type noSamples struct{}

func (noSamples) Values(context.Context, string, []string, time.Time, time.Time, func(ingest.StoredValue) error) error {
	return nil
}
func (noSamples) Newest(context.Context, string, string, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}
func (noSamples) PatientsValues(context.Context, ingest.ValuesQuery, func(string, ingest.StoredValue) error) error {
	return nil
}
func (noSamples) PatientsNewest(context.Context, []string, string, string, func(string, time.Time) error) error {
	return nil
}

// TestSummariesWhenTheWeekCloses: on a clock two seconds before a week
// closes in New York, Run publishes the week that has closed at once,
// then, once the clock passes midnight, the week that just closed; each
// to the device of the patient with a plan and a device only, and each
// recorded once.
func TestSummariesWhenTheWeekCloses(t *testing.T) {
	m, err := testservices.StartMosquitto()
	testservices.Require(t, err)
	t.Cleanup(func() { m.Stop() })
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ny, _ := time.LoadLocation("America/New_York")
	below := 420.0
	for _, p := range []struct {
		id, device string
		plan       bool
	}{{"p-1", "phone-1", true}, {"p-2", "phone-2", false}, {"p-3", "", true}} {
		if err := reg.AddPatient(ctx, registry.Patient{ID: p.id}); err != nil {
			t.Fatal(err)
		}
		if p.device != "" {
			if _, err := reg.EnrollDevice(ctx, p.device, p.id); err != nil {
				t.Fatal(err)
			}
		}
		if p.plan {
			plan := analysis.Plan{Patient: p.id, Effective: time.Date(2026, 11, 1, 0, 0, 0, 0, ny), Rules: []analysis.Rule{{
				ID: "sleep-low", Kind: analysis.KindThreshold, Severity: analysis.SeverityWarning, Metric: "sleep.total_min",
				PerDay: "sum", Over: analysis.Duration(7 * 24 * time.Hour), Aggregate: "mean", Below: &below, MinDays: 1}}}
			if _, err := analysis.SavePlan(ctx, reg, &plan); err != nil {
				t.Fatal(err)
			}
		}
	}
	watcher, err := m.Connect(t, "watcher", "", "")
	if err != nil {
		t.Fatal(err)
	}
	code, heard := watcher.Listen(t, "pp/v1/devices/+/summary")
	if code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}

	closes := time.Date(2026, 12, 7, 0, 0, 0, 0, ny) // Monday: the week from 30 November closes
	started := time.Now()
	cfg := analysis.DefaultConfig()
	cfg.Location = ny
	s := &Summaries{Reg: reg, Src: noSamples{}, Analysis: cfg, MQTT: ingest.MQTTConfig{URL: m.URL, ClientID: "pp-test"},
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return closes.Add(-2*time.Second + time.Since(started)) }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	for _, want := range []string{"2026-W48", "2026-W49"} {
		select {
		case msg := <-heard:
			var sum analysis.WeeklySummary
			if err := json.Unmarshal(msg.Payload(), &sum); err != nil || msg.Topic() != "pp/v1/devices/phone-1/summary" || sum.Week != want {
				t.Fatalf("heard %s %s (%v), want week %s on phone-1's topic", msg.Topic(), msg.Payload(), err, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("week %s: no summary within 15 s", want)
		}
	}
	select {
	case msg := <-heard:
		t.Errorf("heard more: %s %s", msg.Topic(), msg.Payload())
	case <-time.After(time.Second):
	}
	// Only the newest week's is kept.
	if got, err := reg.SummarisedPatients(ctx, "2026-W49"); err != nil || len(got) != 1 || !got["p-1"] {
		t.Errorf("SummarisedPatients(2026-W49) = %v, %v; want p-1", got, err)
	}
	if got, err := reg.SummarisedPatients(ctx, "2026-W48"); err != nil || len(got) != 0 {
		t.Errorf("SummarisedPatients(2026-W48) = %v, %v; want none", got, err)
	}
}
