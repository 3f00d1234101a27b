package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PatientView is what the patient list and the patient page show of a
// patient that the analysis stage judges: written by the instance that
// judges the patient, so that every instance can answer for them.
type PatientView struct {
	Patient string
	// Verdicts is each rule's verdict when last judged, as the analysis
	// stage's JSON (an array); the registry keeps it as given.
	Verdicts []byte
	// LastData is the newest sample time of each measurement the
	// patient's rules read.
	LastData map[string]time.Time
	JudgedAt time.Time
}

// viewBatch is how many views one INSERT writes: 4 parameters each, far
// under either dialect's limit on parameters.
const viewBatch = 200

// WritePatientViews replaces the views of the patients given, in one
// transaction, viewBatch rows a statement. fence, when not nil, runs
// first in the transaction (the views' partition: see Fence), and its
// error refuses the whole write. Every view's patient must exist.
func (r *Registry) WritePatientViews(ctx context.Context, fence Fence, views []PatientView) error {
	if len(views) == 0 {
		return nil
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if fence != nil {
			if err := fence(ctx, tx); err != nil {
				return err
			}
		}
		for len(views) > 0 {
			n := min(len(views), viewBatch)
			if err := r.writeViews(ctx, tx, views[:n]); err != nil {
				return err
			}
			views = views[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write patient views: %w", err)
	}
	return nil
}

// writeViews upserts views in one statement.
func (r *Registry) writeViews(ctx context.Context, tx *sql.Tx, views []PatientView) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO patient_views (patient_id, verdicts, last_data, judged_at) VALUES `)
	args := make([]any, 0, 4*len(views))
	for i, v := range views {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		last, err := json.Marshal(v.LastData)
		if err != nil {
			return err
		}
		verdicts := v.Verdicts
		if verdicts == nil {
			verdicts = []byte("[]")
		}
		args = append(args, v.Patient, string(verdicts), string(last), formatTime(v.JudgedAt))
	}
	b.WriteString(` ON CONFLICT (patient_id) DO UPDATE SET verdicts = excluded.verdicts, last_data = excluded.last_data,
		judged_at = excluded.judged_at`)
	_, err := tx.ExecContext(ctx, r.q(b.String()), args...)
	return err
}

// PatientView returns the patient's view; false when none was written.
func (r *Registry) PatientView(ctx context.Context, patientID string) (PatientView, bool, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT patient_id, verdicts, last_data, judged_at FROM patient_views
		WHERE patient_id = ?`), patientID)
	v, err := scanView(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return PatientView{}, false, nil
	case err != nil:
		return PatientView{}, false, fmt.Errorf("patient view of %s: %w", patientID, err)
	}
	return v, true, nil
}

// PatientViews returns every view written, by patient id: what the
// patient list reads in one query.
func (r *Registry) PatientViews(ctx context.Context) (map[string]PatientView, error) {
	views, err := queryAll(ctx, r, "patient views", `SELECT patient_id, verdicts, last_data, judged_at FROM patient_views`, nil, scanView)
	if err != nil {
		return nil, err
	}
	out := make(map[string]PatientView, len(views))
	for _, v := range views {
		out[v.Patient] = v
	}
	return out, nil
}

func scanView(s scanner) (PatientView, error) {
	var v PatientView
	var verdicts, last, judged string
	if err := s.Scan(&v.Patient, &verdicts, &last, &judged); err != nil {
		return v, err
	}
	v.Verdicts = []byte(verdicts)
	if err := json.Unmarshal([]byte(last), &v.LastData); err != nil {
		return v, fmt.Errorf("last data: %w", err)
	}
	var err error
	if v.JudgedAt, err = parseTime(judged); err != nil {
		return v, fmt.Errorf("judged_at: %w", err)
	}
	return v, nil
}
