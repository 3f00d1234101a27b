package testservices

import (
	"database/sql"
	"net/url"
	"strings"
	"testing"
)

// TestPostgresDB: each call makes a database of its own that a test can
// write to, and the database is gone once its test has ended, even with a
// connection still open to it.
func TestPostgresDB(t *testing.T) {
	var names []string
	t.Run("use", func(t *testing.T) {
		for range 2 {
			dsn := PostgresDB(t)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, strings.TrimPrefix(u.Path, "/"))
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			// Left open on purpose: the drop must not wait for it.
			if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (v TEXT)`); err != nil {
				t.Fatalf("write to the test database: %v", err)
			}
		}
		if names[0] == names[1] {
			t.Errorf("two calls gave the same database %s", names[0])
		}
	})
	admin, err := sql.Open("pgx", postgresServer())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, name := range names {
		var n int
		if err := admin.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	}
}

func TestRegistryDSN(t *testing.T) {
	t.Setenv(RegistryEnv, "")
	if dsn := RegistryDSN(t); !strings.HasSuffix(dsn, ".db") || strings.Contains(dsn, "://") {
		t.Errorf("RegistryDSN without %s = %q, want a SQLite file", RegistryEnv, dsn)
	}
	t.Setenv(RegistryEnv, "postgres")
	if dsn := RegistryDSN(t); !strings.HasPrefix(dsn, "postgres://") {
		t.Errorf("RegistryDSN with %s=postgres = %q, want a postgres:// dsn", RegistryEnv, dsn)
	}
}
