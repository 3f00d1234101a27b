package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxNoteChars bounds a patient note.
const MaxNoteChars = 2000

// ErrInvalidNote is a note that is empty, too long or holds control
// characters.
var ErrInvalidNote = errors.New("invalid note")

// checkNote trims a note and refuses one that is empty (unless it may
// be), over MaxNoteChars or holds control characters (new lines and tabs
// aside).
func checkNote(note string, mayBeEmpty bool) (string, error) {
	note = strings.TrimSpace(note)
	switch n := utf8.RuneCountInString(note); {
	case n == 0 && !mayBeEmpty:
		return "", fmt.Errorf("%w: write something", ErrInvalidNote)
	case n > MaxNoteChars:
		return "", fmt.Errorf("%w: at most %d characters (got %d)", ErrInvalidNote, MaxNoteChars, n)
	}
	if strings.ContainsFunc(note, func(c rune) bool { return c < 0x20 && c != '\n' && c != '\t' || c == 0x7f }) {
		return "", fmt.Errorf("%w: control characters are not taken", ErrInvalidNote)
	}
	return note, nil
}

// PatientNote is a free-text note on a patient by a staff member: a
// handover, a follow-up.
type PatientNote struct {
	ID      int64
	Patient string
	Author  string
	At      time.Time
	Note    string
}

// AddPatientNote stores a note by the context's actor, with its audit
// entry (which names the note, never its text), and returns it.
func (r *Registry) AddPatientNote(ctx context.Context, patient, note string) (PatientNote, error) {
	note, err := checkNote(note, false)
	if err != nil {
		return PatientNote{}, err
	}
	pn := PatientNote{Patient: patient, Author: ActorFrom(ctx).Name, At: now(), Note: note}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, r.q(`INSERT INTO patient_notes (patient_id, author, at, note) VALUES (?, ?, ?, ?) RETURNING id`),
			patient, pn.Author, formatTime(pn.At), pn.Note).Scan(&pn.ID); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionPatientNote, patient, "note "+strconv.FormatInt(pn.ID, 10))
	})
	if err != nil {
		return PatientNote{}, fmt.Errorf("add note to patient %s: %w", patient, err)
	}
	return pn, nil
}

// PatientNotes returns the patient's notes, newest first.
func (r *Registry) PatientNotes(ctx context.Context, patient string) ([]PatientNote, error) {
	return queryAll(ctx, r, "patient notes",
		`SELECT id, author, at, note FROM patient_notes WHERE patient_id = ? ORDER BY id DESC`, []any{patient},
		func(s scanner) (PatientNote, error) {
			pn := PatientNote{Patient: patient}
			var at string
			if err := s.Scan(&pn.ID, &pn.Author, &at, &pn.Note); err != nil {
				return pn, err
			}
			var err error
			pn.At, err = parseTime(at)
			return pn, err
		})
}
