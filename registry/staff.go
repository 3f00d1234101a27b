package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors of staff accounts, beside those in registry.go.
var (
	// ErrDisabled reports that a staff account is disabled.
	ErrDisabled = errors.New("disabled")
	// ErrBadCredentials reports a failed login. It is the same error for
	// an unknown username and a wrong password, so that a caller cannot
	// tell which usernames exist.
	ErrBadCredentials = errors.New("bad username or password")
	// ErrWeakPassword reports a password AddStaff or SetPassword refuses.
	ErrWeakPassword = errors.New("weak password")
)

// Role is what a staff member may do.
type Role string

// The roles. A clinician sees the patients assigned to them (their care
// team); on-call staff receive and handle alerts; an admin manages staff.
const (
	RoleAdmin     Role = "admin"
	RoleClinician Role = "clinician"
	RoleOnCall    Role = "oncall"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleClinician || r == RoleOnCall
}

// Staff is a member of the clinic's staff with a login.
type Staff struct {
	Username   string
	Role       Role
	CreatedAt  time.Time
	DisabledAt time.Time // zero while enabled
}

// Active reports whether the account is enabled.
func (s Staff) Active() bool { return s.DisabledAt.IsZero() }

// Password length limits. The minimum counts characters; the maximum counts
// bytes and only bounds what a login form may send.
const (
	MinPasswordLen = 12
	maxPasswordLen = 1024
)

// staffTokenPrefix marks a staff API token, as tokenPrefix marks a device's.
const staffTokenPrefix = "pps_"

// AddStaff adds an enabled staff member with the given role and password,
// of which the registry keeps only an argon2id hash. It returns an error
// wrapping ErrInvalidID for a username ValidID rejects, ErrWeakPassword for
// a password CheckPassword refuses, and ErrExists when
// the username is taken. No error repeats the password.
func (r *Registry) AddStaff(ctx context.Context, username string, role Role, password string) error {
	if err := checkID("staff", username); err != nil {
		return fmt.Errorf("add staff: %w", err)
	}
	if !role.Valid() {
		return fmt.Errorf("add staff %s: role %q: want admin, clinician or oncall", username, role)
	}
	if err := CheckPassword(username, password); err != nil {
		return fmt.Errorf("add staff %s: %w", username, err)
	}
	// Hash outside any transaction: it takes a while, and must not hold
	// the store's write lock meanwhile.
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return fmt.Errorf("add staff %s: %w", username, err)
	}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		err := r.execOne(ctx, tx, ErrExists, `INSERT INTO staff (username, role, password_hash, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`, username, string(role), hash, formatTime(now()))
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffAdd, "", username+" ("+string(role)+")")
	})
	if err != nil {
		return fmt.Errorf("add staff %s: %w", username, err)
	}
	return nil
}

// SetPassword replaces a staff member's password, with the same rules as
// AddStaff. It returns an error wrapping ErrNotFound for an unknown username.
// The account's browser sessions end; its API tokens stay valid.
func (r *Registry) SetPassword(ctx context.Context, username, password string) error {
	if err := CheckPassword(username, password); err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.execOne(ctx, tx, ErrNotFound, `UPDATE staff SET password_hash = ? WHERE username = ?`, hash, username); err != nil {
			return err
		}
		if err := r.endSessions(ctx, tx, username); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffPassword, "", username)
	})
	if err != nil {
		return fmt.Errorf("set password of %s: %w", username, err)
	}
	return nil
}

// StaffMember returns the staff member, enabled or not (check Active), or
// an error wrapping ErrNotFound.
func (r *Registry) StaffMember(ctx context.Context, username string) (Staff, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT `+staffColumns+` FROM staff WHERE username = ?`), username)
	s, err := scanStaff(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Staff{}, fmt.Errorf("staff %s: %w", username, ErrNotFound)
	}
	if err != nil {
		return Staff{}, fmt.Errorf("staff %s: %w", username, err)
	}
	return s, nil
}

// ListStaff returns every staff member, disabled ones included, ordered by
// username. The slice is empty, not nil, when there are none.
func (r *Registry) ListStaff(ctx context.Context) ([]Staff, error) {
	return queryAll(ctx, r, "list staff", `SELECT `+staffColumns+` FROM staff ORDER BY username`, nil, scanStaff)
}

// DisableStaff disables the account, revokes its API tokens and ends its
// browser sessions, in one transaction. Its care-team assignments are kept. It returns an error
// wrapping ErrNotFound for an unknown username and ErrDisabled for an
// account already disabled.
func (r *Registry) DisableStaff(ctx context.Context, username string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, true); err != nil {
			return err
		}
		t := formatTime(now())
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE staff SET disabled_at = ? WHERE username = ?`), t, username); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, r.q(`UPDATE staff_tokens SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL`), t, username); err != nil {
			return err
		}
		if err := r.endSessions(ctx, tx, username); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffDisable, "", username)
	})
	if err != nil {
		return fmt.Errorf("disable staff %s: %w", username, err)
	}
	return nil
}

