package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrPlanOrder reports a plan version whose effective time is before the
// current version's.
var ErrPlanOrder = errors.New("effective before the current version's")

// PlanVersion is one stored version of a patient's plan. The registry
// keeps its body (JSON) as given: the analysis stage defines it.
type PlanVersion struct {
	Patient   string
	Version   int
	Effective time.Time
	Body      []byte
	CreatedAt time.Time
	CreatedBy string
}

// AddPlanVersion stores body as the patient's next plan version, in force
// from effective, and returns its number (1 for the first). The audit log
// records the change. It returns an error wrapping ErrNotFound for an
// unknown patient and ErrPlanOrder when effective is before the current
// version's effective time: versions take over in order.
func (r *Registry) AddPlanVersion(ctx context.Context, patientID string, effective time.Time, body []byte) (int, error) {
	var version int
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkPatient(ctx, tx, patientID); err != nil {
			return err
		}
		var last sql.NullInt64
		var lastEffective sql.NullString
		err := tx.QueryRowContext(ctx, r.q(`SELECT version, effective_at FROM plans WHERE patient_id = ?
			ORDER BY version DESC LIMIT 1`), patientID).Scan(&last, &lastEffective)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if lastEffective.Valid && formatTime(effective) < lastEffective.String {
			return fmt.Errorf("%w (v%d, %s)", ErrPlanOrder, last.Int64, lastEffective.String)
		}
		version = int(last.Int64) + 1
		_, err = tx.ExecContext(ctx, r.q(`INSERT INTO plans (patient_id, version, effective_at, body, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?)`), patientID, version, formatTime(effective), string(body), formatTime(now()), ActorFrom(ctx).Name)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionPlanChange, patientID, fmt.Sprintf("v%d", version))
	})
	if err != nil {
		return 0, fmt.Errorf("add plan version for %s: %w", patientID, err)
	}
	return version, nil
}

// PlanVersions returns every version of the patient's plan, oldest first;
// empty, not nil, when there is none.
func (r *Registry) PlanVersions(ctx context.Context, patientID string) ([]PlanVersion, error) {
	return queryAll(ctx, r, "plan versions of "+patientID, `SELECT version, effective_at, body, created_at, created_by
		FROM plans WHERE patient_id = ? ORDER BY version`, []any{patientID},
		func(s scanner) (PlanVersion, error) {
			v := PlanVersion{Patient: patientID}
			var effective, created, body string
			if err := s.Scan(&v.Version, &effective, &body, &created, &v.CreatedBy); err != nil {
				return v, err
			}
			v.Body = []byte(body)
			var err error
			if v.Effective, err = parseTime(effective); err != nil {
				return v, fmt.Errorf("v%d effective_at: %w", v.Version, err)
			}
			if v.CreatedAt, err = parseTime(created); err != nil {
				return v, fmt.Errorf("v%d created_at: %w", v.Version, err)
			}
			return v, nil
		})
}

// LatestPlanVersions returns, for every monitored patient with a plan (a
// deactivated one is not monitored), the number of its newest version.
func (r *Registry) LatestPlanVersions(ctx context.Context) (map[string]int, error) {
	type latest struct {
		patient string
		version int
	}
	rows, err := queryAll(ctx, r, "latest plan versions", `SELECT patient_id, MAX(version) FROM plans
		WHERE patient_id NOT IN (SELECT id FROM patients WHERE deactivated_at IS NOT NULL) GROUP BY patient_id`, nil,
		func(s scanner) (latest, error) {
			var l latest
			err := s.Scan(&l.patient, &l.version)
			return l, err
		})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, l := range rows {
		out[l.patient] = l.version
	}
	return out, nil
}

// Transition is one stored change of a rule's verdict; Body is the
// analysis stage's JSON of it.
type Transition struct {
	ID      int64
	Patient string
	Rule    string
	Change  string
	At      time.Time
	Body    []byte
}

// RecordTransitions appends the patient's transitions and replaces the
// states of the rules given (rule id → state JSON; a nil state deletes
// it), in one transaction.
func (r *Registry) RecordTransitions(ctx context.Context, patientID string, ts []Transition, states map[string][]byte) error {
	return r.RecordTransitionsFenced(ctx, nil, patientID, ts, states, nil)
}

