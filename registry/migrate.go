package registry

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// migration is one step of a dialect's schema. Steps are applied in version
// order, each in its own transaction together with its row in
// schema_migrations, so a step is applied entirely or not at all. A step,
// once released, never changes: a later change to the schema is a new step
// appended to the list.
type migration struct {
	version int
	name    string
	stmts   []string
}

// sqliteMigrations is the SQLite schema. Times are TEXT in timeLayout
// (UTC, fixed width); ids are checked by ValidID before they get here.
var sqliteMigrations = []migration{
	{
		version: 1,
		name:    "patients and devices",
		stmts: []string{
			`CREATE TABLE patients (
				id         TEXT PRIMARY KEY NOT NULL,
				name       TEXT NOT NULL DEFAULT '',
				created_at TEXT NOT NULL
			) STRICT`,
			`CREATE TABLE devices (
				id          TEXT PRIMARY KEY NOT NULL,
				patient_id  TEXT NOT NULL REFERENCES patients (id),
				token_hash  TEXT NOT NULL CHECK (length(token_hash) = 64),
				enrolled_at TEXT NOT NULL,
				revoked_at  TEXT
			) STRICT`,
			`CREATE UNIQUE INDEX devices_token_hash ON devices (token_hash)`,
			`CREATE INDEX devices_patient_id ON devices (patient_id)`,
		},
	},
	{
		version: 2,
		name:    "staff, care teams and staff tokens",
		stmts: []string{
			// password_hash is an argon2id PHC string; its parameters
			// travel with it, so that raising them needs no new step.
			`CREATE TABLE staff (
				username      TEXT PRIMARY KEY NOT NULL,
				role          TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'oncall')),
				password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
				created_at    TEXT NOT NULL,
				disabled_at   TEXT
			) STRICT`,
			`CREATE TABLE care_team (
				username    TEXT NOT NULL REFERENCES staff (username),
				patient_id  TEXT NOT NULL REFERENCES patients (id),
				assigned_at TEXT NOT NULL,
				PRIMARY KEY (username, patient_id)
			) STRICT`,
			`CREATE INDEX care_team_patient_id ON care_team (patient_id)`,
			`CREATE TABLE staff_tokens (
				token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
				username   TEXT NOT NULL REFERENCES staff (username),
				label      TEXT NOT NULL DEFAULT '',
				created_at TEXT NOT NULL,
				revoked_at TEXT
			) STRICT`,
			`CREATE INDEX staff_tokens_username ON staff_tokens (username)`,
		},
	},
	{
		version: 3,
		name:    "browser sessions and the audit log",
		stmts: []string{
			// A session is known by the SHA-256 of its cookie's id, as a
			// token is; csrf_token is not a credential on its own.
			`CREATE TABLE sessions (
				id_hash      TEXT PRIMARY KEY NOT NULL CHECK (length(id_hash) = 64),
				username     TEXT NOT NULL REFERENCES staff (username),
				csrf_token   TEXT NOT NULL,
				created_at   TEXT NOT NULL,
				last_seen_at TEXT NOT NULL,
				ended_at     TEXT
			) STRICT`,
			`CREATE INDEX sessions_username ON sessions (username)`,
			// The audit log is append-only: the triggers refuse any
			// change to a row written.
			`CREATE TABLE audit (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				at         TEXT NOT NULL,
				actor      TEXT NOT NULL,
				address    TEXT NOT NULL DEFAULT '',
				action     TEXT NOT NULL,
				patient_id TEXT NOT NULL DEFAULT '',
				target     TEXT NOT NULL DEFAULT '',
				outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed', 'locked'))
			) STRICT`,
			`CREATE INDEX audit_actor ON audit (actor, action, at)`,
			`CREATE INDEX audit_patient ON audit (patient_id, at) WHERE patient_id <> ''`,
			`CREATE INDEX audit_signin_failures ON audit (address, at) WHERE action = 'signin' AND outcome = 'failed'`,
			`CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
			`CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
			// REPLACE deletes the row it conflicts with without firing
			// the delete trigger (recursive_triggers is off).
			`CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)
				BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
		},
	},
	{
		version: 4,
		name:    "treatment plans and the analysis' transitions",
		stmts: []string{
			// body is the plan version as JSON, analysis's to read.
			`CREATE TABLE plans (
				patient_id   TEXT NOT NULL REFERENCES patients (id),
				version      INTEGER NOT NULL CHECK (version > 0),
				effective_at TEXT NOT NULL,
				body         TEXT NOT NULL,
				created_at   TEXT NOT NULL,
				created_by   TEXT NOT NULL,
				PRIMARY KEY (patient_id, version)
			) STRICT`,
			// Every change of a rule's verdict, in order; state is the
			// rule's verdict after it, from which evaluation resumes.
			`CREATE TABLE transitions (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				patient_id TEXT NOT NULL REFERENCES patients (id),
				rule_id    TEXT NOT NULL,
				change     TEXT NOT NULL,
				at         TEXT NOT NULL,
				body       TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX transitions_patient ON transitions (patient_id, id)`,
			`CREATE TABLE rule_states (
				patient_id TEXT NOT NULL REFERENCES patients (id),
				rule_id    TEXT NOT NULL,
				state      TEXT NOT NULL,
				updated_at TEXT NOT NULL,
				PRIMARY KEY (patient_id, rule_id)
			) STRICT`,
		},
	},
	{
		version: 5,
		name:    "alerts, their events, and webhook deliveries",
		stmts: []string{
			// One row per alert; key is the rule id, or rule id + "#forecast".
			// An alert is active while its state is firing or acknowledged.
			`CREATE TABLE alerts (
				id            INTEGER PRIMARY KEY AUTOINCREMENT,
				patient_id    TEXT NOT NULL REFERENCES patients (id),
				key           TEXT NOT NULL,
				state         TEXT NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved', 'suppressed')),
				severity      TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
				opened_at     TEXT NOT NULL,
				updated_at    TEXT NOT NULL,
				acked_at      TEXT,
				acked_by      TEXT NOT NULL DEFAULT '',
				resolved_at   TEXT,
				resolved_by   TEXT NOT NULL DEFAULT '',
				snoozed_until TEXT,
				tier          INTEGER NOT NULL DEFAULT -1,
				body          TEXT NOT NULL
			) STRICT`,
			// At most one active (or suppressed) alert per patient and key.
			`CREATE UNIQUE INDEX alerts_open ON alerts (patient_id, key) WHERE state <> 'resolved'`,
			`CREATE INDEX alerts_state ON alerts (state, severity)`,
			`CREATE TABLE alert_events (
				id       INTEGER PRIMARY KEY AUTOINCREMENT,
				alert_id INTEGER NOT NULL REFERENCES alerts (id),
				at       TEXT NOT NULL,
				kind     TEXT NOT NULL,
				actor    TEXT NOT NULL DEFAULT '',
				note     TEXT NOT NULL DEFAULT '',
				body     TEXT NOT NULL DEFAULT ''
			) STRICT`,
			`CREATE INDEX alert_events_alert ON alert_events (alert_id, id)`,
			`CREATE TABLE webhook_deliveries (
				id       INTEGER PRIMARY KEY AUTOINCREMENT,
				delivery TEXT NOT NULL,
				alert_id INTEGER NOT NULL,
				event    TEXT NOT NULL,
				attempt  INTEGER NOT NULL,
				at       TEXT NOT NULL,
				status   INTEGER NOT NULL DEFAULT 0,
				outcome  TEXT NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
				error    TEXT NOT NULL DEFAULT ''
			) STRICT`,
			`CREATE INDEX webhook_deliveries_alert ON webhook_deliveries (alert_id, id)`,
		},
	},
	{
		version: 6,
		name:    "an index of each patient's alerts",
		stmts: []string{
			// A patient's alerts newest first, in any state: the alert
			// manager's look for a key's newest alert, and the alert list
			// of one patient. Neither filters on key in SQL, so an index
			// (patient_id, key, id) would leave ORDER BY id to a sort.
			`CREATE INDEX alerts_patient ON alerts (patient_id, id)`,
		},
	},
	{
		version: 7,
		name:    "write probe",
		stmts: []string{
			// Empty between probes: WriteProbe inserts a row that needs
			// new pages and deletes it in one transaction (see health.go).
			`CREATE TABLE write_probe (filler BLOB NOT NULL) STRICT`,
		},
	},
	{
		version: 8,
		name:    "the notify outbox, staff contacts and server keys",
		stmts: []string{
			// An alert's change (or a digest) as its deliveries and the
			// consoles read it, written with the change. alert_id is 0
			// for a digest; body is the event as JSON.
			`CREATE TABLE outbox_events (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				alert_id   INTEGER NOT NULL DEFAULT 0,
				patient_id TEXT NOT NULL DEFAULT '',
				kind       TEXT NOT NULL,
				at         TEXT NOT NULL,
				body       TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX outbox_events_alert ON outbox_events (alert_id)`,
			// One delivery of an event on one channel to one recipient
			// ('' for a clinic-wide channel) at one target (an address, a
			// topic URL, a key; '' for a clinic-wide channel). id is the
			// delivery id every attempt carries.
			`CREATE TABLE outbox_deliveries (
				id         TEXT PRIMARY KEY NOT NULL,
				event_id   INTEGER NOT NULL REFERENCES outbox_events (id),
				alert_id   INTEGER NOT NULL DEFAULT 0,
				channel    TEXT NOT NULL,
				recipient  TEXT NOT NULL DEFAULT '',
				target     TEXT NOT NULL DEFAULT '',
				state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
				attempts   INTEGER NOT NULL DEFAULT 0,
				created_at TEXT NOT NULL,
				next_at    TEXT NOT NULL,
				done_at    TEXT,
				last_error TEXT NOT NULL DEFAULT ''
			) STRICT`,
			`CREATE INDEX outbox_deliveries_due ON outbox_deliveries (state, next_at)`,
			`CREATE INDEX outbox_deliveries_order ON outbox_deliveries (alert_id, channel, recipient, target, event_id)`,
			`CREATE INDEX outbox_deliveries_event ON outbox_deliveries (event_id)`,
			// Every attempt of every channel, not only the webhook's.
			`ALTER TABLE webhook_deliveries RENAME TO delivery_attempts`,
			`ALTER TABLE delivery_attempts ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook'`,
			`DROP INDEX webhook_deliveries_alert`,
			`CREATE INDEX delivery_attempts_alert ON delivery_attempts (alert_id, id)`,
			`CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery)`,
			// Where a staff member is paged; digest_hour is the local hour
			// of their daily digest of warnings, -1 for none.
			`CREATE TABLE staff_contacts (
				username      TEXT PRIMARY KEY NOT NULL REFERENCES staff (username),
				email         TEXT NOT NULL DEFAULT '',
				ntfy_url      TEXT NOT NULL DEFAULT '',
				pagerduty_key TEXT NOT NULL DEFAULT '',
				digest_hour   INTEGER NOT NULL DEFAULT -1 CHECK (digest_hour BETWEEN -1 AND 23),
				updated_at    TEXT NOT NULL
			) STRICT`,
			// Keys the server makes for itself once (the page links'
			// signing key), shared by every process on the registry.
			`CREATE TABLE server_keys (
				name       TEXT PRIMARY KEY NOT NULL,
				key        BLOB NOT NULL,
				created_at TEXT NOT NULL
			) STRICT`,
		},
	},
	{
		version: 9,
		name:    "patient views",
		stmts: []string{
			// What the patient list and page show of a patient, written
			// by the instance that judges them so that any instance can
			// answer: verdicts is each rule's verdict as JSON (analysis
			// defines it), last_data each measurement's newest sample
			// time as JSON.
			`CREATE TABLE patient_views (
				patient_id TEXT PRIMARY KEY NOT NULL REFERENCES patients (id),
				verdicts   TEXT NOT NULL,
				last_data  TEXT NOT NULL,
				judged_at  TEXT NOT NULL
			) STRICT`,
		},
	},
	{
		version: 10,
		name:    "delivery claims and unknown usernames' failed sign-ins",
		stmts: []string{
			// A delivery being attempted is claimed by one dispatcher
			// (claimed_by) until claimed_until, so that of several
			// instances one alone attempts it; a claim of one that died
			// runs out.
			`ALTER TABLE outbox_deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE outbox_deliveries ADD COLUMN claimed_until TEXT`,
			// Failed sign-ins of usernames that do not exist, by the
			// SHA-256 of the name (what is typed there may be a password):
			// they lock out as a real account's do, on every instance.
			`CREATE TABLE signin_unknown (
				name_hash TEXT NOT NULL CHECK (length(name_hash) = 64),
				address   TEXT NOT NULL,
				at        TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX signin_unknown_name ON signin_unknown (name_hash, at)`,
			`CREATE INDEX signin_unknown_at ON signin_unknown (at)`,
		},
	},
	{
		version: 11,
		name:    "patient notes",
		stmts: []string{
			// Free-text notes on a patient (handover, follow-up), by a
			// staff member: kept, as a clinical record, for ever.
			`CREATE TABLE patient_notes (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				patient_id TEXT NOT NULL REFERENCES patients (id),
				author     TEXT NOT NULL,
				at         TEXT NOT NULL,
				note       TEXT NOT NULL CHECK (length(note) BETWEEN 1 AND 2000)
			) STRICT`,
			`CREATE INDEX patient_notes_patient ON patient_notes (patient_id, id)`,
		},
	},
	{
		version: 12,
		name:    "patient contact and deactivation",
		stmts: []string{
			// How the clinic reaches the patient (free text, PHI), and
			// when the patient left monitoring (null while monitored).
			`ALTER TABLE patients ADD COLUMN contact TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE patients ADD COLUMN deactivated_at TEXT`,
		},
	},
	{
		version: 13,
		name:    "on-call rota versions",
		stmts: []string{
			// Each version of the on-call rota an admin saved (YAML, as
			// --oncall-schedule takes it); the newest is in force.
			`CREATE TABLE oncall_rotas (
				version  INTEGER PRIMARY KEY AUTOINCREMENT,
				body     TEXT NOT NULL,
				saved_at TEXT NOT NULL,
				saved_by TEXT NOT NULL
			) STRICT`,
		},
	},
	{
		version: 14,
		name:    "treatments",
		stmts: []string{
			// The clinic's catalogue of procedures (laser, peels,
			// pellet insertion, ...) and each patient's, planned or done.
			`CREATE TABLE procedure_types (
				id            TEXT PRIMARY KEY NOT NULL,
				name          TEXT NOT NULL,
				category      TEXT NOT NULL,
				recovery_days INTEGER NOT NULL CHECK (recovery_days BETWEEN 0 AND 365)
			) STRICT`,
			`CREATE TABLE procedures (
				id           INTEGER PRIMARY KEY AUTOINCREMENT,
				patient_id   TEXT NOT NULL REFERENCES patients (id),
				type_id      TEXT NOT NULL REFERENCES procedure_types (id),
				status       TEXT NOT NULL CHECK (status IN ('planned', 'done', 'cancelled')),
				at           TEXT NOT NULL,
				performed_by TEXT NOT NULL,
				notes        TEXT NOT NULL,
				recorded_by  TEXT NOT NULL,
				recorded_at  TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX procedures_patient ON procedures (patient_id, at)`,
		},
	},
	{
		version: 15,
		name:    "weekly summaries",
		stmts: []string{
			// Each patient's newest weekly summary, as published to
			// their devices (patientpulse summaries publish, serve's
			// weekly publisher).
			`CREATE TABLE summaries (
				patient_id   TEXT NOT NULL PRIMARY KEY REFERENCES patients (id),
				week         TEXT NOT NULL,
				body         TEXT NOT NULL,
				published_at TEXT NOT NULL
			) STRICT`,
			`CREATE INDEX summaries_week ON summaries (week)`,
		},
	},
}

// schemaMigrationsTable records the applied steps. It is the one table
// created outside the step list, in SQL both dialects accept.
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY NOT NULL,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

// migrate applies the steps of the dialect's list that the store has not
// recorded. It is safe to run from several processes at once: on SQLite
// each step's transaction takes the write lock when it begins, on Postgres
// migrate holds the dialect's advisory lock throughout, and each step checks
// again whether it is applied. A store migrated by a newer binary, with
// steps this binary does not know, is refused rather than used
// half-understood.
func (r *Registry) migrate(ctx context.Context) (err error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if r.d.migrateLock != "" {
		if _, err := conn.ExecContext(ctx, r.d.migrateLock); err != nil {
			return fmt.Errorf("migrate: take the migration lock: %w", err)
		}
		defer func() {
			if uerr := r.unlockMigrate(conn); uerr != nil && err == nil {
				err = uerr
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, schemaMigrationsTable); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	steps := r.d.migrations
	latest := 0
	if len(steps) > 0 {
		latest = steps[len(steps)-1].version
	}
	var current sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if int(current.Int64) > latest {
		return fmt.Errorf("migrate: %s schema version %d is newer than this binary's %d: upgrade patientpulse",
			r.d.name, current.Int64, latest)
	}
	for _, m := range steps {
		if m.version <= int(current.Int64) {
			continue
		}
		if err := r.apply(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate: step %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// unlockMigrate releases the migration lock held by conn's session, even
// when migrate's context has ended. When it cannot, it discards the
// connection, which ends the session and with it the lock, rather than
// return it to the pool still holding the lock.
func (r *Registry) unlockMigrate(conn *sql.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, r.d.migrateUnlock); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // makes database/sql close it
		return fmt.Errorf("migrate: release the migration lock: %w", err)
	}
	return nil
}

// errApplied tells apply's transaction that another process applied the
// step first; it is not an error for the caller.
var errApplied = errors.New("already applied")

// apply runs one step on conn and records it, unless it is recorded
// already.
func (r *Registry) apply(ctx context.Context, conn *sql.Conn, m migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	err = func() error {
		var n int
		err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return errApplied
		}
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, r.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, formatTime(now()))
		return err
	}()
	if err != nil {
		_ = tx.Rollback() // the step's error is the one that matters
		if errors.Is(err, errApplied) {
			return nil
		}
		return err
	}
	return tx.Commit()
}
