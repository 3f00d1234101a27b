package alerts

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"sync"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/registry"
)

// errFenced is what a write for a patient's alert returns when this
// instance does not own the patient's partition (any more): the work is
// dropped, nothing is written or passed on, and the partition's owner
// does it from what is recorded.
var errFenced = errors.New("alerts: the patient's partition is not this instance's")

// ownership is which patients' alerts this manager runs on its own:
// those of the partitions its membership owns. A nil membership owns
// everything, unfenced (one instance, as before clusters).
type ownership struct {
	ms   cluster.Membership
	poke chan struct{} // capacity 1: OwnershipChanged's pokes coalesce

	mu    sync.Mutex
	owned map[int]int64 // partition → epoch, as last taken in by reown; guarded by mu
}

// SetMembership sets which instance runs which patients' alerts; call it
// before Run. With nil (or a cluster.Single) the manager runs every
// patient's, as a lone instance does. With a clustered membership, what
// the manager does on its own (opening and resolving from transitions,
// their fire-after and resolve-after waits, escalations, reopenings,
// snoozes ending, suppressed alerts let in) it does only for the
// patients of the partitions ms owns, and each of those writes runs
// ms.Check with the partition's epoch first in its transaction. Staff
// actions (Ack, Resolve, Snooze) are no partition's work: any instance
// carries them out, unfenced.
func (m *Manager) SetMembership(ms cluster.Membership) { m.own.ms = ms }

// OwnershipChanged tells the manager that its membership's Owned may have
// changed: Run then forgets the pending work of lost partitions and takes
// up that of gained ones from the registry (pending raises and clears
// from the recorded transitions; escalations, snoozes and suppressed
// alerts from the stored alerts, at once). It never blocks. Run also
// looks at Owned at every tick, so a lease that lapsed without a change
// being announced is let go of within a tick.
func (m *Manager) OwnershipChanged() {
	select {
	case m.own.poke <- struct{}{}:
	default:
	}
}

// partitionOf is the patient's partition, and whether this instance owns
// it, with its epoch. Without a membership every patient is owned.
func (m *Manager) partitionOf(patient string) (partition int, epoch int64, ok bool) {
	if m.own.ms == nil {
		return 0, 0, true
	}
	partition = m.own.ms.PartitionOf(patient)
	m.own.mu.Lock()
	defer m.own.mu.Unlock()
	epoch, ok = m.own.owned[partition]
	return partition, epoch, ok
}

// owns reports whether this instance runs the patient's alerts now.
func (m *Manager) owns(patient string) bool {
	_, _, ok := m.partitionOf(patient)
	return ok
}

// fence is what a write for the patient's alert runs first in its
// transaction: the membership's Check of the patient's partition under
// the epoch this manager took it in with. It returns errFenced when the
// partition is not owned; nil (nothing to run) without a membership.
func (m *Manager) fence(patient string) (registry.Fence, error) {
	partition, epoch, ok := m.partitionOf(patient)
	if !ok {
		return nil, errFenced
	}
	ms := m.own.ms
	if ms == nil {
		return nil, nil
	}
	return func(ctx context.Context, tx *sql.Tx) error {
		return ms.Check(ctx, tx, cluster.SetPartitions, partition, epoch)
	}, nil
}

// fenced takes in the error of a write for the patient's alert: a
// refused fence (cluster.ErrFenced, or the partition not owned when the
// write was about to be made) means another instance owns the patient
// now. The partition's pending work is forgotten, the drop is counted
// and logged, and errFenced returned, so that the caller drops its work
// too. Any other error is returned as it is.
func (m *Manager) fenced(patient string, err error) error {
	if !errors.Is(err, cluster.ErrFenced) && !errors.Is(err, errFenced) {
		return err
	}
	if m.own.ms == nil {
		return err // cannot happen: nothing fences a lone instance
	}
	partition := m.own.ms.PartitionOf(patient)
	m.own.mu.Lock()
	delete(m.own.owned, partition)
	m.own.mu.Unlock()
	m.forget(map[int]bool{partition: true})
	m.fencedWork.Inc()
	m.log.Info("alerts: a change for a partition this instance no longer owns was dropped", "partition", partition)
	return errFenced
}

// takeOwned takes the membership's Owned in as the starting point (Run's
// start, before resume).
func (m *Manager) takeOwned() {
	if m.own.ms == nil {
		return
	}
	owned := m.own.ms.Owned(cluster.SetPartitions)
	m.own.mu.Lock()
	m.own.owned = owned
	m.own.mu.Unlock()
}

// reown compares the membership's Owned with what the manager took in
// last: it forgets the pending work of lost partitions and resumes that
// of gained ones from the registry. A partition held again under a new
// epoch counts as lost and gained (another instance may have acted for it
// in between). A gained partition whose resume failed is left out, so
// that the next tick tries again. Call it on Run's goroutine.
func (m *Manager) reown(ctx context.Context) {
	if m.own.ms == nil {
		return
	}
	now := m.own.ms.Owned(cluster.SetPartitions)
	m.own.mu.Lock()
	before := m.own.owned
	if maps.Equal(before, now) {
		m.own.mu.Unlock()
		return
	}
	lost, gained := map[int]bool{}, map[int]bool{}
	for p, epoch := range before {
		if e, ok := now[p]; !ok || e != epoch {
			lost[p] = true
		}
	}
	for p, epoch := range now {
		if e, ok := before[p]; !ok || e != epoch {
			gained[p] = true
		}
	}
	m.own.owned = now
	m.own.mu.Unlock()
	m.forget(lost)
	if len(gained) == 0 {
		return
	}
	err := m.resumeWhere(ctx, func(patient string) bool { return gained[m.own.ms.PartitionOf(patient)] })
	if err != nil {
		m.own.mu.Lock()
		for p := range gained {
			delete(m.own.owned, p)
		}
		m.own.mu.Unlock()
		m.forget(gained) // what the failed resume took up: all of it is read again
		m.log.Error("alerts: taking up gained partitions failed; will retry", "err", err, "partitions", len(gained))
		return
	}
	m.log.Info("alerts: partitions taken up", "gained", len(gained), "lost", len(lost), "owned", len(now))
}

// forget drops the pending raises and clears, and what is known of the
// holding conditions, of the patients in partitions.
func (m *Manager) forget(partitions map[int]bool) {
	if len(partitions) == 0 || m.own.ms == nil {
		return
	}
	lost := func(k condKey) bool { return partitions[m.own.ms.PartitionOf(k.patient)] }
	maps.DeleteFunc(m.raise, func(k condKey, _ analysis.Transition) bool { return lost(k) })
	maps.DeleteFunc(m.clear, func(k condKey, _ analysis.Transition) bool { return lost(k) })
	maps.DeleteFunc(m.holding, func(k condKey, _ *holding) bool { return lost(k) })
}
