package registry

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// accessActions are the audit actions of changes that give a staff member
// access to a patient, or take access or a credential away: a console that
// is open must learn of them at once.
var accessActions = map[string]bool{
	ActionStaffAssign:   true,
	ActionStaffUnassign: true,
	ActionStaffDisable:  true,
	ActionStaffSignOut:  true,
	ActionStaffRevoke:   true,
}

// accessWatch passes access changes made in this process to the watchers
// registered with OnAccessChange, once their transaction has committed.
type accessWatch struct {
	mu       sync.Mutex
	pending  map[*sql.Tx][]string    // usernames changed by a transaction not yet committed; guarded by mu
	watchers []func(username string) // guarded by mu
}

// OnAccessChange registers fn, which is called with the username after
// every change this process makes that gives or takes away a staff
// member's access (care-team assignment, disabling, signing out of every
// browser, revoking API tokens), once the change has committed and before
// the call that made it returns. fn must not block. Changes made by
// another process (the admin commands) are found with AccessChanges.
func (r *Registry) OnAccessChange(fn func(username string)) {
	r.access.mu.Lock()
	defer r.access.mu.Unlock()
	r.access.watchers = append(r.access.watchers, fn)
}

// noteAccessChange remembers that tx changes the access of username, when
// action is one that does.
func (r *Registry) noteAccessChange(tx *sql.Tx, action, username string) {
	if !accessActions[action] || tx == nil {
		return
	}
	r.access.mu.Lock()
	defer r.access.mu.Unlock()
	if r.access.pending == nil {
		r.access.pending = map[*sql.Tx][]string{}
	}
	r.access.pending[tx] = append(r.access.pending[tx], username)
}

// settled tells the watchers of tx's access changes once it has committed
// (committed true), or forgets them.
func (r *Registry) settled(tx *sql.Tx, committed bool) {
	r.access.mu.Lock()
	names := r.access.pending[tx]
	delete(r.access.pending, tx)
	watchers := r.access.watchers
	r.access.mu.Unlock()
	if !committed {
		return
	}
	for _, name := range names {
		for _, fn := range watchers {
			fn(name)
		}
	}
}

// AccessChanges returns the usernames whose access changed in the audit
// entries after the entry with id after, and the id of the newest entry,
// which the next call passes as after. The audit log is the change
// counter: every such change records its entry in its own transaction,
// whichever process made it. Pass after = 0 to learn the newest id only
// (usernames is then nil). The cost is that of reading the entries added
// since after.
func (r *Registry) AccessChanges(ctx context.Context, after int64) (last int64, usernames []string, err error) {
	return r.auditChanges(ctx, "access changes", after, `target`,
		`'staff.assign', 'staff.unassign', 'staff.disable', 'staff.signout', 'staff.revoke'`)
}

// ProcedureChanges is AccessChanges for the patients whose procedures
// were recorded or changed.
func (r *Registry) ProcedureChanges(ctx context.Context, after int64) (last int64, patients []string, err error) {
	return r.auditChanges(ctx, "procedure changes", after, `patient_id`, `'procedure.add', 'procedure.change'`)
}

// auditChanges returns the distinct values of column of the audit
// entries of the actions (a quoted SQL list) after the entry with id
// after, and the newest entry's id (see AccessChanges).
func (r *Registry) auditChanges(ctx context.Context, what string, after int64, column, actions string) (last int64, values []string, err error) {
	if err := r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit`).Scan(&last); err != nil {
		return after, nil, fmt.Errorf("%s: %w", what, err)
	}
	if after <= 0 || last <= after {
		return last, nil, nil
	}
	rows, err := r.db.QueryContext(ctx, r.q(`SELECT DISTINCT `+column+` FROM audit WHERE id > ? AND id <= ? AND outcome = 'ok' AND action IN (`+actions+`)`), after, last)
	if err != nil {
		return after, nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return after, nil, fmt.Errorf("%s: %w", what, err)
		}
		values = append(values, v)
	}
	if err := rows.Err(); err != nil {
		return after, nil, fmt.Errorf("%s: %w", what, err)
	}
	return last, values, nil
}
