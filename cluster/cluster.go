// Package cluster says which instance of serve acts for what: membership,
// leases and partition ownership across several instances, kept in
// Postgres (Postgres, from Join), and the trivial "own everything"
// answer for a single instance on SQLite (Single). It sits beside the
// data's path: it imports nothing of patientpulse, and serve hands what it
// learns to the stages.
//
// # Slot sets and leases
//
// Work is cut into named sets of numbered slots, each held by at most one
// instance under a time-limited lease. Two sets exist:
//
//   - SetPartitions: patients are hashed into Config.Partitions partitions
//     (PartitionOf, FNV-1a 32 of the patient id). A partition's holder
//     alone evaluates its patients, records their transitions and runs
//     their alerts' lifecycle and escalation.
//   - SetSessions: Config.Sessions MQTT session client ids. The broker
//     keeps a dead instance's persistent session; the instance that takes
//     its slot connects with that client id and drains what was queued.
//
// Every instance heartbeats (Config.Interval) and renews its leases for
// Config.TTL, all by the database's clock. Each time a slot is acquired,
// free or expired, its epoch goes up by one. An instance's fair share of
// a set is slots / live instances, one more for the first slots % live
// instances by id, so that the shares add up to the slots and every
// instance ends with its share; above it, an instance gives back
// its most recently acquired slots (a joining instance gets them on its
// next heartbeat); below it, it takes free or expired ones. A dead
// instance's slots are thus taken within about TTL + Interval.
//
// # Fencing
//
// An instance acts for a slot only while Owned lists it, and a write on
// behalf of a slot carries the epoch Owned gave: Check, run inside the
// writer's own transaction, refuses with ErrFenced when the lease is lost,
// expired or has a newer epoch, and otherwise locks the lease row until
// that transaction ends, so that no other instance can take the slot in
// between: every write of an epoch is committed before the next epoch
// begins, or refused. An instance's view drops a slot as soon as its own
// clock says the lease may have lapsed (TTL after it sent the last
// successful renewal), before anything else: a paused instance (SIGSTOP
// past its leases) acts on nothing when it resumes, and its writes fail
// Check meanwhile.
//
// # How serve uses it
//
// Serve builds a Single for a SQLite registry, or calls Join with the
// registry's Postgres dsn (Check must run in the same database), then runs
// Run in its group of goroutines and calls Close after Run has returned on
// a graceful stop. On every receive from Changes it reads Owned:
//
//   - for SetPartitions, it starts evaluating the patients of newly owned
//     partitions (loading them in bulk), stops evaluating those no longer
//     listed, and subscribes to the hand-off topics of exactly the owned
//     partitions; registry writes for a patient (transitions, alert
//     lifecycle, escalations) pass the patient's (partition, epoch) to
//     Check in their transaction and drop their work on ErrFenced;
//   - for SetSessions, it connects one MQTT client per owned slot with the
//     slot's client id, and disconnects those no longer owned: reconnects
//     are thus lease-gated.
//
// OwnerOf tells where a slot's holder was at the last heartbeat, for
// humans and for routing that cannot go through the broker.
package cluster

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"
	"time"
)

// The slot sets an instance joins.
const (
	SetPartitions = "partitions"
	SetSessions   = "sessions"
)

// ErrFenced is what Check returns when the caller no longer holds the
// slot under that epoch: its lease was released, expired or taken, and
// the write must not happen.
var ErrFenced = errors.New("cluster: lease lost (fenced)")

// ErrSetSize is what Join returns when a set already has another number of
// slots in the database than configured: every instance of a clinic must
// use the same counts, or two of them would own one patient.
var ErrSetSize = errors.New("cluster: slot count differs from the clinic's")

// Membership is what serve asks of the cluster, answered by Single and
// Postgres alike.
type Membership interface {
	// Self is this instance's id, unique to this process.
	Self() string
	// Partitions is the number of partitions of the clinic.
	Partitions() int
	// PartitionOf is the partition of a patient: PartitionOf(id, Partitions()).
	PartitionOf(patientID string) int
	// Owned is a snapshot of the slots of set this instance holds, each
	// with its lease's epoch.
	Owned(set string) map[int]int64
	// OwnerOf is the instance that held slot of set at the last heartbeat.
	OwnerOf(set string, slot int) (instance string, ok bool)
	// Changes receives a value (coalesced, never closed) after Owned
	// changed for any set.
	Changes() <-chan struct{}
	// Check fences a write for slot of set under epoch: it runs in the
	// writer's transaction and returns ErrFenced when the lease is gone.
	Check(ctx context.Context, tx Tx, set string, slot int, epoch int64) error
	// Run heartbeats until ctx ends; it returns nil then.
	Run(ctx context.Context) error
	// Close gives back every lease at once (a graceful leave), after Run
	// has returned.
	Close(ctx context.Context) error
}

// Tx is the writer's transaction Check runs in: a *sql.Tx of the registry
// (database/sql with the pgx driver) satisfies it.
type Tx interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// PartitionOf is the partition of the patient with id among n: FNV-1a 32
// of the id's bytes, modulo n. It never changes for a given (id, n), since
// every instance, and every version, must agree on it.
func PartitionOf(id string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(id)) // a hash.Hash never returns an error
	return int(h.Sum32() % uint32(n))
}

// Config sets up the slot sets and the leases.
type Config struct {
	// Address is how humans reach this instance (say, host:port); shown
	// beside its id in the members table and in logs.
	Address string
	// Partitions and Sessions are the slot counts of SetPartitions and
	// SetSessions; every instance of a clinic must use the same.
	Partitions int
	Sessions   int
	// Interval is how often an instance heartbeats and renews its leases;
	// TTL is how long a lease lasts unrenewed, and how long an instance
	// counts as live after its last heartbeat.
	Interval time.Duration
	TTL      time.Duration
}

// DefaultConfig is the usual setup: 64 partitions, 8 sessions, a
// heartbeat a second and leases of 5 s.
func DefaultConfig() Config {
	return Config{Partitions: 64, Sessions: 8, Interval: time.Second, TTL: 5 * time.Second}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Partitions < 1 {
		errs = append(errs, errors.New("cluster partitions must be at least 1"))
	}
	if c.Sessions < 1 {
		errs = append(errs, errors.New("cluster sessions must be at least 1"))
	}
	if c.Interval < time.Millisecond {
		errs = append(errs, errors.New("cluster heartbeat interval must be at least 1ms"))
	}
	// Fewer than two heartbeats a lease, and one slow heartbeat loses
	// every lease.
	if c.TTL <= 0 || c.TTL < 2*c.Interval {
		errs = append(errs, errors.New("cluster lease ttl must be at least twice the heartbeat interval"))
	}
	return errors.Join(errs...)
}

// sets is the slot count of each set of c.
func (c Config) sets() map[string]int {
	return map[string]int{SetPartitions: c.Partitions, SetSessions: c.Sessions}
}
