package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/simulate"
)

// memory is (e), measured as analysis's own benchmark measures it (the
// heap after GC, before and after), through analysis's exported API: an
// analysis.Evaluator over a fresh registry where --patients simulated
// patients (the simulate cohort's personas and plan templates) have their
// plan, reading back 90 days of each persona's history from an in-memory
// Source as it would from InfluxDB. The figure is the heap that the
// evaluator holds once it has loaded and evaluated every patient,
// scaled to 10,000 patients.
func (b *bencher) memory(ctx context.Context, res *Results) error {
	b.logf("(e) analysis memory: %d simulated patients with %d days of history", b.s.Patients, historyDays)
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The registry is only the evaluator's source of plans and sink of
	// transitions; SQLite's memory is not Go heap, and no fsync is needed.
	reg, err := registry.Open(ctx, "file:"+filepath.Join(dir, "patientpulse.db")+"?_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer reg.Close()
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(historyDays - 1))
	src := &memorySource{patients: make(map[string]int, b.s.Patients)}
	templates := make([]*analysis.Plan, simulate.Personas())
	src.byPersona = make([]map[string][]ingest.StoredValue, simulate.Personas())
	for i := range b.s.Patients {
		pi := simulate.PersonaIndex(i)
		tmpl := templates[pi]
		if tmpl == nil {
			plan, err := simulate.PlanTemplate(pi)
			if err != nil {
				return err
			}
			tmpl = &plan
			templates[pi] = tmpl
		}
		if src.byPersona[pi] == nil {
			if src.byPersona[pi], err = simulate.History(pi, tmpl, start, now, historyDays); err != nil {
				return err
			}
		}
		id := fmt.Sprintf("bench-mem-p%05d", i)
		src.patients[id] = pi
		if err := reg.AddPatient(ctx, registry.Patient{ID: id}); err != nil {
			return err
		}
		plan := *tmpl
		plan.Patient, plan.Effective = id, start
		if _, err := analysis.SavePlan(ctx, reg, &plan); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	cfg := analysis.DefaultConfig()
	cfg.Location = time.UTC
	promReg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The baseline includes the empty evaluator (its queue is a fixed
	// cost, not a patient's).
	ev := analysis.NewEvaluator(cfg, reg, src, log, promReg, nil)
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- ev.Run(runCtx) }()
	_, err = waitFor(ctx, "patients evaluated", int64(b.s.Patients), func() (int64, error) {
		select {
		case err := <-runErr:
			runErr <- err
			return 0, fmt.Errorf("evaluator stopped: %v", err)
		default:
		}
		return counterValue(promReg, "patientpulse_analysis_evaluations_total")
	})
	// A check that the measurement holds judged patients (Verdicts asks
	// the running evaluator).
	if err == nil && len(ev.Verdicts("bench-mem-p00000")) == 0 {
		err = errors.New("the evaluator judged nothing for the first patient: the measurement would be empty")
	}
	stop()
	if rerr := <-runErr; err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	res.memSecs = time.Since(t0).Seconds()
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ev)
	runtime.KeepAlive(src)
	res.memPatients = b.s.Patients
	res.memBytes = float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
	return nil
}

// counterValue reads a counter from a Prometheus registry.
func counterValue(reg *prometheus.Registry, name string) (int64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name {
			var n float64
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
			return int64(n), nil
		}
	}
	return 0, nil
}

// memorySource is an analysis.Source in memory: each patient reads back
// their persona's history, as serve's evaluator reads InfluxDB.
type memorySource struct {
	patients  map[string]int                    // patient → persona index
	byPersona []map[string][]ingest.StoredValue // measurement → values
}

func (h *memorySource) Values(ctx context.Context, patient string, measurements []string, from, to time.Time, fn func(ingest.StoredValue) error) error {
	pi, ok := h.patients[patient]
	if !ok {
		return fmt.Errorf("values: unknown patient")
	}
	for _, m := range measurements {
		for _, v := range h.byPersona[pi][m] {
			if v.Time.Before(from) || !v.Time.Before(to) {
				continue
			}
			if err := fn(v); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (h *memorySource) Newest(ctx context.Context, patient, measurement, field string) (time.Time, bool, error) {
	pi, ok := h.patients[patient]
	if !ok {
		return time.Time{}, false, fmt.Errorf("newest: unknown patient")
	}
	var newest time.Time
	for _, v := range h.byPersona[pi][measurement] {
		ofField := field == "" || v.Field == field
		if measurement == "labs" && field != "" { // labs.<analyte>, as ingest.Influx reads it
			ofField = v.Field == "value" && v.Tags["analyte"] == field
		}
		if ofField && v.Time.After(newest) {
			newest = v.Time
		}
	}
	return newest, !newest.IsZero(), ctx.Err()
}

// PatientsValues reads each patient's persona history as ingest.Influx
// reads InfluxDB in bulk: the asked fields, for "seq" one value per
// stored point (History gives a point's fields one after the other, with
// the same time and tags), with Latest only the newest value of each
// field and tags.
func (h *memorySource) PatientsValues(ctx context.Context, q ingest.ValuesQuery, fn func(string, ingest.StoredValue) error) error {
	seq := slices.Contains(q.Fields, "seq")
	for _, id := range q.Patients {
		pi, ok := h.patients[id]
		if !ok {
			return fmt.Errorf("patients values: unknown patient")
		}
		var taken []ingest.StoredValue
		newest := map[string]int{} // field and tags → index in taken
		take := func(v ingest.StoredValue) {
			if !q.Latest {
				taken = append(taken, v)
				return
			}
			series := fmt.Sprint(v.Field, v.Tags)
			if i, ok := newest[series]; !ok {
				newest[series] = len(taken)
				taken = append(taken, v)
			} else if v.Time.After(taken[i].Time) {
				taken[i] = v
			}
		}
		values := h.byPersona[pi][q.Measurement]
		for i, v := range values {
			if v.Time.Before(q.From) || !v.Time.Before(q.To) {
				continue
			}
			if slices.Contains(q.Fields, v.Field) {
				take(v)
			}
			if seq && (i == 0 || !values[i-1].Time.Equal(v.Time) || !maps.Equal(values[i-1].Tags, v.Tags)) {
				take(ingest.StoredValue{Measurement: v.Measurement, Field: "seq", Value: 1, Time: v.Time, Tags: v.Tags})
			}
		}
		for _, v := range taken {
			if err := fn(id, v); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// PatientsNewest is Newest for each patient.
func (h *memorySource) PatientsNewest(ctx context.Context, patients []string, measurement, field string, fn func(string, time.Time) error) error {
	for _, id := range patients {
		t, ok, err := h.Newest(ctx, id, measurement, field)
		if err != nil {
			return err
		}
		if ok {
			if err := fn(id, t); err != nil {
				return err
			}
		}
	}
	return nil
}
