package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// patientpulseActor is who resolves an alert whose condition cleared.
const patientpulseActor = "patientpulse"

// Manager keeps the alerts: it opens, updates and resolves them from the
// analysis' transitions, escalates unacknowledged critical ones along the
// on-call tiers, and carries out staff actions. Every change is stored
// with its outbox rows in one transaction.
type Manager struct {
	cfg    Config
	reg    *registry.Registry
	log    *slog.Logger
	now    func() time.Time
	router Router // nil: events are written without deliveries
	wake   func() // after each change is stored; nil for none

	in      chan analysis.Transition
	stopped chan struct{} // closed when Run returns
	mu      sync.Mutex    // one change at a time in this process
	// pending conditions, by patient and key: held, not yet for
	// FireAfter (raise), or cleared, not yet for ResolveAfter (clear).
	raise map[condKey]analysis.Transition
	clear map[condKey]analysis.Transition
	// holding: the conditions that hold, by patient and key (see
	// holding). Like raise and clear, touched only by Run's goroutine.
	holding map[condKey]*holding
	own     ownership // which patients' alerts it runs (owner.go)

	opened      *prometheus.CounterVec
	escalations prometheus.Counter
	fencedWork  prometheus.Counter
	toAck       prometheus.Histogram
	active      *prometheus.GaugeVec
}

type condKey struct{ patient, key string }

// NewManager returns a manager; its metrics are registered with promReg
// when it is not nil.
func NewManager(cfg Config, reg *registry.Registry, log *slog.Logger, promReg prometheus.Registerer) *Manager {
	m := &Manager{
		cfg: cfg, reg: reg, log: log, now: time.Now,
		in:      make(chan analysis.Transition, 1024),
		stopped: make(chan struct{}),
		raise:   map[condKey]analysis.Transition{},
		clear:   map[condKey]analysis.Transition{},
		holding: map[condKey]*holding{},
		own:     ownership{poke: make(chan struct{}, 1)},
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_alerts_opened_total", Help: "Alerts opened, by severity.",
		}, []string{"severity"}),
		escalations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_alert_escalations_total", Help: "Unacknowledged critical alerts escalated to an on-call tier.",
		}),
		fencedWork: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_alert_fenced_total",
			Help: "Alert changes dropped, nothing written, because another instance owned the patient's partition by then.",
		}),
		toAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "patientpulse_alert_time_to_ack_seconds", Help: "From an alert's opening to its acknowledgement.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600},
		}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patientpulse_alerts", Help: "Alerts not resolved, by severity and state.",
		}, []string{"severity", "state"}),
	}
	if promReg != nil {
		promReg.MustRegister(m.opened, m.escalations, m.fencedWork, m.toAck, m.active)
	}
	return m
}

// Deliver sets who routes each change's deliveries and what wakes their
// readers once a change is stored (the in-process wake-up: wake must not
// block); call it before Run.
func (m *Manager) Deliver(r Router, wake func()) { m.router, m.wake = r, wake }

// Registry is the registry the manager keeps its alerts in.
func (m *Manager) Registry() *registry.Registry { return m.reg }

// Transition takes in one of the analysis' transitions once it is recorded.
// It waits while the manager is behind, so that none is lost: the analysis
// slows, ingest does not. Once Run has returned it waits no more: the
// transition is recorded, and the next start resumes from it.
func (m *Manager) Transition(t analysis.Transition) {
	select {
	case m.in <- t:
	case <-m.stopped:
	}
}

// Run resumes the pending conditions from the recorded transitions, then
// handles transitions and ticks until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	defer close(m.stopped)
	if err := m.resume(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing is lost, the next start resumes
		}
		return err
	}
	tick := time.NewTicker(m.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-m.in:
			m.handle(ctx, t)
		case <-m.own.poke:
			m.reown(ctx)
		case <-tick.C:
			m.Tick(ctx)
		}
	}
}

// keyOf is the alert key of a transition: the rule, or rule#forecast.
func keyOf(t analysis.Transition) string {
	if t.Change == analysis.ChangeForecast || t.Change == analysis.ChangeForecastCleared || t.Change == analysis.ChangeUpdate && t.Forecast {
		return t.Rule + "#forecast"
	}
	return t.Rule
}

