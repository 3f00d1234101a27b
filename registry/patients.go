package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	ID        string
	Name      string // display name; may be empty. It is PHI: never log it.
	CreatedAt time.Time
}

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
