package cluster

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is an instance's membership of a clinic's cluster, kept in the
// cluster_* tables of a Postgres database. Join returns one; Run keeps it
// (heartbeats, renewals, rebalancing); Close leaves.
type Postgres struct {
	self string
	cfg  Config
	sets map[string]int
	pool *pgxpool.Pool // the package's own: heartbeats never wait on writers' connections
	log  *slog.Logger

	changes chan struct{} // capacity 1: pokes coalesce

	// beforeBeat, when set (tests only, before Run), runs at the start of
	// each heartbeat of Run: a test pauses the instance by blocking it.
	beforeBeat func()

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	held   map[string]map[int]lease // set → slot → lease; guarded by mu
	owners map[string][]string      // set → slot → holder at the last heartbeat ("" none); guarded by mu
}

// lease is a slot this instance holds.
type lease struct {
	epoch    int64
	acquired time.Time // the database's clock: the order slots are given back in
	// deadline is this process's clock: TTL after the heartbeat that last
	// renewed the lease was sent, which is no later than the database's
	// expiry. Past it, the instance acts as if the lease were lost.
	deadline time.Time
}

var _ Membership = (*Postgres)(nil)

// Join makes this process a member of the cluster in the Postgres database
// of dsn, which must be the registry's (Check runs in its transactions):
// it creates the cluster_* tables when missing, registers the instance and
// runs a first heartbeat, so the first instance of a clinic owns every
// slot when Join returns. Join keeps a pool of two connections of its own.
// Call Run next, and Close after Run has returned.
func Join(ctx context.Context, dsn string, cfg Config, log *slog.Logger) (*Postgres, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// Not wrapped: pgx redacts a password only on a best-effort basis.
		return nil, errors.New("cluster: malformed postgres dsn")
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	self, err := newID()
	if err != nil {
		pool.Close()
		return nil, err
	}
	p := &Postgres{
		self:    self,
		cfg:     cfg,
		sets:    cfg.sets(),
		pool:    pool,
		log:     log.With("component", "cluster", "instance", self),
		changes: make(chan struct{}, 1),
		held:    map[string]map[int]lease{},
		owners:  map[string][]string{},
	}
	if err := prepare(ctx, pool, p.sets); err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO cluster_members (id, address, started, heartbeat)
		VALUES ($1, $2, now(), now())`, self, cfg.Address); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cluster: register: %w", err)
	}
	if err := p.beat(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	p.log.Info("joined", "address", cfg.Address, "partitions", cfg.Partitions, "sessions", cfg.Sessions)
	return p, nil
}

// newID is the host's name and 8 random hex digits: unique to a process,
// so that a restarted instance never mistakes its former leases for its
// own.
func newID() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "instance"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster: instance id: %w", err)
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}

// Self is this instance's id: the host's name and a random suffix.
func (p *Postgres) Self() string { return p.self }

// Partitions is the configured partition count.
func (p *Postgres) Partitions() int { return p.cfg.Partitions }

// PartitionOf is PartitionOf(patientID, p.Partitions()).
func (p *Postgres) PartitionOf(patientID string) int {
	return PartitionOf(patientID, p.cfg.Partitions)
}

// Owned is the slots of set this instance holds and may act for now, with
// their epochs: a lease whose deadline passed is left out even before the
// next heartbeat drops it.
func (p *Postgres) Owned(set string) map[int]int64 {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	owned := make(map[int]int64, len(p.held[set]))
	for slot, l := range p.held[set] {
		if now.Before(l.deadline) {
			owned[slot] = l.epoch
		}
	}
	return owned
}

// OwnerOf is the instance that held slot of set at the last heartbeat
// (this one only while Owned lists the slot).
func (p *Postgres) OwnerOf(set string, slot int) (string, bool) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.held[set][slot]; ok && now.Before(l.deadline) {
		return p.self, true
	}
	owners := p.owners[set]
	if slot < 0 || slot >= len(owners) || owners[slot] == "" || owners[slot] == p.self {
		return "", false
	}
	return owners[slot], true
}

// Changes receives a value after Owned changed.
func (p *Postgres) Changes() <-chan struct{} { return p.changes }

// Check returns nil when this instance holds slot of set under epoch by
// the database's clock at this moment, and ErrFenced otherwise. It runs in
// tx, the writer's transaction in the same database, and locks the lease
// row (FOR SHARE) until tx ends: the slot can be neither taken by another
// instance, nor given back, nor renewed, until then, so keep tx short.
func (p *Postgres) Check(ctx context.Context, tx Tx, set string, slot int, epoch int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM cluster_leases
		WHERE set_name = $1 AND slot = $2 AND holder = $3 AND epoch = $4 AND expires > clock_timestamp()
		FOR SHARE`, set, slot, p.self, epoch).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrFenced
	case err != nil:
		return fmt.Errorf("cluster: check lease: %w", err)
	}
	return nil
}

// Run heartbeats every Interval until ctx ends, then returns nil. A
// failed heartbeat is logged (once until one succeeds again) and retried
// at the next tick; meanwhile leases lapse from Owned by their deadlines.
func (p *Postgres) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := p.beat(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if failures == 0 {
				p.log.Warn("heartbeat failed", "err", err)
			}
			failures++
		case failures > 0:
			p.log.Info("heartbeat recovered", "failed", failures)
			failures = 0
		}
	}
}

// Close leaves the cluster: it drops every slot from Owned, gives every
// lease back (waiting for writers that checked one to finish) and removes
// the instance from the members. Call it after Run has returned; a second
// call returns the first's result.
func (p *Postgres) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		defer p.pool.Close()
		for set := range p.sets {
			p.drop(set, p.heldSlots(set), "closed")
		}
		if _, err := p.pool.Exec(ctx, `UPDATE cluster_leases SET holder = NULL, expires = now()
			WHERE holder = $1`, p.self); err != nil {
			p.closeErr = fmt.Errorf("cluster: give leases back: %w", err)
			return
		}
		if _, err := p.pool.Exec(ctx, `DELETE FROM cluster_members WHERE id = $1`, p.self); err != nil {
			p.closeErr = fmt.Errorf("cluster: leave: %w", err)
			return
		}
		p.log.Info("left")
	})
	return p.closeErr
}