// resume rebuilds the pending conditions of the owned partitions' patients
// after a restart (see resumeWhere), then ticks.
func (m *Manager) resume(ctx context.Context) error {
	m.takeOwned()
	if err := m.resumeWhere(ctx, m.owns); err != nil {
		return err
	}
	m.Tick(ctx)
	return nil
}

// resumeWhere rebuilds the pending conditions of the patients want
// accepts from the recorded transitions: a rule whose latest transition
// holds and that has no alert opened since is waiting to fire (one that
// has, open or resolved by staff, is left alone); one whose latest clears
// while its alert is active, to resolve. It notes which conditions hold,
// and since when, for reopen.
func (m *Manager) resumeWhere(ctx context.Context, want func(patient string) bool) error {
	latest, err := m.reg.LatestTransitions(ctx, analysis.ChangeFired, analysis.ChangeCleared)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	forecasts, err := m.reg.LatestTransitions(ctx, analysis.ChangeForecast, analysis.ChangeForecastCleared)
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	var newest map[condKey]registry.AlertRow // lazily: only when a transition fired
	for _, rec := range append(latest, forecasts...) {
		var t analysis.Transition
		if err := json.Unmarshal(rec.Body, &t); err != nil || !want(t.Patient) {
			continue
		}
		if t.Change == analysis.ChangeFired || t.Change == analysis.ChangeForecast {
			if newest == nil {
				if newest, err = m.newestAlerts(ctx); err != nil {
					return fmt.Errorf("alerts: %w", err)
				}
			}
			k := condKey{t.Patient, keyOf(t)}
			row, ok := newest[k]
			m.track(t)
			if h := m.holding[k]; !ok {
				h.looked = true
			} else if a, err := alertOf(row); err == nil && row.State == registry.AlertResolved {
				h.looked, h.newest = true, &a // saves reopen a read
			}
			if ok && !row.OpenedAt.Before(t.At) {
				continue // the transition has had its alert
			}
		}
		m.handle(ctx, t)
	}
	return nil
}

// newestAlerts returns the newest alert of each patient and key, from one
// read of the registry.
func (m *Manager) newestAlerts(ctx context.Context) (map[condKey]registry.AlertRow, error) {
	rows, err := m.reg.Alerts(ctx, registry.AlertFilter{All: true})
	if err != nil {
		return nil, err
	}
	newest := make(map[condKey]registry.AlertRow, len(rows))
	for _, row := range rows {
		k := condKey{row.Patient, row.Key}
		if n, ok := newest[k]; !ok || row.OpenedAt.After(n.OpenedAt) {
			newest[k] = row
		}
	}
	return newest, nil
}

// handle takes one transition in: a condition that holds waits FireAfter
// to raise its alert, one that clears waits ResolveAfter to resolve it.
func (m *Manager) handle(ctx context.Context, t analysis.Transition) {
	if !m.owns(t.Patient) {
		// Taken over meanwhile (recorded, so the owner resumes it), or
		// gained and not yet taken up (resuming reads it).
		if m.reown(ctx); !m.owns(t.Patient) {
			return
		}
	}
	k := condKey{t.Patient, keyOf(t)}
	m.track(t)
	switch t.Change {
	case analysis.ChangeUpdate:
		m.holdsOn(ctx, k, t)
		return
	case analysis.ChangeFired, analysis.ChangeForecast:
		delete(m.clear, k)
		if _, waiting := m.raise[k]; !waiting {
			m.raise[k] = t
		}
	case analysis.ChangeCleared, analysis.ChangeForecastCleared:
		delete(m.raise, k)
		m.clear[k] = t
	case analysis.ChangeNotJudged, analysis.ChangeJudged:
		m.judged(ctx, t)
		return
	}
	m.settle(ctx, k)
}

// settle acts on the pending condition of k once it has waited long
// enough (measured from the transition's time, so a restart does not
// restart the wait).
func (m *Manager) settle(ctx context.Context, k condKey) {
	now := m.now()
	if t, ok := m.raise[k]; ok && now.Sub(t.At) >= m.cfg.FireAfter {
		if err := m.raiseAlert(ctx, t); err != nil && !errors.Is(err, errFenced) {
			m.log.Error("alerts: opening an alert failed; will retry", "err", registry.Redact(err, k.patient))
			return
		}
		delete(m.raise, k)
	}
	if t, ok := m.clear[k]; ok && now.Sub(t.At) >= m.cfg.ResolveAfter {
		if err := m.resolveCleared(ctx, t); err != nil && !errors.Is(err, errFenced) {
			m.log.Error("alerts: resolving an alert failed; will retry", "err", registry.Redact(err, k.patient))
			return
		}
		delete(m.clear, k)
	}
}

