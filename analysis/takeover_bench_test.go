package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/cluster/clustertest"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// BenchmarkTakeover stores 3,000 patients with the menopause plan and 30
// days of samples (nightly sleep, heart rate every 3 hours, daily doses,
// a check-in every third day) in a real influxd, with a fresh Postgres
// registry. A first evaluator judges every patient (logged, with
// every rule's first state recorded). Then an evaluator owning 43 of 64
// partitions (two thirds) loads its patients (s/load-2/3), is given the
// other 21 and takes them over (reown: their plans, rule states and
// samples read in bulk, every patient judged, what changed recorded and
// views written under the fence of a membership whose Check runs a query
// in the transaction): s/takeover, patients/takeover. A third evaluator
// takes the same patients over step by step, timing each part: the
// registry reads alone, the bulk read (registry and InfluxDB), judging
// and recording, writing the views.
func BenchmarkTakeover(b *testing.B) {
	const patients, days, parts = 3000, 30, 64
	in, err := testservices.StartInflux()
	testservices.Require(b, err)
	b.Cleanup(func() { in.Close() })
	ctx := b.Context()
	src := ingest.NewInflux(ingest.InfluxConfig{URL: in.URL, Bucket: "pp-takeover", Org: "pp", Timeout: time.Minute})
	b.Cleanup(src.Close)
	if err := src.EnsureBucket(ctx); err != nil {
		b.Fatal(err)
	}
	reg, err := registry.Open(ctx, testservices.PostgresDB(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })

	now := time.Now().UTC().Truncate(time.Minute)
	rng := rand.New(rand.NewPCG(3, 4))
	started := time.Now()
	var lines []byte
	flush := func() {
		if err := src.Write(ctx, lines); err != nil {
			b.Fatal(err)
		}
		lines = lines[:0]
	}
	var ids []string
	for i := range patients {
		id := fmt.Sprintf("to-%04d", i)
		ids = append(ids, id)
		if err := reg.AddPatient(ctx, registry.Patient{ID: id}); err != nil {
			b.Fatal(err)
		}
		p := benchPlan(b, id, now.AddDate(0, 0, -days))
		p.Version = 0
		if _, err := SavePlan(ctx, reg, p); err != nil {
			b.Fatal(err)
		}
		for j, s := range history(rng, now, days) {
			if s.Measurement == "heart_rate" && s.Time.Hour()%3 != 0 {
				continue
			}
			pt := ingest.Point{Measurement: s.Measurement, Time: s.Time, Fields: []ingest.Field{{Key: s.Field, Value: s.Value}}}
			switch {
			case s.Medication != "":
				pt.Tags = []ingest.Tag{{Key: "medication", Value: s.Medication}, {Key: "route", Value: "oral"}, {Key: "unit", Value: "mg"}}
			case s.Instrument != "":
				pt.Tags = []ingest.Tag{{Key: "instrument", Value: s.Instrument}}
			}
			lines = append(ingest.AppendLine(lines, &pt, id, id+"-dev", int64(j)), '\n')
		}
		if len(lines) > 4<<20 {
			flush()
		}
	}
	flush()
	b.Logf("%d patients with %d days stored in %s", patients, days, time.Since(started).Round(time.Second))

	// A former owner judged every patient and recorded their rule
	// states, as before any takeover.
	old := NewEvaluator(DefaultConfig(), reg, src, slog.New(slog.DiscardHandler), nil, nil)
	old.now = func() time.Time { return now }
	start := time.Now()
	if err := old.sweep(ctx, true); err != nil {
		b.Fatal(err)
	}
	b.Logf("the first evaluator judged all %d patients in %s", patients, time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		first := map[int]int64{}
		for p := range parts * 2 / 3 {
			first[p] = 1
		}
		m := clustertest.NewFake(parts, first)
		e := NewEvaluator(DefaultConfig(), reg, src, slog.New(slog.DiscardHandler), nil, nil)
		e.now = func() time.Time { return now }
		e.SetMembership(sqlMembers{m})
		start = time.Now()
		if err := e.sweep(ctx, true); err != nil {
			b.Fatal(err)
		}
		load := time.Since(start)
		held := len(e.patients)
		all := map[int]int64{}
		for p := range parts {
			all[p] = 1
		}
		m.Set(all)
		start = time.Now()
		e.reown(ctx)
		took := time.Since(start)
		// The parts of a takeover, on a second evaluator that takes the
		// same partitions over: the bulk read, judging and recording,
		// writing the views.
		e2 := NewEvaluator(DefaultConfig(), reg, src, slog.New(slog.DiscardHandler), nil, nil)
		e2.now = e.now
		e2.SetMembership(sqlMembers{m})
		var gainedIDs []string
		for _, id := range ids {
			if m.PartitionOf(id) >= parts*2/3 {
				gainedIDs = append(gainedIDs, id)
			}
		}
		start = time.Now()
		ps, err := e2.prepareOnly(ctx, gainedIDs)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/registry-reads")
		_ = ps
		start = time.Now()
		if n, err := e2.rebuildNow(ctx, gainedIDs); n > 0 {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/bulk-read")
		start = time.Now()
		for _, p := range e2.patients {
			e2.evaluate(ctx, p, now, false)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/judge-record")
		start = time.Now()
		e2.flushViews(ctx)
		b.ReportMetric(time.Since(start).Seconds(), "s/views")
		gained := len(e.patients) - held
		if len(e.patients) != patients || len(e.views) != 0 {
			b.Fatalf("after the takeover: %d patients held, %d views unwritten; want %d, 0", len(e.patients), len(e.views), patients)
		}
		b.ReportMetric(took.Seconds(), "s/takeover")
		b.ReportMetric(float64(gained), "patients/takeover")
		b.ReportMetric(load.Seconds(), "s/load-2/3")
	}
}

// sqlMembers is a fake membership whose Check also runs a query in the
// writer's transaction, as cluster.Postgres's does.
type sqlMembers struct{ *clustertest.Fake }

func (m sqlMembers) Check(ctx context.Context, tx cluster.Tx, set string, slot int, epoch int64) error {
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return err
	}
	return m.Fake.Check(ctx, tx, set, slot, epoch)
}

// prepareOnly reads the patients' plans and rule states, as a bulk
// rebuild does first.
func (e *Evaluator) prepareOnly(ctx context.Context, ids []string) (int, error) {
	for _, id := range ids {
		if _, err := e.prepare(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
