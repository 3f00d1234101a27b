package registry

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// dialect is what differs between the relational databases the registry
// runs on. Queries are written with '?' placeholders in SQL both SQLite and
// Postgres accept (ON CONFLICT ... DO NOTHING, RETURNING on inserts and
// deletes, times as fixed-width text compared as text, no date functions);
// what cannot be shared lives here.
//
// The Postgres dialect (postgres.go) has driver "pgx"
// (github.com/jackc/pgx/v5/stdlib), a rebind turning '?' into $1, $2, ...,
// its own migration list (no STRICT; text COLLATE "C" so that ORDER BY
// keeps SQLite's byte order), an advisory lock around migrate and another
// taken by every transaction, since it has no BEGIN IMMEDIATE.
type dialect struct {
	name   string // for error messages
	driver string // database/sql driver name
	// rebind rewrites a query's '?' placeholders into the driver's form;
	// nil when the driver takes '?'.
	rebind func(query string) string
	// migrations are the schema steps, in ascending version order.
	migrations []migration
	// maxOpenConns caps the connection pool; 0 leaves it unlimited.
	maxOpenConns int
	// migrateLock and migrateUnlock, when set, are run on migrate's
	// connection around the steps, so that processes starting together
	// apply each step once.
	migrateLock, migrateUnlock string
	// txLock, when set, is the first statement of every inTx transaction:
	// it makes writers wait for each other as SQLite's BEGIN IMMEDIATE
	// does.
	txLock string
	// classify, when set, wraps the sentinel error (ErrExists, ...) that a
	// driver error means, for errors that the SQL does not prevent.
	classify func(error) error
}

var sqliteDialect = &dialect{
	name:       "sqlite",
	driver:     "sqlite",
	migrations: sqliteMigrations,
}

// resolve picks the dialect for dsn and returns the dsn to hand its driver.
// A Postgres dsn goes to pgx as it is; MustExist does not apply to it (a
// server's database is made by its operator, and Open migrates it).
func resolve(dsn string, o openOptions) (*dialect, string, error) {
	switch {
	case dsn == "":
		return nil, "", errors.New("empty dsn")
	case isPostgres(dsn):
		return postgresDialect, dsn, nil
	}
	driverDSN, memory, err := sqliteDSN(dsn, o)
	if err != nil {
		return nil, "", err
	}
	if memory {
		// Each pooled connection to ":memory:" would be a database of its
		// own: keep one connection, which database/sql holds idle forever.
		d := *sqliteDialect
		d.maxOpenConns = 1
		return &d, driverDSN, nil
	}
	return sqliteDialect, driverDSN, nil
}

// isPostgres reports whether dsn names a Postgres server.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sqlitePragmas are set on every connection the pool opens, through the
// DSN: WAL lets readers run beside the one writer (the server and the
// operator's CLI share the file), busy_timeout makes a writer wait for the
// lock instead of failing with "database is locked", synchronous=FULL makes
// a commit survive power loss, and foreign_keys makes SQLite enforce the
// REFERENCES clauses. busy_timeout is applied first by the driver.
var sqlitePragmas = []string{
	"busy_timeout(5000)",
	"foreign_keys(ON)",
	"journal_mode(WAL)",
	"synchronous(FULL)",
}

// sqliteDSN turns a path, ":memory:" or "file:" URI into a modernc DSN
// carrying the pragmas, and prepares the file: parent directory 0700, new
// file 0600; with o.mustExist it refuses (ErrNoRegistry) a file that is
// missing or empty instead. A pragma the caller's URI already sets is left
// as the caller set it. memory reports an in-memory database.
func sqliteDSN(dsn string, o openOptions) (driverDSN string, memory bool, err error) {
	var path string
	var query url.Values
	switch {
	case dsn == ":memory:":
		memory = true
		query = url.Values{}
	case strings.HasPrefix(dsn, "file:"):
		var rawQuery string
		dsn, rawQuery, _ = strings.Cut(dsn, "?")
		if query, err = url.ParseQuery(rawQuery); err != nil {
			return "", false, fmt.Errorf("sqlite dsn query: %w", err)
		}
		if path, err = uriPath(dsn); err != nil {
			return "", false, err
		}
		memory = path == "" || path == ":memory:" || query.Get("mode") == "memory"
	default:
		// A plain path becomes a file: URI so that '?' or '#' in it cannot
		// be taken for the start of a query.
		if path, err = filepath.Abs(dsn); err != nil {
			return "", false, fmt.Errorf("sqlite path: %w", err)
		}
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
		dsn = u.String()
		query = url.Values{}
	}
	switch {
	case memory:
	case o.mustExist:
		if err := existing(path); err != nil {
			return "", false, err
		}
	default:
		if err := prepareFile(path); err != nil {
			return "", false, err
		}
	}
	addPragmas(query)
	if query.Get("_txlock") == "" {
		query.Set("_txlock", "immediate")
	}
	return dsn + "?" + query.Encode(), memory, nil
}

// addPragmas adds each of sqlitePragmas that query does not set already.
func addPragmas(query url.Values) {
	set := map[string]bool{}
	for _, p := range query["_pragma"] {
		name, _, _ := strings.Cut(p, "(")
		name, _, _ = strings.Cut(name, "=")
		set[strings.ToLower(strings.TrimSpace(name))] = true
	}
	for _, p := range sqlitePragmas {
		name, _, _ := strings.Cut(p, "(")
		if !set[name] {
			query.Add("_pragma", p)
		}
	}
}

// uriPath returns the file path of a SQLite "file:" URI without its query.
func uriPath(uri string) (string, error) {
	rest := strings.TrimPrefix(uri, "file:")
	rest, _, _ = strings.Cut(rest, "#")
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		authority, p, _ := strings.Cut(after, "/")
		if authority != "" && authority != "localhost" {
			return "", fmt.Errorf("sqlite dsn: file URI authority %q: want empty or localhost", authority)
		}
		rest = "/" + p
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("sqlite dsn path: %w", err)
	}
	return filepath.FromSlash(path), nil
}

// prepareFile creates path's parent directory (0700) and the file itself
// (0600) when missing. SQLite gives its -wal and -shm files the database
// file's mode, so they stay private too.
func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create registry directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("create registry file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create registry file: %w", err)
	}
	return nil
}