// Tick settles the pending conditions that have waited long enough,
// escalates what is due, ends snoozes and lets suppressed alerts in where
// there is room.
func (m *Manager) Tick(ctx context.Context) {
	m.reown(ctx)
	for k := range m.raise {
		m.settle(ctx, k)
	}
	for k := range m.clear {
		m.settle(ctx, k)
	}
	if err := m.sweepActive(ctx); err != nil {
		m.log.Error("alerts: sweep failed", "err", err)
	}
}

// severityRank orders severities.
func severityRank(s string) int {
	switch s {
	case analysis.SeverityCritical:
		return 3
	case analysis.SeverityWarning:
		return 2
	}
	return 1
}

// raiseAlert opens the alert of t, or updates the active one of its key.
func (m *Manager) raiseAlert(ctx context.Context, t analysis.Transition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	key := keyOf(t)
	rows, err := m.activeRows(ctx, t.Patient)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if row.Key == key {
			return m.repeat(ctx, row, t, now)
		}
	}
	return m.open(ctx, t, rows, now, "")
}

// open opens the alert of t, suppressed if the patient's active alerts
// (rows) leave no room for it, with note on its first event. Call with
// m.mu held.
func (m *Manager) open(ctx context.Context, t analysis.Transition, rows []registry.AlertRow, now time.Time, note string) error {
	key := keyOf(t)
	fence, err := m.fence(t.Patient)
	if err != nil {
		return m.fenced(t.Patient, err)
	}
	nonCritical := 0
	for _, row := range rows {
		if row.Severity != analysis.SeverityCritical && row.State != registry.AlertSuppressed {
			nonCritical++
		}
	}
	a := Alert{Patient: t.Patient, Rule: t.Rule, Forecast: strings.HasSuffix(key, "#forecast"), State: registry.AlertFiring,
		Severity: t.Severity, OpenedAt: now, UpdatedAt: now}
	a.take(t)
	change := ChangeOpened
	if a.Severity != analysis.SeverityCritical && nonCritical >= m.cfg.MaxOpenPerPatient {
		a.State, change = registry.AlertSuppressed, ChangeSuppressed
	}
	row := a.row(key, -1)
	ev := Event{Change: change, Alert: a, At: now, Note: note}
	out, err := m.outbox(ctx, ev)
	if err != nil {
		return err
	}
	if _, err := m.reg.OpenAlertFenced(ctx, fence, row, registry.AlertEvent{At: now, Kind: change, Note: note, Body: mustJSON(t)}, out); err != nil {
		return m.fenced(t.Patient, err)
	}
	if h := m.holding[condKey{t.Patient, key}]; h != nil {
		h.looked, h.newest = false, nil // the key's newest alert is this one now
	}
	m.opened.WithLabelValues(a.Severity).Inc()
	m.woken()
	return nil
}

// repeat updates an active alert with a repeat of its condition: the new
// value and sentence, and a higher severity (which makes an acknowledged
// alert fire again).
func (m *Manager) repeat(ctx context.Context, row registry.AlertRow, t analysis.Transition, now time.Time) error {
	a, err := alertOf(row)
	if err != nil {
		return err
	}
	change := ChangeUpdated
	a.take(t)
	if severityRank(t.Severity) > severityRank(row.Severity) {
		change = ChangeSeverityRaised
		a.Severity = t.Severity
		if a.State == registry.AlertAcknowledged {
			a.State, a.AckedAt, a.AckedBy = registry.AlertFiring, nil, ""
		}
		if a.State == registry.AlertSuppressed && a.Severity == analysis.SeverityCritical {
			a.State = registry.AlertFiring // the cap is for non-critical alerts
		}
	}
	_, err = m.ownedUpdate(ctx, a, row, Event{Change: change, At: now})
	return err
}

// resolveCleared resolves the active alert of a cleared condition.
func (m *Manager) resolveCleared(ctx context.Context, t analysis.Transition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	row, ok, err := m.activeRow(ctx, t.Patient, keyOf(t))
	if err != nil || !ok {
		return err
	}
	a, err := alertOf(row)
	if err != nil {
		return err
	}
	now := m.now()
	a.take(t)
	a.State, a.ResolvedAt, a.ResolvedBy = registry.AlertResolved, &now, patientpulseActor
	_, err = m.ownedUpdate(ctx, a, row, Event{Change: ChangeResolved, At: now, Note: "the condition cleared"})
	return err
}

