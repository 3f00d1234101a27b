package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Config sets up the evaluator.
type Config struct {
	Location     *time.Location // the clinic's time zone: days are its days
	MinWearHours int            // hours of samples that make an activity or heart-rate day
	Interval     time.Duration  // a patient is evaluated at most once per Interval
	Sweep        time.Duration  // every patient is evaluated this often (silence, new days, plan changes)
	QueueSize    int            // stored messages waiting to be taken in
}

// DefaultConfig is the usual setup.
func DefaultConfig() Config {
	return Config{Location: time.UTC, MinWearHours: 10, Interval: 30 * time.Second, Sweep: 5 * time.Minute, QueueSize: 10000}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.MinWearHours < 1 || c.MinWearHours > 24 {
		errs = append(errs, errors.New("analysis-min-wear-hours must be 1 to 24"))
	}
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, errors.New("analysis-interval must be at least 100ms"))
	}
	if c.Sweep < c.Interval {
		errs = append(errs, errors.New("analysis-sweep must be at least analysis-interval"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, errors.New("analysis-queue must be at least 1"))
	}
	return errors.Join(errs...)
}

// Source reads patients' stored samples back (ingest.Influx): one
// patient's, when a plan change rebuilds them alone, or many patients' at
// once (one query a measurement), at a start and whenever several
// patients are rebuilt together.
type Source interface {
	Values(ctx context.Context, patient string, measurements []string, from, to time.Time, fn func(ingest.StoredValue) error) error
	// Newest returns the time of the patient's newest stored sample of a
	// measurement (field ""), or of one of its fields; false when none
	// was ever stored.
	Newest(ctx context.Context, patient, measurement, field string) (time.Time, bool, error)
	// PatientsValues and PatientsNewest are Values, of one measurement,
	// and Newest for many patients in one query; fn is called with each
	// value (v.Tags only during the call) or newest time as it is read.
	PatientsValues(ctx context.Context, q ingest.ValuesQuery, fn func(patient string, v ingest.StoredValue) error) error
	PatientsNewest(ctx context.Context, patients []string, measurement, field string, fn func(patient string, t time.Time) error) error
}

var _ Source = (*ingest.Influx)(nil)

// Evaluator keeps every patient with a plan judged: it takes in samples as
// they are stored, evaluates a patient with new data at most once per
// Interval, sweeps every patient each Sweep, and records each transition
// in the registry before it passes it on.
type Evaluator struct {
	cfg    Config
	clk    clock
	reg    *registry.Registry
	src    Source
	log    *slog.Logger
	now    func() time.Time
	notify func(Transition) // after the transition is recorded; may be nil

	queue     chan fed
	mu        sync.Mutex
	rebuild   map[string]bool // patients to rebuild: a plan changed, or their samples overflowed the queue
	planned   sync.Map        // ids of the patients with a plan: Feed passes on only theirs
	asks      chan verdictAsk // Verdicts' questions to Run
	loads     chan loadAsk    // Load's requests to Run
	stopped   chan struct{}   // closed when Run returns
	patients  map[string]*patient
	chunk     int   // patients a bulk read covers (loadChunk)
	withPlans int   // patients with a plan at the last pollPlans, for loadMany; on Run's goroutine
	procsFrom int64 // the audit log's id up to which procedure changes are known (pollPlans)

	// Ownership (owner.go): members and shared are set before Run; owned
	// is the snapshot Feed and Owns read from any goroutine, nil when
	// every patient is owned; views are written at the next flush
	// (views.go), on Run's goroutine.
	members cluster.Membership
	shared  bool // write views: several instances share the patients
	owned   atomic.Pointer[ownedSet]
	reowned chan struct{} // OwnershipChanged's wake-up to Run
	reload  atomic.Bool   // Reload: every owned partition is read again at the next reown
	views   map[string]registry.PatientView

	transitions *prometheus.CounterVec
	fenced      prometheus.Counter
	overflows   prometheus.Counter
	rereads     prometheus.Counter
	evaluations prometheus.Counter
	patientsG   prometheus.Gauge
}

// fed is one stored message's samples.
type fed struct {
	patient string
	samples []Sample
}

