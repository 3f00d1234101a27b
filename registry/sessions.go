package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a staff member's signed-in browser. The registry keeps only
// the SHA-256 of its id, which is the cookie's value; expiry is the
// caller's to judge from CreatedAt and LastSeenAt.
type Session struct {
	Username   string
	CSRFToken  string // sent back by the browser on every state-changing request
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// CreateSession starts a session for an enabled staff member at the given
// time and returns its id, shown once. It returns an error wrapping
// ErrNotFound for an unknown username and ErrDisabled for a disabled one.
func (r *Registry) CreateSession(ctx context.Context, username string, at time.Time) (id string, s Session, err error) {
	id = newToken("")
	s = Session{Username: username, CSRFToken: newToken(""), CreatedAt: at.UTC(), LastSeenAt: at.UTC()}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, true); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, r.q(`INSERT INTO sessions (id_hash, username, csrf_token, created_at, last_seen_at)
			VALUES (?, ?, ?, ?, ?)`), hashToken(id), username, s.CSRFToken, formatTime(at), formatTime(at))
		return err
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("create session for %s: %w", username, err)
	}
	return id, s, nil
}

// SessionByID returns a session that has not been ended and the staff
// member it belongs to. It returns an error wrapping ErrNotFound for an
// unknown or ended session and ErrDisabled when the account is disabled.
// The error never repeats the id.
func (r *Registry) SessionByID(ctx context.Context, id string) (Session, Staff, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT st.username, st.role, st.created_at, st.disabled_at,
		se.csrf_token, se.created_at, se.last_seen_at, se.ended_at
		FROM sessions se JOIN staff st ON st.username = se.username WHERE se.id_hash = ?`), hashToken(id))
	var s Session
	var created, seen string
	var ended sql.NullString
	st, err := scanStaffFrom(row, &s.CSRFToken, &created, &seen, &ended)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Session{}, Staff{}, fmt.Errorf("session: %w", ErrNotFound)
	case err != nil:
		return Session{}, Staff{}, fmt.Errorf("session: %w", err)
	case ended.Valid:
		return Session{}, Staff{}, fmt.Errorf("session: ended: %w", ErrNotFound)
	case !st.Active():
		return Session{}, Staff{}, fmt.Errorf("session: %s: %w", st.Username, ErrDisabled)
	}
	s.Username = st.Username
	if s.CreatedAt, err = parseTime(created); err != nil {
		return Session{}, Staff{}, fmt.Errorf("session created_at: %w", err)
	}
	if s.LastSeenAt, err = parseTime(seen); err != nil {
		return Session{}, Staff{}, fmt.Errorf("session last_seen_at: %w", err)
	}
	return s, st, nil
}

// TouchSession records that the session was used at the given time, unless
// a later use is recorded already.
func (r *Registry) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := r.db.ExecContext(ctx, r.q(`UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND ended_at IS NULL AND last_seen_at < ?`),
		formatTime(at), hashToken(id), formatTime(at))
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// EndSession ends a session at the given time; ending one that is unknown
// or already ended is not an error.
func (r *Registry) EndSession(ctx context.Context, id string, at time.Time) error {
	_, err := r.db.ExecContext(ctx, r.q(`UPDATE sessions SET ended_at = ? WHERE id_hash = ? AND ended_at IS NULL`),
		formatTime(at), hashToken(id))
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndSessions signs the staff member out of every browser. It returns an
// error wrapping ErrNotFound for an unknown username.
func (r *Registry) EndSessions(ctx context.Context, username string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, false); err != nil {
			return err
		}
		if err := r.endSessions(ctx, tx, username); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffSignOut, "", username)
	})
	if err != nil {
		return fmt.Errorf("end sessions of %s: %w", username, err)
	}
	return nil
}

// endSessions ends every session of the staff member, in tx.
func (r *Registry) endSessions(ctx context.Context, tx *sql.Tx, username string) error {
	_, err := tx.ExecContext(ctx, r.q(`UPDATE sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL`),
		formatTime(now()), username)
	return err
}

// PurgeSessions deletes the sessions that can no longer be used: ended
// ones, those last used before idleBefore, and those created before
// createdBefore (the callers' idle timeout and maximum age, counted back
// from now). It returns how many it deleted. Sign-ins and sign-outs stay
// in the audit log.
func (r *Registry) PurgeSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, r.q(`DELETE FROM sessions
		WHERE ended_at IS NOT NULL OR last_seen_at < ? OR created_at < ?`), formatTime(idleBefore), formatTime(createdBefore))
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return n, nil
}
