// Package clustertest gives the unit tests of the stages that act for
// owned partitions (analysis, alerts) one hand-written cluster.Membership:
// the test says which partitions this instance owns under which epochs,
// and which leases are lost before Owned says so, and counts the fences
// run. Integration tests use cluster.Join on a real Postgres instead.
//
// Only _test.go files import this package: the clinic's binary carries no
// test code (go list -deps ./cmd/patientpulse does not list it).
package clustertest

import (
	"context"
	"maps"
	"sync"

	"github.com/patientpulse/patientpulse/cluster"
)

// Fake is a membership of n partitions (SetPartitions) whose owned set the
// test changes with Set. It holds no other set's slots. Its Check refuses,
// as cluster.Postgres's does with cluster.ErrFenced, a write for a
// partition not owned, under another epoch than the owned one, or whose
// lease the test refused with Refuse.
type Fake struct {
	n       int
	changes chan struct{} // buffered 1: a pending change coalesces the next

	mu      sync.Mutex
	owned   map[int]int64 // guarded by mu
	refused map[int]bool  // guarded by mu
	checks  int           // guarded by mu
}

var _ cluster.Membership = (*Fake)(nil)

// NewFake returns a membership of n partitions that owns those of owned,
// each under its epoch (nil: none). The map is copied.
func NewFake(n int, owned map[int]int64) *Fake {
	return &Fake{n: n, changes: make(chan struct{}, 1), owned: cloneOwned(owned), refused: map[int]bool{}}
}

// Set replaces the owned partitions and their epochs (copied), forgets
// every refusal (a new view comes with its own leases) and signals
// Changes, as a heartbeat that moved ownership would.
func (f *Fake) Set(owned map[int]int64) {
	f.mu.Lock()
	f.owned, f.refused = cloneOwned(owned), map[int]bool{}
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default: // one pending change says it already
	}
}

// Refuse makes Check refuse the partitions until the next Set, while Owned
// still lists them: a lease lost before this instance's view says so. It
// does not signal Changes.
func (f *Fake) Refuse(parts ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range parts {
		f.refused[p] = true
	}
}

// Checks is how many times Check has run, refused or not.
func (f *Fake) Checks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks
}

// Self is "fake".
func (f *Fake) Self() string { return "fake" }

// Partitions is n.
func (f *Fake) Partitions() int { return f.n }

// PartitionOf is cluster.PartitionOf(patientID, n).
func (f *Fake) PartitionOf(patientID string) int { return cluster.PartitionOf(patientID, f.n) }

// Owned is a copy of the owned partitions for SetPartitions, and empty for
// any other set.
func (f *Fake) Owned(set string) map[int]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if set != cluster.SetPartitions {
		return map[int]int64{}
	}
	return maps.Clone(f.owned)
}

// OwnerOf is Self for an owned partition; no other holder is known.
func (f *Fake) OwnerOf(set string, slot int) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.owned[slot]; set != cluster.SetPartitions || !ok {
		return "", false
	}
	return f.Self(), true
}

// Changes receives after Set (coalesced, never closed).
func (f *Fake) Changes() <-chan struct{} { return f.changes }

// Check counts itself and returns cluster.ErrFenced unless slot is an owned
// partition under epoch and not refused. It reads nothing of tx.
func (f *Fake) Check(_ context.Context, _ cluster.Tx, set string, slot int, epoch int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if e, ok := f.owned[slot]; set != cluster.SetPartitions || !ok || e != epoch || f.refused[slot] {
		return cluster.ErrFenced
	}
	return nil
}

// Run waits for ctx to end.
func (f *Fake) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close does nothing.
func (f *Fake) Close(context.Context) error { return nil }

// cloneOwned copies owned, an empty map for nil.
func cloneOwned(owned map[int]int64) map[int]int64 {
	if owned == nil {
		return map[int]int64{}
	}
	return maps.Clone(owned)
}