// NewEvaluator returns an evaluator; notify, which may be nil, is called
// with every transition once it is recorded. Its metrics are registered
// with reg when it is not nil.
func NewEvaluator(cfg Config, reg *registry.Registry, src Source, log *slog.Logger, promReg prometheus.Registerer, notify func(Transition)) *Evaluator {
	e := &Evaluator{
		cfg: cfg, clk: clock{cfg.Location}, reg: reg, src: src, log: log, now: time.Now, notify: notify,
		queue:    make(chan fed, cfg.QueueSize),
		rebuild:  map[string]bool{},
		asks:     make(chan verdictAsk),
		loads:    make(chan loadAsk),
		stopped:  make(chan struct{}),
		patients: map[string]*patient{},
		chunk:    loadChunk,
		reowned:  make(chan struct{}, 1),
		views:    map[string]registry.PatientView{},
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_analysis_fenced_writes_total",
			Help: "Writes of transitions or views refused because this instance no longer owned the patient's partition.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_analysis_transitions_total",
			Help: "Changes of rules' verdicts, by change and severity.",
		}, []string{"change", "severity"}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_analysis_queue_overflows_total",
			Help: "Stored messages the analysis queue had no room for; their patients are rebuilt from InfluxDB instead.",
		}),
		rereads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_analysis_rereads_total",
			Help: "Stored messages whose samples were no newer than those held and could not all be told from repeats (a resent document, another device's late samples); their patients are rebuilt from InfluxDB instead.",
		}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_analysis_evaluations_total",
			Help: "Evaluations of a patient's rules.",
		}),
		patientsG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_analysis_patients",
			Help: "Patients with a plan that analysis holds in memory.",
		}),
	}
	if promReg != nil {
		promReg.MustRegister(e.transitions, e.overflows, e.rereads, e.evaluations, e.patientsG, e.fenced)
	}
	return e
}

// Feed hands the evaluator a patient's points once they are stored. It
// never blocks: when the queue is full the patient is rebuilt from
// InfluxDB instead, so nothing is missed.
func (e *Evaluator) Feed(patientID string, points []ingest.Point) {
	if _, planned := e.planned.Load(patientID); !planned {
		return // no plan: nothing to judge (a plan's arrival reads the history back)
	}
	if _, _, owned := e.ownerOf(patientID); !owned {
		return // another instance's patient
	}
	select {
	case e.queue <- fed{patientID, SamplesOf(points)}:
	default:
		e.overflows.Inc()
		e.mu.Lock()
		e.rebuild[patientID] = true
		e.mu.Unlock()
	}
}

// PlanChanged makes the evaluator reload the patient's plan and rebuild
// their state, at its next tick.
func (e *Evaluator) PlanChanged(patientID string) {
	e.mu.Lock()
	e.rebuild[patientID] = true
	e.mu.Unlock()
}

// Run loads every patient with a plan, then evaluates until ctx ends. It
// returns an error only when the start-up load fails for good (the
// registry is unreadable); InfluxDB being unreachable only delays a
// patient's rebuild.
func (e *Evaluator) Run(ctx context.Context) error {
	defer close(e.stopped)
	if e.members != nil {
		e.owned.Store(&ownedSet{e.members.Owned(cluster.SetPartitions)})
	}
	if err := e.sweep(ctx, true); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while loading: the next start loads again
		}
		return err
	}
	tick := time.NewTicker(max(e.cfg.Interval/4, 50*time.Millisecond))
	defer tick.Stop()
	sweep := time.NewTicker(e.cfg.Sweep)
	defer sweep.Stop()
	plans := time.NewTicker(min(10*time.Second, e.cfg.Sweep))
	defer plans.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-e.queue:
			// A patient not evaluated for an interval is evaluated at once:
			// a first alarming sample is not kept waiting.
			if p := e.take(f); p != nil {
				if now := e.now(); now.Sub(p.lastEval) >= e.cfg.Interval {
					e.evaluate(ctx, p, now, false)
				}
			}
		case <-tick.C:
			e.rebuildMarked(ctx)
			now := e.now()
			for _, p := range e.patients {
				if p.dirty && now.Sub(p.lastEval) >= e.cfg.Interval {
					e.evaluate(ctx, p, now, false)
				}
			}
			e.flushViews(ctx)
		case <-sweep.C:
			if err := e.sweep(ctx, false); err != nil {
				e.log.Error("analysis sweep failed", "err", err)
			}
		case ask := <-e.asks:
			e.answer(ask)
		case ask := <-e.loads:
			ask.done <- e.loadNow(ctx, ask.ids)
			e.flushViews(ctx)
		case <-e.reowned:
			e.reown(ctx)
		case <-plans.C:
			if err := e.pollPlans(ctx, false); err != nil {
				e.log.Error("analysis: reading plan versions failed", "err", err)
			}
		}
	}
}

