package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/patientpulse/patientpulse/registry"
)

// freshDatabase creates a new, empty database for a phase's registry on
// the Postgres server at server (a postgres:// URL whose database is the
// one to connect to for CREATE DATABASE, usually /postgres), and returns
// its dsn and drop, which removes it, closing any connection left to it.
// bench never works in a database it did not make.
func freshDatabase(ctx context.Context, server string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return "", nil, fmt.Errorf("postgres %s: %w", registry.Location(server), err)
	}
	name := "pp_bench_" + strings.ToLower(rand.Text())
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("postgres %s: create a database: %w", registry.Location(server), err)
	}
	drop = func() error {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("postgres: drop bench database %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}
