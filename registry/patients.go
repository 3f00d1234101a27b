package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Patient is a person the clinic monitors.
type Patient struct {
	ID        string
	Name      string // display name; may be empty. It is PHI: never log it.
	CreatedAt time.Time
}

// AddPatient adds p. It returns an error wrapping ErrInvalidID when p.ID is
// not ValidID, and ErrExists when the id is taken. A zero CreatedAt is set
// to the current time.
func (r *Registry) AddPatient(ctx context.Context, p Patient) error {
	if err := checkID("patient", p.ID); err != nil {
		return fmt.Errorf("add patient: %w", err)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now()
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		err := r.execOne(ctx, tx, ErrExists, `INSERT INTO patients (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			p.ID, p.Name, formatTime(p.CreatedAt))
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionPatientAdd, p.ID, "")
	})
	if err != nil {
		return fmt.Errorf("add patient %s: %w", p.ID, err)
	}
	return nil
}

// Patient returns the patient with the given id, or an error wrapping
// ErrNotFound.
func (r *Registry) Patient(ctx context.Context, id string) (Patient, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT id, name, created_at FROM patients WHERE id = ?`), id)
	p, err := scanPatient(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Patient{}, fmt.Errorf("patient %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Patient{}, fmt.Errorf("patient %s: %w", id, err)
	}
	return p, nil
}

// ListPatients returns every patient, ordered by id. The slice is empty,
// not nil, when there are none.
func (r *Registry) ListPatients(ctx context.Context) ([]Patient, error) {
	return queryAll(ctx, r, "list patients", `SELECT id, name, created_at FROM patients ORDER BY id`, nil, scanPatient)
}

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface {
	Scan(dest ...any) error
}

func scanPatient(s scanner) (Patient, error) {
	var p Patient
	var created string
	if err := s.Scan(&p.ID, &p.Name, &created); err != nil {
		return Patient{}, err
	}
	t, err := parseTime(created)
	if err != nil {
		return Patient{}, fmt.Errorf("patient %s created_at: %w", p.ID, err)
	}
	p.CreatedAt = t
	return p, nil
}
