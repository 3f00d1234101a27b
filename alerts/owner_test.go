package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/cluster/clustertest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// twoPartitionPatients returns two patient ids in different partitions of
// n, the first in partition 0.
func twoPartitionPatients(t *testing.T, n int) (string, string) {
	t.Helper()
	var a, b string
	for i := 0; a == "" || b == ""; i++ {
		id := fmt.Sprintf("pt-%d", i)
		switch p := cluster.PartitionOf(id, n); {
		case p == 0 && a == "":
			a = id
		case p == 1 && b == "":
			b = id
		}
		if i > 1000 {
			t.Fatal("no patients in partitions 0 and 1")
		}
	}
	return a, b
}

// counterValue is the value of counter c.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v (%d families)", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// escalations is the tiers of the alert's escalations, in order.
func escalations(t *testing.T, reg *registry.Registry, id int64) []string {
	t.Helper()
	evs, err := reg.AlertEvents(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var tiers []string
	for _, ev := range evs {
		if ev.Kind == ChangeEscalated {
			tiers = append(tiers, strings.TrimPrefix(ev.Note, "on call: "))
		}
	}
	return tiers
}

// alertOfPatient is the id of the patient's newest alert of key, 0 for none.
func alertOfPatient(t *testing.T, reg *registry.Registry, patient, key string) int64 {
	t.Helper()
	rows, err := reg.Alerts(context.Background(), registry.AlertFilter{Patient: patient, All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if row.Key == key {
			return row.ID
		}
	}
	return 0
}

// TestManagerOwnership: the manager runs the alerts of the owned
// partitions' patients only; a gained partition's recorded pending work
// and due escalations are taken up at the next tick; a lost one's are
// dropped; a write its fence refuses records nothing and is counted.
func TestManagerOwnership(t *testing.T) {
	pA, pB := twoPartitionPatients(t, 2)
	cfg := DefaultConfig()
	cfg.FireAfter = 5 * mtMin
	cfg.Schedule = mtParse(t, mtSchedule)
	r := mtNewRig(t, cfg, pA, pB)
	ms := clustertest.NewFake(2, map[int]int64{0: 1}) // pA's partition only
	r.m.SetMembership(ms)
	if err := r.m.resume(r.ctx); err != nil {
		t.Fatal(err)
	}
	fire := func(at time.Duration, patient string) {
		s := mtFire(at, "r1", mtCrit, 150)
		s.tr.Patient = patient
		r.clk.set(mtT0.Add(at))
		r.record(*s.tr)
		r.m.handle(r.ctx, *s.tr)
	}
	tick := func(at time.Duration) {
		r.clk.set(mtT0.Add(at))
		r.m.Tick(r.ctx)
	}
	fire(0, pA)
	fire(0, pB) // recorded by pB's owner, another instance: not this one's to raise
	tick(5 * mtMin)
	if alertOfPatient(t, r.reg, pB, "r1") != 0 {
		t.Fatal("an alert opened for a patient of a partition not owned")
	}
	idA := alertOfPatient(t, r.reg, pA, "r1")
	if idA == 0 {
		t.Fatal("no alert opened for the owned partition's patient")
	}
	want := func(id int64, tiers ...string) {
		t.Helper()
		if got := escalations(t, r.reg, id); !slices.Equal(got, tiers) {
			t.Errorf("escalations of alert %d: %q, want %q", id, got, tiers)
		}
	}
	want(idA, "nina, otto")

	// pB's partition is gained at 6m, its raise pending since 0: the alert
	// opens at once.
	ms.Set(map[int]int64{0: 1, 1: 3})
	r.m.OwnershipChanged()
	tick(6 * mtMin)
	idB := alertOfPatient(t, r.reg, pB, "r1")
	if idB == 0 {
		t.Fatal("a gained partition's pending raise did not open its alert")
	}
	want(idB, "nina, otto")

	// pA's partition is lost at 7m: its secondary tier, due at 20m, is
	// not this instance's to notify; pB's, due at 21m, is.
	ms.Set(map[int]int64{1: 3})
	tick(7 * mtMin)
	tick(30 * mtMin)
	want(idA, "nina, otto")
	want(idB, "nina, otto", "dr-lee")

	// Owned still lists pB's partition, but its lease is gone: the
	// consultant tier's write (due at 51m) is refused, nothing recorded,
	// counted, said without patient ids.
	ms.Refuse(1)
	checks := ms.Checks()
	tick(55 * mtMin)
	want(idB, "nina, otto", "dr-lee")
	if ms.Checks() == checks {
		t.Error("the escalation's write ran no Check")
	}
	if n := counterValue(t, r.m.fencedWork); n != 1 {
		t.Errorf("fenced work counted %v, want 1", n)
	}
	logs := r.log.String()
	if !strings.Contains(logs, "no longer owns") || strings.Contains(logs, pB) || strings.Contains(logs, pA) {
		t.Errorf("the fenced drop's log (want it said, without patient ids):\n%s", logs)
	}

	// Both partitions are held again under new epochs at 60m: the tiers
	// that fell due meanwhile are each notified once, none skipped.
	ms.Set(map[int]int64{0: 2, 1: 4})
	tick(60 * mtMin)
	tick(61 * mtMin)
	want(idA, "nina, otto", "dr-lee", "dr-khan")
	want(idB, "nina, otto", "dr-lee", "dr-khan")

	// Staff actions are no partition's: an instance that owns nothing
	// acknowledges.
	ms.Set(map[int]int64{})
	if _, err := r.m.Ack(r.ctx, idA, "otto", ""); err != nil {
		t.Errorf("ack on an instance that owns nothing: %v", err)
	}
}

// TestManagerSingleUnfenced: a manager with cluster.Single behaves as one
// without a membership (the whole escalation table is run by
// TestManagerEscalation without one).
func TestManagerSingleUnfenced(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FireAfter = 0
	cfg.Schedule = mtParse(t, mtSchedule)
	r := mtNewRig(t, cfg)
	r.m.SetMembership(cluster.NewSingle(cluster.DefaultConfig()))
	if err := r.m.resume(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.run([]mtStep{mtFire(0, "r1", mtCrit, 150), mtTick(time.Second), mtTick(50 * mtMin)})
	if got := escalations(t, r.reg, r.alertID(mtP1, "r1")); !slices.Equal(got, []string{"nina, otto", "dr-lee", "dr-khan"}) {
		t.Errorf("escalations %q, want each tier once", got)
	}
	if n := counterValue(t, r.m.fencedWork); n != 0 {
		t.Errorf("fenced work counted %v under Single", n)
	}
}

// pgInstance is one instance of a takeover test: its own registry
// connection, cluster membership (heartbeating until stop) and manager.
type pgInstance struct {
	reg  *registry.Registry
	ms   *cluster.Postgres
	m    *Manager
	clk  *mtClock
	logs *testservices.LogBuffer
	stop context.CancelFunc
}

// takeoverCluster is a short lease and heartbeat, one partition: of two
// live instances, the one whose id sorts first holds it (its fair share),
// whichever joined first, until it dies.
var takeoverCluster = cluster.Config{Partitions: 1, Sessions: 1, Interval: 100 * time.Millisecond, TTL: 500 * time.Millisecond}

// newPGInstance joins the cluster of dsn and builds a manager over its own
// registry connection, with its own clock at mtT0.
func newPGInstance(t *testing.T, ctx context.Context, dsn string, cfg Config) *pgInstance {
	t.Helper()
	reg, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	logs := &testservices.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ms, err := cluster.Join(ctx, dsn, takeoverCluster, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ms.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	in := &pgInstance{reg: reg, ms: ms, clk: &mtClock{t: mtT0}, logs: logs, stop: stop}
	in.m = NewManager(cfg, reg, log, nil)
	in.m.now = in.clk.now
	in.m.SetMembership(ms)
	return in
}

// newPGPair joins two instances to the cluster of dsn and returns them
// owner first, once the owner holds the partition and the other nothing.
// Which one owns it is up to the instances' random ids: the one whose id
// sorts first (in bytes, as cluster ranks them).
func newPGPair(t *testing.T, ctx context.Context, dsn string, cfg Config) (owner, other *pgInstance) {
	t.Helper()
	owner, other = newPGInstance(t, ctx, dsn, cfg), newPGInstance(t, ctx, dsn, cfg)
	if other.ms.Self() < owner.ms.Self() {
		owner, other = other, owner
	}
	waitFor(t, "the partition held by the instance whose id sorts first", func() bool {
		return len(owner.ms.Owned(cluster.SetPartitions)) == 1 && len(other.ms.Owned(cluster.SetPartitions)) == 0
	})
	return owner, other
}

// waitFor polls cond every 20 ms for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestManagerTakeoverPostgres: exactly one escalation per tier per alert
// across a takeover. A owns the partition and escalates the first tier,
// then dies (its heartbeat stops); B takes the partition over, reads what
// A recorded, escalates neither the first tier again nor the second
// before it is due, then the second once when due. A, paused through
// all this and resuming with its stale view, cannot record anything: its
// escalation's Check fails in Postgres.
func TestManagerTakeoverPostgres(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	ctx := t.Context()
	cfg := DefaultConfig()
	cfg.FireAfter, cfg.Tick = 0, 20*time.Millisecond
	cfg.Schedule = mtParse(t, mtSchedule)
	a, b := newPGPair(t, ctx, dsn, cfg) // A holds the partition
	if err := a.reg.AddPatient(ctx, registry.Patient{ID: mtP1}); err != nil {
		t.Fatal(err)
	}

	// A, driven step by step: opens the alert and notifies the first tier.
	if err := a.m.resume(ctx); err != nil {
		t.Fatal(err)
	}
	fired := mtFire(0, "r1", mtCrit, 150).tr
	body, _ := json.Marshal(fired)
	if err := a.reg.RecordTransitions(ctx, mtP1, []registry.Transition{{Patient: mtP1, Rule: "r1", Change: fired.Change, At: fired.At, Body: body}}, nil); err != nil {
		t.Fatal(err)
	}
	a.m.handle(ctx, *fired)
	a.clk.set(mtT0.Add(time.Second))
	a.m.Tick(ctx)
	id := alertOfPatient(t, a.reg, mtP1, "r1")
	if got := escalations(t, a.reg, id); !slices.Equal(got, []string{"nina, otto"}) {
		t.Fatalf("A's escalations %q, want the first tier's", got)
	}

	// B runs as serve runs it: Run, poked on every membership change.
	b.clk.set(mtT0.Add(10 * mtMin))
	runDone := make(chan struct{})
	bctx, stopB := context.WithCancel(ctx)
	go func() { defer close(runDone); b.m.Run(bctx) }()
	go func() {
		for {
			select {
			case <-bctx.Done():
				return
			case <-b.ms.Changes():
				b.m.OwnershipChanged()
			}
		}
	}()
	t.Cleanup(func() { stopB(); <-runDone })

	a.stop() // A dies: no more heartbeats
	killed := time.Now()
	waitFor(t, "B to take the partition over", func() bool { return b.m.owns(mtP1) })
	t.Logf("B took the partition over %v after A stopped heartbeating (TTL %v)", time.Since(killed).Round(time.Millisecond), takeoverCluster.TTL)
	time.Sleep(10 * cfg.Tick)
	if got := escalations(t, a.reg, id); !slices.Equal(got, []string{"nina, otto"}) {
		t.Fatalf("escalations after the takeover at 10m %q, want still only the first tier's", got)
	}
	b.clk.set(mtT0.Add(15 * mtMin))
	waitFor(t, "B to escalate the second tier", func() bool { return len(escalations(t, a.reg, id)) > 1 })
	time.Sleep(10 * cfg.Tick)
	if got := escalations(t, a.reg, id); !slices.Equal(got, []string{"nina, otto", "dr-lee"}) {
		t.Fatalf("escalations after 15m %q, want the first tier's (A) then the second's (B), once each", got)
	}

	// A resumes mid-sweep at 45m with its view from before the takeover:
	// the consultant tier is due, its write is refused by Postgres.
	a.clk.set(mtT0.Add(45 * mtMin))
	a.m.own.mu.Lock()
	stale := len(a.m.own.owned)
	a.m.own.mu.Unlock()
	if stale != 1 {
		t.Fatalf("A's manager sees %d partitions: the test wants its view from before the takeover", stale)
	}
	if err := a.m.sweepActive(ctx); err != nil {
		t.Fatal(err)
	}
	if got := escalations(t, a.reg, id); len(got) != 2 {
		t.Fatalf("the paused instance recorded an escalation: %q", got)
	}
	if n := counterValue(t, a.m.fencedWork); n != 1 {
		t.Errorf("A's fenced work %v, want 1", n)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "no longer owns") || strings.Contains(logs, mtP1) {
		t.Errorf("A's log of the fenced drop (want it, without the patient):\n%s", logs)
	}
	// Nor does a transition reach the registry through A.
	a.m.handle(ctx, *mtFire(45*mtMin, "r2", mtCrit, 160).tr)
	if alertOfPatient(t, a.reg, mtP1, "r2") != 0 {
		t.Error("the paused instance opened an alert")
	}

	b.clk.set(mtT0.Add(45 * mtMin))
	waitFor(t, "B to escalate the third tier", func() bool { return len(escalations(t, a.reg, id)) > 2 })
	time.Sleep(10 * cfg.Tick)
	if got := escalations(t, a.reg, id); !slices.Equal(got, []string{"nina, otto", "dr-lee", "dr-khan"}) {
		t.Errorf("escalations %q, want each tier once", got)
	}
}

// hookRouter routes nothing; before the first escalation's write it runs
// hook once, between the owner's read of the alert and its transaction.
type hookRouter struct {
	once sync.Once
	hook func()
}

func (h *hookRouter) Route(_ context.Context, ev Event) ([]registry.OutboxDelivery, error) {
	if ev.Change == ChangeEscalated {
		h.once.Do(h.hook)
	}
	return nil, nil
}

// TestAckRacesEscalationPostgres: a staff member acknowledges on an
// instance that owns nothing, between the owner's read of a due alert
// and its escalation's write: the registry's transaction decides, the
// acknowledgement stands, and the acknowledged alert is never escalated
// afterwards.
func TestAckRacesEscalationPostgres(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	ctx := t.Context()
	cfg := DefaultConfig()
	cfg.FireAfter = 0
	cfg.Schedule = mtParse(t, mtSchedule)
	a, b := newPGPair(t, ctx, dsn, cfg) // A holds the partition, B nothing
	if err := a.reg.AddPatient(ctx, registry.Patient{ID: mtP1}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.resume(ctx); err != nil {
		t.Fatal(err)
	}
	var acked error
	a.m.Deliver(&hookRouter{hook: func() {
		id := alertOfPatient(t, b.reg, mtP1, "r1")
		b.clk.set(mtT0.Add(30 * time.Second))
		_, acked = b.m.Ack(ctx, id, "otto", "")
	}}, nil)
	fired := mtFire(0, "r1", mtCrit, 150).tr
	a.m.handle(ctx, *fired)
	id := alertOfPatient(t, a.reg, mtP1, "r1")
	if id == 0 {
		t.Fatal("no alert opened")
	}
	for _, at := range []time.Duration{time.Second, 20 * mtMin, 50 * mtMin} {
		a.clk.set(mtT0.Add(at))
		a.m.Tick(ctx)
	}
	if acked != nil {
		t.Fatalf("ack on the instance that owns nothing: %v", acked)
	}
	evs, err := a.reg.AlertEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []string{ChangeOpened, ChangeAcknowledged}) {
		t.Errorf("events %q, want opened then acknowledged, never an escalation after it", kinds)
	}
	row, err := a.reg.AlertByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != registry.AlertAcknowledged || row.AckedBy != "otto" || row.Tier != -1 {
		t.Errorf("alert %s by %q at tier %d, want acknowledged by otto at no tier", row.State, row.AckedBy, row.Tier)
	}
	if s := a.logs.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("the owner logged errors:\n%s", s)
	}
}