// judged notes on an active alert that its rule can no longer judge, or
// can again.
func (m *Manager) judged(ctx context.Context, t analysis.Transition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	row, ok, err := m.activeRow(ctx, t.Patient, t.Rule)
	if err == nil && ok {
		var a Alert
		if a, err = alertOf(row); err == nil {
			a.Sentence, a.NotJudged = t.Sentence, t.Change == analysis.ChangeNotJudged
			_, err = m.ownedUpdate(ctx, a, row, Event{Change: ChangeUpdated, At: m.now()})
		}
	}
	if err != nil && !errors.Is(err, errFenced) {
		m.log.Error("alerts: noting a rule that cannot judge failed", "err", registry.Redact(err, t.Patient))
	}
}

// activeRows returns the patient's unresolved alerts.
func (m *Manager) activeRows(ctx context.Context, patient string) ([]registry.AlertRow, error) {
	return m.reg.Alerts(ctx, registry.AlertFilter{Patient: patient,
		States: []string{registry.AlertFiring, registry.AlertAcknowledged, registry.AlertSuppressed}})
}

// activeRow returns the patient's unresolved alert of key.
func (m *Manager) activeRow(ctx context.Context, patient, key string) (registry.AlertRow, bool, error) {
	rows, err := m.activeRows(ctx, patient)
	if err != nil {
		return registry.AlertRow{}, false, err
	}
	for _, row := range rows {
		if row.Key == key {
			return row, true, nil
		}
	}
	return registry.AlertRow{}, false, nil
}

// ownedUpdate is update for the manager's own work on the alert of a
// patient of an owned partition, fenced: it returns errFenced, having
// written nothing, when another instance owns the partition.
func (m *Manager) ownedUpdate(ctx context.Context, a Alert, row registry.AlertRow, ev Event) (Alert, error) {
	fence, err := m.fence(row.Patient)
	if err != nil {
		return Alert{}, m.fenced(row.Patient, err)
	}
	stored, err := m.update(ctx, fence, a, row, ev, nil)
	if err != nil {
		return Alert{}, m.fenced(row.Patient, err)
	}
	return stored, nil
}

// update stores a (read as row) with the event, then notifies, and
// returns a as stored. fence, when not nil, runs first in the write's
// transaction (see ownedUpdate); a staff action passes nil.
func (m *Manager) update(ctx context.Context, fence registry.Fence, a Alert, row registry.AlertRow, ev Event, audit *registry.AuditEntry) (Alert, error) {
	a.UpdatedAt = ev.At
	if !a.UpdatedAt.After(row.UpdatedAt) { // the optimistic lock needs a new stamp
		a.UpdatedAt = row.UpdatedAt.Add(time.Microsecond)
		ev.At = a.UpdatedAt
	}
	next := a.row(row.Key, row.Tier)
	if ev.Change == ChangeEscalated {
		next.Tier = m.tierIndex(ev.Tier)
	}
	ev.Alert = a
	out, err := m.outbox(ctx, ev)
	if err != nil {
		return Alert{}, err
	}
	err = m.reg.UpdateAlertFenced(ctx, fence, next, row.UpdatedAt, registry.AlertEvent{At: ev.At, Kind: ev.Change, Actor: ev.Actor,
		Note: ev.Note, Body: mustJSON(map[string]any{"tier": ev.Tier, "on_call": ev.OnCall})}, audit, out)
	if err != nil {
		return Alert{}, err
	}
	m.woken()
	return a, nil
}

// outbox is what ev writes to the outbox: the event and its deliveries.
func (m *Manager) outbox(ctx context.Context, ev Event) (*registry.Outbox, error) {
	out := &registry.Outbox{Kind: ev.Change, At: ev.At, Body: mustJSON(ev)}
	if m.router != nil {
		var err error
		if out.Deliveries, err = m.router.Route(ctx, ev); err != nil {
			return nil, fmt.Errorf("route %s: %w", ev.Change, err)
		}
	}
	return out, nil
}

func (m *Manager) woken() {
	if m.wake != nil {
		m.wake()
	}
}

