package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testActor is the actor the audit tests make their changes as.
var testActor = Actor{Name: "cli:op", Address: "10.0.0.1"}

// allAudit returns every audit entry, newest first.
func allAudit(t *testing.T, r *Registry) []AuditEntry {
	t.Helper()
	es, err := r.AuditEntries(context.Background(), AuditFilter{})
	if err != nil {
		t.Fatalf("AuditEntries: %v", err)
	}
	return es
}

// lastAuditID returns the id of the newest audit entry, 0 when there is none.
func lastAuditID(t *testing.T, r *Registry) int64 {
	t.Helper()
	var id sql.NullInt64
	if err := r.db.QueryRowContext(context.Background(), `SELECT MAX(id) FROM audit`).Scan(&id); err != nil {
		t.Fatalf("max audit id: %v", err)
	}
	return id.Int64
}

// auditAfter returns the entries with an id above after, newest first.
func auditAfter(t *testing.T, r *Registry, after int64) []AuditEntry {
	t.Helper()
	var es []AuditEntry
	for _, e := range allAudit(t, r) {
		if e.ID > after {
			es = append(es, e)
		}
	}
	return es
}

func TestActorFrom(t *testing.T) {
	bg := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		want Actor
	}{
		{name: "none", ctx: bg, want: Actor{Name: "system"}},
		{name: "set", ctx: WithActor(bg, testActor), want: testActor},
		{name: "name only", ctx: WithActor(bg, Actor{Name: "alice"}), want: Actor{Name: "alice"}},
		{name: "empty name", ctx: WithActor(bg, Actor{Address: "10.0.0.7"}), want: Actor{Name: "system"}},
		{name: "innermost wins", ctx: WithActor(WithActor(bg, Actor{Name: "bob"}), testActor), want: testActor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ActorFrom(tt.ctx); got != tt.want {
				t.Errorf("ActorFrom = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestMutationsAudited checks that every change records exactly one entry,
// as the context's actor, or as "system" when the context has none.
func TestMutationsAudited(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		type step struct {
			name    string
			setup   func(t *testing.T, ctx context.Context, r *Registry) // not measured
			do      func(ctx context.Context, r *Registry) error
			action  string
			patient string
			target  string
		}
		var undoToken string
		steps := []step{
			{
				name: "AddPatient",
				do: func(ctx context.Context, r *Registry) error {
					return r.AddPatient(ctx, Patient{ID: "p-3", Name: "Pat Three"})
				},
				action:  ActionPatientAdd,
				patient: "p-3",
			},
			{
				name: "EnrollDevice",
				do: func(ctx context.Context, r *Registry) error {
					_, err := r.EnrollDevice(ctx, "d-1", "p-1")
					return err
				},
				action: ActionDeviceEnroll, patient: "p-1", target: "d-1",
			},
			{
				name:   "RevokeDevice",
				do:     func(ctx context.Context, r *Registry) error { return r.RevokeDevice(ctx, "d-1") },
				action: ActionDeviceRevoke, patient: "p-1", target: "d-1",
			},
			{
				name: "UndoEnrollment",
				setup: func(t *testing.T, ctx context.Context, r *Registry) {
					var err error
					if undoToken, err = r.EnrollDevice(ctx, "d-2", "p-2"); err != nil {
						t.Fatal(err)
					}
				},
				do:     func(ctx context.Context, r *Registry) error { return r.UndoEnrollment(ctx, "d-2", undoToken) },
				action: ActionDeviceUndo, patient: "p-2", target: "d-2",
			},
			{
				name: "AddStaff",
				do: func(ctx context.Context, r *Registry) error {
					return r.AddStaff(ctx, "bob", RoleOnCall, "the on-call's long password")
				},
				action: ActionStaffAdd, target: "bob (oncall)",
			},
			{
				name: "SetPassword",
				do: func(ctx context.Context, r *Registry) error {
					return r.SetPassword(ctx, "alice", "her new long password")
				},
				action: ActionStaffPassword, target: "alice",
			},
			{
				name:   "AssignPatient",
				do:     func(ctx context.Context, r *Registry) error { return r.AssignPatient(ctx, "alice", "p-1") },
				action: ActionStaffAssign, patient: "p-1", target: "alice",
			},
			{
				name: "UnassignPatient",
				setup: func(t *testing.T, ctx context.Context, r *Registry) {
					if err := r.AssignPatient(ctx, "alice", "p-2"); err != nil {
						t.Fatal(err)
					}
				},
				do:     func(ctx context.Context, r *Registry) error { return r.UnassignPatient(ctx, "alice", "p-2") },
				action: ActionStaffUnassign, patient: "p-2", target: "alice",
			},
			{
				name: "IssueStaffToken with a label",
				do: func(ctx context.Context, r *Registry) error {
					_, err := r.IssueStaffToken(ctx, "alice", "laptop")
					return err
				},
				action: ActionStaffToken, target: "alice (laptop)",
			},
			{
				name: "IssueStaffToken without a label",
				do: func(ctx context.Context, r *Registry) error {
					_, err := r.IssueStaffToken(ctx, "alice", "")
					return err
				},
				action: ActionStaffToken, target: "alice",
			},
			{
				name:   "RevokeStaffTokens",
				do:     func(ctx context.Context, r *Registry) error { return r.RevokeStaffTokens(ctx, "alice") },
				action: ActionStaffRevoke, target: "alice",
			},
			{
				name: "EndSessions",
				setup: func(t *testing.T, ctx context.Context, r *Registry) {
					if _, _, err := r.CreateSession(ctx, "alice", time.Now()); err != nil {
						t.Fatal(err)
					}
				},
				do:     func(ctx context.Context, r *Registry) error { return r.EndSessions(ctx, "alice") },
				action: ActionStaffSignOut, target: "alice",
			},
			{
				name: "DisableStaff",
				setup: func(t *testing.T, ctx context.Context, r *Registry) {
					if _, err := r.IssueStaffToken(ctx, "alice", "phone"); err != nil {
						t.Fatal(err)
					}
					if _, _, err := r.CreateSession(ctx, "alice", time.Now()); err != nil {
						t.Fatal(err)
					}
				},
				do:     func(ctx context.Context, r *Registry) error { return r.DisableStaff(ctx, "alice") },
				action: ActionStaffDisable, target: "alice",
			},
		}

		variants := []struct {
			name  string
			ctx   func(context.Context) context.Context
			actor Actor
		}{
			{name: "with actor", ctx: func(ctx context.Context) context.Context { return WithActor(ctx, testActor) }, actor: testActor},
			{name: "without actor", ctx: func(ctx context.Context) context.Context { return ctx }, actor: Actor{Name: "system"}},
		}
		for _, v := range variants {
			t.Run(v.name, func(t *testing.T) {
				r, _ := openWithStaff(t, be)
				for _, s := range steps {
					t.Run(s.name, func(t *testing.T) {
						if s.setup != nil {
							s.setup(t, t.Context(), r)
						}
						before := lastAuditID(t, r)
						start := time.Now()
						if err := s.do(v.ctx(t.Context()), r); err != nil {
							t.Fatalf("%s: %v", s.name, err)
						}
						end := time.Now()
						got := auditAfter(t, r, before)
						if len(got) != 1 {
							t.Fatalf("%s recorded %d entries, want 1: %+v", s.name, len(got), got)
						}
						e := got[0]
						want := AuditEntry{ID: e.ID, At: e.At, Actor: v.actor.Name, Address: v.actor.Address,
							Action: s.action, Patient: s.patient, Target: s.target, Outcome: OutcomeOK}
						if e != want {
							t.Errorf("entry = %+v, want %+v", e, want)
						}
						if e.At.Before(start.Add(-time.Second)) || e.At.After(end.Add(time.Second)) || e.At.Location() != time.UTC {
							t.Errorf("entry At = %v, want between %v and %v, in UTC", e.At, start, end)
						}
					})
				}
			})
		}
	})
}

// TestFailedMutationsNotAudited checks that a change that fails, or changes
// nothing, records nothing.
func TestFailedMutationsNotAudited(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		bg := t.Context()
		tok, err := r.EnrollDevice(bg, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.EnrollDevice(bg, "d-revoked", "p-1"); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeDevice(bg, "d-revoked"); err != nil {
			t.Fatal(err)
		}
		if err := r.AddStaff(bg, "dave", RoleAdmin, "the admin's long password"); err != nil {
			t.Fatal(err)
		}
		if err := r.DisableStaff(bg, "dave"); err != nil {
			t.Fatal(err)
		}
		if err := r.AssignPatient(bg, "alice", "p-1"); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name    string
			do      func(ctx context.Context) error
			wantErr error // nil: the call succeeds but changes nothing; errAny: any error
		}{
			{name: "AddPatient invalid id", do: func(ctx context.Context) error { return r.AddPatient(ctx, Patient{ID: "bad id"}) }, wantErr: ErrInvalidID},
			{name: "AddPatient taken id", do: func(ctx context.Context) error { return r.AddPatient(ctx, Patient{ID: "p-1"}) }, wantErr: ErrExists},
			{name: "EnrollDevice unknown patient", do: func(ctx context.Context) error {
				_, err := r.EnrollDevice(ctx, "d-9", "p-404")
				return err
			}, wantErr: ErrNotFound},
			{name: "EnrollDevice taken id", do: func(ctx context.Context) error {
				_, err := r.EnrollDevice(ctx, "d-1", "p-2")
				return err
			}, wantErr: ErrExists},
			{name: "EnrollDevice invalid id", do: func(ctx context.Context) error {
				_, err := r.EnrollDevice(ctx, "", "p-1")
				return err
			}, wantErr: ErrInvalidID},
			{name: "RevokeDevice unknown", do: func(ctx context.Context) error { return r.RevokeDevice(ctx, "d-404") }, wantErr: ErrNotFound},
			{name: "RevokeDevice twice", do: func(ctx context.Context) error { return r.RevokeDevice(ctx, "d-revoked") }, wantErr: ErrRevoked},
			{name: "UndoEnrollment wrong token", do: func(ctx context.Context) error { return r.UndoEnrollment(ctx, "d-1", tok+"x") }, wantErr: ErrNotFound},
			{name: "UndoEnrollment unknown device", do: func(ctx context.Context) error { return r.UndoEnrollment(ctx, "d-404", tok) }, wantErr: ErrNotFound},
			{name: "AddStaff taken username", do: func(ctx context.Context) error { return r.AddStaff(ctx, "alice", RoleAdmin, "another long password") }, wantErr: ErrExists},
			{name: "AddStaff weak password", do: func(ctx context.Context) error { return r.AddStaff(ctx, "erin", RoleAdmin, "short") }, wantErr: ErrWeakPassword},
			{name: "SetPassword unknown", do: func(ctx context.Context) error { return r.SetPassword(ctx, "nobody", "a long new password") }, wantErr: ErrNotFound},
			{name: "SetPassword weak", do: func(ctx context.Context) error { return r.SetPassword(ctx, "alice", "short") }, wantErr: ErrWeakPassword},
			{name: "DisableStaff unknown", do: func(ctx context.Context) error { return r.DisableStaff(ctx, "nobody") }, wantErr: ErrNotFound},
			{name: "DisableStaff twice", do: func(ctx context.Context) error { return r.DisableStaff(ctx, "dave") }, wantErr: ErrDisabled},
			{name: "AssignPatient twice", do: func(ctx context.Context) error { return r.AssignPatient(ctx, "alice", "p-1") }},
			{name: "AssignPatient unknown patient", do: func(ctx context.Context) error { return r.AssignPatient(ctx, "alice", "p-404") }, wantErr: ErrNotFound},
			{name: "AssignPatient unknown staff", do: func(ctx context.Context) error { return r.AssignPatient(ctx, "nobody", "p-1") }, wantErr: ErrNotFound},
			{name: "AssignPatient disabled staff", do: func(ctx context.Context) error { return r.AssignPatient(ctx, "dave", "p-1") }, wantErr: ErrDisabled},
			{name: "UnassignPatient not assigned", do: func(ctx context.Context) error { return r.UnassignPatient(ctx, "alice", "p-2") }, wantErr: ErrNotFound},
			{name: "UnassignPatient unknown staff", do: func(ctx context.Context) error { return r.UnassignPatient(ctx, "nobody", "p-1") }, wantErr: ErrNotFound},
			{name: "IssueStaffToken unknown", do: func(ctx context.Context) error {
				_, err := r.IssueStaffToken(ctx, "nobody", "")
				return err
			}, wantErr: ErrNotFound},
			{name: "IssueStaffToken disabled", do: func(ctx context.Context) error {
				_, err := r.IssueStaffToken(ctx, "dave", "")
				return err
			}, wantErr: ErrDisabled},
			{name: "IssueStaffToken bad label", do: func(ctx context.Context) error {
				_, err := r.IssueStaffToken(ctx, "alice", "tab\there")
				return err
			}, wantErr: errAny},
			{name: "RevokeStaffTokens unknown", do: func(ctx context.Context) error { return r.RevokeStaffTokens(ctx, "nobody") }, wantErr: ErrNotFound},
			{name: "EndSessions unknown", do: func(ctx context.Context) error { return r.EndSessions(ctx, "nobody") }, wantErr: ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := allAudit(t, r)
				err := tt.do(WithActor(t.Context(), testActor))
				switch {
				case tt.wantErr == errAny && err == nil:
					t.Fatal("succeeded, want an error")
				case tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if after := allAudit(t, r); !reflect.DeepEqual(after, before) {
					t.Errorf("audit log changed: %d entries before, %d after; newest %+v", len(before), len(after), after[0])
				}
			})
		}
	})
}

