package cluster

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// memberRetention is how long a silent member stays in cluster_members, for
// humans looking at what happened.
const memberRetention = time.Hour

// beat is one heartbeat, in one transaction: the member's heartbeat, then
// for each set the renewal of its leases, and either giving back its
// surplus above its fair share or taking free and expired slots up to it.
// Slots leave Owned before the transaction gives them back; slots taken
// enter Owned, and renewed ones get a later deadline, only once it has
// committed: TTL from just before it began, which is no later than the
// database's expiry. A heartbeat that overruns TTL gives up: its leases
// are lost by then anyway.
func (p *Postgres) beat(ctx context.Context) error {
	if p.beforeBeat != nil {
		p.beforeBeat()
	}
	p.expire(time.Now())
	ctx, cancel := context.WithTimeout(ctx, p.cfg.TTL)
	defer cancel()
	deadline := time.Now().Add(p.cfg.TTL)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cluster: heartbeat: %w", err)
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	live, rank, err := p.heartbeat(ctx, tx)
	if err != nil {
		return err
	}
	results := make(map[string]balanced, len(p.sets))
	for _, set := range slices.Sorted(maps.Keys(p.sets)) {
		r, err := p.balance(ctx, tx, set, live, rank)
		if err != nil {
			return err
		}
		results[set] = r
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cluster: heartbeat: commit: %w", err)
	}
	for set, r := range results {
		p.apply(set, r, deadline)
	}
	return nil
}

