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
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/services"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/simulate"
)

// The history (f) writes: 50,000 lines a write, 4 writes in flight, day
// by day across the patients (a write then falls in one of InfluxDB's
// weekly shards; patient by patient measured half as fast).
const (
	coldBatchLines = 50000
	coldWrites     = 4
	coldOldSample  = 200 // (f): patients rebuilt one at a time, for the per-patient path's figure
)

// coldFigures are (f)'s figures.
type coldFigures struct {
	patients   int
	points     int64   // history written
	writeSecs  float64 // to write it
	settleSecs float64 // for influxd to finish compacting it
	secs       float64 // from the evaluator's start to every patient judged
	oldSample  int     // patients rebuilt one at a time
	oldSecs    float64 // their time
	allHolding int     // patients with at least one rule holding, a check that the judging read data
}

// coldStart is (f): --cold-patients simulated patients (the cohort's
// personas and plan templates, as in (e)) whose devices sent 90 days of
// what the simulation sends (simulate.History: the watch's heart rate
// every 20 minutes, nightly sleep and daily activity; the app's
// check-ins, doses, weekly vitals and monthly labs), written to a fresh
// influxd as line protocol, and a fresh registry with their plans. An
// analysis.Evaluator reading that influxd (ingest.Influx, as serve's) is
// then started cold: the figure is the time from Run to every patient
// judged (its evaluations counter reaching the patients). After it, the
// per-patient path (Load of one patient at a time, as a plan change
// rebuilds) runs on coldOldSample of them, spread over the personas, and
// is extrapolated.
func (b *bencher) coldStart(ctx context.Context, res *Results) error {
	n := b.s.ColdPatients
	b.logf("(f) cold start: %d simulated patients with %d days of history", n, historyDays)
	in, err := services.StartInflux()
	if err != nil {
		return serviceError(err)
	}
	defer in.Close()
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	reg, err := registry.Open(ctx, "file:"+filepath.Join(dir, "patientpulse.db")+"?_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer reg.Close()
	src := ingest.NewInflux(ingest.InfluxConfig{URL: in.URL, Bucket: bucket, Org: "patientpulse", Timeout: time.Minute})
	defer src.Close()
	if err := src.EnsureBucket(ctx); err != nil {
		return err
	}
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(historyDays - 1))
	h, err := newColdHistory(start, now)
	if err != nil {
		return err
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-cold-p%05d", i)
		if err := reg.AddPatient(ctx, registry.Patient{ID: ids[i]}); err != nil {
			return err
		}
		plan := *h.plans[simulate.PersonaIndex(i)]
		plan.Patient, plan.Effective = ids[i], start
		if _, err := analysis.SavePlan(ctx, reg, &plan); err != nil {
			return err
		}
	}
	fig := coldFigures{patients: n}
	t0 := time.Now()
	if fig.points, err = b.writeHistory(ctx, src, h, ids); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	fig.writeSecs = time.Since(t0).Seconds()
	b.logf("(f) %d points written in %.1f s; waiting for influxd to finish compacting them", fig.points, fig.writeSecs)
	if fig.settleSecs, err = settle(ctx, in.Pid()); err != nil {
		return err
	}
	b.logf("(f) influxd settled after %.0f s; starting the evaluator", fig.settleSecs)
	if err := b.coldRun(ctx, reg, src, ids, &fig); err != nil {
		return err
	}
	res.cold = fig
	return nil
}

// settle waits until influxd (pid) has used under a tenth of a CPU over
// 2 seconds, at most 10 minutes, and returns how long it waited: a
// cold start is a restart of serve against an InfluxDB that has its data
// compacted, not one still digesting 68 million points written in four
// minutes (its compactions would take a CPU from the start measured).
func settle(ctx context.Context, pid int) (float64, error) {
	t0 := time.Now()
	last, err := processCPU(pid)
	for err == nil && time.Since(t0) < 10*time.Minute {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		var now time.Duration
		if now, err = processCPU(pid); err == nil {
			if now-last < 200*time.Millisecond {
				break
			}
			last = now
		}
	}
	return time.Since(t0).Seconds(), err
}

