package registry

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The audit log's actions. Every change the registry makes records its own
// entry, in the same transaction, with the actor of the context
// (WithActor); the server records sign-ins and reads of patient data.
const (
	ActionSignIn            = "signin" // target: how (password); outcome ok, failed or locked
	ActionSignOut           = "signout"
	ActionPatientAdd        = "patient.add"        // patient
	ActionPatientList       = "patient.list"       // target: how many patients were listed
	ActionComparisons       = "comparison.clinic"  // target: how many patients were compared
	ActionSummariesPublish  = "summaries.publish"  // patient, when one was named; target: the week, how many patients and devices
	ActionPatientRead       = "patient.read"       // patient; target: what was read (details, series:sleep, ...)
	ActionPatientEdit       = "patient.edit"       // patient; target: what changed (name, contact), never the values
	ActionPatientDeactivate = "patient.deactivate" // patient; target: the devices revoked with it
	ActionPatientReactivate = "patient.reactivate" // patient
	ActionDeviceEnroll      = "device.enroll"      // patient; target: device id
	ActionDeviceUndo        = "device.undo"        // patient; target: device id (an enrolment taken back)
	ActionDeviceRevoke      = "device.revoke"      // patient; target: device id
	ActionStaffAdd          = "staff.add"          // target: username (role)
	ActionStaffPassword     = "staff.password"     // target: username
	ActionStaffDisable      = "staff.disable"      // target: username
	ActionStaffAssign       = "staff.assign"       // patient; target: username
	ActionStaffUnassign     = "staff.unassign"     // patient; target: username
	ActionStaffToken        = "staff.token"        // target: username (label)
	ActionStaffRevoke       = "staff.revoke"       // target: username (every API token)
	ActionStaffSignOut      = "staff.signout"      // target: username (every browser session)
	ActionStaffContact      = "staff.contact"      // target: username (the channels set, never their addresses)
	ActionAuditRead         = "audit.read"
	ActionPlanChange        = "plan.change"      // patient; target: the new version (v3)
	ActionPatientNote       = "patient.note"     // patient; target: note <id> (never its text)
	ActionAlertAck          = "alert.ack"        // patient; target: alert <id>
	ActionAlertResolve      = "alert.resolve"    // patient; target: alert <id>
	ActionAlertSnooze       = "alert.snooze"     // patient; target: alert <id>
	ActionAlertAssign       = "alert.assign"     // patient; target: alert <id> (taken or given up)
	ActionAccessDenied      = "access.denied"    // patient (when one was asked for); target: the request
	ActionRotaChange        = "oncall.change"    // target: the rota's new version (v3)
	ActionProcedureType     = "procedure.type"   // target: the catalogue entry's id
	ActionProcedureAdd      = "procedure.add"    // patient; target: procedure <id> (type, status)
	ActionProcedureChange   = "procedure.change" // patient; target: procedure <id> (its new status)
)

// The outcomes of an audit entry.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
	OutcomeLocked = "locked"
)

// AuditEntry is one line of the audit log: who did what, to which patient,
// when, from where, and how it ended.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`             // a staff username, or "cli:<os user>" for the admin commands
	Address string    `json:"address,omitempty"` // the client's IP address, for requests
	Action  string    `json:"action"`
	Patient string    `json:"patient,omitempty"`
	Target  string    `json:"target,omitempty"`
	Outcome string    `json:"outcome"`
}

// Actor is who the registry's changes are recorded as made by.
type Actor struct {
	Name    string // a staff username, or "cli:<os user>"
	Address string // the client's IP address, when there is one
}

type actorKey struct{}

// WithActor returns a context under which the registry's changes are
// recorded in the audit log as made by a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx; "system" when none was set.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Name != "" {
		return a
	}
	return Actor{Name: "system"}
}