// Authenticate checks a username and password. It returns an error wrapping
// ErrBadCredentials for an unknown username or a wrong password alike, and
// ErrDisabled (only given the right password) for a disabled account. A
// hash made with other parameters than this binary's is replaced by one
// made with them once the password has matched.
func (r *Registry) Authenticate(ctx context.Context, username, password string) (Staff, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT `+staffColumns+`, password_hash FROM staff WHERE username = ?`), username)
	s, hash, err := scanStaffHash(row)
	known := err == nil
	switch {
	case errors.Is(err, sql.ErrNoRows):
		hash = dummyHash
	case err != nil:
		return Staff{}, fmt.Errorf("authenticate %s: %w", username, err)
	}
	ok, err := verifyPassword(ctx, hash, password)
	if errors.Is(err, errBadHash) {
		// A damaged stored hash matches no password; saying so would tell
		// a stranger that the username exists.
		ok, err = false, nil
	}
	if err != nil {
		return Staff{}, fmt.Errorf("authenticate %s: %w", username, err)
	}
	if !ok || !known {
		return Staff{}, fmt.Errorf("authenticate %s: %w", username, ErrBadCredentials)
	}
	if !s.Active() {
		return Staff{}, fmt.Errorf("authenticate %s: %w", username, ErrDisabled)
	}
	if p, _, _, _ := parsePHC(hash); p != argonDefaults {
		// Best effort: the right password must not fail over a busy
		// database; the next login tries again.
		_ = r.rehash(ctx, username, hash, password)
	}
	return s, nil
}

// rehash replaces old, the stored hash of password, with one made with
// argonDefaults, unless the hash changed meanwhile.
func (r *Registry) rehash(ctx context.Context, username, old, password string) error {
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, r.q(`UPDATE staff SET password_hash = ? WHERE username = ? AND password_hash = ?`),
		hash, username, old)
	return err
}

// AssignPatient puts the patient in the staff member's care team; assigning
// twice changes nothing. It returns an error wrapping ErrNotFound, naming
// the staff member or the patient, when either does not exist, and
// ErrDisabled for a disabled account.
func (r *Registry) AssignPatient(ctx context.Context, username, patientID string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, true); err != nil {
			return err
		}
		if err := r.checkPatient(ctx, tx, patientID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, r.q(`INSERT INTO care_team (username, patient_id, assigned_at) VALUES (?, ?, ?)
			ON CONFLICT (username, patient_id) DO NOTHING`), username, patientID, formatTime(now()))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // already assigned: nothing changed, nothing to record
		}
		return r.record(ctx, tx, ActionStaffAssign, patientID, username)
	})
	if err != nil {
		return fmt.Errorf("assign patient %s to %s: %w", patientID, username, err)
	}
	return nil
}

// UnassignPatient takes the patient out of the staff member's care team. It
// returns an error wrapping ErrNotFound, naming what is missing, when the
// staff member or the patient does not exist or the patient is not
// assigned to them: an operator's typo must not pass for success.
func (r *Registry) UnassignPatient(ctx context.Context, username, patientID string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, false); err != nil {
			return err
		}
		if err := r.checkPatient(ctx, tx, patientID); err != nil {
			return err
		}
		err := r.execOne(ctx, tx, fmt.Errorf("not assigned: %w", ErrNotFound),
			`DELETE FROM care_team WHERE username = ? AND patient_id = ?`, username, patientID)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffUnassign, patientID, username)
	})
	if err != nil {
		return fmt.Errorf("unassign patient %s from %s: %w", patientID, username, err)
	}
	return nil
}

// AssignedPatients returns the ids of the patients in the staff member's
// care team, sorted; empty, not nil, when there are none. It returns an
// error wrapping ErrNotFound for an unknown username.
func (r *Registry) AssignedPatients(ctx context.Context, username string) ([]string, error) {
	if _, err := r.StaffMember(ctx, username); err != nil {
		return nil, fmt.Errorf("assigned patients: %w", err)
	}
	return queryAll(ctx, r, "assigned patients of "+username,
		`SELECT patient_id FROM care_team WHERE username = ? ORDER BY patient_id`, []any{username}, scanString)
}

// IssueStaffToken returns a new API token for an enabled staff member,
// shown once: "pps_" followed by the unpadded base64url encoding of 32
// random bytes. The registry keeps only its SHA-256 and the label, a note
// of where the token is used (at most 64 printable characters; may be
// empty). It returns an error wrapping ErrNotFound for an unknown username
// and ErrDisabled for a disabled account.
func (r *Registry) IssueStaffToken(ctx context.Context, username, label string) (token string, err error) {
	if utf8.RuneCountInString(label) > 64 || strings.ContainsFunc(label, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return "", fmt.Errorf("issue token for %s: label: want at most 64 printable characters", username)
	}
	token = newToken(staffTokenPrefix)
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, true); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, r.q(`INSERT INTO staff_tokens (token_hash, username, label, created_at) VALUES (?, ?, ?, ?)`),
			hashToken(token), username, label, formatTime(now()))
		if err != nil {
			return err
		}
		target := username
		if label != "" {
			target += " (" + label + ")"
		}
		return r.record(ctx, tx, ActionStaffToken, "", target)
	})
	if err != nil {
		return "", fmt.Errorf("issue token for %s: %w", username, err)
	}
	return token, nil
}

// StaffByToken returns the staff member an API token was issued to. It
// returns an error wrapping ErrNotFound for an unknown or revoked token and
// ErrDisabled when the account is disabled. The error never repeats the
// token.
func (r *Registry) StaffByToken(ctx context.Context, token string) (Staff, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT s.username, s.role, s.created_at, s.disabled_at, t.revoked_at
		FROM staff_tokens t JOIN staff s ON s.username = t.username WHERE t.token_hash = ?`), hashToken(token))
	var revoked sql.NullString
	s, err := scanStaffFrom(row, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Staff{}, fmt.Errorf("staff by token: %w", ErrNotFound)
	case err != nil:
		return Staff{}, fmt.Errorf("staff by token: %w", err)
	case revoked.Valid:
		return Staff{}, fmt.Errorf("staff by token: revoked token: %w", ErrNotFound)
	case !s.Active():
		return Staff{}, fmt.Errorf("staff by token: %s: %w", s.Username, ErrDisabled)
	}
	return s, nil
}

