package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/cluster/clustertest"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// byPartition splits ids by their partition among n.
func byPartition(n int, ids ...string) map[int][]string {
	out := map[int][]string{}
	for _, id := range ids {
		p := cluster.PartitionOf(id, n)
		out[p] = append(out[p], id)
	}
	return out
}

// ownerFixture is patients own-0 to own-7, each with a plan whose rule
// fires on the nights stored, split between two partitions.
func ownerFixture(t *testing.T) (*evFixture, map[int][]string) {
	t.Helper()
	var ids []string
	for i := range 8 {
		ids = append(ids, fmt.Sprintf("own-%d", i))
	}
	f := newEvFixture(t, ids...)
	for _, id := range ids {
		f.savePlan(id, evEff1, nil, evSleepRule("sleep-short", 420))
		for d := 3; d <= 9; d++ {
			f.src.put(id, evSleep(evAt(d, 7), 300))
		}
	}
	parts := byPartition(2, ids...)
	if len(parts[0]) == 0 || len(parts[1]) == 0 {
		t.Fatalf("the patients all fall in one partition: %v", parts)
	}
	return f, parts
}

// runEvaluator runs e until the test ends.
func runEvaluator(t *testing.T, ctx context.Context, e *Evaluator) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// notifiedOf is the rules and changes notified for the patient.
func (f *evFixture) notifiedOf(patient string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, t := range f.notified {
		if t.Patient == patient && t.Change != ChangeUpdate {
			out = append(out, t.Rule+":"+t.Change)
		}
	}
	return out
}