// schedule is the on-call schedule in force, or nil.
func (m *Manager) schedule() *OnCallSchedule {
	if m.cfg.Rota != nil {
		return m.cfg.Rota.Schedule()
	}
	return m.cfg.Schedule
}

// tierIndex returns the index of the on-call tier named name, or -1.
func (m *Manager) tierIndex(name string) int {
	if s := m.schedule(); s != nil {
		for i, t := range s.Tiers {
			if t.Name == name {
				return i
			}
		}
	}
	return -1
}

// sweepActive escalates unacknowledged critical alerts whose next tier is
// due, re-announces alerts whose snooze ended, lets suppressed alerts in
// where there is room, and counts the active alerts for the metrics.
func (m *Manager) sweepActive(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, err := m.reg.Alerts(ctx, registry.AlertFilter{All: true,
		States: []string{registry.AlertFiring, registry.AlertAcknowledged, registry.AlertSuppressed}})
	if err != nil {
		return err
	}
	now := m.now()
	m.active.Reset()
	room := map[string]int{}
	rows = slices.DeleteFunc(rows, func(row registry.AlertRow) bool { return !m.owns(row.Patient) })
	for _, row := range rows {
		m.active.WithLabelValues(row.Severity, row.State).Inc()
		if row.State != registry.AlertSuppressed && row.Severity != analysis.SeverityCritical {
			room[row.Patient]--
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID }) // oldest suppressed first
	for _, row := range rows {
		if !m.owns(row.Patient) {
			continue // fenced meanwhile: another instance owns it now
		}
		var err error
		switch {
		case row.State == registry.AlertSuppressed:
			if m.cfg.MaxOpenPerPatient+room[row.Patient] > 0 {
				room[row.Patient]-- // it takes the slot
				err = m.change(ctx, row, func(a *Alert) { a.State = registry.AlertFiring }, Event{Change: ChangeUnsuppressed, At: now})
			}
		case !row.SnoozedUntil.IsZero() && !now.Before(row.SnoozedUntil):
			err = m.change(ctx, row, func(a *Alert) { a.SnoozedUntil = nil }, Event{Change: ChangeUpdated, At: now, Note: "the snooze ended"})
		case row.State == registry.AlertFiring && row.Severity == analysis.SeverityCritical && row.SnoozedUntil.IsZero():
			err = m.escalate(ctx, row, now)
		}
		if err != nil && !errors.Is(err, registry.ErrConflict) && !errors.Is(err, errFenced) {
			m.log.Error("alerts: sweeping an alert failed", "err", registry.Redact(err, row.Patient))
		}
	}
	return nil
}

// change applies fn to the alert of row and stores it with ev.
func (m *Manager) change(ctx context.Context, row registry.AlertRow, fn func(*Alert), ev Event) error {
	a, err := alertOf(row)
	if err != nil {
		return err
	}
	fn(&a)
	_, err = m.ownedUpdate(ctx, a, row, ev)
	return err
}

// escalate moves an unacknowledged critical alert on to the on-call tier
// now due, if that is further than the tier notified last. Each tier is
// notified once, in turn: tiers that fell due while nothing ran the alert
// (a restart, an instance that died before its partition was taken over)
// are each notified now, none skipped, each its own change. The tier
// notified last is read from the stored alert and the write is
// conditional on it (update's optimistic lock), so no tier is notified
// twice, whichever instance ran it before.
func (m *Manager) escalate(ctx context.Context, row registry.AlertRow, now time.Time) error {
	s := m.schedule()
	if s == nil {
		return nil
	}
	due := s.TierDue(row.OpenedAt, now)
	if due <= row.Tier {
		return nil
	}
	a, err := alertOf(row)
	if err != nil {
		return err
	}
	for next := row.Tier + 1; next <= due; next++ {
		onCall := s.OnCall(next, now)
		note := "on call: " + strings.Join(onCall, ", ")
		if len(onCall) == 0 {
			note = "nobody is on call in this tier now"
		}
		a.Tier = s.Tiers[next].Name
		stored, err := m.ownedUpdate(ctx, a, row, Event{Change: ChangeEscalated, At: now, Tier: a.Tier, OnCall: onCall, Note: note})
		if err != nil {
			return err
		}
		m.escalations.Inc()
		a, row.UpdatedAt, row.Tier = stored, stored.UpdatedAt, next
	}
	return nil
}
