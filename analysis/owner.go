package analysis

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"time"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/registry"
)

// ownedSet is a snapshot of the partitions the evaluator acts for, each
// with the epoch of its lease (cluster.Membership.Owned). It is never
// changed once stored: a new snapshot replaces it.
type ownedSet struct {
	epochs map[int]int64
}

// SetMembership makes the evaluator act only for the patients of the
// partitions m owns (m.Owned(cluster.SetPartitions)): it holds, judges
// and records transitions only for them, fenced by their leases' epochs,
// and Feed passes on only their samples. It also writes each patient's
// view (registry.PatientView) as it judges them, so that the other
// instances can answer for them. Call it before Run. With nil or a
// *cluster.Single (a lone instance), the evaluator owns every patient,
// fences nothing and writes no views: it behaves as without it.
func (e *Evaluator) SetMembership(m cluster.Membership) {
	if _, single := m.(*cluster.Single); single || m == nil {
		e.members, e.shared = nil, false
		e.owned.Store(nil)
		return
	}
	e.members, e.shared = m, true
	e.owned.Store(&ownedSet{m.Owned(cluster.SetPartitions)})
}

// OwnershipChanged makes Run, on its goroutine, read the partitions owned
// again: it drops the patients of partitions lost and loads (in bulk) and
// judges those of partitions gained. It never blocks: calls coalesce.
// Serve calls it on every receive from the membership's Changes.
func (e *Evaluator) OwnershipChanged() {
	select {
	case e.reowned <- struct{}{}:
	default:
	}
}

// Reload makes Run read the patients of every partition it owns back
// from InfluxDB and judge them, as when it takes them over. Serve calls
// it when the partition feed subscribes again after losing its
// connection: what was published meanwhile never reached it. It never
// blocks.
func (e *Evaluator) Reload() {
	e.reload.Store(true)
	e.OwnershipChanged()
}

// Owns reports whether this evaluator acts for the patient: always,
// without a membership; otherwise when the patient's partition is owned.
// It may be called from any goroutine.
func (e *Evaluator) Owns(patientID string) bool {
	_, _, ok := e.ownerOf(patientID)
	return ok
}

// ownerOf is the patient's partition and its lease's epoch, and whether
// the evaluator acts for the patient (always without a membership).
func (e *Evaluator) ownerOf(patientID string) (int, int64, bool) {
	o := e.owned.Load()
	if o == nil {
		return 0, 0, true
	}
	part := e.members.PartitionOf(patientID)
	epoch, ok := o.epochs[part]
	return part, epoch, ok
}

// fence is the registry.Fence of a write for a patient of partition part
// under epoch; nil without a membership.
func (e *Evaluator) fence(part int, epoch int64) registry.Fence {
	if e.members == nil {
		return nil
	}
	return func(ctx context.Context, tx *sql.Tx) error {
		return e.members.Check(ctx, tx, cluster.SetPartitions, part, epoch)
	}
}

// reown is OwnershipChanged's work, on Run's goroutine. A partition held
// again under another epoch counts as lost and gained: another instance
// may have judged its patients meanwhile, so they are read again. The
// gained partitions' patients are loaded after the new snapshot is
// stored, so that Feed passes their samples on from then: those stored
// meanwhile are read back or fed, twice at worst, which series.add tells
// apart.
func (e *Evaluator) reown(ctx context.Context) {
	if e.members == nil {
		return
	}
	prev := e.owned.Load()
	if prev == nil || e.reload.Swap(false) { // Reload: every partition held counts as gained
		prev = &ownedSet{}
	}
	next := &ownedSet{e.members.Owned(cluster.SetPartitions)}
	e.owned.Store(next)
	lost, gained := map[int]bool{}, map[int]bool{}
	for part, epoch := range prev.epochs {
		if next.epochs[part] != epoch {
			lost[part] = true
		}
	}
	for part, epoch := range next.epochs {
		if prev.epochs[part] != epoch {
			gained[part] = true
		}
	}
	dropped := e.dropPartitions(lost)
	if len(gained) == 0 {
		if len(lost) > 0 {
			e.log.Info("analysis: partitions given up", "partitions", len(lost), "patients", dropped)
		}
		return
	}
	start := time.Now()
	latest, err := e.reg.LatestPlanVersions(ctx)
	if err != nil {
		// pollPlans marks every owned patient not held within 10 s.
		e.log.Warn("analysis: reading the plans of partitions taken over failed; retried at the next plan poll", "err", err)
		return
	}
	var ids []string
	for id := range latest {
		if gained[e.members.PartitionOf(id)] {
			ids = append(ids, id)
		}
	}
	err = e.loadNow(ctx, ids)
	e.flushViews(ctx)
	e.log.Info("analysis: partitions taken over", "gained", len(gained), "lost", len(lost), "patients", len(ids),
		"dropped", dropped, "took", time.Since(start).Round(time.Millisecond))
	if err != nil && ctx.Err() == nil {
		e.log.Warn("analysis: taking over partitions", "err", err)
	}
}

// dropPartitions lets go of the patients of the partitions, their marks
// for rebuilding and their views not yet written, and returns how many
// patients were held.
func (e *Evaluator) dropPartitions(parts map[int]bool) int {
	if len(parts) == 0 {
		return 0
	}
	n := 0
	for id := range e.patients {
		if parts[e.members.PartitionOf(id)] {
			delete(e.patients, id)
			n++
		}
	}
	for id := range e.views {
		if parts[e.members.PartitionOf(id)] {
			delete(e.views, id)
		}
	}
	e.mu.Lock()
	for id := range e.rebuild {
		if parts[e.members.PartitionOf(id)] {
			delete(e.rebuild, id)
		}
	}
	e.mu.Unlock()
	e.patientsG.Set(float64(len(e.patients)))
	return n
}

// fencedOut handles a write refused by the partition's fence: the
// partition was lost (its lease expired or was taken) before the
// membership said so. Its patients are dropped and nothing of theirs is
// recorded or passed on, until a membership change gives it back.
func (e *Evaluator) fencedOut(part int) {
	e.fenced.Inc()
	o := e.owned.Load()
	if o == nil {
		return
	}
	if _, held := o.epochs[part]; held {
		epochs := maps.Clone(o.epochs)
		delete(epochs, part)
		e.owned.Store(&ownedSet{epochs})
	}
	n := e.dropPartitions(map[int]bool{part: true})
	e.log.Info("analysis: a write was fenced: the partition is no longer ours", "partition", part, "patients", n)
}

// isFenced reports whether err is a fence's refusal.
func isFenced(err error) bool { return errors.Is(err, cluster.ErrFenced) }
