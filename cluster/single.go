package cluster

import (
	"context"
	"fmt"
	"os"
)

// Single is the membership of an instance that runs alone (a SQLite
// registry): it owns every slot of every set under epoch 1, forever, and
// its Check refuses nothing.
type Single struct {
	self    string
	sets    map[string]int
	changes chan struct{} // never receives: ownership never changes
}

var _ Membership = (*Single)(nil)

// NewSingle returns the membership of a lone instance with the slot counts
// of cfg (only Partitions and Sessions are read).
func NewSingle(cfg Config) *Single {
	host, err := os.Hostname()
	if err != nil {
		host = "single"
	}
	return &Single{self: host, sets: cfg.sets(), changes: make(chan struct{})}
}

// Self is the host's name.
func (s *Single) Self() string { return s.self }

// Partitions is the configured partition count.
func (s *Single) Partitions() int { return s.sets[SetPartitions] }

// PartitionOf is PartitionOf(patientID, s.Partitions()).
func (s *Single) PartitionOf(patientID string) int {
	return PartitionOf(patientID, s.Partitions())
}

// Owned is every slot of set with epoch 1; empty for an unknown set.
func (s *Single) Owned(set string) map[int]int64 {
	n := s.sets[set]
	owned := make(map[int]int64, n)
	for slot := range n {
		owned[slot] = 1
	}
	return owned
}

// OwnerOf is Self for every slot of a known set.
func (s *Single) OwnerOf(set string, slot int) (string, bool) {
	if slot < 0 || slot >= s.sets[set] {
		return "", false
	}
	return s.self, true
}

// Changes never receives.
func (s *Single) Changes() <-chan struct{} { return s.changes }

// Check refuses only a slot outside the set, which is a caller's bug:
// nothing else can fence a lone instance.
func (s *Single) Check(_ context.Context, _ Tx, set string, slot int, _ int64) error {
	if slot < 0 || slot >= s.sets[set] {
		return fmt.Errorf("cluster: no slot %d in set %q", slot, set)
	}
	return nil
}

// Run waits for ctx to end.
func (s *Single) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close does nothing.
func (s *Single) Close(context.Context) error { return nil }