// take adds a stored message's samples to its patient, and returns the
// patient, or nil when none is held or when it is marked to be read back
// from InfluxDB instead (patient.take) and judged once it is.
func (e *Evaluator) take(f fed) *patient {
	p := e.patients[f.patient]
	if p == nil || !p.take(e.clk, f.samples) {
		return p
	}
	e.rereads.Inc()
	e.mu.Lock()
	e.rebuild[f.patient] = true
	e.mu.Unlock()
	return nil
}

// sweep picks up new and changed plans (the admin commands change them
// from another process) and evaluates every patient. At start-up it loads
// every patient.
func (e *Evaluator) sweep(ctx context.Context, start bool) error {
	if err := e.pollPlans(ctx, start); err != nil {
		return err
	}
	e.rebuildMarked(ctx)
	now := e.now()
	for _, p := range e.patients {
		e.evaluate(ctx, p, now, true)
	}
	e.flushViews(ctx)
	return nil
}

// pollPlans marks for rebuilding the patients whose newest plan version is
// not the one held (every patient with a plan, at start-up): plans applied
// by the admin commands, from another process.
func (e *Evaluator) pollPlans(ctx context.Context, all bool) error {
	latest, err := e.reg.LatestPlanVersions(ctx)
	if err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	e.withPlans = len(latest)
	// Procedures planned or done (another instance's API, or this one's)
	// are judged by timing rules: their patients are read again.
	last, changedProcs, err := e.reg.ProcedureChanges(ctx, e.procsFrom)
	if err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	e.procsFrom = last
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range changedProcs {
		if p := e.patients[id]; p != nil && p.timed() {
			e.rebuild[id] = true
		}
	}
	for id, v := range latest {
		if _, _, owned := e.ownerOf(id); !owned {
			continue
		}
		p := e.patients[id]
		if all || p == nil || p.versions[len(p.versions)-1].Version != v {
			e.rebuild[id] = true
		}
	}
	// A patient held but no longer listed was deactivated: no longer judged.
	for id := range e.patients {
		if _, listed := latest[id]; !listed {
			delete(e.patients, id)
			delete(e.views, id)
			delete(e.rebuild, id)
		}
	}
	return nil
}

// rebuildMarked reloads the plans and rebuilds the state of every patient
// marked for it. A patient whose rebuild fails stays marked.
func (e *Evaluator) rebuildMarked(ctx context.Context) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.rebuild))
	for id := range e.rebuild {
		if _, _, owned := e.ownerOf(id); owned { // PlanChanged hears of every patient's plan
			ids = append(ids, id)
		}
	}
	clear(e.rebuild)
	e.mu.Unlock()
	e.rebuildNow(ctx, ids)
}

// rebuildNow rebuilds the patients: one alone as it always was (a plan
// changed), several in bulk (loadMany). It marks again the patients whose
// rebuild failed, and returns how many, and the first error.
func (e *Evaluator) rebuildNow(ctx context.Context, ids []string) (int, error) {
	defer func() { e.patientsG.Set(float64(len(e.patients))) }()
	var failed []string
	var first error
	switch len(ids) {
	case 0:
		return 0, nil
	case 1:
		if err := e.load(ctx, ids[0]); err != nil {
			failed, first = ids, errors.New(registry.Redact(err, ids[0]))
		}
	default:
		failed, first = e.loadMany(ctx, ids)
	}
	if len(failed) == 0 {
		return 0, nil
	}
	if ctx.Err() == nil {
		e.log.Warn("analysis: rebuilding patients failed; will retry", "patients", len(failed), "err", first)
	}
	e.mu.Lock()
	for _, id := range failed {
		e.rebuild[id] = true
	}
	e.mu.Unlock()
	return len(failed), first
}