// errAny stands for "some error" in the tables of these tests.
var errAny = errors.New("any error")

// TestMutationRolledBackWithItsAudit checks that a change and its entry are
// one transaction: when the entry cannot be written, the change is undone.
func TestMutationRolledBackWithItsAudit(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		tok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.CreateSession(ctx, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := r.IssueStaffToken(ctx, "alice", "laptop"); err != nil {
			t.Fatal(err)
		}
		// From here on the audit log refuses every entry.
		refuse := []string{`CREATE TRIGGER test_audit_refuse BEFORE INSERT ON audit
			BEGIN SELECT RAISE(ABORT, 'test: audit refused'); END`}
		if be.postgres() {
			refuse = []string{`CREATE FUNCTION test_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'test: audit refused'; END $$`,
				`CREATE TRIGGER test_audit_refuse BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION test_audit_refuse()`}
		}
		for _, stmt := range refuse {
			if _, err := r.db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		count := func(query string, args ...any) int {
			t.Helper()
			var n int
			if err := r.db.QueryRowContext(ctx, r.q(query), args...).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		}
		tests := []struct {
			name  string
			do    func() error
			state string // a COUNT query whose answer must not change
		}{
			{name: "AddPatient", do: func() error { return r.AddPatient(ctx, Patient{ID: "p-3"}) },
				state: `SELECT COUNT(*) FROM patients`},
			{name: "EnrollDevice", do: func() error { _, err := r.EnrollDevice(ctx, "d-2", "p-1"); return err },
				state: `SELECT COUNT(*) FROM devices`},
			{name: "RevokeDevice", do: func() error { return r.RevokeDevice(ctx, "d-1") },
				state: `SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL`},
			{name: "UndoEnrollment", do: func() error { return r.UndoEnrollment(ctx, "d-1", tok) },
				state: `SELECT COUNT(*) FROM devices`},
			{name: "AddStaff", do: func() error { return r.AddStaff(ctx, "bob", RoleAdmin, "the on-call's long password") },
				state: `SELECT COUNT(*) FROM staff`},
			{name: "SetPassword", do: func() error { return r.SetPassword(ctx, "alice", "her new long password") },
				state: `SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL`},
			{name: "DisableStaff", do: func() error { return r.DisableStaff(ctx, "alice") },
				state: `SELECT COUNT(*) FROM staff WHERE disabled_at IS NULL`},
			{name: "AssignPatient", do: func() error { return r.AssignPatient(ctx, "alice", "p-2") },
				state: `SELECT COUNT(*) FROM care_team`},
			{name: "IssueStaffToken", do: func() error { _, err := r.IssueStaffToken(ctx, "alice", ""); return err },
				state: `SELECT COUNT(*) FROM staff_tokens`},
			{name: "RevokeStaffTokens", do: func() error { return r.RevokeStaffTokens(ctx, "alice") },
				state: `SELECT COUNT(*) FROM staff_tokens WHERE revoked_at IS NULL`},
			{name: "EndSessions", do: func() error { return r.EndSessions(ctx, "alice") },
				state: `SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := count(tt.state)
				err := tt.do()
				if err == nil || !strings.Contains(err.Error(), "audit refused") {
					t.Fatalf("error = %v, want the audit log's refusal", err)
				}
				if after := count(tt.state); after != before {
					t.Errorf("%s: %d before, %d after; the change outlived its failed audit entry", tt.state, before, after)
				}
			})
		}
		// Nothing above was stored, so the password is still the old one.
		if _, err := r.Authenticate(ctx, "alice", alicePassword); err != nil {
			t.Errorf("Authenticate with the old password after a refused SetPassword: %v", err)
		}
	})
}

func TestAuditAppendOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := WithActor(t.Context(), testActor)
		if _, err := r.EnrollDevice(ctx, "d-1", "p-1"); err != nil {
			t.Fatal(err)
		}
		before := allAudit(t, r)
		if len(before) < 4 {
			t.Fatalf("only %d entries to test with", len(before))
		}
		id := before[1].ID
		type stmt struct {
			query string
			args  []any
		}
		// Each dialect's own way of changing rows besides UPDATE and DELETE.
		own := stmt{query: `UPDATE OR REPLACE audit SET target = '' WHERE id = ?`, args: []any{id}}
		if be.postgres() {
			own = stmt{query: `TRUNCATE audit`}
		}
		for _, stmt := range []stmt{
			own,
			{query: `UPDATE audit SET actor = 'someone else'`},
			{query: `UPDATE audit SET outcome = 'denied' WHERE id = ?`, args: []any{id}},
			{query: `UPDATE audit SET at = '2000-01-01T00:00:00.000000000Z' WHERE id = ?`, args: []any{id}},
			{query: `DELETE FROM audit`},
			{query: `DELETE FROM audit WHERE id = ?`, args: []any{id}},
			{query: `DELETE FROM audit WHERE actor = 'cli:op'`},
			{query: `INSERT INTO audit (id, at, actor, action, outcome) VALUES (?, '2000-01-01T00:00:00.000000000Z', 'forger', 'x', 'ok')
			ON CONFLICT (id) DO UPDATE SET actor = 'forger'`, args: []any{id}},
		} {
			t.Run(stmt.query, func(t *testing.T) {
				_, err := r.db.ExecContext(t.Context(), r.q(stmt.query), stmt.args...)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("error = %v, want one saying the log is append-only", err)
				}
				if after := allAudit(t, r); !reflect.DeepEqual(after, before) {
					t.Errorf("entries changed:\nbefore %+v\nafter  %+v", before, after)
				}
			})
		}
		// Inside a transaction too: the refusal cannot be committed around.
		t.Run("in a transaction", func(t *testing.T) {
			err := r.inTx(t.Context(), func(tx *sql.Tx) error {
				_, err := tx.ExecContext(t.Context(), r.q(`DELETE FROM audit WHERE id = ?`), id)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("error = %v, want one saying the log is append-only", err)
			}
			if after := allAudit(t, r); !reflect.DeepEqual(after, before) {
				t.Errorf("entries changed")
			}
		})
		// Appending still works.
		if err := r.Audit(ctx, AuditEntry{Action: ActionAuditRead}); err != nil {
			t.Fatalf("Audit after the refused changes: %v", err)
		}
		if n := len(allAudit(t, r)); n != len(before)+1 {
			t.Errorf("%d entries after one more, want %d", n, len(before)+1)
		}
	})
}

// TestAuditAppendOnlyReplace: INSERT OR REPLACE deletes the row it
// conflicts with, and SQLite fires no DELETE trigger for that unless
// recursive_triggers is on; step 3's insert trigger refuses it. SQLite
// only: Postgres has no REPLACE (its ON CONFLICT DO UPDATE is refused in
// TestAuditAppendOnly).
func TestAuditAppendOnlyReplace(t *testing.T) {
	r, _ := openTest(t, sqliteBackend)
	ctx := t.Context()
	if err := r.Audit(ctx, AuditEntry{Action: ActionStaffAdd, Target: "bob (admin)"}); err != nil {
		t.Fatal(err)
	}
	before := allAudit(t, r)
	for _, verb := range []string{"INSERT OR REPLACE", "REPLACE"} {
		_, err := r.db.ExecContext(ctx, verb+` INTO audit (id, at, actor, action, outcome)
		VALUES (?, '2000-01-01T00:00:00.000000000Z', 'forger', 'x', 'ok')`, before[0].ID)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want one saying the log is append-only", verb, err)
		}
		if after := allAudit(t, r); !reflect.DeepEqual(after, before) {
			t.Errorf("%s rewrote the entry:\nbefore %+v\nafter  %+v", verb, before, after)
		}
	}
}

func TestAuditAt(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()

		start := time.Now()
		if err := r.Audit(ctx, AuditEntry{Action: ActionAuditRead}); err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		es := allAudit(t, r)
		if len(es) != 1 {
			t.Fatalf("%d entries, want 1", len(es))
		}
		if at := es[0].At; at.Before(start.Add(-time.Second)) || at.After(end.Add(time.Second)) || at.Location() != time.UTC {
			t.Errorf("zero At stored as %v, want now (%v..%v), in UTC", at, start, end)
		}

		given := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("UTC-5", -5*3600))
		if err := r.Audit(ctx, AuditEntry{At: given, Action: ActionAuditRead}); err != nil {
			t.Fatal(err)
		}
		es = allAudit(t, r)
		if at := es[0].At; !at.Equal(given) || at.Location() != time.UTC {
			t.Errorf("given At %v stored as %v, want the same instant, in UTC", given, at)
		}
		var stored string
		if err := r.db.QueryRowContext(ctx, r.q(`SELECT at FROM audit WHERE id = ?`), es[0].ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if want := "2024-03-01T04:59:58.123456789Z"; stored != want {
			t.Errorf("stored at = %q, want %q", stored, want)
		}
	})
}

func TestAuditFields(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		tests := []struct {
			name string
			ctx  context.Context
			in   AuditEntry
			want AuditEntry // without ID
		}{
			{
				name: "actor from the context",
				ctx:  WithActor(t.Context(), testActor),
				in:   AuditEntry{At: at, Action: ActionPatientRead, Patient: "p-1", Target: "details"},
				want: AuditEntry{At: at, Actor: "cli:op", Address: "10.0.0.1", Action: ActionPatientRead, Patient: "p-1", Target: "details", Outcome: OutcomeOK},
			},
			{
				name: "system without one",
				ctx:  t.Context(),
				in:   AuditEntry{At: at, Action: ActionPatientList, Target: "3"},
				want: AuditEntry{At: at, Actor: "system", Action: ActionPatientList, Target: "3", Outcome: OutcomeOK},
			},
			{
				name: "given actor wins over the context's",
				ctx:  WithActor(t.Context(), testActor),
				in:   AuditEntry{At: at, Actor: "mallory", Address: "192.0.2.9", Action: ActionSignIn, Target: "password", Outcome: OutcomeFailed},
				want: AuditEntry{At: at, Actor: "mallory", Address: "192.0.2.9", Action: ActionSignIn, Target: "password", Outcome: OutcomeFailed},
			},
			{
				name: "given actor keeps its own (empty) address",
				ctx:  WithActor(t.Context(), testActor),
				in:   AuditEntry{At: at, Actor: "alice", Action: ActionSignOut},
				want: AuditEntry{At: at, Actor: "alice", Action: ActionSignOut, Outcome: OutcomeOK},
			},
			{
				name: "denied",
				ctx:  t.Context(),
				in:   AuditEntry{At: at, Actor: "bob", Action: ActionAccessDenied, Patient: "p-2", Target: "GET /patients/p-2", Outcome: OutcomeDenied},
				want: AuditEntry{At: at, Actor: "bob", Action: ActionAccessDenied, Patient: "p-2", Target: "GET /patients/p-2", Outcome: OutcomeDenied},
			},
			{
				name: "locked",
				ctx:  t.Context(),
				in:   AuditEntry{At: at, Actor: "bob", Action: ActionSignIn, Outcome: OutcomeLocked},
				want: AuditEntry{At: at, Actor: "bob", Action: ActionSignIn, Outcome: OutcomeLocked},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := lastAuditID(t, r)
				if err := r.Audit(tt.ctx, tt.in); err != nil {
					t.Fatal(err)
				}
				got := auditAfter(t, r, before)
				if len(got) != 1 {
					t.Fatalf("%d new entries, want 1", len(got))
				}
				tt.want.ID = got[0].ID
				if got[0] != tt.want {
					t.Errorf("entry = %+v, want %+v", got[0], tt.want)
				}
			})
		}
	})
}

func TestAuditUnknownOutcome(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		for _, outcome := range []string{"maybe", "OK", "ok ", "success"} {
			t.Run(outcome, func(t *testing.T) {
				err := r.Audit(ctx, AuditEntry{Action: ActionSignIn, Actor: "alice", Outcome: outcome})
				if err == nil {
					t.Fatalf("Audit with outcome %q succeeded, want an error", outcome)
				}
				if !strings.Contains(err.Error(), ActionSignIn) {
					t.Errorf("error %q does not name the action", err)
				}
				if es := allAudit(t, r); len(es) != 0 {
					t.Errorf("a refused entry was stored: %+v", es)
				}
			})
		}
	})
}

// auditFixture is the log TestAuditEntriesFilter filters, oldest first.
func auditFixture(base time.Time) []AuditEntry {
	m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	return []AuditEntry{
		{At: m(0), Actor: "alice", Address: "10.0.0.1", Action: ActionSignIn, Target: "password", Outcome: OutcomeOK},                         // 0
		{At: m(1), Actor: "alice", Address: "10.0.0.1", Action: ActionPatientRead, Patient: "p-1", Target: "details", Outcome: OutcomeOK},     // 1
		{At: m(2), Actor: "bob", Address: "10.0.0.2", Action: ActionPatientRead, Patient: "p-2", Target: "series:sleep", Outcome: OutcomeOK},  // 2
		{At: m(3), Actor: "cli:op", Action: ActionStaffAdd, Target: "bob (clinician)", Outcome: OutcomeOK},                                    // 3
		{At: m(4), Actor: "cli:op", Action: ActionStaffAssign, Patient: "p-1", Target: "bob", Outcome: OutcomeOK},                             // 4
		{At: m(5), Actor: "mallory", Address: "10.0.0.9", Action: ActionSignIn, Target: "password", Outcome: OutcomeFailed},                   // 5
		{At: m(6), Actor: "bob", Address: "10.0.0.2", Action: ActionAccessDenied, Patient: "p-1", Target: "GET /p-1", Outcome: OutcomeDenied}, // 6
		{At: m(7), Actor: "cli:op", Action: ActionStaffDisable, Target: "mallory", Outcome: OutcomeOK},                                        // 7
		{At: m(8), Actor: "alice", Address: "10.0.0.1", Action: "staff", Outcome: OutcomeOK},                                                  // 8: not under "staff."
		{At: m(9), Actor: "alice", Address: "10.0.0.1", Action: "xstaff.add", Outcome: OutcomeOK},                                             // 9: not under "staff."
		{At: m(10), Actor: "alice", Address: "10.0.0.1", Action: "staffroom.open", Outcome: OutcomeOK},                                        // 10: not under "staff."
	}
}

func TestAuditEntriesFilter(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		fixture := auditFixture(base)
		for i, e := range fixture {
			if err := r.Audit(ctx, e); err != nil {
				t.Fatalf("Audit(fixture %d): %v", i, err)
			}
		}
		all := allAudit(t, r)
		if len(all) != len(fixture) {
			t.Fatalf("%d entries, want %d", len(all), len(fixture))
		}
		ids := make([]int64, len(fixture)) // ids[i] is fixture[i]'s
		for i := range fixture {
			e := all[len(all)-1-i]
			ids[i] = e.ID
			want := fixture[i]
			want.ID = e.ID
			if e != want {
				t.Errorf("entry %d = %+v, want %+v", i, e, want)
			}
			if i > 0 && ids[i] <= ids[i-1] {
				t.Errorf("ids not ascending in insertion order: %v", ids[:i+1])
			}
		}
		m := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
		elsewhere := time.FixedZone("UTC+9", 9*3600)
		tests := []struct {
			name string
			f    AuditFilter
			want []int // fixture indexes, newest first
		}{
			{name: "everything", f: AuditFilter{}, want: []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
			{name: "actor", f: AuditFilter{Actor: "bob"}, want: []int{6, 2}},
			{name: "unknown actor", f: AuditFilter{Actor: "nobody"}, want: []int{}},
			{name: "actor is exact", f: AuditFilter{Actor: "ali"}, want: []int{}},
			{name: "patient", f: AuditFilter{Patient: "p-1"}, want: []int{6, 4, 1}},
			{name: "exact action", f: AuditFilter{Action: ActionPatientRead}, want: []int{2, 1}},
			{name: "exact action without dot", f: AuditFilter{Action: "staff"}, want: []int{8}},
			{name: "action is not a prefix without its dot", f: AuditFilter{Action: "patient"}, want: []int{}},
			{name: "action prefix", f: AuditFilter{Action: "staff."}, want: []int{7, 4, 3}},
			{name: "action prefix patient.", f: AuditFilter{Action: "patient."}, want: []int{2, 1}},
			{name: "unknown action prefix", f: AuditFilter{Action: "nothing."}, want: []int{}},
			{name: "outcome failed", f: AuditFilter{Outcome: OutcomeFailed}, want: []int{5}},
			{name: "outcome denied", f: AuditFilter{Outcome: OutcomeDenied}, want: []int{6}},
			{name: "outcome locked", f: AuditFilter{Outcome: OutcomeLocked}, want: []int{}},
			{name: "since is inclusive", f: AuditFilter{Since: m(8)}, want: []int{10, 9, 8}},
			{name: "until is exclusive", f: AuditFilter{Until: m(2)}, want: []int{1, 0}},
			{name: "since and until", f: AuditFilter{Since: m(2), Until: m(4)}, want: []int{3, 2}},
			{name: "since in another zone", f: AuditFilter{Since: m(8).In(elsewhere)}, want: []int{10, 9, 8}},
			{name: "until in another zone", f: AuditFilter{Until: m(2).In(elsewhere)}, want: []int{1, 0}},
			{name: "since between entries", f: AuditFilter{Since: m(9).Add(-time.Nanosecond)}, want: []int{10, 9}},
			{name: "empty window", f: AuditFilter{Since: m(4), Until: m(4)}, want: []int{}},
			{name: "after everything", f: AuditFilter{Since: m(11)}, want: []int{}},
			{name: "actor and prefix and since", f: AuditFilter{Actor: "cli:op", Action: "staff.", Since: m(4)}, want: []int{7, 4}},
			{name: "actor and patient", f: AuditFilter{Actor: "bob", Patient: "p-1"}, want: []int{6}},
			{name: "patient and outcome", f: AuditFilter{Patient: "p-1", Outcome: OutcomeOK}, want: []int{4, 1}},
			{name: "limit", f: AuditFilter{Limit: 3}, want: []int{10, 9, 8}},
			{name: "limit with a filter", f: AuditFilter{Actor: "alice", Limit: 2}, want: []int{10, 9}},
			{name: "before", f: AuditFilter{Before: 0}, want: []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		}
		// Before needs the ids, known only now.
		tests = append(tests, []struct {
			name string
			f    AuditFilter
			want []int
		}{
			{name: "before an id", f: AuditFilter{Before: ids[4]}, want: []int{3, 2, 1, 0}},
			{name: "before and limit", f: AuditFilter{Before: ids[4], Limit: 2}, want: []int{3, 2}},
			{name: "before the first", f: AuditFilter{Before: ids[0]}, want: []int{}},
			{name: "before past the last", f: AuditFilter{Before: ids[10] + 100}, want: []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
			{name: "before with a filter", f: AuditFilter{Actor: "alice", Before: ids[9]}, want: []int{8, 1, 0}},
		}...)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := r.AuditEntries(ctx, tt.f)
				if err != nil {
					t.Fatalf("AuditEntries(%+v): %v", tt.f, err)
				}
				if got == nil {
					t.Fatalf("AuditEntries(%+v) = nil, want a non-nil slice", tt.f)
				}
				gotIdx := make([]int, len(got))
				for i, e := range got {
					gotIdx[i] = -1
					for j, id := range ids {
						if e.ID == id {
							gotIdx[i] = j
						}
					}
				}
				if !reflect.DeepEqual(gotIdx, tt.want) {
					t.Errorf("AuditEntries(%+v) = entries %v, want %v", tt.f, gotIdx, tt.want)
				}
				for i, e := range got {
					if j := gotIdx[i]; j >= 0 {
						want := fixture[j]
						want.ID = ids[j]
						if e != want {
							t.Errorf("entry %d = %+v, want %+v", j, e, want)
						}
					}
				}
			})
		}
	})
}

// TestAuditEntriesPaging walks the log a page at a time, as a caller would.
func TestAuditEntriesPaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		for i := range 7 {
			if err := r.Audit(ctx, AuditEntry{Action: ActionPatientRead, Patient: fmt.Sprintf("p-%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		all := allAudit(t, r)
		for _, limit := range []int{1, 2, 3, 7, 8} {
			t.Run(fmt.Sprint(limit), func(t *testing.T) {
				var walked []AuditEntry
				var before int64
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatalf("paging does not end: %d pages", pages)
					}
					page, err := r.AuditEntries(ctx, AuditFilter{Before: before, Limit: limit})
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("page of %d entries, limit %d", len(page), limit)
					}
					if len(page) == 0 {
						break
					}
					walked = append(walked, page...)
					before = page[len(page)-1].ID
				}
				if !reflect.DeepEqual(walked, all) {
					t.Errorf("pages of %d walked %d entries, want all %d newest first", limit, len(walked), len(all))
				}
			})
		}
	})
}

func TestAuditEntriesLimitCapped(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		n := MaxAuditPage + 5
		err := r.inTx(ctx, func(tx *sql.Tx) error {
			for i := range n {
				if err := r.audit(ctx, tx, AuditEntry{Action: ActionPatientList, Target: fmt.Sprint(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		newest := lastAuditID(t, r)
		for _, tt := range []struct {
			limit, want int
		}{
			{0, MaxAuditPage}, {-1, MaxAuditPage}, {MaxAuditPage, MaxAuditPage},
			{MaxAuditPage + 1, MaxAuditPage}, {1 << 30, MaxAuditPage}, {7, 7}, {1, 1},
		} {
			t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
				es, err := r.AuditEntries(ctx, AuditFilter{Limit: tt.limit})
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != tt.want {
					t.Fatalf("Limit %d returned %d entries, want %d", tt.limit, len(es), tt.want)
				}
				if es[0].ID != newest || es[0].Target != fmt.Sprint(n-1) {
					t.Errorf("first entry = %+v, want the newest (id %d)", es[0], newest)
				}
				for i := 1; i < len(es); i++ {
					if es[i].ID >= es[i-1].ID {
						t.Fatalf("entries not newest first at %d: %d after %d", i, es[i].ID, es[i-1].ID)
					}
				}
			})
		}
		// The rest is reachable with Before.
		rest, err := r.AuditEntries(ctx, AuditFilter{Before: newest - MaxAuditPage + 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) != n-MaxAuditPage {
			t.Errorf("second page has %d entries, want %d", len(rest), n-MaxAuditPage)
		}
	})
}

func TestAuditEntriesEmpty(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		es, err := r.AuditEntries(t.Context(), AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if es == nil || len(es) != 0 {
			t.Errorf("AuditEntries on an empty log = %#v, want an empty non-nil slice", es)
		}
	})
}

func TestSignInFailures(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
		signin := func(minutes int, user, address, outcome string) AuditEntry {
			return AuditEntry{At: at(minutes), Actor: user, Address: address, Action: ActionSignIn, Target: "password", Outcome: outcome}
		}
		const (
			ip1 = "10.0.0.1"
			ip2 = "10.0.0.2"
		)
		tests := []struct {
			name        string
			log         []AuditEntry
			user, addr  string
			since       time.Time
			wantAccount int
			wantAddress int
		}{
			{name: "empty log", user: "alice", addr: ip1, since: t0},
			{
				name: "failures counted",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeFailed), signin(2, "alice", ip1, OutcomeFailed), signin(3, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 3, wantAddress: 3,
			},
			{
				name: "older than since ignored, since inclusive",
				log: []AuditEntry{
					signin(-2, "alice", ip1, OutcomeFailed), signin(-1, "alice", ip1, OutcomeFailed),
					signin(0, "alice", ip1, OutcomeFailed), signin(1, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 2, wantAddress: 2,
			},
			{
				name: "since in another zone",
				log: []AuditEntry{
					signin(-1, "alice", ip1, OutcomeFailed), signin(1, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0.In(time.FixedZone("UTC-7", -7*3600)), wantAccount: 1, wantAddress: 1,
			},
			{
				name: "zero since counts everything",
				log: []AuditEntry{
					signin(-600, "alice", ip1, OutcomeFailed), signin(1, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, wantAccount: 2, wantAddress: 2,
			},
			{
				name: "a later success resets the account, not the address",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeFailed), signin(2, "alice", ip1, OutcomeFailed),
					signin(3, "alice", ip1, OutcomeOK), signin(4, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 1, wantAddress: 3,
			},
			{
				name: "a success from another address resets the account",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeFailed), signin(2, "alice", ip2, OutcomeOK),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 0, wantAddress: 1,
			},
			{
				name: "an earlier success does not reset",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeOK), signin(2, "alice", ip1, OutcomeFailed), signin(3, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 2, wantAddress: 2,
			},
			{
				name: "a success before since does not hide failures after it",
				log: []AuditEntry{
					signin(-5, "alice", ip1, OutcomeOK), signin(1, "alice", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 1, wantAddress: 1,
			},
			{
				name: "another user's success does not reset",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeFailed), signin(2, "alice", ip1, OutcomeFailed), signin(3, "bob", ip1, OutcomeOK),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 2, wantAddress: 2,
			},
			{
				name: "the address counts every username",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeFailed), signin(2, "bob", ip1, OutcomeFailed),
					signin(3, "carol", ip1, OutcomeFailed), signin(4, "alice", ip2, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 2, wantAddress: 3,
			},
			{
				name: "the address count ignores successes",
				log: []AuditEntry{
					signin(1, "bob", ip1, OutcomeFailed), signin(2, "bob", ip1, OutcomeOK), signin(3, "carol", ip1, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 0, wantAddress: 2,
			},
			{
				name: "other users' failures do not count for the account",
				log: []AuditEntry{
					signin(1, "bob", ip2, OutcomeFailed), signin(2, "Alice", ip2, OutcomeFailed),
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 0, wantAddress: 0,
			},
			{
				name: "only failed sign-ins count",
				log: []AuditEntry{
					signin(1, "alice", ip1, OutcomeLocked), signin(2, "alice", ip1, OutcomeDenied),
					{At: at(3), Actor: "alice", Address: ip1, Action: ActionAccessDenied, Outcome: OutcomeFailed},
					{At: at(4), Actor: "alice", Address: ip1, Action: ActionSignOut, Outcome: OutcomeFailed},
				},
				user: "alice", addr: ip1, since: t0, wantAccount: 0, wantAddress: 0,
			},
			{
				name: "no address, no address count",
				log: []AuditEntry{
					signin(1, "alice", "", OutcomeFailed), signin(2, "bob", "", OutcomeFailed),
				},
				user: "alice", addr: "", since: t0, wantAccount: 1, wantAddress: 0,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := openTest(t, be)
				ctx := t.Context()
				for _, e := range tt.log {
					if err := r.Audit(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
				account, fromAddress, err := r.SignInFailures(ctx, tt.user, tt.addr, tt.since)
				if err != nil {
					t.Fatal(err)
				}
				if account != tt.wantAccount || fromAddress != tt.wantAddress {
					t.Errorf("SignInFailures(%q, %q, %v) = %d, %d; want %d, %d",
						tt.user, tt.addr, tt.since, account, fromAddress, tt.wantAccount, tt.wantAddress)
				}
			})
		}
	})
}
