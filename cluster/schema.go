package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaLock is the pg_advisory_xact_lock key under which instances create
// the tables and slots, so that two starting at once do not race.
const schemaLock = 0x636c7573746572 // "cluster"

// schema is the package's own tables. A member's id is unique to a
// process; its heartbeat and every lease time are the database's clock.
// A lease row exists for every slot of every set; holder is NULL when it
// was never taken or was given back, and a lease with expires <= now() is
// free too. epoch only ever grows.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS cluster_members (
		id        text PRIMARY KEY,
		address   text NOT NULL,
		started   timestamptz NOT NULL,
		heartbeat timestamptz NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS cluster_sets (
		name  text PRIMARY KEY,
		slots integer NOT NULL CHECK (slots > 0)
	)`,
	`CREATE TABLE IF NOT EXISTS cluster_leases (
		set_name text NOT NULL REFERENCES cluster_sets (name),
		slot     integer NOT NULL CHECK (slot >= 0),
		holder   text,
		epoch    bigint NOT NULL DEFAULT 0,
		expires  timestamptz,
		acquired timestamptz,
		PRIMARY KEY (set_name, slot)
	)`,
	`CREATE INDEX IF NOT EXISTS cluster_leases_holder ON cluster_leases (holder)`,
}

// prepare creates the tables and the slots of sets, or checks that the
// sets already there have the same slot counts (ErrSetSize otherwise).
func prepare(ctx context.Context, pool *pgxpool.Pool, sets map[string]int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return fmt.Errorf("cluster: schema lock: %w", err)
		}
		for _, stmt := range schema {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("cluster: create schema: %w", err)
			}
		}
		var errs []error
		for name, slots := range sets {
			if err := prepareSet(ctx, tx, name, slots); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// prepareSet records set name with its slot count and creates its lease
// rows, unless it already has another count.
func prepareSet(ctx context.Context, tx pgx.Tx, name string, slots int) error {
	_, err := tx.Exec(ctx, `INSERT INTO cluster_sets (name, slots) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, slots)
	if err != nil {
		return fmt.Errorf("cluster: record set %s: %w", name, err)
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT slots FROM cluster_sets WHERE name = $1`, name).Scan(&have); err != nil {
		return fmt.Errorf("cluster: read set %s: %w", name, err)
	}
	if have != slots {
		return fmt.Errorf("%w: set %s has %d slots in the database, %d configured", ErrSetSize, name, have, slots)
	}
	_, err = tx.Exec(ctx, `INSERT INTO cluster_leases (set_name, slot)
		SELECT $1, generate_series(0, $2::integer - 1) ON CONFLICT DO NOTHING`, name, slots)
	if err != nil {
		return fmt.Errorf("cluster: create slots of %s: %w", name, err)
	}
	return nil
}