// coldRun starts an evaluator cold over reg and src, times it until every
// patient is judged, then times the per-patient path on a sample.
func (b *bencher) coldRun(ctx context.Context, reg *registry.Registry, src *ingest.Influx, ids []string, fig *coldFigures) error {
	cfg := analysis.DefaultConfig()
	cfg.Location = time.UTC
	promReg := prometheus.NewRegistry()
	ev := analysis.NewEvaluator(cfg, reg, src, slog.New(slog.NewTextHandler(io.Discard, nil)), promReg, nil)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	t0 := time.Now()
	go func() { runErr <- ev.Run(runCtx) }()
	_, err := waitFor(ctx, "patients judged", int64(len(ids)), func() (int64, error) {
		select {
		case err := <-runErr:
			runErr <- err
			return 0, fmt.Errorf("evaluator stopped: %v", err)
		default:
		}
		return counterValue(promReg, "patientpulse_analysis_evaluations_total")
	})
	fig.secs = time.Since(t0).Seconds()
	if err == nil {
		for _, id := range ids {
			if slices.ContainsFunc(ev.Verdicts(id), func(v analysis.Verdict) bool { return v.Holds }) {
				fig.allHolding++
			}
		}
		if fig.allHolding == 0 {
			err = errors.New("no patient has a rule holding: the evaluator judged no data")
		}
	}
	if err == nil {
		b.logf("(f) every patient judged %.1f s after the start; the per-patient path on %d of them", fig.secs, min(coldOldSample, len(ids)))
		step := max(1, len(ids)/coldOldSample)
		t1 := time.Now()
		for i := 0; i < len(ids) && fig.oldSample < coldOldSample && err == nil; i += step {
			err = ev.Load(ctx, ids[i:i+1])
			fig.oldSample++
		}
		fig.oldSecs = time.Since(t1).Seconds()
	}
	stop()
	if rerr := <-runErr; err == nil {
		err = rerr
	}
	return err
}

// coldHistory is every persona's 90 days as stored points, oldest first,
// with where each day starts.
type coldHistory struct {
	plans  []*analysis.Plan
	points [][]coldPoint // by persona
	days   [][]int       // by persona: the index of day d's first point
}

type coldPoint struct {
	p     ingest.Point
	watch bool // sent by the watch (else by the phone app)
}

// newColdHistory builds each persona's history from start to now as
// simulate.History decodes it, put back together into points.
func newColdHistory(start, now time.Time) (*coldHistory, error) {
	h := &coldHistory{}
	for pi := range simulate.Personas() {
		plan, err := simulate.PlanTemplate(pi)
		if err != nil {
			return nil, err
		}
		h.plans = append(h.plans, &plan)
		byMeasurement, err := simulate.History(pi, &plan, start, now, historyDays)
		if err != nil {
			return nil, err
		}
		var pts []coldPoint
		for _, m := range slices.Sorted(maps.Keys(byMeasurement)) {
			var tags map[string]string
			for _, v := range byMeasurement[m] {
				// A point's fields come one after the other, with its time
				// and tags.
				if last := len(pts) - 1; last < 0 || pts[last].p.Measurement != m || !pts[last].p.Time.Equal(v.Time) || !maps.Equal(tags, v.Tags) {
					tags = v.Tags
					p := ingest.Point{Measurement: m, Time: v.Time}
					for _, k := range slices.Sorted(maps.Keys(v.Tags)) {
						p.Tags = append(p.Tags, ingest.Tag{Key: k, Value: v.Tags[k]})
					}
					pts = append(pts, coldPoint{p: p, watch: m == "heart_rate" || m == "sleep" || m == "activity"})
				}
				last := &pts[len(pts)-1].p
				last.Fields = append(last.Fields, ingest.Field{Key: v.Field, Value: v.Value})
			}
		}
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].p.Time.Before(pts[j].p.Time) })
		days := make([]int, historyDays+1)
		for d := range days {
			end := start.AddDate(0, 0, d)
			days[d] = sort.Search(len(pts), func(i int) bool { return !pts[i].p.Time.Before(end) })
		}
		days[historyDays] = len(pts) // and what came today up to now
		h.points, h.days = append(h.points, pts), append(h.days, days)
	}
	return h, nil
}

