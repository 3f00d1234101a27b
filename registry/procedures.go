package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ProcedureType is an entry of the clinic's catalogue of procedures
// (laser, a chemical peel, microneedling, injectables, pellet insertion).
type ProcedureType struct {
	ID           string // chemical_peel: what plans' timing rules name
	Name         string
	Category     string
	RecoveryDays int
}

// Procedure states.
const (
	ProcedurePlanned   = "planned"
	ProcedureDone      = "done"
	ProcedureCancelled = "cancelled"
)

// Procedure is one of a patient's procedures, planned or done.
type Procedure struct {
	ID          int64
	Patient     string
	Type        string // a ProcedureType's ID
	Status      string
	At          time.Time // when it is planned, or was done
	PerformedBy string
	Notes       string
	RecordedBy  string
	RecordedAt  time.Time
}

// ErrInvalidProcedure reports a procedure or catalogue entry that is
// refused; the message says why.
var ErrInvalidProcedure = errors.New("invalid procedure")

// AddProcedureType adds an entry to the catalogue. Its id is ValidID, its
// name and category printable (CheckName), its recovery 0 to 365 days; an
// id taken is ErrExists.
func (r *Registry) AddProcedureType(ctx context.Context, t ProcedureType) error {
	if err := checkID("procedure type", t.ID); err != nil {
		return fmt.Errorf("add procedure type: %w", err)
	}
	if t.Name == "" || CheckName(t.Name) != nil || CheckName(t.Category) != nil {
		return fmt.Errorf("add procedure type %s: %w: give a name, and a name and category of printable characters", t.ID, ErrInvalidProcedure)
	}
	if t.RecoveryDays < 0 || t.RecoveryDays > 365 {
		return fmt.Errorf("add procedure type %s: %w: recovery days must be 0 to 365", t.ID, ErrInvalidProcedure)
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		err := r.execOne(ctx, tx, ErrExists, `INSERT INTO procedure_types (id, name, category, recovery_days) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			t.ID, t.Name, t.Category, t.RecoveryDays)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionProcedureType, "", t.ID)
	})
	if err != nil {
		return fmt.Errorf("add procedure type %s: %w", t.ID, err)
	}
	return nil
}

// ProcedureTypes returns the catalogue, by name.
func (r *Registry) ProcedureTypes(ctx context.Context) ([]ProcedureType, error) {
	return queryAll(ctx, r, "procedure types", `SELECT id, name, category, recovery_days FROM procedure_types ORDER BY name, id`, nil,
		func(s scanner) (ProcedureType, error) {
			var t ProcedureType
			err := s.Scan(&t.ID, &t.Name, &t.Category, &t.RecoveryDays)
			return t, err
		})
}

// checkProcedure trims p's notes and refuses a procedure with an unknown
// status, no time, or a performer or notes that are not printable text.
func checkProcedure(p *Procedure) error {
	switch {
	case p.Status != ProcedurePlanned && p.Status != ProcedureDone && p.Status != ProcedureCancelled:
		return fmt.Errorf("%w: status must be planned, done or cancelled", ErrInvalidProcedure)
	case p.At.IsZero():
		return fmt.Errorf("%w: give when it is planned or was done", ErrInvalidProcedure)
	case CheckName(p.PerformedBy) != nil:
		return fmt.Errorf("%w: who performs it must be printable text of at most %d characters", ErrInvalidProcedure, MaxNameLen)
	}
	notes, err := checkNote(p.Notes, true)
	p.Notes = notes
	return err
}

// AddProcedure records a procedure of the patient by the context's actor,
// audited, and returns it. The type must be in the catalogue.
func (r *Registry) AddProcedure(ctx context.Context, p Procedure) (Procedure, error) {
	if err := checkProcedure(&p); err != nil {
		return Procedure{}, err
	}
	p.RecordedBy, p.RecordedAt = ActorFrom(ctx).Name, now()
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM procedure_types WHERE id = ?`), p.Type).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: procedure type %s is not in the catalogue (an admin adds it)", ErrInvalidProcedure, p.Type)
		}
		err := tx.QueryRowContext(ctx, r.q(`INSERT INTO procedures (patient_id, type_id, status, at, performed_by, notes, recorded_by, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), p.Patient, p.Type, p.Status, formatTime(p.At), p.PerformedBy, p.Notes,
			p.RecordedBy, formatTime(p.RecordedAt)).Scan(&p.ID)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionProcedureAdd, p.Patient, fmt.Sprintf("procedure %d (%s, %s)", p.ID, p.Type, p.Status))
	})
	if err != nil {
		return Procedure{}, fmt.Errorf("add procedure of patient %s: %w", p.Patient, err)
	}
	return p, nil
}

// UpdateProcedure changes a procedure of the patient (its status, time,
// performer, notes: change gives the new ones), audited, and returns it;
// ErrNotFound when the patient has no such procedure.
func (r *Registry) UpdateProcedure(ctx context.Context, patient string, id int64, change func(*Procedure)) (Procedure, error) {
	var p Procedure
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		p, err = scanProcedure(tx.QueryRowContext(ctx, r.q(`SELECT `+procedureColumns+` FROM procedures WHERE id = ? AND patient_id = ?`), id, patient))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("procedure %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		change(&p)
		if err := checkProcedure(&p); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, r.q(`UPDATE procedures SET status = ?, at = ?, performed_by = ?, notes = ? WHERE id = ?`),
			p.Status, formatTime(p.At), p.PerformedBy, p.Notes, id)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionProcedureChange, patient, "procedure "+strconv.FormatInt(id, 10)+" ("+p.Status+")")
	})
	if err != nil {
		return Procedure{}, fmt.Errorf("change procedure of patient %s: %w", patient, err)
	}
	return p, nil
}

// Procedures returns the patient's procedures, oldest first.
func (r *Registry) Procedures(ctx context.Context, patient string) ([]Procedure, error) {
	return queryAll(ctx, r, "procedures", `SELECT `+procedureColumns+` FROM procedures WHERE patient_id = ? ORDER BY at, id`,
		[]any{patient}, scanProcedure)
}

const procedureColumns = `id, patient_id, type_id, status, at, performed_by, notes, recorded_by, recorded_at`

func scanProcedure(s scanner) (Procedure, error) {
	var p Procedure
	var at, recorded string
	if err := s.Scan(&p.ID, &p.Patient, &p.Type, &p.Status, &at, &p.PerformedBy, &p.Notes, &p.RecordedBy, &recorded); err != nil {
		return Procedure{}, err
	}
	var err error
	if p.At, err = parseTime(at); err != nil {
		return Procedure{}, err
	}
	if p.RecordedAt, err = parseTime(recorded); err != nil {
		return Procedure{}, err
	}
	return p, nil
}
