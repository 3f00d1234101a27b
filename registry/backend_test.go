package registry

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// backend is a store the registry's tests run on.
type backend struct {
	name string
	// dsn returns the dsn of a new, empty store for t.
	dsn func(t *testing.T) string
}

// backends are the stores every test of the registry's behaviour runs on:
// a SQLite file, and a Postgres database of its own on the test server
// (skipped when there is none, a failure under CI=true).
var backends = []backend{sqliteBackend, postgresBackend}

var (
	sqliteBackend   = backend{name: "sqlite", dsn: func(t *testing.T) string { return filepath.Join(t.TempDir(), "registry.db") }}
	postgresBackend = backend{name: "postgres", dsn: func(t *testing.T) string { return testservices.PostgresDB(t) }}
)

// eachBackend runs fn as a subtest on each backend, named after it.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// postgres reports whether b is the Postgres backend.
func (b backend) postgres() bool { return b.name == "postgres" }

// storedContents returns what the store at dsn holds, by where it holds
// it, for tests that look for secrets: on SQLite the bytes of the
// database's files (the database, -wal and -shm), on Postgres the text of
// every row of every table, read through a connection of its own (so that
// it works after the registry is closed).
func storedContents(t *testing.T, be backend, dsn string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if !be.postgres() {
		files, err := filepath.Glob(dsn + "*")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = b
		}
		return out
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.QueryContext(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var name string
		if err := tables.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := tables.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		var text sql.NullString
		q := `SELECT string_agg(x::text, E'\n') FROM ` + pgx.Identifier{name}.Sanitize() + ` x`
		if err := db.QueryRowContext(t.Context(), q).Scan(&text); err != nil {
			t.Fatal(err)
		}
		out[name] = []byte(text.String)
	}
	return out
}