// load reads the patient's plan versions and rule states from the
// registry and their samples from InfluxDB, one measurement at a time,
// replacing what is held.
func (e *Evaluator) load(ctx context.Context, id string) error {
	p, err := e.prepare(ctx, id)
	if err != nil || p == nil {
		if err == nil {
			delete(e.patients, id)
		}
		return err
	}
	now := e.now()
	// Samples stored up to now are read back, each measurement as far as
	// its rules look; those still in the queue may then come a second
	// time, which series.add tells from new ones.
	back := p.readBack()
	for _, m := range slices.Sorted(maps.Keys(back)) {
		from := e.clk.start(e.clk.dayOf(now) - day(back[m]))
		err = e.src.Values(ctx, id, []string{m}, from, now.Add(time.Hour), func(v ingest.StoredValue) error {
			if s, ok := sampleOf(v); ok {
				p.add(e.clk, s)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// A silence counts from the newest sample of its stream, which may be
	// older than anything read back.
	for _, s := range p.series {
		if s.newest != 0 || !p.silenced(s.key) {
			continue
		}
		t, ok, err := e.src.Newest(ctx, id, s.key.measurement, s.key.field)
		if err != nil {
			return err
		}
		if ok && s.newest == 0 {
			s.newest = t.Unix()
		}
	}
	p.dirty, p.announce = true, true
	e.patients[id] = p
	return nil
}

// prepare reads the patient's plan versions and rule states from the
// registry: the patient, without samples yet, or nil without a plan
// (Feed then passes on none of their samples). It may run on any
// goroutine: it touches no patient held.
func (e *Evaluator) prepare(ctx context.Context, id string) (*patient, error) {
	stored, err := e.reg.PlanVersions(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		e.planned.Delete(id)
		return nil, nil
	}
	versions, err := versionsOf(id, stored)
	if err != nil {
		return nil, err
	}
	// From here on, Feed passes the patient's samples on: those stored
	// while the history is read back come twice at worst, which
	// series.add tells from new ones.
	e.planned.Store(id, struct{}{})
	p := newPatient(id, versions)
	states, err := e.reg.RuleStates(ctx, id)
	if err != nil {
		return nil, err
	}
	for rule, raw := range states {
		var st ruleState
		if err := json.Unmarshal(raw, &st); err == nil {
			p.states.set(rule, st)
		}
	}
	if p.timed() {
		if p.procedures, err = ProceduresOf(ctx, e.reg, id); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// versionsOf decodes a patient's stored plan versions.
func versionsOf(id string, stored []registry.PlanVersion) ([]*Plan, error) {
	versions := make([]*Plan, 0, len(stored))
	for _, sv := range stored {
		var pl Plan
		if err := json.Unmarshal(sv.Body, &pl); err != nil {
			return nil, fmt.Errorf("plan v%d: %w", sv.Version, err)
		}
		pl.Version, pl.Effective, pl.Patient = sv.Version, sv.Effective, id
		versions = append(versions, &pl)
	}
	return versions, nil
}

// evaluate judges every rule of the version in force and records the
// changes. With updates (at a sweep), and at the first evaluation after a
// plan change, the rules that hold on are passed on as ChangeUpdate
// transitions too, which are not recorded.
func (e *Evaluator) evaluate(ctx context.Context, p *patient, now time.Time, updates bool) {
	updates = updates || p.announce
	p.dirty, p.lastEval = false, now
	e.evaluations.Inc()
	p.trimDoses(now)
	// The patient's view (several instances) is kept at a sweep, a
	// takeover or a plan change, and whenever a verdict changes: judging
	// with verdicts costs about three times judging without (their
	// sentences), too much for every evaluation of new samples, whose
	// values reach the other instances at the next sweep.
	withVerdicts := e.shared && updates
	ts, changed, verdicts := judgeEvery(p, e.clk, now, e.cfg.MinWearHours, withVerdicts, updates)
	if e.shared {
		defer func() {
			if e.patients[p.id] != p || p.dirty { // dropped, or what it says not recorded
				return
			}
			if !withVerdicts && len(ts) == 0 && len(changed) == 0 {
				return
			}
			if !withVerdicts {
				_, _, verdicts = judgeEvery(p, e.clk, now, e.cfg.MinWearHours, true, false)
			}
			e.noteView(p, verdicts, now)
		}()
	}
	if len(ts) == 0 && len(changed) == 0 {
		p.announce = false
		return
	}
	records, states := recordsOf(p.id, ts, changed)
	var view *registry.PatientView
	if e.shared && (len(records) > 0 || len(states) > 0) {
		// The view rides in the transitions' transaction: on Postgres a
		// transaction of its own would wait for the write lock again.
		if !withVerdicts {
			_, _, verdicts = judgeEvery(p, e.clk, now, e.cfg.MinWearHours, true, false)
			withVerdicts = true
		}
		view = e.newView(p, verdicts, now)
	}
	if err := e.record(ctx, p.id, records, states, view); isFenced(err) {
		e.fencedOut(e.members.PartitionOf(p.id)) // records nothing, passes nothing on, drops p
		return
	} else if err != nil {
		// Not recorded: keep the old states, so the next evaluation
		// reports the same changes again.
		e.log.Error("analysis: recording transitions failed", "err", registry.Redact(err, p.id))
		p.dirty = true
		return
	}
	p.apply(changed)
	p.announce = false
	if view != nil {
		p.view = view
		delete(e.views, p.id) // an older one kept for the next flush
	}
	for _, t := range ts {
		if t.Change != ChangeUpdate {
			e.transitions.WithLabelValues(t.Change, t.Severity).Inc()
		}
		if e.notify != nil {
			e.notify(t)
		}
	}
}

// recordsOf is what evaluate records of a judgement: the transitions but
// updates, and the changed rule states (nil: the rule's state is gone).
func recordsOf(id string, ts []Transition, changed map[string]*ruleState) ([]registry.Transition, map[string][]byte) {
	var records []registry.Transition
	for _, t := range ts {
		if t.Change == ChangeUpdate {
			continue
		}
		body, _ := json.Marshal(t)
		records = append(records, registry.Transition{Patient: id, Rule: t.Rule, Change: t.Change, At: t.At, Body: body})
	}
	states := map[string][]byte{}
	for rule, st := range changed {
		if st == nil {
			states[rule] = nil
			continue
		}
		states[rule], _ = json.Marshal(st)
	}
	return records, states
}

// record records the patient's transitions, changed rule states and view
// (when not nil) under the fence of their partition. Updates of rules
// that hold on alone (a sweep, a takeover) record nothing, and need no
// transaction: a takeover of patients whose rules hold writes only for
// those that changed.
func (e *Evaluator) record(ctx context.Context, id string, records []registry.Transition, states map[string][]byte, view *registry.PatientView) error {
	if len(records) == 0 && len(states) == 0 {
		return nil
	}
	part, epoch, _ := e.ownerOf(id)
	return e.reg.RecordTransitionsFenced(ctx, e.fence(part, epoch), id, records, states, view)
}

// verdictAsk is a question of Verdicts to Run.
type verdictAsk struct {
	patient string
	reply   chan []Verdict
}

// Verdicts returns what each rule of the patient's plan says now; nil when
// the patient has no plan in force, or when the evaluator does not answer
// within 5 seconds (it is not running, or busy rebuilding).
func (e *Evaluator) Verdicts(patientID string) []Verdict {
	ask := verdictAsk{patientID, make(chan []Verdict, 1)}
	timeout := time.After(5 * time.Second)
	select {
	case e.asks <- ask:
	case <-e.stopped:
		return nil
	case <-timeout:
		return nil
	}
	select {
	case vs := <-ask.reply:
		return vs
	case <-timeout:
		return nil
	}
}

// answer judges a patient's rules for Verdicts, changing nothing.
func (e *Evaluator) answer(ask verdictAsk) {
	var vs []Verdict
	if p := e.patients[ask.patient]; p != nil {
		_, _, vs = judgeEvery(p, e.clk, e.now(), e.cfg.MinWearHours, true, false)
	}
	ask.reply <- vs
}
