package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// postgresMaxConns caps each process's pool. Every instance of a cluster
// has its own pool, and a Postgres server's default max_connections is
// 100: ten instances, an operator's commands and the server's own
// reserve still fit.
const postgresMaxConns = 10

// migrateLockKey is the pg_advisory_lock key migrate holds while it
// applies steps, so that instances starting together apply each step once
// (Postgres has no BEGIN IMMEDIATE). The value is arbitrary but fixed:
// "ppmigrat" in ASCII.
const migrateLockKey = 0x70706d6967726174

// writeLockKey is the pg_advisory_xact_lock key every transaction of inTx
// takes first: writers run one at a time, as SQLite's BEGIN IMMEDIATE
// makes them, so that a transaction's read-then-write (the next plan
// version, a delivery already stored) sees what the writer before it
// committed and the two behave the same. It also hands out the ids of
// audit entries, transitions and outbox events in the order they commit,
// which the readers that go on from the last id they saw (the outbox's
// consumers, AccessChanges) rely on: a sequence alone would let a later id
// commit before an earlier one.
const writeLockKey = 0x7070777269746572 // "ppwriter"

var postgresDialect = &dialect{
	name:          "postgres",
	driver:        "pgx",
	rebind:        rebindDollar,
	migrations:    postgresMigrations,
	maxOpenConns:  postgresMaxConns,
	migrateLock:   fmt.Sprintf(`SELECT pg_advisory_lock(%d)`, migrateLockKey),
	migrateUnlock: fmt.Sprintf(`SELECT pg_advisory_unlock(%d)`, migrateLockKey),
	txLock:        fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, writeLockKey),
	classify:      classifyPostgres,
}

// rebindDollar turns the '?' placeholders of query into $1, $2, ...,
// leaving any '?' inside a quoted string or identifier alone.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote we are inside of, 0 outside
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0 // a doubled quote closes and reopens: same result
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// classifyPostgres wraps ErrExists around a unique violation, as the
// registry's SQL reports a taken id on SQLite (where writers never race,
// ON CONFLICT DO NOTHING finds every taken key first). The error's text is
// the server's message and SQLSTATE, never the row's values (pgconn keeps
// those in Detail, which its Error leaves out).
func classifyPostgres(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %w", ErrExists, err)
	}
	return err
}

// checkPostgresSchema returns an error wrapping ErrNoRegistry, naming
// Location(dsn), when the database has no registry tables yet: the
// Postgres form of MustExist's missing file.
func (r *Registry) checkPostgresSchema(ctx context.Context, dsn string) error {
	var exists bool
	if err := r.db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("look for the registry's tables: %w", err)
	}
	if !exists {
		return fmt.Errorf("%w at %s (the database has no registry tables)", ErrNoRegistry, Location(dsn))
	}
	return nil
}

