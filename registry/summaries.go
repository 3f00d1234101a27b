package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A patient's weekly summary, as published to their devices: only the
// newest week's is kept.

// RecordSummary records body as the patient's published summary of week
// ("2026-W48"), replacing any older one of theirs.
func (r *Registry) RecordSummary(ctx context.Context, patient, week string, body []byte) error {
	_, err := r.db.ExecContext(ctx, r.q(`INSERT INTO summaries (patient_id, week, body, published_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (patient_id) DO UPDATE SET week = excluded.week, body = excluded.body, published_at = excluded.published_at`),
		patient, week, string(body), formatTime(now()))
	if err != nil {
		return fmt.Errorf("record summary of %s: %w", patient, err)
	}
	return nil
}

// Summary returns the patient's published summary of week and when it
// was published, or an error wrapping ErrNotFound.
func (r *Registry) Summary(ctx context.Context, patient, week string) ([]byte, time.Time, error) {
	var body, at string
	err := r.db.QueryRowContext(ctx, r.q(`SELECT body, published_at FROM summaries WHERE patient_id = ? AND week = ?`), patient, week).Scan(&body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("summary of %s for %s: %w", patient, week, ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("summary of %s: %w", patient, err)
	}
	t, err := parseTime(at)
	return []byte(body), t, err
}

// SummarisedPatients returns the patients whose summary of week is
// published.
func (r *Registry) SummarisedPatients(ctx context.Context, week string) (map[string]bool, error) {
	ids, err := queryAll(ctx, r, "summarised patients", `SELECT patient_id FROM summaries WHERE week = ?`, []any{week},
		func(s scanner) (string, error) {
			var id string
			err := s.Scan(&id)
			return id, err
		})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