// RecordTransitionsFenced is RecordTransitions on behalf of the patient's
// cluster partition: fence, when not nil, runs first in the transaction,
// and its error (cluster.ErrFenced: the partition was lost) refuses the
// whole write; the error returned wraps it. view, when not nil, replaces
// the patient's view in the same transaction: on Postgres every
// transaction waits for the write lock, so an alarm's view costs no
// transaction of its own.
func (r *Registry) RecordTransitionsFenced(ctx context.Context, fence Fence, patientID string, ts []Transition, states map[string][]byte,
	view *PatientView) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if fence != nil {
			if err := fence(ctx, tx); err != nil {
				return err
			}
		}
		if view != nil {
			if err := r.writeViews(ctx, tx, []PatientView{*view}); err != nil {
				return err
			}
		}
		for _, t := range ts {
			_, err := tx.ExecContext(ctx, r.q(`INSERT INTO transitions (patient_id, rule_id, change, at, body) VALUES (?, ?, ?, ?, ?)`),
				patientID, t.Rule, t.Change, formatTime(t.At), string(t.Body))
			if err != nil {
				return err
			}
		}
		for rule, state := range states {
			var err error
			if state == nil {
				_, err = tx.ExecContext(ctx, r.q(`DELETE FROM rule_states WHERE patient_id = ? AND rule_id = ?`), patientID, rule)
			} else {
				_, err = tx.ExecContext(ctx, r.q(`INSERT INTO rule_states (patient_id, rule_id, state, updated_at) VALUES (?, ?, ?, ?)
					ON CONFLICT (patient_id, rule_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`),
					patientID, rule, string(state), formatTime(now()))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record transitions of %s: %w", patientID, err)
	}
	return nil
}

// RuleStates returns the stored rule states of the patient, by rule id.
func (r *Registry) RuleStates(ctx context.Context, patientID string) (map[string][]byte, error) {
	type state struct {
		rule, state string
	}
	rows, err := queryAll(ctx, r, "rule states of "+patientID, `SELECT rule_id, state FROM rule_states WHERE patient_id = ?`,
		[]any{patientID}, func(s scanner) (state, error) {
			var st state
			err := s.Scan(&st.rule, &st.state)
			return st, err
		})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(rows))
	for _, st := range rows {
		out[st.rule] = []byte(st.state)
	}
	return out, nil
}

// Transitions returns the patient's transitions with an id above after,
// oldest first, at most limit (1 to 1000).
func (r *Registry) Transitions(ctx context.Context, patientID string, after int64, limit int) ([]Transition, error) {
	return queryAll(ctx, r, "transitions of "+patientID, `SELECT id, patient_id, rule_id, change, at, body FROM transitions
		WHERE patient_id = ? AND id > ? ORDER BY id LIMIT ?`, []any{patientID, after, min(max(limit, 1), 1000)}, scanTransition)
}

func scanTransition(s scanner) (Transition, error) {
	var t Transition
	var at, body string
	if err := s.Scan(&t.ID, &t.Patient, &t.Rule, &t.Change, &at, &body); err != nil {
		return t, err
	}
	t.Body = []byte(body)
	var err error
	if t.At, err = parseTime(at); err != nil {
		return t, fmt.Errorf("transition %d at: %w", t.ID, err)
	}
	return t, nil
}

// LatestTransitions returns, for every patient and rule, the newest of
// their transitions whose change is one of changes.
func (r *Registry) LatestTransitions(ctx context.Context, changes ...string) ([]Transition, error) {
	if len(changes) == 0 {
		return []Transition{}, nil
	}
	in := "?" + strings.Repeat(", ?", len(changes)-1)
	args := make([]any, 0, 2*len(changes))
	for range 2 {
		for _, c := range changes {
			args = append(args, c)
		}
	}
	return queryAll(ctx, r, "latest transitions", `SELECT id, patient_id, rule_id, change, at, body FROM transitions
		WHERE change IN (`+in+`) AND id IN (SELECT MAX(id) FROM transitions WHERE change IN (`+in+`) GROUP BY patient_id, rule_id)
		ORDER BY id`, args, scanTransition)
}