// heartbeat records that this member is alive, forgets members silent for
// memberRetention, and counts the live ones (this one included) and those
// of them whose id sorts before this one's (its rank).
func (p *Postgres) heartbeat(ctx context.Context, tx pgx.Tx) (live, rank int, err error) {
	_, err = tx.Exec(ctx, `INSERT INTO cluster_members (id, address, started, heartbeat)
		VALUES ($1, $2, now(), now()) ON CONFLICT (id) DO UPDATE SET heartbeat = now()`, p.self, p.cfg.Address)
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: heartbeat: %w", err)
	}
	_, err = tx.Exec(ctx, `DELETE FROM cluster_members
		WHERE heartbeat < now() - make_interval(secs => $1)`, memberRetention.Seconds())
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: forget members: %w", err)
	}
	err = tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE id < $2 COLLATE "C") FROM cluster_members
		WHERE heartbeat > now() - make_interval(secs => $1)`, p.cfg.TTL.Seconds(), p.self).Scan(&live, &rank)
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: count members: %w", err)
	}
	return live, rank, nil
}

// balanced is what one heartbeat made of a set: the leases held once it
// commits (renewed or acquired) and who holds each slot.
type balanced struct {
	held   map[int]lease // without deadlines
	owners []string
}

// balance renews this member's leases of set and moves it towards its fair
// share: slots / live, one more for the first slots % live members by id
// (so that the shares add up to the slots, and every member's is known).
func (p *Postgres) balance(ctx context.Context, tx pgx.Tx, set string, live, rank int) (balanced, error) {
	held, err := p.query(ctx, tx, `UPDATE cluster_leases SET expires = now() + make_interval(secs => $3)
		WHERE set_name = $1 AND holder = $2 AND expires > now()
		RETURNING slot, epoch, acquired`, set, p.self, p.cfg.TTL.Seconds())
	if err != nil {
		return balanced{}, fmt.Errorf("cluster: renew %s: %w", set, err)
	}
	p.keep(set, held)
	slots := p.sets[set]
	share := slots / live
	if rank < slots%live {
		share++
	}
	switch {
	case len(held) > share:
		if err := p.release(ctx, tx, set, held, len(held)-share); err != nil {
			return balanced{}, err
		}
	case len(held) < share:
		got, err := p.query(ctx, tx, `UPDATE cluster_leases l
			SET holder = $2, epoch = l.epoch + 1, expires = now() + make_interval(secs => $4), acquired = now()
			FROM (SELECT slot FROM cluster_leases
				WHERE set_name = $1 AND (holder IS NULL OR expires <= now())
				ORDER BY slot LIMIT $3 FOR UPDATE SKIP LOCKED) free
			WHERE l.set_name = $1 AND l.slot = free.slot
			RETURNING l.slot, l.epoch, l.acquired`, set, p.self, share-len(held), p.cfg.TTL.Seconds())
		if err != nil {
			return balanced{}, fmt.Errorf("cluster: acquire %s: %w", set, err)
		}
		maps.Copy(held, got)
	}
	owners := make([]string, slots)
	rows, err := tx.Query(ctx, `SELECT slot, holder FROM cluster_leases
		WHERE set_name = $1 AND holder IS NOT NULL AND expires > now()`, set)
	if err != nil {
		return balanced{}, fmt.Errorf("cluster: read owners of %s: %w", set, err)
	}
	var slot int
	var holder string
	_, err = pgx.ForEachRow(rows, []any{&slot, &holder}, func() error {
		if slot < len(owners) {
			owners[slot] = holder
		}
		return nil
	})
	if err != nil {
		return balanced{}, fmt.Errorf("cluster: read owners of %s: %w", set, err)
	}
	return balanced{held: held, owners: owners}, nil
}

// release gives back n of held (removing them from it), the most recently
// acquired first: those are the ones whose state (say, a partition's
// patients being loaded after a takeover) is the least worth keeping. They
// leave Owned before the update, and the update waits for writers that
// checked them.
func (p *Postgres) release(ctx context.Context, tx pgx.Tx, set string, held map[int]lease, n int) error {
	order := slices.SortedFunc(maps.Keys(held), func(a, b int) int {
		return cmp.Or(held[b].acquired.Compare(held[a].acquired), cmp.Compare(b, a))
	})
	give := order[:n]
	p.drop(set, give, "rebalanced")
	for _, slot := range give {
		delete(held, slot)
	}
	_, err := tx.Exec(ctx, `UPDATE cluster_leases SET holder = NULL, expires = now()
		WHERE set_name = $1 AND holder = $2 AND slot = ANY($3)`, set, p.self, give)
	if err != nil {
		return fmt.Errorf("cluster: give back %s: %w", set, err)
	}
	return nil
}

// query runs a statement returning (slot, epoch, acquired) rows.
func (p *Postgres) query(ctx context.Context, tx pgx.Tx, sql string, args ...any) (map[int]lease, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	leases := map[int]lease{}
	var slot int
	var l lease
	_, err = pgx.ForEachRow(rows, []any{&slot, &l.epoch, &l.acquired}, func() error {
		leases[slot] = l
		return nil
	})
	return leases, err
}

// expire drops from Owned the slots whose deadline is past at now.
func (p *Postgres) expire(now time.Time) {
	for set := range p.sets {
		p.mu.Lock()
		var lapsed []int
		for slot, l := range p.held[set] {
			if !now.Before(l.deadline) {
				lapsed = append(lapsed, slot)
			}
		}
		p.mu.Unlock()
		p.drop(set, lapsed, "expired")
	}
}

// keep drops from Owned the slots of set that the database no longer
// gives this member under the same epoch.
func (p *Postgres) keep(set string, held map[int]lease) {
	p.mu.Lock()
	var lost []int
	for slot, l := range p.held[set] {
		if h, ok := held[slot]; !ok || h.epoch != l.epoch {
			lost = append(lost, slot)
		}
	}
	p.mu.Unlock()
	p.drop(set, lost, "lost")
}

// heldSlots is the slots of set in the view, whether or not past their
// deadlines.
func (p *Postgres) heldSlots(set string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.held[set]))
}

// drop removes slots of set from the view, logs why and pokes Changes.
func (p *Postgres) drop(set string, slots []int, reason string) {
	if len(slots) == 0 {
		return
	}
	p.mu.Lock()
	for _, slot := range slots {
		delete(p.held[set], slot)
	}
	n := len(p.held[set])
	p.mu.Unlock()
	slices.Sort(slots)
	p.log.Info("slots lost", "set", set, "reason", reason, "count", len(slots), "held", n, "slots", slots)
	p.poke()
}

// apply puts a committed heartbeat's leases of set in the view with
// deadline, logging and announcing those that were not there.
func (p *Postgres) apply(set string, r balanced, deadline time.Time) {
	var gained []int
	p.mu.Lock()
	view := p.held[set]
	if view == nil {
		view = map[int]lease{}
		p.held[set] = view
	}
	for slot, l := range r.held {
		if _, ok := view[slot]; !ok {
			gained = append(gained, slot)
		}
		l.deadline = deadline
		view[slot] = l
	}
	p.owners[set] = r.owners
	n := len(view)
	p.mu.Unlock()
	if len(gained) == 0 {
		return
	}
	slices.Sort(gained)
	epochs := make([]int64, len(gained))
	for i, slot := range gained {
		epochs[i] = r.held[slot].epoch
	}
	p.log.Info("slots gained", "set", set, "count", len(gained), "held", n, "slots", gained, "epochs", epochs)
	p.poke()
}

// poke tells Changes' reader that Owned changed, unless it has yet to
// read an earlier poke.
func (p *Postgres) poke() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}
