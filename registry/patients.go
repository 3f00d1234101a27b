package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidName reports a patient name that CheckName refuses.
var ErrInvalidName = errors.New("invalid name")

// MaxNameLen is the longest patient name, in characters.
const MaxNameLen = 200

// CheckName returns an error wrapping ErrInvalidName unless name is valid
// UTF-8 of at most MaxNameLen characters, every one printable: letters,
// marks, numbers, punctuation, symbols and the plain space, plus the zero
// width (non-)joiners some scripts write names with. Control characters
// (a terminal's escapes, tabs, new lines), other spaces and invisible
// format characters (bidirectional overrides) are refused. The error
// names the first refused character by position and code point, never the
// name itself, which is PHI.
func CheckName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: a name must be UTF-8 text", ErrInvalidName)
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLen {
		return fmt.Errorf("%w: a name must have at most %d characters (it has %d)", ErrInvalidName, MaxNameLen, n)
	}
	if i, r := firstUnprintable(name); i > 0 {
		return fmt.Errorf("%w: character %d is %U, a control or invisible character: a name may hold only printable characters",
			ErrInvalidName, i, r)
	}
	return nil
}

// firstUnprintable returns the position (from 1) and rune of the first
// character of s that CheckName refuses, or 0.
func firstUnprintable(s string) (int, rune) {
	i := 0
	for _, r := range s {
		i++
		if !unicode.IsPrint(r) && r != '\u200c' && r != '\u200d' {
			return i, r // an invalid byte is utf8.RuneError, printable: CheckName checks UTF-8 first
		}
	}
	return 0, 0
}

// PrintableName returns name for a terminal: as it is when it is valid
// UTF-8 of printable characters that does not start with a double quote,
// otherwise quoted and escaped as a Go string ("\x1b[2J..."), so that a
// name stored before CheckName existed cannot move the cursor, clear the
// screen or hide what follows.
func PrintableName(name string) string {
	if i, _ := firstUnprintable(name); i == 0 && utf8.ValidString(name) && !strings.HasPrefix(name, `"`) {
		return name
	}
	return strconv.Quote(name)
}

// Patient is a person the clinic monitors.
type Patient struct {
	ID            string
	Name          string // display name; may be empty. It is PHI: never log it.
	Contact       string // how the clinic reaches them (phone, mail); may be empty. PHI.
	CreatedAt     time.Time
	DeactivatedAt time.Time // zero while monitored
}

// Active reports whether the patient is monitored (not deactivated).
func (p Patient) Active() bool { return p.DeactivatedAt.IsZero() }

// AddPatient adds p. It returns an error wrapping ErrInvalidID when p.ID is
// not ValidID, ErrInvalidName when CheckName refuses p.Name, and ErrExists
// when the id is taken. A zero CreatedAt is set to the current time.
func (r *Registry) AddPatient(ctx context.Context, p Patient) error {
	if err := checkID("patient", p.ID); err != nil {
		return fmt.Errorf("add patient: %w", err)
	}
	if err := CheckName(p.Name); err != nil {
		return fmt.Errorf("add patient %s: %w", p.ID, err)
	}
	if err := checkContact(p.Contact); err != nil {
		return fmt.Errorf("add patient %s: %w", p.ID, err)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now()
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		err := r.execOne(ctx, tx, ErrExists, `INSERT INTO patients (id, name, contact, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			p.ID, p.Name, p.Contact, formatTime(p.CreatedAt))
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
	row := r.db.QueryRowContext(ctx, r.q(`SELECT `+patientColumns+` FROM patients WHERE id = ?`), id)
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
	return queryAll(ctx, r, "list patients", `SELECT `+patientColumns+` FROM patients ORDER BY id`, nil, scanPatient)
}

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface {
	Scan(dest ...any) error
}

const patientColumns = `id, name, contact, created_at, deactivated_at`

func scanPatient(s scanner) (Patient, error) {
	var p Patient
	var created string
	var deactivated sql.NullString
	if err := s.Scan(&p.ID, &p.Name, &p.Contact, &created, &deactivated); err != nil {
		return Patient{}, err
	}
	t, err := parseTime(created)
	if err != nil {
		return Patient{}, fmt.Errorf("patient %s created_at: %w", p.ID, err)
	}
	p.CreatedAt = t
	if deactivated.Valid {
		if p.DeactivatedAt, err = parseTime(deactivated.String); err != nil {
			return Patient{}, fmt.Errorf("patient %s deactivated_at: %w", p.ID, err)
		}
	}
	return p, nil
}

// MaxContactLen is the longest patient contact, in characters.
const MaxContactLen = 500

// checkContact refuses a contact that is not UTF-8 text of at most
// MaxContactLen printable characters (as CheckName's); the error names
// the character, never the contact.
func checkContact(contact string) error {
	if !utf8.ValidString(contact) {
		return fmt.Errorf("%w: a contact must be UTF-8 text", ErrInvalidName)
	}
	if n := utf8.RuneCountInString(contact); n > MaxContactLen {
		return fmt.Errorf("%w: a contact must have at most %d characters (it has %d)", ErrInvalidName, MaxContactLen, n)
	}
	if i, r := firstUnprintable(contact); i > 0 {
		return fmt.Errorf("%w: character %d of the contact is %U, a control or invisible character", ErrInvalidName, i, r)
	}
	return nil
}

// UpdatePatient sets the patient's name and contact, checked as AddPatient
// checks them. The audit entry names what changed, never the values. It
// returns an error wrapping ErrNotFound for an unknown patient.
func (r *Registry) UpdatePatient(ctx context.Context, id, name, contact string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("update patient %s: %w", id, err)
	}
	if err := checkContact(contact); err != nil {
		return fmt.Errorf("update patient %s: %w", id, err)
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanPatient(tx.QueryRowContext(ctx, r.q(`SELECT `+patientColumns+` FROM patients WHERE id = ?`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var changed []string
		if old.Name != name {
			changed = append(changed, "name")
		}
		if old.Contact != contact {
			changed = append(changed, "contact")
		}
		if len(changed) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE patients SET name = ?, contact = ? WHERE id = ?`), name, contact, id); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionPatientEdit, id, strings.Join(changed, ","))
	})
	if err != nil {
		return fmt.Errorf("update patient %s: %w", id, err)
	}
	return nil
}