// RevokeStaffTokens revokes every API token of the staff member; revoking
// when there are none is not an error. It returns an error wrapping
// ErrNotFound for an unknown username.
func (r *Registry) RevokeStaffTokens(ctx context.Context, username string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, username, false); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, r.q(`UPDATE staff_tokens SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL`),
			formatTime(now()), username)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionStaffRevoke, "", username)
	})
	if err != nil {
		return fmt.Errorf("revoke tokens of %s: %w", username, err)
	}
	return nil
}

// checkStaff returns an error wrapping ErrNotFound, naming the staff
// member, when they do not exist, and, when active is set, ErrDisabled
// when their account is disabled.
func (r *Registry) checkStaff(ctx context.Context, tx *sql.Tx, username string, active bool) error {
	var disabled sql.NullString
	err := tx.QueryRowContext(ctx, r.q(`SELECT disabled_at FROM staff WHERE username = ?`), username).Scan(&disabled)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("staff %s: %w", username, ErrNotFound)
	case err != nil:
		return err
	case active && disabled.Valid:
		return fmt.Errorf("staff %s: %w", username, ErrDisabled)
	}
	return nil
}

// checkPatient returns an error wrapping ErrNotFound, naming the patient,
// when they do not exist.
func (r *Registry) checkPatient(ctx context.Context, tx *sql.Tx, patientID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM patients WHERE id = ?`), patientID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("patient %s: %w", patientID, ErrNotFound)
	}
	return nil
}

const staffColumns = `username, role, created_at, disabled_at`

func scanStaff(s scanner) (Staff, error) { return scanStaffFrom(s) }

func scanStaffHash(s scanner) (Staff, string, error) {
	var hash string
	st, err := scanStaffFrom(s, &hash)
	return st, hash, err
}

// scanStaffFrom scans staffColumns, then extra.
func scanStaffFrom(s scanner, extra ...any) (Staff, error) {
	var st Staff
	var role, created string
	var disabled sql.NullString
	if err := s.Scan(append([]any{&st.Username, &role, &created, &disabled}, extra...)...); err != nil {
		return Staff{}, err
	}
	st.Role = Role(role)
	t, err := parseTime(created)
	if err != nil {
		return Staff{}, fmt.Errorf("staff %s created_at: %w", st.Username, err)
	}
	st.CreatedAt = t
	if disabled.Valid {
		if st.DisabledAt, err = parseTime(disabled.String); err != nil {
			return Staff{}, fmt.Errorf("staff %s disabled_at: %w", st.Username, err)
		}
	}
	return st, nil
}

// CareTeam returns the usernames of the staff the patient is assigned to,
// sorted; empty, not nil, when there are none. It returns an error
// wrapping ErrNotFound for an unknown patient.
func (r *Registry) CareTeam(ctx context.Context, patientID string) ([]string, error) {
	if _, err := r.Patient(ctx, patientID); err != nil {
		return nil, fmt.Errorf("care team: %w", err)
	}
	return queryAll(ctx, r, "care team of "+patientID,
		`SELECT username FROM care_team WHERE patient_id = ? ORDER BY username`, []any{patientID}, scanString)
}
