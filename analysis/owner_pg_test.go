package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestStaleOwnerIsFenced runs two instances on one Postgres database, each
// with its own registry handle and cluster.Join (leases of 1 s): A judges
// every patient and records their transitions; A's heartbeat stops (as in
// a pause) while its evaluator goes on believing it owns every partition,
// and B takes every partition over. A plan change makes A's evaluator try
// to record transitions: the lease's epoch check refuses them, nothing is
// recorded or notified. B's evaluator then records them once, and the
// views it writes are read from A's registry handle.
func TestStaleOwnerIsFenced(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	ctx := t.Context()
	open := func() *registry.Registry {
		reg, err := registry.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("registry.Open: %v", err)
		}
		t.Cleanup(func() { reg.Close() })
		return reg
	}
	regA, regB := open(), open()
	f := &evFixture{t: t, ctx: ctx, reg: regA, src: newEvSource(), now: evAt(10, 12)}
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("pg-%d", i)
		ids = append(ids, id)
		f.addPatient(id)
		f.savePlan(id, evEff1, nil, evSleepRule("sleep-short", 420))
		for d := 3; d <= 9; d++ {
			f.src.put(id, evSleep(evAt(d, 7), 300))
		}
	}
	ccfg := cluster.Config{Address: "test", Partitions: 4, Sessions: 1, Interval: 200 * time.Millisecond, TTL: time.Second}
	join := func() (*cluster.Postgres, context.CancelFunc) {
		m, err := cluster.Join(ctx, dsn, ccfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("Join: %v", err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { m.Run(runCtx); close(done) }()
		t.Cleanup(func() { stop(); <-done; m.Close(context.Background()) })
		return m, func() { stop(); <-done }
	}
	cfg := evConfig()
	cfg.Interval, cfg.Sweep = 200*time.Millisecond, time.Minute

	mA, pauseA := join()
	if n := len(mA.Owned(cluster.SetPartitions)); n != 4 {
		t.Fatalf("the first instance owns %d partitions, want 4", n)
	}
	eA, promA := f.evaluator(cfg)
	var logsA testservices.LogBuffer
	eA.log = slog.New(slog.NewTextHandler(&logsA, nil))
	eA.SetMembership(mA) // A never hears of a change: it believes it owns everything
	runEvaluator(t, ctx, eA)
	for _, id := range ids {
		if eA.Verdicts(id) == nil {
			t.Fatalf("%s not held by A", id)
		}
		evWantChanges(t, id, evChangesOnly(f.transitions(id)), "sleep-short:"+ChangeFired)
	}

	pauseA()
	mB, _ := join()
	eventually(t, "B owns every partition", func() bool { return len(mB.Owned(cluster.SetPartitions)) == 4 })
	if n := counterValue(t, promA, "patientpulse_analysis_fenced_writes_total"); n != 0 {
		t.Fatalf("A fenced before it wrote anything: %v", n)
	}

	p := ids[0]
	f.reg = regB
	f.savePlan(p, evAt(10, 0), nil, evSleepRule("sleep-shorter", 400))
	eA.PlanChanged(p)
	eventually(t, "A's write fenced", func() bool {
		return counterValue(t, promA, "patientpulse_analysis_fenced_writes_total") == 1
	})
	f.reg = regA
	evWantChanges(t, p, evChangesOnly(f.transitions(p)), "sleep-short:"+ChangeFired)
	if n := f.notifiedOf(p); !slices.Equal(n, []string{"sleep-short:" + ChangeFired}) {
		t.Errorf("A notified %v of %s, want only the first firing", n, p)
	}
	if eA.Owns(p) || eA.Verdicts(p) != nil {
		t.Errorf("A still holds %s after its write was fenced", p)
	}
	if strings.Contains(logsA.String(), p) {
		t.Errorf("A's log names the patient:\n%s", logsA.String())
	}

	eB := NewEvaluator(cfg, regB, f.src, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
	eB.now = eA.now
	eB.SetMembership(mB)
	runEvaluator(t, ctx, eB)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-mB.Changes():
				eB.OwnershipChanged()
			}
		}
	}()
	eB.Verdicts("none") // Run's start is over: every patient judged
	evWantChanges(t, p, evChangesOnly(f.transitions(p)), "sleep-short:"+ChangeFired, "sleep-shorter:"+ChangeFired,
		"sleep-short:"+ChangeCleared)
	for _, id := range ids[1:] {
		evWantChanges(t, id, evChangesOnly(f.transitions(id)), "sleep-short:"+ChangeFired)
	}
	v, ok, err := regA.PatientView(ctx, p)
	if err != nil || !ok || !strings.Contains(string(v.Verdicts), `"rule":"sleep-shorter"`) || strings.Contains(string(v.Verdicts), `"rule":"sleep-short"`) {
		t.Errorf("view of %s read on A: %s, %v, %v; want B's verdict of sleep-shorter", p, v.Verdicts, ok, err)
	}
}