// ErrActiveAlerts reports a patient who cannot be deactivated while alerts
// of theirs are active.
var ErrActiveAlerts = errors.New("the patient has active alerts")

// DeactivatePatient takes the patient out of monitoring: their active
// devices are revoked (returned, so that their broker accounts can be
// removed), their plan is no longer judged (LatestPlanVersions leaves
// them out) and the patient list leaves them out. Their data, plans,
// notes and alerts are kept. It refuses (ErrActiveAlerts) while any of
// their alerts is firing or acknowledged: those are handled first. An
// already deactivated patient is ErrDisabled; an unknown one ErrNotFound.
func (r *Registry) DeactivatePatient(ctx context.Context, id string) (revoked []string, err error) {
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		revoked = nil // a retried transaction starts afresh
		p, err := scanPatient(tx.QueryRowContext(ctx, r.q(`SELECT `+patientColumns+` FROM patients WHERE id = ?`), id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case !p.Active():
			return fmt.Errorf("already deactivated: %w", ErrDisabled)
		}
		var n int
		err = tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM alerts WHERE patient_id = ? AND state IN (?, ?)`),
			id, AlertFiring, AlertAcknowledged).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w (%d): resolve or hand them over first", ErrActiveAlerts, n)
		}
		at := formatTime(now())
		rows, err := tx.QueryContext(ctx, r.q(`UPDATE devices SET revoked_at = ? WHERE patient_id = ? AND revoked_at IS NULL RETURNING id`), at, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			revoked = append(revoked, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		slices.Sort(revoked)
		for _, d := range revoked {
			if err := r.record(ctx, tx, ActionDeviceRevoke, id, d); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE patients SET deactivated_at = ? WHERE id = ?`), at, id); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionPatientDeactivate, id, strings.Join(revoked, ","))
	})
	if err != nil {
		return nil, fmt.Errorf("deactivate patient %s: %w", id, err)
	}
	return revoked, nil
}

// ReactivatePatient brings a deactivated patient back into monitoring
// (their plan is judged again); their revoked devices stay revoked: enrol
// new ones. It returns an error wrapping ErrNotFound for an unknown
// patient and ErrExists for one who is active.
func (r *Registry) ReactivatePatient(ctx context.Context, id string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		err := r.execOne(ctx, tx, ErrNotFound, `UPDATE patients SET deactivated_at = NULL WHERE id = ? AND deactivated_at IS NOT NULL`, id)
		if err != nil {
			var n int
			if e := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM patients WHERE id = ?`), id).Scan(&n); e == nil && n == 1 {
				return fmt.Errorf("already active: %w", ErrExists)
			}
			return err
		}
		return r.record(ctx, tx, ActionPatientReactivate, id, "")
	})
	if err != nil {
		return fmt.Errorf("reactivate patient %s: %w", id, err)
	}
	return nil
}
