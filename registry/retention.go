package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Purged counts what PurgeHistory deleted.
type Purged struct {
	Transitions int64
	Alerts      int64 // resolved alerts, each with its events, outbox rows and delivery attempts
	AlertEvents int64
	Digests     int64 // digests (outbox events of no alert) written before the cutoff, with their deliveries
}

// purgeBatch is how many rows one purge transaction deletes at most, so
// that a first purge of a large registry does not hold the write lock for
// long: the pipeline writes transitions and alerts meanwhile.
const purgeBatch = 1000

// PurgeHistory deletes what is older than before and no longer needed:
//
//   - transitions recorded before it, except the newest of each patient,
//     rule and change, from which analysis resumes (LatestTransitions);
//   - resolved alerts resolved before it, with their events, outbox rows
//     and delivery attempts;
//   - digests written before it, delivered or failed, with their
//     deliveries and attempts (a pending one is kept).
//
// Active (firing, acknowledged) and suppressed alerts are kept however
// old. The audit log is never deleted: its triggers refuse it.
func (r *Registry) PurgeHistory(ctx context.Context, before time.Time) (Purged, error) {
	var p Purged
	cutoff := formatTime(before)
	for {
		var n int64
		err := r.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, r.q(`DELETE FROM transitions WHERE id IN (
				SELECT id FROM transitions WHERE at < ? AND id NOT IN (
					SELECT MAX(id) FROM transitions GROUP BY patient_id, rule_id, change)
				LIMIT ?)`), cutoff, purgeBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return p, fmt.Errorf("purge transitions: %w", err)
		}
		p.Transitions += n
		if n < purgeBatch {
			break
		}
	}
	for {
		var ids []int64
		err := r.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, r.q(`SELECT id FROM alerts WHERE state = 'resolved' AND resolved_at < ?
				ORDER BY id LIMIT ?`), cutoff, purgeBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			for _, id := range ids {
				res, err := tx.ExecContext(ctx, r.q(`DELETE FROM alert_events WHERE alert_id = ?`), id)
				if err != nil {
					return err
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				p.AlertEvents += n
				for _, q := range []string{`DELETE FROM delivery_attempts WHERE alert_id = ?`,
					`DELETE FROM outbox_deliveries WHERE alert_id = ?`, `DELETE FROM outbox_events WHERE alert_id = ?`} {
					if _, err := tx.ExecContext(ctx, r.q(q), id); err != nil {
						return err
					}
				}
				if _, err := tx.ExecContext(ctx, r.q(`DELETE FROM alerts WHERE id = ?`), id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return p, fmt.Errorf("purge alerts: %w", err)
		}
		p.Alerts += int64(len(ids))
		if len(ids) < purgeBatch {
			break
		}
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		done := `SELECT id FROM outbox_events WHERE alert_id = 0 AND at < ? AND id NOT IN (
			SELECT event_id FROM outbox_deliveries WHERE state = 'pending')`
		for _, q := range []string{
			`DELETE FROM delivery_attempts WHERE alert_id = 0 AND delivery IN (SELECT id FROM outbox_deliveries WHERE event_id IN (` + done + `))`,
			`DELETE FROM outbox_deliveries WHERE event_id IN (` + done + `)`,
		} {
			if _, err := tx.ExecContext(ctx, r.q(q), cutoff); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, r.q(`DELETE FROM outbox_events WHERE alert_id = 0 AND at < ? AND id NOT IN (
			SELECT event_id FROM outbox_deliveries)`), cutoff)
		if err != nil {
			return err
		}
		p.Digests, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return p, fmt.Errorf("purge digests: %w", err)
	}
	return p, nil
}
