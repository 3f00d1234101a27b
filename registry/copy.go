package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// copyOrder is every table `registry copy` moves, parents before the
// tables that refer to them. schema_migrations is each store's own (both
// are at the latest version once opened) and write_probe is empty between
// probes; any other table of the source that is not listed here makes the
// copy refuse to start rather than leave it behind.
var copyOrder = []string{
	"patients", "devices",
	"staff", "care_team", "staff_tokens",
	"sessions", "audit",
	"plans", "transitions", "rule_states", "patient_notes", "procedure_types", "procedures", "summaries",
	"alerts", "alert_events", "delivery_attempts",
	"outbox_events", "outbox_deliveries",
	"staff_contacts", "server_keys", "oncall_rotas",
}

// notCopied are the tables copyOrder leaves out on purpose.
// signin_unknown holds failed sign-ins of the lock-out window only.
// patient_views is written by the instances that judge the patients
// (several, on Postgres), and rewritten at their next evaluation.
var notCopied = map[string]bool{"schema_migrations": true, "write_probe": true, "sqlite_sequence": true, "patient_views": true,
	"signin_unknown": true}

// Copied is how many rows of one table CopyToPostgres copied.
type Copied struct {
	Table string
	Rows  int64
}

// ErrTargetNotEmpty reports that the Postgres registry CopyToPostgres was
// given holds data already.
var ErrTargetNotEmpty = errors.New("the target registry is not empty")

// CopyToPostgres copies the SQLite registry at from (a file that must
// exist; it is migrated to this binary's schema first, as any open does)
// into the Postgres registry at to, whose database must exist and be
// empty of registry rows (its tables are created if missing), and returns
// the rows copied per table, in copy order.
//
// The whole copy is one Postgres transaction: it lands entirely or not at
// all. It holds the registry's write lock on both sides, so no process
// writes to either meanwhile (stop `serve` first: its writes would wait,
// and fail once the SQLite busy time-out passes). Every row keeps its id,
// and the identity sequences are set past the largest copied id, so new
// alerts, events and audit entries number on. The audit log is only
// appended to, by COPY, which its append-only trigger allows. Nothing is
// logged, and errors name tables, never values.
func CopyToPostgres(ctx context.Context, from, to string) ([]Copied, error) {
	if isPostgres(from) {
		return nil, errors.New("registry copy: --from must be a SQLite registry file")
	}
	if !isPostgres(to) {
		return nil, errors.New("registry copy: --to must be a postgres:// registry")
	}
	src, err := Open(ctx, from, MustExist())
	if err != nil {
		return nil, fmt.Errorf("registry copy: source: %w", err)
	}
	defer src.Close()
	dst, err := Open(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("registry copy: target: %w", err)
	}
	defer dst.Close()
	if err := src.checkCopyOrder(ctx); err != nil {
		return nil, fmt.Errorf("registry copy: %w", err)
	}
	// A transaction on SQLite takes its write lock (_txlock=immediate), so
	// the source does not change while it is read.
	stx, err := src.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("registry copy: source: %w", err)
	}
	defer stx.Rollback() // read only: nothing to commit
	conn, err := dst.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry copy: target: %w", err)
	}
	defer conn.Close()
	var copied []Copied
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("target connection is a %T, not pgx's", dc)
		}
		copied, err = copyTables(ctx, stx, pc.Conn())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registry copy: %w", err)
	}
	return copied, nil
}

// checkCopyOrder refuses a source with a table copyOrder does not know.
func (r *Registry) checkCopyOrder(ctx context.Context) error {
	tables, err := queryAll(ctx, r, "source tables", `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`, nil, scanString)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, t := range copyOrder {
		known[t] = true
	}
	for _, t := range tables {
		if !known[t] && !notCopied[t] {
			return fmt.Errorf("source table %s is not one this binary copies: upgrade patientpulse", t)
		}
	}
	return nil
}

// copyTables copies every table of copyOrder from src to dst in one
// transaction of dst.
func copyTables(ctx context.Context, src *sql.Tx, dst *pgx.Conn) ([]Copied, error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	if _, err := tx.Exec(ctx, postgresDialect.txLock); err != nil {
		return nil, fmt.Errorf("take the target's write lock: %w", err)
	}
	for _, t := range copyOrder {
		var some bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t}.Sanitize()+`)`).Scan(&some); err != nil {
			return nil, fmt.Errorf("target table %s: %w", t, err)
		}
		if some {
			return nil, fmt.Errorf("%w: table %s has rows (copy into a new, empty database)", ErrTargetNotEmpty, t)
		}
	}
	copied := make([]Copied, 0, len(copyOrder))
	for _, t := range copyOrder {
		n, err := copyTable(ctx, src, tx, t)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		copied = append(copied, Copied{Table: t, Rows: n})
	}
	used, err := sqliteSequences(ctx, src)
	if err != nil {
		return nil, err
	}
	if err := resetIdentities(ctx, tx, used); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return copied, nil
}

// copyTable streams every row of table from src into dst with COPY, the
// columns by name.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, table string) (int64, error) {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	return dst.CopyFrom(ctx, pgx.Identifier{table}, cols, &rowSource{rows: rows, n: len(cols)})
}

// rowSource is a pgx.CopyFromSource reading a database/sql result.
type rowSource struct {
	rows   *sql.Rows
	n      int
	values []any
	err    error
}

func (s *rowSource) Next() bool {
	if !s.rows.Next() {
		return false
	}
	vals := make([]any, s.n)
	ptrs := make([]any, s.n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if s.err = s.rows.Scan(ptrs...); s.err != nil {
		return false
	}
	s.values = vals
	return true
}

func (s *rowSource) Values() ([]any, error) { return s.values, nil }

func (s *rowSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

// sqliteSequences returns, by table, the largest id SQLite's
// AUTOINCREMENT has handed out: ids of purged rows are never reused.
func sqliteSequences(ctx context.Context, src *sql.Tx) (map[string]int64, error) {
	rows, err := src.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
	if err != nil {
		return nil, fmt.Errorf("source sequences: %w", err)
	}
	defer rows.Close()
	used := map[string]int64{}
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			return nil, fmt.Errorf("source sequences: %w", err)
		}
		used[name] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source sequences: %w", err)
	}
	return used, nil
}

// resetIdentities sets every identity column's sequence so that the next
// id is one past the largest copied or ever handed out by the source
// (used), as SQLite's AUTOINCREMENT would have gone on: an alert's id
// stays its own after the alert is purged.
func resetIdentities(ctx context.Context, tx pgx.Tx, used map[string]int64) error {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("identity columns: %w", err)
	}
	type column struct{ table, name string }
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (column, error) {
		var c column
		err := row.Scan(&c.table, &c.name)
		return c, err
	})
	if err != nil {
		return fmt.Errorf("identity columns: %w", err)
	}
	for _, c := range ids {
		table, col := pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.name}.Sanitize()
		_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(COALESCE(MAX(`+col+`), 0), $3) + 1, false)
			FROM `+table, c.table, c.name, used[c.table])
		if err != nil {
			return fmt.Errorf("reset the ids of %s: %w", c.table, err)
		}
	}
	return nil
}
