package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrConflict reports that an alert changed since it was read: another
// staff member or process got there first.
var ErrConflict = errors.New("changed meanwhile")

// Alert states, as stored.
const (
	AlertFiring       = "firing"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
	AlertSuppressed   = "suppressed" // over a patient's cap of non-critical alerts
)

// AlertRow is one alert as stored. The alerts stage defines Body (JSON of
// what it shows); the other fields are what the registry queries on.
type AlertRow struct {
	ID           int64
	Patient      string
	Key          string // the rule id, or rule id + "#forecast"
	State        string
	Severity     string
	OpenedAt     time.Time
	UpdatedAt    time.Time
	AckedAt      time.Time // zero when not acknowledged
	AckedBy      string
	ResolvedAt   time.Time
	ResolvedBy   string
	SnoozedUntil time.Time // zero when not snoozed
	Tier         int       // the on-call tier notified last; -1 none
	Body         []byte
}

// AlertEvent is one step in an alert's life.
type AlertEvent struct {
	ID      int64
	AlertID int64
	At      time.Time
	Kind    string // opened, updated, severity_raised, acknowledged, resolved, snoozed, escalated, ...
	Actor   string // a staff username, or "" for patientpulse itself
	Note    string
	Body    []byte // what the alerts stage keeps of the event
}

const alertColumns = `id, patient_id, key, state, severity, opened_at, updated_at, acked_at, acked_by,
	resolved_at, resolved_by, snoozed_until, tier, body`

// OpenAlert stores a new alert, its first event and, when out is not
// nil, the event's outbox rows, and returns the alert's id. It returns an
// error wrapping ErrExists when the patient has an unresolved alert with
// that key.
func (r *Registry) OpenAlert(ctx context.Context, a AlertRow, ev AlertEvent, out *Outbox) (int64, error) {
	return r.OpenAlertFenced(ctx, nil, a, ev, out)
}

// OpenAlertFenced is OpenAlert made on behalf of the patient's cluster
// partition: fence, when not nil, runs first in the transaction, and its
// error (cluster.ErrFenced) refuses the whole write.
func (r *Registry) OpenAlertFenced(ctx context.Context, fence Fence, a AlertRow, ev AlertEvent, out *Outbox) (int64, error) {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if fence != nil {
			if err := fence(ctx, tx); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, r.q(`INSERT INTO alerts (patient_id, key, state, severity, opened_at, updated_at,
			snoozed_until, tier, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`),
			a.Patient, a.Key, a.State, a.Severity, formatTime(a.OpenedAt), formatTime(a.UpdatedAt),
			nullTime(a.SnoozedUntil), a.Tier, string(a.Body)).Scan(&a.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrExists
		}
		if err != nil {
			return err
		}
		ev.AlertID = a.ID
		if err := r.addAlertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return r.addOutbox(ctx, tx, a.ID, a.Patient, out)
	})
	if err != nil {
		return 0, fmt.Errorf("open alert %s of %s: %w", a.Key, a.Patient, err)
	}
	return a.ID, nil
}

// UpdateAlert stores a's new state with its event and, when audit or out
// is not nil, an audit entry and the event's outbox rows, in one
// transaction. It changes the row only if it
// is still as it was at a's previous UpdatedAt (prev): otherwise it
// returns an error wrapping ErrConflict.
func (r *Registry) UpdateAlert(ctx context.Context, a AlertRow, prev time.Time, ev AlertEvent, audit *AuditEntry, out *Outbox) error {
	return r.UpdateAlertFenced(ctx, nil, a, prev, ev, audit, out)
}

// UpdateAlertFenced is UpdateAlert made on behalf of the patient's cluster
// partition (an escalation, an automatic resolution): fence, when not nil,
// runs first in the transaction, and its error (cluster.ErrFenced) refuses
// the whole write. Staff actions are no partition's work: they use
// UpdateAlert, and the optimistic lock on prev decides a race with the
// partition's owner.
func (r *Registry) UpdateAlertFenced(ctx context.Context, fence Fence, a AlertRow, prev time.Time, ev AlertEvent, audit *AuditEntry, out *Outbox) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if fence != nil {
			if err := fence(ctx, tx); err != nil {
				return err
			}
		}
		err := r.execOne(ctx, tx, ErrConflict, `UPDATE alerts SET state = ?, severity = ?, updated_at = ?, acked_at = ?, acked_by = ?,
			resolved_at = ?, resolved_by = ?, snoozed_until = ?, tier = ?, body = ? WHERE id = ? AND updated_at = ?`,
			a.State, a.Severity, formatTime(a.UpdatedAt), nullTime(a.AckedAt), a.AckedBy, nullTime(a.ResolvedAt), a.ResolvedBy,
			nullTime(a.SnoozedUntil), a.Tier, string(a.Body), a.ID, formatTime(prev))
		if err != nil {
			return err
		}
		ev.AlertID = a.ID
		if err := r.addAlertEvent(ctx, tx, ev); err != nil {
			return err
		}
		if audit != nil {
			if err := r.audit(ctx, tx, *audit); err != nil {
				return err
			}
		}
		return r.addOutbox(ctx, tx, a.ID, a.Patient, out)
	})
	if err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	return nil
}

