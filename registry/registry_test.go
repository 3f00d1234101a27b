package registry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// openTest opens a fresh registry on b (a file under t.TempDir, or a
// Postgres database of its own) and closes it when the test ends. It
// returns its dsn too: the file's path on SQLite.
func openTest(t *testing.T, b backend) (*Registry, string) {
	t.Helper()
	path := b.dsn(t)
	r, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, path
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		dsn     string
		file    string // the file Open must create; "" for none
		wantErr string // substring of the error; "" for success
	}{
		{name: "path in missing directories", dsn: filepath.Join(dir, "a", "b", "pp.db"), file: filepath.Join(dir, "a", "b", "pp.db")},
		{name: "relative path", dsn: relTo(t, filepath.Join(dir, "rel", "pp.db")), file: filepath.Join(dir, "rel", "pp.db")},
		{name: "path with query-like characters", dsn: filepath.Join(dir, "odd?name#x%20.db"), file: filepath.Join(dir, "odd?name#x%20.db")},
		{name: "file URI", dsn: "file:" + filepath.Join(dir, "uri", "pp.db"), file: filepath.Join(dir, "uri", "pp.db")},
		{name: "file URI with authority and query", dsn: "file://" + filepath.Join(dir, "uri2", "pp.db") + "?cache=private", file: filepath.Join(dir, "uri2", "pp.db")},
		{name: "memory", dsn: ":memory:"},
		{name: "memory URI", dsn: "file::memory:"},
		{name: "empty", dsn: "", wantErr: "empty dsn"},
		{name: "remote file URI", dsn: "file://example.com/pp.db", wantErr: "authority"},
		// No server listens on port 1: the error names the registry's
		// failure and never the password.
		{name: "postgres unreachable", dsn: "postgres://pp:s3cret@127.0.0.1:1/pp?sslmode=disable", wantErr: "open registry"},
		{name: "postgresql unreachable", dsn: "postgresql://pp:s3cret@127.0.0.1:1/pp?password=s3cret", wantErr: "open registry"},
		{name: "postgres unreadable", dsn: "postgres://pp:s3cret@127.0.0.1:notaport/pp", wantErr: "open registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(t.Context(), tt.dsn)
			if tt.wantErr != "" {
				if err == nil {
					r.Close()
					t.Fatalf("Open(%q) succeeded, want an error containing %q", tt.dsn, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Open(%q) = %v, want an error containing %q", tt.dsn, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("Open error %q repeats the dsn's password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.dsn, err)
			}
			defer r.Close()
			// The store works: a write and a read through the pool.
			if err := r.AddPatient(t.Context(), Patient{ID: "p-1"}); err != nil {
				t.Fatalf("AddPatient: %v", err)
			}
			if _, err := r.Patient(t.Context(), "p-1"); err != nil {
				t.Fatalf("Patient: %v", err)
			}
			if tt.file == "" {
				return
			}
			fi, err := os.Stat(tt.file)
			if err != nil {
				t.Fatalf("database file: %v", err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("database file mode = %v, want no group or other access", fi.Mode().Perm())
			}
			if tt.name == "path in missing directories" {
				di, err := os.Stat(filepath.Dir(tt.file))
				if err != nil {
					t.Fatal(err)
				}
				if di.Mode().Perm() != 0o700 {
					t.Errorf("created directory mode = %v, want 0700", di.Mode().Perm())
				}
			}
		})
	}
}

// relTo returns path relative to the working directory.
func relTo(t *testing.T, path string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestPragmas checks that every pooled connection, not only the first,
// has the settings the store relies on. SQLite only: pragmas are SQLite's.
func TestPragmas(t *testing.T) {
	r, _ := openTest(t, sqliteBackend)
	ctx := t.Context()
	want := map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "5000",
		"foreign_keys": "1",
		"synchronous":  "2", // FULL
	}
	// Hold several connections at once so that the pool must open new ones.
	for i := range 3 {
		conn, err := r.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for pragma, w := range want {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, pragma, err)
			}
			if got != w {
				t.Errorf("conn %d: PRAGMA %s = %q, want %q", i, pragma, got, w)
			}
		}
	}
}

func TestMigrationsOrdered(t *testing.T) {
	for i, m := range sqliteMigrations {
		if m.version != i+1 {
			t.Errorf("sqliteMigrations[%d].version = %d, want %d: versions start at 1 and go up by one", i, m.version, i+1)
		}
		if m.name == "" || len(m.stmts) == 0 {
			t.Errorf("sqliteMigrations[%d] has no name or no statements", i)
		}
	}
	// The dialects' lists are step for step the same schema, so that a
	// registry copied from one to the other is at the same version.
	if len(postgresMigrations) != len(sqliteMigrations) {
		t.Fatalf("%d postgres steps, %d sqlite steps: want as many", len(postgresMigrations), len(sqliteMigrations))
	}
	for i, m := range postgresMigrations {
		if s := sqliteMigrations[i]; m.version != s.version || m.name != s.name || len(m.stmts) == 0 {
			t.Errorf("postgresMigrations[%d] = version %d %q, want version %d %q with statements", i, m.version, m.name, s.version, s.name)
		}
	}
}

func TestMigrateIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		path := be.dsn(t)
		for i := range 3 {
			r, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			if i == 0 {
				if err := r.AddPatient(ctx, Patient{ID: "p-1", Name: "Kept"}); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := appliedVersions(t, r), len(sqliteMigrations); got != want {
				t.Errorf("open %d: %d rows in schema_migrations, want %d", i, got, want)
			}
			if p, err := r.Patient(ctx, "p-1"); err != nil || p.Name != "Kept" {
				t.Errorf("open %d: Patient(p-1) = %+v, %v; want the patient added on the first open", i, p, err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func appliedVersions(t *testing.T, r *Registry) int {
	t.Helper()
	var n int
	if err := r.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		r, path := openTest(t, be)
		if _, err := r.db.ExecContext(ctx, r.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', '')`),
			len(sqliteMigrations)+1); err != nil {
			t.Fatal(err)
		}
		r2, err := Open(ctx, path)
		if err == nil {
			r2.Close()
			t.Fatal("Open of a store with an unknown newer schema version succeeded")
		}
		if !strings.Contains(err.Error(), "newer than this binary") {
			t.Errorf("Open = %v, want it to say the schema is newer than this binary", err)
		}
	})
}

// TestOpenConcurrentFresh opens one new file from several registries at
// once, as a server and an operator's first command may: each step must be
// applied exactly once.
func TestOpenConcurrentFresh(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		path := be.dsn(t)
		const n = 6
		regs := make([]*Registry, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { regs[i], errs[i] = Open(ctx, path) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Errorf("Open %d: %v", i, errs[i])
				continue
			}
			defer regs[i].Close()
		}
		if t.Failed() {
			return
		}
		if got, want := appliedVersions(t, regs[0]), len(sqliteMigrations); got != want {
			t.Errorf("%d rows in schema_migrations, want %d", got, want)
		}
	})
}

// TestTwoRegistriesOneFile runs what happens when `devices enroll` runs
// beside `serve`: one registry enrolls devices while another, on the same
// file, looks them up and revokes them. Neither may see "database is
// locked".
func TestTwoRegistriesOneFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		cli, path := openTest(t, be)
		server, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		if err := cli.AddPatient(ctx, Patient{ID: "p-1"}); err != nil {
			t.Fatal(err)
		}

		const n = 40
		tokens := make(chan string, n)
		errc := make(chan error, 4*n)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(tokens)
			for i := range n {
				tok, err := cli.EnrollDevice(ctx, fmt.Sprintf("d-%03d", i), "p-1")
				if err != nil {
					errc <- fmt.Errorf("enroll %d: %w", i, err)
					return
				}
				tokens <- tok
			}
		})
		wg.Go(func() {
			for tok := range tokens {
				d, err := server.DeviceByToken(ctx, tok)
				if err != nil {
					errc <- fmt.Errorf("device by token: %w", err)
					continue
				}
				if _, err := server.ListDevices(ctx); err != nil {
					errc <- fmt.Errorf("list devices: %w", err)
				}
				if err := server.RevokeDevice(ctx, d.ID); err != nil {
					errc <- fmt.Errorf("revoke %s: %w", d.ID, err)
				}
			}
		})
		// A second writer on the server's side, contending for the write lock.
		wg.Go(func() {
			for i := range n {
				if err := server.AddPatient(ctx, Patient{ID: fmt.Sprintf("q-%03d", i)}); err != nil {
					errc <- fmt.Errorf("add patient %d: %w", i, err)
				}
			}
		})
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}

		ds, err := cli.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != n {
			t.Fatalf("%d devices, want %d", len(ds), n)
		}
		for _, d := range ds {
			if d.Active() {
				t.Errorf("device %s still active, want revoked by the other registry", d.ID)
			}
		}
	})
}

func TestValidID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{name: "simple", id: "p-001", want: true},
		{name: "one char", id: "a", want: true},
		{name: "digits first", id: "0abc", want: true},
		{name: "all punctuation kinds", id: "A.b_c-9", want: true},
		{name: "64 chars", id: strings.Repeat("x", 64), want: true},
		{name: "65 chars", id: strings.Repeat("x", 65), want: false},
		{name: "empty", id: "", want: false},
		{name: "leading dot", id: ".hidden", want: false},
		{name: "leading dash", id: "-rf", want: false},
		{name: "leading underscore", id: "_x", want: false},
		{name: "dot dot", id: "..", want: false},
		{name: "slash", id: "a/b", want: false},
		{name: "mqtt plus", id: "a+", want: false},
		{name: "mqtt hash", id: "a#", want: false},
		{name: "space", id: "a b", want: false},
		{name: "comma", id: "a,b", want: false},
		{name: "equals", id: "a=b", want: false},
		{name: "non-ASCII", id: "pé", want: false},
		{name: "newline", id: "a\n", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestSQLiteDSNKeepsCallersPragmas(t *testing.T) {
	dsn, _, err := sqliteDSN("file:"+filepath.Join(t.TempDir(), "pp.db")+"?_pragma=synchronous(NORMAL)&_txlock=deferred", openOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, raw, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	var syncs []string
	for _, p := range q["_pragma"] {
		if strings.HasPrefix(p, "synchronous") {
			syncs = append(syncs, p)
		}
	}
	if len(syncs) != 1 || syncs[0] != "synchronous(NORMAL)" {
		t.Errorf("synchronous pragmas = %q, want only the caller's synchronous(NORMAL)", syncs)
	}
	if got := q.Get("_txlock"); got != "deferred" {
		t.Errorf("_txlock = %q, want the caller's deferred", got)
	}
	if len(q["_pragma"]) != len(sqlitePragmas) {
		t.Errorf("pragmas = %q, want the caller's plus the other defaults", q["_pragma"])
	}
}

func TestClosedRegistry(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, err := Open(t.Context(), be.dsn(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = r.ListPatients(context.Background())
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("ListPatients after Close = %v, want a closed-database error", err)
		}
	})
}

func TestRedact(t *testing.T) {
	err := fmt.Errorf("record transitions of p-77: %w", errors.New("database is locked"))
	if got := Redact(err, "p-77", ""); got != "record transitions of <patient>: database is locked" {
		t.Errorf("Redact = %q", got)
	}
}