// postgresMigrations is the Postgres schema: step for step the same tables,
// columns, constraints and indexes as sqliteMigrations, with the same
// version numbers, so that a registry copied from SQLite is at the same
// version. Text is COLLATE "C" so that comparisons and ORDER BY follow
// bytes as SQLite's BINARY collation does (ids, and the fixed-width
// times of timeLayout); AUTOINCREMENT ids are identity columns (BY
// DEFAULT, so that `registry copy` can keep them); BLOB is BYTEA.
var postgresMigrations = []migration{
	{
		version: 1,
		name:    "patients and devices",
		stmts: []string{
			`CREATE TABLE patients (
				id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
				name       TEXT COLLATE "C" NOT NULL DEFAULT '',
				created_at TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE TABLE devices (
				id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
				patient_id  TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				token_hash  TEXT COLLATE "C" NOT NULL CHECK (length(token_hash) = 64),
				enrolled_at TEXT COLLATE "C" NOT NULL,
				revoked_at  TEXT COLLATE "C"
			)`,
			`CREATE UNIQUE INDEX devices_token_hash ON devices (token_hash)`,
			`CREATE INDEX devices_patient_id ON devices (patient_id)`,
		},
	},
	{
		version: 2,
		name:    "staff, care teams and staff tokens",
		stmts: []string{
			`CREATE TABLE staff (
				username      TEXT COLLATE "C" PRIMARY KEY NOT NULL,
				role          TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'clinician', 'oncall')),
				password_hash TEXT COLLATE "C" NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
				created_at    TEXT COLLATE "C" NOT NULL,
				disabled_at   TEXT COLLATE "C"
			)`,
			`CREATE TABLE care_team (
				username    TEXT COLLATE "C" NOT NULL REFERENCES staff (username),
				patient_id  TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				assigned_at TEXT COLLATE "C" NOT NULL,
				PRIMARY KEY (username, patient_id)
			)`,
			`CREATE INDEX care_team_patient_id ON care_team (patient_id)`,
			`CREATE TABLE staff_tokens (
				token_hash TEXT COLLATE "C" PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
				username   TEXT COLLATE "C" NOT NULL REFERENCES staff (username),
				label      TEXT COLLATE "C" NOT NULL DEFAULT '',
				created_at TEXT COLLATE "C" NOT NULL,
				revoked_at TEXT COLLATE "C"
			)`,
			`CREATE INDEX staff_tokens_username ON staff_tokens (username)`,
		},
	},
	{
		version: 3,
		name:    "browser sessions and the audit log",
		stmts: []string{
			`CREATE TABLE sessions (
				id_hash      TEXT COLLATE "C" PRIMARY KEY NOT NULL CHECK (length(id_hash) = 64),
				username     TEXT COLLATE "C" NOT NULL REFERENCES staff (username),
				csrf_token   TEXT COLLATE "C" NOT NULL,
				created_at   TEXT COLLATE "C" NOT NULL,
				last_seen_at TEXT COLLATE "C" NOT NULL,
				ended_at     TEXT COLLATE "C"
			)`,
			`CREATE INDEX sessions_username ON sessions (username)`,
			`CREATE TABLE audit (
				id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				at         TEXT COLLATE "C" NOT NULL,
				actor      TEXT COLLATE "C" NOT NULL,
				address    TEXT COLLATE "C" NOT NULL DEFAULT '',
				action     TEXT COLLATE "C" NOT NULL,
				patient_id TEXT COLLATE "C" NOT NULL DEFAULT '',
				target     TEXT COLLATE "C" NOT NULL DEFAULT '',
				outcome    TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed', 'locked'))
			)`,
			`CREATE INDEX audit_actor ON audit (actor, action, at)`,
			`CREATE INDEX audit_patient ON audit (patient_id, at) WHERE patient_id <> ''`,
			`CREATE INDEX audit_signin_failures ON audit (address, at) WHERE action = 'signin' AND outcome = 'failed'`,
			// The audit log is append-only: the triggers refuse any change
			// to a row written, and emptying the table. An insert with an
			// id taken fails on the primary key (there is no REPLACE).
			`CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`,
			`CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
				FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
			`CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
				FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
		},
	},
	{
		version: 4,
		name:    "treatment plans and the analysis' transitions",
		stmts: []string{
			`CREATE TABLE plans (
				patient_id   TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				version      INTEGER NOT NULL CHECK (version > 0),
				effective_at TEXT COLLATE "C" NOT NULL,
				body         TEXT COLLATE "C" NOT NULL,
				created_at   TEXT COLLATE "C" NOT NULL,
				created_by   TEXT COLLATE "C" NOT NULL,
				PRIMARY KEY (patient_id, version)
			)`,
			`CREATE TABLE transitions (
				id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				patient_id TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				rule_id    TEXT COLLATE "C" NOT NULL,
				change     TEXT COLLATE "C" NOT NULL,
				at         TEXT COLLATE "C" NOT NULL,
				body       TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX transitions_patient ON transitions (patient_id, id)`,
			`CREATE TABLE rule_states (
				patient_id TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				rule_id    TEXT COLLATE "C" NOT NULL,
				state      TEXT COLLATE "C" NOT NULL,
				updated_at TEXT COLLATE "C" NOT NULL,
				PRIMARY KEY (patient_id, rule_id)
			)`,
		},
	},
	{
		version: 5,
		name:    "alerts, their events, and webhook deliveries",
		stmts: []string{
			`CREATE TABLE alerts (
				id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				patient_id    TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				key           TEXT COLLATE "C" NOT NULL,
				state         TEXT COLLATE "C" NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved', 'suppressed')),
				severity      TEXT COLLATE "C" NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
				opened_at     TEXT COLLATE "C" NOT NULL,
				updated_at    TEXT COLLATE "C" NOT NULL,
				acked_at      TEXT COLLATE "C",
				acked_by      TEXT COLLATE "C" NOT NULL DEFAULT '',
				resolved_at   TEXT COLLATE "C",
				resolved_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
				snoozed_until TEXT COLLATE "C",
				tier          INTEGER NOT NULL DEFAULT -1,
				body          TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE UNIQUE INDEX alerts_open ON alerts (patient_id, key) WHERE state <> 'resolved'`,
			`CREATE INDEX alerts_state ON alerts (state, severity)`,
			`CREATE TABLE alert_events (
				id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				alert_id BIGINT NOT NULL REFERENCES alerts (id),
				at       TEXT COLLATE "C" NOT NULL,
				kind     TEXT COLLATE "C" NOT NULL,
				actor    TEXT COLLATE "C" NOT NULL DEFAULT '',
				note     TEXT COLLATE "C" NOT NULL DEFAULT '',
				body     TEXT COLLATE "C" NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX alert_events_alert ON alert_events (alert_id, id)`,
			`CREATE TABLE webhook_deliveries (
				id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				delivery TEXT COLLATE "C" NOT NULL,
				alert_id BIGINT NOT NULL,
				event    TEXT COLLATE "C" NOT NULL,
				attempt  INTEGER NOT NULL,
				at       TEXT COLLATE "C" NOT NULL,
				status   INTEGER NOT NULL DEFAULT 0,
				outcome  TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
				error    TEXT COLLATE "C" NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX webhook_deliveries_alert ON webhook_deliveries (alert_id, id)`,
		},
	},
	{
		version: 6,
		name:    "an index of each patient's alerts",
		stmts: []string{
			`CREATE INDEX alerts_patient ON alerts (patient_id, id)`,
		},
	},
	{
		version: 7,
		name:    "write probe",
		stmts: []string{
			`CREATE TABLE write_probe (filler BYTEA NOT NULL)`,
		},
	},
	{
		version: 8,
		name:    "the notify outbox, staff contacts and server keys",
		stmts: []string{
			`CREATE TABLE outbox_events (
				id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				alert_id   BIGINT NOT NULL DEFAULT 0,
				patient_id TEXT COLLATE "C" NOT NULL DEFAULT '',
				kind       TEXT COLLATE "C" NOT NULL,
				at         TEXT COLLATE "C" NOT NULL,
				body       TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX outbox_events_alert ON outbox_events (alert_id)`,
			`CREATE TABLE outbox_deliveries (
				id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
				event_id   BIGINT NOT NULL REFERENCES outbox_events (id),
				alert_id   BIGINT NOT NULL DEFAULT 0,
				channel    TEXT COLLATE "C" NOT NULL,
				recipient  TEXT COLLATE "C" NOT NULL DEFAULT '',
				target     TEXT COLLATE "C" NOT NULL DEFAULT '',
				state      TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
				attempts   INTEGER NOT NULL DEFAULT 0,
				created_at TEXT COLLATE "C" NOT NULL,
				next_at    TEXT COLLATE "C" NOT NULL,
				done_at    TEXT COLLATE "C",
				last_error TEXT COLLATE "C" NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX outbox_deliveries_due ON outbox_deliveries (state, next_at)`,
			`CREATE INDEX outbox_deliveries_order ON outbox_deliveries (alert_id, channel, recipient, target, event_id)`,
			`CREATE INDEX outbox_deliveries_event ON outbox_deliveries (event_id)`,
			`ALTER TABLE webhook_deliveries RENAME TO delivery_attempts`,
			`ALTER TABLE delivery_attempts ADD COLUMN channel TEXT COLLATE "C" NOT NULL DEFAULT 'webhook'`,
			`DROP INDEX webhook_deliveries_alert`,
			`CREATE INDEX delivery_attempts_alert ON delivery_attempts (alert_id, id)`,
			`CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery)`,
			`CREATE TABLE staff_contacts (
				username      TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES staff (username),
				email         TEXT COLLATE "C" NOT NULL DEFAULT '',
				ntfy_url      TEXT COLLATE "C" NOT NULL DEFAULT '',
				pagerduty_key TEXT COLLATE "C" NOT NULL DEFAULT '',
				digest_hour   INTEGER NOT NULL DEFAULT -1 CHECK (digest_hour BETWEEN -1 AND 23),
				updated_at    TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE TABLE server_keys (
				name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
				key        BYTEA NOT NULL,
				created_at TEXT COLLATE "C" NOT NULL
			)`,
		},
	},
	{
		version: 9,
		name:    "patient views",
		stmts: []string{
			`CREATE TABLE patient_views (
				patient_id TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES patients (id),
				verdicts   TEXT COLLATE "C" NOT NULL,
				last_data  TEXT COLLATE "C" NOT NULL,
				judged_at  TEXT COLLATE "C" NOT NULL
			)`,
		},
	},
	{
		version: 10,
		name:    "delivery claims and unknown usernames' failed sign-ins",
		stmts: []string{
			`ALTER TABLE outbox_deliveries ADD COLUMN claimed_by TEXT COLLATE "C" NOT NULL DEFAULT ''`,
			`ALTER TABLE outbox_deliveries ADD COLUMN claimed_until TEXT COLLATE "C"`,
			`CREATE TABLE signin_unknown (
				name_hash TEXT COLLATE "C" NOT NULL CHECK (length(name_hash) = 64),
				address   TEXT COLLATE "C" NOT NULL,
				at        TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX signin_unknown_name ON signin_unknown (name_hash, at)`,
			`CREATE INDEX signin_unknown_at ON signin_unknown (at)`,
		},
	},
	{
		version: 11,
		name:    "patient notes",
		stmts: []string{
			`CREATE TABLE patient_notes (
				id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				patient_id TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				author     TEXT COLLATE "C" NOT NULL,
				at         TEXT COLLATE "C" NOT NULL,
				note       TEXT COLLATE "C" NOT NULL CHECK (char_length(note) BETWEEN 1 AND 2000)
			)`,
			`CREATE INDEX patient_notes_patient ON patient_notes (patient_id, id)`,
		},
	},
	{
		version: 12,
		name:    "patient contact and deactivation",
		stmts: []string{
			`ALTER TABLE patients ADD COLUMN contact TEXT COLLATE "C" NOT NULL DEFAULT ''`,
			`ALTER TABLE patients ADD COLUMN deactivated_at TEXT COLLATE "C"`,
		},
	},
	{
		version: 13,
		name:    "on-call rota versions",
		stmts: []string{
			`CREATE TABLE oncall_rotas (
				version  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				body     TEXT COLLATE "C" NOT NULL,
				saved_at TEXT COLLATE "C" NOT NULL,
				saved_by TEXT COLLATE "C" NOT NULL
			)`,
		},
	},
	{
		version: 14,
		name:    "treatments",
		stmts: []string{
			`CREATE TABLE procedure_types (
				id            TEXT COLLATE "C" PRIMARY KEY,
				name          TEXT COLLATE "C" NOT NULL,
				category      TEXT COLLATE "C" NOT NULL,
				recovery_days INTEGER NOT NULL CHECK (recovery_days BETWEEN 0 AND 365)
			)`,
			`CREATE TABLE procedures (
				id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
				patient_id   TEXT COLLATE "C" NOT NULL REFERENCES patients (id),
				type_id      TEXT COLLATE "C" NOT NULL REFERENCES procedure_types (id),
				status       TEXT COLLATE "C" NOT NULL CHECK (status IN ('planned', 'done', 'cancelled')),
				at           TEXT COLLATE "C" NOT NULL,
				performed_by TEXT COLLATE "C" NOT NULL,
				notes        TEXT COLLATE "C" NOT NULL,
				recorded_by  TEXT COLLATE "C" NOT NULL,
				recorded_at  TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX procedures_patient ON procedures (patient_id, at)`,
		},
	},
	{
		version: 15,
		name:    "weekly summaries",
		stmts: []string{
			`CREATE TABLE summaries (
				patient_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES patients (id),
				week         TEXT COLLATE "C" NOT NULL,
				body         TEXT COLLATE "C" NOT NULL,
				published_at TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX summaries_week ON summaries (week)`,
		},
	},
}