func (r *Registry) addAlertEvent(ctx context.Context, tx *sql.Tx, ev AlertEvent) error {
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO alert_events (alert_id, at, kind, actor, note, body) VALUES (?, ?, ?, ?, ?, ?)`),
		ev.AlertID, formatTime(ev.At), ev.Kind, ev.Actor, ev.Note, string(ev.Body))
	return err
}

// AlertByID returns the alert, or an error wrapping ErrNotFound.
func (r *Registry) AlertByID(ctx context.Context, id int64) (AlertRow, error) {
	a, err := scanAlert(r.db.QueryRowContext(ctx, r.q(`SELECT `+alertColumns+` FROM alerts WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return AlertRow{}, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return AlertRow{}, fmt.Errorf("alert %d: %w", id, err)
	}
	return a, nil
}

// AlertFilter selects alerts; zero fields select everything.
type AlertFilter struct {
	States   []string
	Patient  string
	Severity string
	Before   int64 // ids below this: the next page
	// Scoped restricts the alerts to those of the patients in Within (none
	// when Within is empty) before Limit applies, so that a page, and its
	// last id, hold only alerts its reader may see.
	Scoped bool
	Within []string
	Limit  int  // at most this many (default and maximum 1000)
	All    bool // every match, whatever Limit says: for the server's own sweeps, not for answers to a request
}

// Alerts returns the alerts f selects, newest first.
func (r *Registry) Alerts(ctx context.Context, f AlertFilter) ([]AlertRow, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	if f.Patient != "" {
		where, args = append(where, "patient_id = ?"), append(args, f.Patient)
	}
	if f.Severity != "" {
		where, args = append(where, "severity = ?"), append(args, f.Severity)
	}
	if f.Scoped {
		if len(f.Within) == 0 {
			return nil, nil
		}
		where = append(where, "patient_id IN (?"+strings.Repeat(", ?", len(f.Within)-1)+")")
		for _, p := range f.Within {
			args = append(args, p)
		}
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	query := `SELECT ` + alertColumns + ` FROM alerts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC"
	if !f.All {
		query, args = query+" LIMIT ?", append(args, f.Limit)
	}
	return queryAll(ctx, r, "alerts", query, args, scanAlert)
}

// AlertNotes returns the events of the alerts that carry a note (what
// staff said on acknowledging, resolving or snoozing), oldest first, by
// alert id.
func (r *Registry) AlertNotes(ctx context.Context, alertIDs []int64) (map[int64][]AlertEvent, error) {
	out := map[int64][]AlertEvent{}
	for ids := range slices.Chunk(alertIDs, 500) {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		evs, err := queryAll(ctx, r, "alert notes",
			`SELECT id, alert_id, at, kind, actor, note FROM alert_events WHERE note <> '' AND alert_id IN (?`+
				strings.Repeat(", ?", len(ids)-1)+`) ORDER BY id`, args,
			func(s scanner) (AlertEvent, error) {
				var ev AlertEvent
				var at string
				if err := s.Scan(&ev.ID, &ev.AlertID, &at, &ev.Kind, &ev.Actor, &ev.Note); err != nil {
					return ev, err
				}
				var err error
				ev.At, err = parseTime(at)
				return ev, err
			})
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			out[ev.AlertID] = append(out[ev.AlertID], ev)
		}
	}
	return out, nil
}

// AlertEvents returns the alert's events, oldest first.
func (r *Registry) AlertEvents(ctx context.Context, alertID int64) ([]AlertEvent, error) {
	return queryAll(ctx, r, fmt.Sprintf("alert events of %d", alertID),
		`SELECT id, at, kind, actor, note, body FROM alert_events WHERE alert_id = ? ORDER BY id`, []any{alertID},
		func(s scanner) (AlertEvent, error) {
			ev := AlertEvent{AlertID: alertID}
			var at, body string
			if err := s.Scan(&ev.ID, &at, &ev.Kind, &ev.Actor, &ev.Note, &body); err != nil {
				return ev, err
			}
			ev.Body = []byte(body)
			var err error
			ev.At, err = parseTime(at)
			return ev, err
		})
}

// OnCallPatients returns the patients on-call staff may see, sorted: those
// with a firing or acknowledged alert, or one resolved since resolvedSince
// (to follow up on what they handled).
func (r *Registry) OnCallPatients(ctx context.Context, resolvedSince time.Time) ([]string, error) {
	return queryAll(ctx, r, "on-call patients",
		`SELECT DISTINCT patient_id FROM alerts WHERE state IN ('firing', 'acknowledged')
			OR (state = 'resolved' AND resolved_at >= ?) ORDER BY patient_id`,
		[]any{formatTime(resolvedSince)}, scanString)
}

func scanAlert(s scanner) (AlertRow, error) {
	var a AlertRow
	var opened, updated, body string
	var acked, resolved, snoozed sql.NullString
	if err := s.Scan(&a.ID, &a.Patient, &a.Key, &a.State, &a.Severity, &opened, &updated, &acked, &a.AckedBy,
		&resolved, &a.ResolvedBy, &snoozed, &a.Tier, &body); err != nil {
		return AlertRow{}, err
	}
	a.Body = []byte(body)
	var err error
	for _, f := range []struct {
		dst *time.Time
		src sql.NullString
	}{{&a.OpenedAt, sql.NullString{String: opened, Valid: true}}, {&a.UpdatedAt, sql.NullString{String: updated, Valid: true}},
		{&a.AckedAt, acked}, {&a.ResolvedAt, resolved}, {&a.SnoozedUntil, snoozed}} {
		if f.src.Valid {
			if *f.dst, err = parseTime(f.src.String); err != nil {
				return AlertRow{}, fmt.Errorf("alert %d: %w", a.ID, err)
			}
		}
	}
	return a, nil
}

// nullTime is t for a nullable column: NULL when zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}