// writeHistory writes every patient's history (their persona's), day by
// day, and returns the points written.
func (b *bencher) writeHistory(ctx context.Context, src *ingest.Influx, h *coldHistory, ids []string) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []byte, coldWrites)
	var wg sync.WaitGroup
	var once sync.Once
	var writeErr error
	for range coldWrites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lines := range batches {
				if err := src.Write(ctx, lines); err != nil {
					once.Do(func() { writeErr = err; cancel() })
				}
			}
		}()
	}
	var written int64
	buf, lines := make([]byte, 0, coldBatchLines*100), 0
	send := func() {
		select {
		case batches <- buf:
		case <-ctx.Done():
		}
		buf, lines = make([]byte, 0, coldBatchLines*100), 0
	}
	for d := 0; d < historyDays && ctx.Err() == nil; d++ {
		for i, id := range ids {
			pi := simulate.PersonaIndex(i)
			for k := h.days[pi][d]; k < h.days[pi][d+1]; k++ {
				device := id + "-app"
				if h.points[pi][k].watch {
					device = id + "-watch"
				}
				buf = ingest.AppendLine(buf, &h.points[pi][k].p, id, device, int64(k+1))
				buf = append(buf, '\n')
				lines++
				written++
				if lines == coldBatchLines {
					send()
				}
			}
		}
		if d%10 == 9 {
			b.logf("(f) %d of %d days written (%d points)", d+1, historyDays, written)
		}
	}
	if lines > 0 {
		send()
	}
	close(batches)
	wg.Wait()
	if writeErr == nil && ctx.Err() != nil {
		writeErr = ctx.Err()
	}
	return written, writeErr
}

// coldRow is (f)'s line of the table.
func (c coldFigures) row() string {
	perOld := c.oldSecs / float64(c.oldSample)
	extrapolated := ""
	if c.oldSample < c.patients {
		extrapolated = "extrapolated; "
	}
	return fmt.Sprintf("| (f) | cold start: %d patients, %d days | – | – | every patient judged %.1f s after the evaluator's start (%.0f patients/s; %d with a rule holding); "+
		"per-patient path, measured on %d of them: %.1f ms a patient, %.0f s for %d (%s%.0f patients/s); history: %d points written in %.0f s, influxd settled %.0f s later |",
		c.patients, historyDays, c.secs, float64(c.patients)/c.secs, c.allHolding,
		c.oldSample, perOld*1000, perOld*float64(c.patients), c.patients, extrapolated, 1/perOld, c.points, c.writeSecs, c.settleSecs)
}

// coldTarget is (f)'s line of the targets.
func (c coldFigures) coldTarget(met func(bool) string) string {
	if c.patients != targetPatients {
		return fmt.Sprintf("  cold start <= %.0f s for %d patients: %.1f s for %d: not judged (run with --cold-patients %d)",
			targetColdSecs, targetPatients, c.secs, c.patients, targetPatients)
	}
	return fmt.Sprintf("  cold start <= %.0f s for %d patients with %d days: %.1f s: %s", targetColdSecs, targetPatients, historyDays, c.secs, met(c.secs <= targetColdSecs))
}

// coldMethod explains (f) under the table.
var coldMethod = strings.Join([]string{
	"  (f): a fresh influxd and registry; --cold-patients simulated patients (the cohort's personas and plans, as (e)), each persona's 90 days",
	"  as simulate sends them (heart rate every 20 min, sleep, activity, check-ins, doses, weekly vitals, monthly labs; device and patient tags",
	"  as serve writes them) in 50,000-line writes, 4 at once, day by day. Once influxd has compacted them (under 0.1 CPU over 2 s),",
	"  an analysis.Evaluator over ingest.Influx starts cold: the time",
	"  is from Run to its evaluations counter reaching the patients (bulk reads: a lone instance's start reads every patient stored, one query",
	"  per measurement and no patient filter; a share of the patients is read in chunks of 500 matched by a regex).",
	"  The per-patient path is Load of one patient at a time (a plan change's rebuild: one query per measurement and patient), after it.",
}, "\n")
