// Package registry is patientpulse's relational store: the patients, the
// devices enrolled for them, and (as later steps of its migration list add
// them) staff, care teams, plans, alert history and the audit log.
//
// The ingest stage asks it which patient a device belongs to and whether the
// device is still enrolled; the operator's admin subcommands (patients,
// devices) change it directly. Several processes may open the same store at
// once: the server and an operator running `patientpulse devices enroll`.
//
// The store is SQLite (modernc.org/sqlite, no cgo) by default, or
// Postgres (github.com/jackc/pgx/v5) for several instances sharing one
// registry. The SQL is written for database/sql with '?' placeholders and
// a per-dialect migration list (dialect.go), so both behave the same to
// the queries' callers; CopyToPostgres moves a clinic from one to the
// other.
//
// Patient names are PHI: nothing in this package logs, and no error it
// returns carries a name, a device token or a token's hash. Errors do carry
// patient and device ids, which operators need to see.
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by Registry wrap them, so test with
// errors.Is.
var (
	// ErrNotFound reports that a patient or device does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that an id is already taken. Device ids are never
	// reused, even after a revocation.
	ErrExists = errors.New("already exists")
	// ErrRevoked reports that a device was already revoked.
	ErrRevoked = errors.New("revoked")
	// ErrInvalidID reports an id that ValidID rejects.
	ErrInvalidID = errors.New("invalid id")
)

// Registry is a handle on the relational store. It is safe for concurrent
// use by multiple goroutines, and several processes may open the same store.
type Registry struct {
	db     *sql.DB
	d      *dialect
	access accessWatch // watchers of access changes (OnAccessChange)
}

// Open opens (creating when needed, unless MustExist) the registry at dsn
// and migrates its schema to the latest version this binary knows.
//
// dsn is a SQLite file path ("./data/patientpulse.db"), a SQLite "file:" URI,
// or ":memory:" for a private in-memory store (tests). The parent directory
// of a file is created with mode 0700 and a new file with mode 0600, since
// the store holds PHI. A "postgres://" or "postgresql://" dsn opens that
// Postgres database (which must exist; Open creates the tables), with a
// pool of at most 10 connections; with MustExist, a database without the
// registry's tables is refused with ErrNoRegistry. Errors never repeat the
// dsn's password. Each call's time-out is its context's.
func Open(ctx context.Context, dsn string, opts ...OpenOption) (*Registry, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	d, driverDSN, err := resolve(dsn, o)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	db, err := sql.Open(d.driver, driverDSN)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if d.maxOpenConns > 0 {
		db.SetMaxOpenConns(d.maxOpenConns)
	}
	r := &Registry{db: db, d: d}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if o.mustExist && d == postgresDialect {
		if err := r.checkPostgresSchema(ctx, dsn); err != nil {
			db.Close()
			return nil, fmt.Errorf("open registry: %w", err)
		}
	}
	if err := r.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	return r, nil
}

// Close closes the store. Calls made after Close return errors.
func (r *Registry) Close() error {
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("close registry: %w", err)
	}
	return nil
}

// q returns query with its '?' placeholders in the dialect's form.
func (r *Registry) q(query string) string {
	if r.d.rebind == nil {
		return query
	}
	return r.d.rebind(query)
}

// Fence, when not nil, runs first in the transaction of a write made on
// behalf of a cluster partition (cluster.Membership.Check with the
// partition's epoch): an error, cluster.ErrFenced, refuses the write, so
// that an instance that lost the partition records nothing.
type Fence func(ctx context.Context, tx *sql.Tx) error

// inTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise. The transaction takes the write lock when it begins (on
// SQLite _txlock=immediate, on Postgres the dialect's advisory lock), so
// that a read-then-write in fn waits for a concurrent writer instead of
// acting on what that writer is changing.
func (r *Registry) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if r.d.txLock != "" {
		if _, err := tx.ExecContext(ctx, r.d.txLock); err != nil {
			_ = tx.Rollback() // the lock's error is the one that matters
			return err
		}
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one that matters
		r.settled(tx, false)
		return r.classify(err)
	}
	err = tx.Commit()
	r.settled(tx, err == nil)
	return r.classify(err)
}

// classify returns err wrapping the sentinel error it means in the
// dialect (see dialect.classify); nil stays nil.
func (r *Registry) classify(err error) error {
	if err == nil || r.d.classify == nil {
		return err
	}
	return r.d.classify(err)
}

// execOne runs a statement in tx that must change a row, and returns none
// (ErrExists, ErrNotFound, ErrConflict...) when it changed none.
func (r *Registry) execOne(ctx context.Context, tx *sql.Tx, none error, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, r.q(query), args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return none
	}
	return nil
}

// ValidID reports whether s may be a patient or device id:
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$. Such ids are safe in MQTT topic levels,
// InfluxDB tags, URLs and file names.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// checkID returns an error wrapping ErrInvalidID unless ValidID(id).
func checkID(kind, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%s id %q: %w (want 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)", kind, id, ErrInvalidID)
	}
	return nil
}

// timeLayout is how times are stored: UTC, fixed width, so that the text
// sorts as the times do and SQLite's date functions read it.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// now is the registry's clock, truncated to what the store keeps.
func now() time.Time { return time.Now().UTC().Round(0) }

// queryAll runs query and scans each row with scan. The slice is empty,
// not nil, when there are none; errors begin with what.
func queryAll[T any](ctx context.Context, r *Registry, what, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := r.db.QueryContext(ctx, r.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// scanString scans a row of one text column.
func scanString(s scanner) (string, error) {
	var v string
	err := s.Scan(&v)
	return v, err
}

// Redact is err's text with the patients' ids taken out, for a log line:
// the registry's errors name patients, and logs must not.
func Redact(err error, patientIDs ...string) string {
	msg := err.Error()
	for _, id := range patientIDs {
		if id != "" {
			msg = strings.ReplaceAll(msg, id, "<patient>")
		}
	}
	return msg
}