// wantFiredOnly checks that each patient of fired has the firing of
// sleep-short recorded, and that each of others (why: not owned, fenced)
// has nothing recorded nor notified.
func wantFiredOnly(t *testing.T, f *evFixture, fired, others []string, why string) {
	t.Helper()
	for _, id := range fired {
		evWantChanges(t, id, evChangesOnly(f.transitions(id)), "sleep-short:"+ChangeFired)
	}
	for _, id := range others {
		evWantChanges(t, id, f.transitions(id))
		if n := f.notifiedOf(id); len(n) != 0 {
			t.Errorf("%s, %s: notified %v", id, why, n)
		}
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEvaluatorOwnsItsPartitions: an evaluator owning partition 0 of 2
// holds, judges and records only partition 0's patients, and writes their
// views; when its ownership moves to partition 1, it drops partition 0's
// patients and loads, judges and records partition 1's.
func TestEvaluatorOwnsItsPartitions(t *testing.T) {
	f, parts := ownerFixture(t)
	e, _ := f.evaluator(evConfig())
	m := clustertest.NewFake(2, map[int]int64{0: 1})
	e.SetMembership(m)
	runEvaluator(t, f.ctx, e)

	held := func(part int, want bool) {
		t.Helper()
		for _, id := range parts[part] {
			if got := e.Verdicts(id) != nil; got != want {
				t.Errorf("partition %d: %s held: %v, want %v", part, id, got, want)
			}
			if e.Owns(id) != want {
				t.Errorf("partition %d: Owns(%s) = %v, want %v", part, id, !want, want)
			}
		}
	}
	held(0, true)
	held(1, false)
	wantFiredOnly(t, f, parts[0], parts[1], "not owned")
	views, err := f.reg.PatientViews(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(views)), slices.Sorted(slices.Values(parts[0])); !slices.Equal(got, want) {
		t.Errorf("views written for %v, want partition 0's %v", got, want)
	}
	if v := views[parts[0][0]]; !strings.Contains(string(v.Verdicts), `"holds":true`) || !v.LastData["sleep"].Equal(evAt(9, 7)) {
		t.Errorf("view of %s: verdicts %s, last data %v", parts[0][0], v.Verdicts, v.LastData)
	}

	m.Set(map[int]int64{1: 1})
	e.OwnershipChanged()
	eventually(t, "partition 1's patients held", func() bool { return e.Verdicts(parts[1][0]) != nil })
	held(0, false)
	held(1, true)
	for _, id := range parts[1] {
		evWantChanges(t, id, evChangesOnly(f.transitions(id)), "sleep-short:"+ChangeFired)
		if n := f.notifiedOf(id); !slices.Equal(n, []string{"sleep-short:" + ChangeFired}) {
			t.Errorf("%s, taken over: notified %v", id, n)
		}
	}
}

// TestFeedIgnoresOtherPartitions: Feed queues the samples of an owned
// patient only, and an overflow marks only an owned patient for a rebuild.
func TestFeedIgnoresOtherPartitions(t *testing.T) {
	f, parts := ownerFixture(t)
	cfg := evConfig()
	cfg.QueueSize = 1
	e, _ := f.evaluator(cfg)
	e.SetMembership(clustertest.NewFake(2, map[int]int64{0: 1}))
	mine, theirs := parts[0][0], parts[1][0]
	for _, id := range []string{mine, theirs} {
		e.planned.Store(id, struct{}{})
	}
	point := evPoint(evSleep(evAt(10, 7), 300))
	e.Feed(theirs, []ingest.Point{point})
	if n := len(e.queue); n != 0 {
		t.Fatalf("another partition's patient fed: %d queued", n)
	}
	e.Feed(mine, []ingest.Point{point})
	if n := len(e.queue); n != 1 {
		t.Fatalf("an owned patient fed: %d queued, want 1", n)
	}
	e.Feed(theirs, []ingest.Point{point}) // the queue is full
	e.Feed(mine, []ingest.Point{point})
	e.mu.Lock()
	marked := slices.Sorted(maps.Keys(e.rebuild))
	e.mu.Unlock()
	if !slices.Equal(marked, []string{mine}) {
		t.Errorf("overflow marked %v for a rebuild, want only %s", marked, mine)
	}
}

// TestSingleMembershipOwnsEverything: a cluster.Single is no membership
// at all: every patient is owned, nothing fenced, no views written.
func TestSingleMembershipOwnsEverything(t *testing.T) {
	f, parts := ownerFixture(t)
	e, _ := f.evaluator(evConfig())
	e.SetMembership(cluster.NewSingle(cluster.DefaultConfig()))
	runEvaluator(t, f.ctx, e)
	for _, ids := range parts {
		for _, id := range ids {
			if !e.Owns(id) || e.Verdicts(id) == nil {
				t.Errorf("%s: not held by a lone instance", id)
			}
		}
	}
	if views, err := f.reg.PatientViews(f.ctx); err != nil || len(views) != 0 {
		t.Errorf("a lone instance wrote %d views (%v)", len(views), err)
	}
}

// TestEvaluatorFencedWrite: when the fence refuses a partition's writes
// (its lease was lost before Owned said so), its patients' transitions
// are not recorded nor notified, the patients are dropped, the refusal
// is counted, and the log names no patient.
func TestEvaluatorFencedWrite(t *testing.T) {
	f, parts := ownerFixture(t)
	e, prom := f.evaluator(evConfig())
	var logs testservices.LogBuffer
	e.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := clustertest.NewFake(2, map[int]int64{0: 1, 1: 1})
	m.Refuse(1)
	e.SetMembership(m)
	runEvaluator(t, f.ctx, e)
	e.Verdicts("none") // Run's start is over

	wantFiredOnly(t, f, parts[0], parts[1], "fenced")
	for _, id := range parts[1] {
		if e.Owns(id) || e.Verdicts(id) != nil {
			t.Errorf("%s, fenced: still held", id)
		}
	}
	if n := counterValue(t, prom, "patientpulse_analysis_fenced_writes_total"); n != 1 {
		t.Errorf("fenced writes counted: %v, want 1 (the partition is dropped at the first)", n)
	}
	out := logs.String()
	if !strings.Contains(out, "fenced") {
		t.Errorf("no log line of the fenced write:\n%s", out)
	}
	for _, ids := range parts {
		for _, id := range ids {
			if strings.Contains(out, id) {
				t.Errorf("the log names patient %s:\n%s", id, out)
			}
		}
	}
	// A views write of partition 1 is never tried: nothing of it is held.
	if views, _ := f.reg.PatientViews(f.ctx); len(views) != len(parts[0]) {
		t.Errorf("%d views written, want partition 0's %d", len(views), len(parts[0]))
	}
}

// counterValue is the value of the counter without labels named name.
func counterValue(t testing.TB, prom *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// TestViewKeptOnChange: with a membership, an evaluation of new samples
// that changes no verdict leaves the patient's view as the last sweep
// wrote it; one whose verdict changes writes it at the next tick.
func TestViewKeptOnChange(t *testing.T) {
	f, parts := ownerFixture(t)
	cfg := evConfig()
	cfg.Interval = 200 * time.Millisecond
	e, prom := f.evaluator(cfg)
	var clock atomic.Int64
	clock.Store(evAt(10, 12).UnixNano())
	e.now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	e.SetMembership(clustertest.NewFake(2, map[int]int64{0: 1, 1: 1}))
	runEvaluator(t, f.ctx, e)
	p := parts[0][0]
	view := func() registry.PatientView {
		t.Helper()
		v, ok, err := f.reg.PatientView(f.ctx, p)
		if err != nil || !ok {
			t.Fatalf("PatientView(%s): %v, %v", p, ok, err)
		}
		return v
	}
	e.Verdicts(p) // Run's start is over
	if v := view(); !v.JudgedAt.Equal(evAt(10, 12)) || !strings.Contains(string(v.Verdicts), `"holds":true`) {
		t.Fatalf("view after the start: %s at %v", v.Verdicts, v.JudgedAt)
	}
	evaluations := func() float64 { return counterValue(t, prom, "patientpulse_analysis_evaluations_total") }

	before := evaluations()
	clock.Store(evAt(10, 13).UnixNano())
	night := evSleep(evAt(10, 7), 300)
	f.src.put(p, night)
	e.Feed(p, []ingest.Point{evPoint(night)})
	eventually(t, "the new night evaluated", func() bool { return evaluations() > before })
	time.Sleep(200 * time.Millisecond) // a few ticks, each flushing what was kept
	if v := view(); !v.JudgedAt.Equal(evAt(10, 12)) {
		t.Errorf("a verdict unchanged rewrote the view at %v", v.JudgedAt)
	}

	clock.Store(evAt(10, 14).UnixNano())
	long := evSleep(evAt(10, 8), 3000)
	f.src.put(p, long)
	e.Feed(p, []ingest.Point{evPoint(long)})
	eventually(t, "the cleared rule's view written", func() bool {
		v := view()
		return v.JudgedAt.Equal(evAt(10, 14)) && strings.Contains(string(v.Verdicts), `"holds":false`)
	})
}