// Audit appends e to the audit log. A zero At is now; a zero Actor is the
// context's. It returns an error for an unknown outcome. The entry is
// written under the write lock, as every other change, so that entries'
// ids are handed out in the order they commit (AccessChanges reads on
// from the last id it saw).
func (r *Registry) Audit(ctx context.Context, e AuditEntry) error {
	if err := r.inTx(ctx, func(tx *sql.Tx) error { return r.audit(ctx, tx, e) }); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// audit appends e in tx.
func (r *Registry) audit(ctx context.Context, tx *sql.Tx, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = now()
	}
	if e.Actor == "" {
		a := ActorFrom(ctx)
		e.Actor, e.Address = a.Name, a.Address
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	_, err := tx.ExecContext(ctx, r.q(`INSERT INTO audit (at, actor, address, action, patient_id, target, outcome)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), formatTime(e.At), e.Actor, e.Address, e.Action, e.Patient, e.Target, e.Outcome)
	return err
}

// record appends the entry of a change made in tx, by the context's actor.
func (r *Registry) record(ctx context.Context, tx *sql.Tx, action, patient, target string) error {
	if err := r.audit(ctx, tx, AuditEntry{Action: action, Patient: patient, Target: target}); err != nil {
		return err
	}
	r.noteAccessChange(tx, action, target)
	return nil
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Actor   string
	Patient string
	Action  string // an action, or a prefix ending in "." ("staff.")
	Outcome string
	Since   time.Time // at or after
	Until   time.Time // before
	Before  int64     // entries with a smaller id: the next page after the last id seen
	Limit   int       // at most this many (default and maximum 1000)
}

// MaxAuditPage is the most entries AuditEntries returns at once.
const MaxAuditPage = 1000

// AuditEntries returns the entries f selects, newest first. Page through
// with Before set to the last entry's ID.
func (r *Registry) AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) { where = append(where, cond); args = append(args, arg) }
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Patient != "" {
		add("patient_id = ?", f.Patient)
	}
	if strings.HasSuffix(f.Action, ".") {
		where = append(where, "substr(action, 1, ?) = ?")
		args = append(args, len(f.Action), f.Action)
	} else if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("at >= ?", formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", formatTime(f.Until))
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	if f.Limit <= 0 || f.Limit > MaxAuditPage {
		f.Limit = MaxAuditPage
	}
	query := `SELECT id, at, actor, address, action, patient_id, target, outcome FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	return queryAll(ctx, r, "audit entries", query, append(args, f.Limit), func(s scanner) (AuditEntry, error) {
		var e AuditEntry
		var at string
		if err := s.Scan(&e.ID, &at, &e.Actor, &e.Address, &e.Action, &e.Patient, &e.Target, &e.Outcome); err != nil {
			return e, err
		}
		var err error
		if e.At, err = parseTime(at); err != nil {
			return e, fmt.Errorf("entry %d at: %w", e.ID, err)
		}
		return e, nil
	})
}

// SignInFailures counts the failed sign-ins recorded since the given time:
// for the username, only those after its last successful sign-in; for the
// address, all of them.
func (r *Registry) SignInFailures(ctx context.Context, username, address string, since time.Time) (account, fromAddress int, err error) {
	t := formatTime(since)
	err = r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM audit
		WHERE actor = ? AND action = 'signin' AND outcome = 'failed' AND at >= ?
		AND at > COALESCE((SELECT MAX(at) FROM audit WHERE actor = ? AND action = 'signin' AND outcome = 'ok'), '')`),
		username, t, username).Scan(&account)
	if err != nil {
		return 0, 0, fmt.Errorf("count sign-in failures: %w", err)
	}
	if address != "" {
		err = r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM audit
			WHERE address = ? AND action = 'signin' AND outcome = 'failed' AND at >= ?`), address, t).Scan(&fromAddress)
		if err != nil {
			return 0, 0, fmt.Errorf("count sign-in failures: %w", err)
		}
	}
	return account, fromAddress, nil
}

// ActionSignInLock is the entry written when an account is locked for
// every address after failed sign-ins from many (actor: the account;
// target: until when, and how many failures from how many addresses).
const ActionSignInLock = "signin.lock"

// SignInCounts are the failed sign-ins that the lock-out judges, within its
// window.
type SignInCounts struct {
	Account          int       // of the username from any address, since its last success
	AccountAddresses int       // how many addresses those came from
	LastFailure      time.Time // the newest of them (zero when none)
	AccountAddress   int       // of the username from this address, since its last success from there
	Address          int       // from the address, of any username
}

// SignInCounts counts the failed sign-ins recorded since the given time
// that the lock-out judges: of the username (since its last successful
// sign-in), of the username from the address (since its last success from
// that address), and of any username from the address.
func (r *Registry) SignInCounts(ctx context.Context, username, address string, since time.Time) (SignInCounts, error) {
	var c SignInCounts
	t := formatTime(since)
	var last sql.NullString
	err := r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*), COUNT(DISTINCT address), MAX(at) FROM audit
		WHERE actor = ? AND action = 'signin' AND outcome = 'failed' AND at >= ?
		AND at > COALESCE((SELECT MAX(at) FROM audit WHERE actor = ? AND action = 'signin' AND outcome = 'ok'), '')`),
		username, t, username).Scan(&c.Account, &c.AccountAddresses, &last)
	if err != nil {
		return c, fmt.Errorf("count sign-in failures: %w", err)
	}
	if last.Valid {
		if c.LastFailure, err = parseTime(last.String); err != nil {
			return c, fmt.Errorf("count sign-in failures: %w", err)
		}
	}
	if address == "" {
		return c, nil
	}
	err = r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM audit
		WHERE actor = ? AND address = ? AND action = 'signin' AND outcome = 'failed' AND at >= ?
		AND at > COALESCE((SELECT MAX(at) FROM audit WHERE actor = ? AND address = ? AND action = 'signin' AND outcome = 'ok'), '')`),
		username, address, t, username, address).Scan(&c.AccountAddress)
	if err != nil {
		return c, fmt.Errorf("count sign-in failures: %w", err)
	}
	err = r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM audit
		WHERE address = ? AND action = 'signin' AND outcome = 'failed' AND at >= ?`), address, t).Scan(&c.Address)
	if err != nil {
		return c, fmt.Errorf("count sign-in failures: %w", err)
	}
	return c, nil
}
