package registry

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// ClaimDue returns at most limit deliveries that DueDeliveries would
// return at now (given the same skip) and that no dispatcher holds a
// claim on, and claims them for holder until until, in one transaction.
// The transaction holds the registry's write lock (BEGIN IMMEDIATE on
// SQLite, the advisory write lock on Postgres), so that of several
// dispatchers on one registry, on several instances, exactly one claims
// each delivery; a claim runs out at until, so that a delivery claimed by
// an instance that died is claimed again by another after that.
// FinishAttempt ends the claim. until is by the claimer's clock, which
// others compare with theirs: it must be later than an attempt can last
// by more than the instances' clocks differ.
func (r *Registry) ClaimDue(ctx context.Context, now time.Time, limit int, skip []string, holder string, until time.Time) ([]Due, error) {
	var out []Due
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		where, args := readyWhere(skip)
		args = append([]any{formatTime(now), formatTime(now)}, append(args, limit)...)
		rows, err := tx.QueryContext(ctx, r.q(`SELECT `+deliveryColumns+`, e.id, e.alert_id, e.patient_id, e.kind, e.at, e.body
			FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
			WHERE d.next_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until <= ?) AND `+where+`
			ORDER BY d.next_at, d.event_id, d.id LIMIT ?`), args...)
		if err != nil {
			return err
		}
		out, err = scanDues(rows)
		if err != nil || len(out) == 0 {
			return err
		}
		args = []any{holder, formatTime(until)}
		for _, d := range out {
			args = append(args, d.ID)
		}
		_, err = tx.ExecContext(ctx, r.q(`UPDATE outbox_deliveries SET claimed_by = ?, claimed_until = ?
			WHERE id IN (?`+strings.Repeat(", ?", len(out)-1)+`)`), args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	return out, nil
}

// scanDues scans and closes rows of deliveryColumns followed by the
// event's columns.
func scanDues(rows *sql.Rows) ([]Due, error) {
	defer rows.Close()
	var out []Due
	for rows.Next() {
		var d Due
		var at, body string
		var err error
		d.OutboxDelivery, err = scanDelivery(rows, &d.Event.ID, &d.Event.AlertID, &d.Event.Patient, &d.Event.Kind, &at, &body)
		if err != nil {
			return nil, err
		}
		d.Event.Body = []byte(body)
		if d.Event.At, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ReleaseClaim ends holder's claim on the pending delivery id without
// recording an attempt (one cut short by a shutdown), so that the next
// dispatcher to look, here or on another instance, attempts it at once.
// A claim held by another, or a delivery no longer pending, is left.
func (r *Registry) ReleaseClaim(ctx context.Context, id, holder string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, r.q(`UPDATE outbox_deliveries SET claimed_by = '', claimed_until = NULL
			WHERE id = ? AND claimed_by = ? AND state = 'pending'`), id, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("release delivery claim: %w", err)
	}
	return nil
}

// ReleaseClaimsOf ends the claims the holders given hold on pending
// deliveries, and returns how many it ended. An instance calls it with
// the dispatchers of instances that left the cluster without a goodbye
// (killed, or paused past their leases): their attempts were cut short,
// and the next dispatcher to look attempts those deliveries at once
// instead of when the claims run out. A holder that was only paused and
// finishes its attempt after all makes it a second one, with the same
// delivery id, which receivers de-duplicate.
func (r *Registry) ReleaseClaimsOf(ctx context.Context, holders []string) (int64, error) {
	if len(holders) == 0 {
		return 0, nil
	}
	var n int64
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, len(holders))
		for i, h := range holders {
			args[i] = h
		}
		res, err := tx.ExecContext(ctx, r.q(`UPDATE outbox_deliveries SET claimed_by = '', claimed_until = NULL
			WHERE state = 'pending' AND claimed_until IS NOT NULL AND claimed_by IN (?`+strings.Repeat(", ?", len(holders)-1)+`)`), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release departed dispatchers' delivery claims: %w", err)
	}
	return n, nil
}

// ReleaseAllClaims ends every pending delivery's claim. A lone instance
// does so at its start: the claims left are its own earlier run's (killed
// during an attempt), and no other dispatcher will take them, so waiting
// for them to run out would only delay those pages.
func (r *Registry) ReleaseAllClaims(ctx context.Context) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, r.q(`UPDATE outbox_deliveries SET claimed_by = '', claimed_until = NULL
			WHERE claimed_until IS NOT NULL AND state = 'pending'`))
		return err
	})
	if err != nil {
		return fmt.Errorf("release delivery claims: %w", err)
	}
	return nil
}
