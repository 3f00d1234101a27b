package testservices

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// PostgresServer is the server PostgresDB makes its databases on: the
// PostgreSQL that runs on 127.0.0.1:5432 on the project's machines, trust
// authentication, user postgres. PP_TEST_POSTGRES overrides it with
// another server's URL (its path, the database to connect to for CREATE
// DATABASE, is usually /postgres).
const PostgresServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// RegistryEnv names the environment variable that picks the registry the
// tests of other packages run on (RegistryDSN): "postgres" for a fresh
// Postgres database each, anything else for a SQLite file.
const RegistryEnv = "PP_TEST_REGISTRY"

// PostgresServerURL returns the URL of the server PostgresDB makes its
// databases on: PP_TEST_POSTGRES, or PostgresServer. Tests hand it to
// what makes databases of its own (patientpulse bench --postgres).
func PostgresServerURL() string { return postgresServer() }

// postgresServer returns the URL of the server PostgresDB uses.
func postgresServer() string {
	if s := os.Getenv("PP_TEST_POSTGRES"); s != "" {
		return s
	}
	return PostgresServer
}

// PostgresDB creates a new, empty database on the test server, drops it
// when the test ends (closing any connection left to it), and returns its
// dsn. A server that cannot be reached skips the test, unless CI is
// "true": under CI it fails it, as a missing binary does in Require.
func PostgresDB(tb testing.TB) string {
	tb.Helper()
	server := postgresServer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", server)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		err = fmt.Errorf("postgres test server %s: %w (start it, e.g. pg_ctlcluster 15 main start, or set PP_TEST_POSTGRES)",
			redacted(server), err)
		if os.Getenv("CI") != "true" {
			tb.Skip(err)
		}
		tb.Fatal(err)
	}
	name := "pptest_" + strings.ToLower(rand.Text())
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close()
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("postgres test server: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// RegistryDSN returns the dsn of a new, empty registry for a test: a
// SQLite file in the test's temporary directory, or, when the environment
// variable PP_TEST_REGISTRY is "postgres", a database of its own on the
// test server (PostgresDB). Tests open it with registry.Open, so that the
// whole suite can run on either store.
func RegistryDSN(tb testing.TB) string {
	tb.Helper()
	if os.Getenv(RegistryEnv) == "postgres" {
		return PostgresDB(tb)
	}
	return filepath.Join(tb.TempDir(), "registry.db")
}

// redacted is the server's URL without its password, for messages.
func redacted(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}
