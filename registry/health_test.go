package registry

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteProbeFullStore fills the store as a full disk would, through a
// second connection that SQLite's max_page_count does not limit, and
// checks that the probe says the registry cannot write, then can again
// once there is room. SQLite only: a full Postgres server cannot be made
// in a test's database.
func TestWriteProbeFullStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pp.db")
	r, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := r.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	r.Close()
	// The registry's connections may grow the file by a few pages only.
	r, err = Open(ctx, fmt.Sprintf("file:%s?_pragma=max_page_count(%d)", path, pages+4))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	probe := r.WriteProbe(0)
	if err := probe.Check(ctx); err != nil {
		t.Fatalf("probe of a store with room: %v", err)
	}

	filler, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	mustExec := func(q string) {
		t.Helper()
		if _, err := filler.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE filler (b BLOB)`)
	// Ten rows of a page each: more than the registry's few pages of room.
	mustExec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
		INSERT INTO filler SELECT zeroblob(4096) FROM n`)
	err = probe.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "registry cannot write") || !strings.Contains(err.Error(), "full") {
		t.Fatalf("probe of a full store: %v, want registry cannot write ... full", err)
	}

	mustExec(`DROP TABLE filler`) // its pages go to the free list
	if err := probe.Check(ctx); err != nil {
		t.Fatalf("probe once there is room again: %v", err)
	}
}

// TestWriteProbeRate checks that probes run at most once per interval and
// report the last outcome in between.
func TestWriteProbeRate(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		probe := r.WriteProbe(time.Hour)
		if err := probe.Check(t.Context()); err != nil {
			t.Fatal(err)
		}
		first := probe.last
		if err := probe.Check(t.Context()); err != nil {
			t.Fatal(err)
		}
		if probe.last != first {
			t.Error("a second check within the interval probed again")
		}
	})
}
