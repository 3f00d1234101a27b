package registry

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// openAtVersion creates a store at path migrated only up to version, as a
// binary of that schema left it, and returns it open.
func openAtVersion(t *testing.T, path string, version int) *Registry {
	t.Helper()
	d, driverDSN, err := resolve(path, openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := *d
	old.migrations = d.migrations[:version] // versions run 1, 2, ... (TestMigrationsOrdered)
	db, err := sql.Open(old.driver, driverDSN)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{db: db, d: &old}
	if err := r.migrate(t.Context()); err != nil {
		db.Close()
		t.Fatalf("migrate to version %d: %v", version, err)
	}
	return r
}

// TestMigrateFromEarlierVersions opens a store that an older binary left
// at each earlier schema version: Open brings it to the latest, keeping
// what was stored, and the alerts stored before the patient index are
// found through it.
func TestMigrateFromEarlierVersions(t *testing.T) {
	eachBackend(t, testMigrateFromEarlierVersions)
}

func testMigrateFromEarlierVersions(t *testing.T, be backend) {
	latest := len(sqliteMigrations)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for from := range latest {
		t.Run(fmt.Sprintf("from version %d", from), func(t *testing.T) {
			ctx := t.Context()
			path := be.dsn(t)
			old := openAtVersion(t, path, from)
			var want []int64 // the alerts stored before the upgrade, newest first
			if from >= 5 {   // the version that added alerts
				for _, p := range []string{"p-1", "p-2"} {
					// As that binary wrote it: the columns of its schema.
					if _, err := old.db.ExecContext(ctx, old.q(`INSERT INTO patients (id, name, created_at) VALUES (?, '', ?)`), p, formatTime(at)); err != nil {
						t.Fatal(err)
					}
				}
				for i, a := range []struct{ patient, key, state string }{
					{"p-1", "r1", AlertResolved}, {"p-2", "r1", AlertFiring}, {"p-1", "r1", AlertFiring}, {"p-1", "r2", AlertSuppressed},
				} {
					id, err := old.OpenAlert(ctx, AlertRow{Patient: a.patient, Key: a.key, State: a.state, Severity: "warning",
						OpenedAt: at.Add(time.Duration(i) * time.Minute), UpdatedAt: at, Tier: -1, Body: []byte("{}")},
						AlertEvent{At: at, Kind: "opened"}, nil)
					if err != nil {
						t.Fatal(err)
					}
					if a.patient == "p-1" {
						want = append([]int64{id}, want...)
					}
				}
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			r, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("Open of a store at version %d: %v", from, err)
			}
			defer r.Close()
			if got := appliedVersions(t, r); got != latest {
				t.Errorf("%d rows in schema_migrations, want %d", got, latest)
			}
			var n int
			indexes := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'alerts_patient'`
			if be.postgres() {
				indexes = `SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'alerts_patient'`
			}
			if err := r.db.QueryRowContext(ctx, indexes).Scan(&n); err != nil || n != 1 {
				t.Errorf("index alerts_patient: %d found (%v), want 1", n, err)
			}
			rows, err := r.Alerts(ctx, AlertFilter{Patient: "p-1"})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, row := range rows {
				got = append(got, row.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Alerts of p-1 after the upgrade: ids %v, want %v", got, want)
			}
		})
	}
}

// TestAlertsOfAPatientUseIndex checks that reading one patient's alerts,
// in any state or in some, newest first, finds them by the patient index
// and does not sort: the alert manager does so for every condition that
// holds at every sweep. The queries are those Alerts builds. SQLite only:
// the plan's text is SQLite's (Postgres has the same index, step 6, and
// its planner picks by the table's statistics).
func TestAlertsOfAPatientUseIndex(t *testing.T) {
	r, _ := openTest(t, sqliteBackend)
	ctx := t.Context()
	tests := []struct {
		name  string
		query string
		args  []any
	}{
		{name: "any state", query: `WHERE patient_id = ? ORDER BY id DESC`, args: []any{"p-1"}},
		{name: "active", query: `WHERE state IN (?, ?, ?) AND patient_id = ? ORDER BY id DESC`,
			args: []any{AlertFiring, AlertAcknowledged, AlertSuppressed, "p-1"}},
		{name: "a page by severity", query: `WHERE patient_id = ? AND severity = ? AND id < ? ORDER BY id DESC LIMIT ?`,
			args: []any{"p-1", "warning", 100, 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := r.db.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT `+alertColumns+` FROM alerts `+tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			p := strings.Join(plan, "; ")
			if !strings.Contains(p, "USING INDEX alerts_patient") || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("plan %q, want a search of alerts_patient and no sort", p)
			}
		})
	}
}
