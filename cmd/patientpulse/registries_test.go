package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The tests name a registry by its data dir, as an operator's --data-dir
// does. Under PP_TEST_REGISTRY=postgres each data dir's registry is a
// fresh Postgres database instead of <data-dir>/patientpulse.db, and every
// command and serve the tests run is given it with --db (registryArgs),
// so that the whole suite runs on either store.

// dataDirRegistries maps a data dir to the dsn of its registry when that
// is not the default file: a Postgres database, or a SQLite file a test
// keeps (keepSQLite). sync.Map: parallel tests add their own dirs.
var dataDirRegistries sync.Map

// registryDSN returns the dsn of dataDir's registry: <dataDir>/patientpulse.db,
// or, under PP_TEST_REGISTRY=postgres, a database made on dataDir's first
// use (and dropped, with the mapping, when the test that first used it
// ends).
func registryDSN(tb testing.TB, dataDir string) string {
	tb.Helper()
	if dsn, ok := dataDirRegistries.Load(dataDir); ok {
		return dsn.(string)
	}
	if os.Getenv(testservices.RegistryEnv) != "postgres" {
		return filepath.Join(dataDir, "patientpulse.db")
	}
	dsn := testservices.PostgresDB(tb)
	tb.Cleanup(func() { dataDirRegistries.Delete(dataDir) })
	actual, _ := dataDirRegistries.LoadOrStore(dataDir, dsn)
	return actual.(string)
}

// keepSQLite makes dataDir's registry the SQLite file under it whatever
// PP_TEST_REGISTRY says, for a test that is about SQLite itself (its file,
// its pragmas) and says so.
func keepSQLite(tb testing.TB, dataDir string) {
	tb.Helper()
	dataDirRegistries.Store(dataDir, filepath.Join(dataDir, "patientpulse.db"))
	tb.Cleanup(func() { dataDirRegistries.Delete(dataDir) })
}

// plainSubscription returns the flags that make serve subscribe without
// $share, with a plain subscription that Mosquitto keeps across its
// restart: on SQLite an empty --mqtt-share-group, and on Postgres, where
// serve is clustered, also one MQTT session (--cluster-sessions 1), as
// the README's "Running several instances" offers a clinic that would
// rather keep what devices send while the broker restarts.
func plainSubscription(tb testing.TB, dataDir string) []string {
	tb.Helper()
	args := []string{"--mqtt-share-group="}
	if len(registryArgs(tb, dataDir)) > 0 {
		args = append(args, "--cluster-sessions", "1")
	}
	return args
}

// registryArgs returns the flags that give a patientpulse command dataDir's
// registry on top of --data-dir: none for the default file, "--db", dsn
// otherwise. Put them before a test's own flags, so that a test's --db
// still wins.
func registryArgs(tb testing.TB, dataDir string) []string {
	tb.Helper()
	dsn := registryDSN(tb, dataDir)
	if dsn == filepath.Join(dataDir, "patientpulse.db") {
		return nil
	}
	return []string{"--db", dsn}
}

// hasRegistry tells whether dataDir's registry exists yet: its file is
// there, or its Postgres database has the registry's tables.
func hasRegistry(tb testing.TB, dataDir string) bool {
	tb.Helper()
	dsn := registryDSN(tb, dataDir)
	if dsn == filepath.Join(dataDir, "patientpulse.db") {
		_, err := os.Stat(dsn)
		return !errors.Is(err, os.ErrNotExist)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		tb.Fatalf("look for the registry's tables: %v", err)
	}
	return exists
}

// openRegistry opens the registry the commands wrote for dataDir; the test
// closes it when it ends.
func openRegistry(tb testing.TB, dataDir string) *registry.Registry {
	tb.Helper()
	reg, err := registry.Open(tb.Context(), registryDSN(tb, dataDir))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { reg.Close() })
	return reg
}

// TestServeUsesTestRegistry: serve started by the tests' helpers opens the
// registry registryDSN names (a Postgres database under
// PP_TEST_REGISTRY=postgres), and says so, so that a run on Postgres
// cannot quietly fall back to SQLite.
func TestServeUsesTestRegistry(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	srv := startServe(t, dir, "t-registry-kind")
	want := "msg=registry at=" + registry.Location(registryDSN(t, dir)) + "\n"
	if !strings.Contains(srv.logs.String(), want) {
		t.Errorf("serve's log does not say %q:\n%s", want, srv.logs)
	}
}
