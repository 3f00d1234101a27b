package registry

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestListenAcrossRegistries: on Postgres, an outbox event committed
// through one registry wakes Listen on another registry of the same
// database, not before its commit; after Listen's connection is cut
// (pg_terminate_backend) it reports the loss, connects again, wakes its
// caller once listening (what was committed meanwhile is read then), and
// is woken by the next event. On SQLite Listen waits for its context.
func TestListenAcrossRegistries(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		if !be.postgres() {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if err := o.r.Listen(ctx, func() { t.Error("woken on SQLite") }, nil); err != nil {
				t.Fatal(err)
			}
			return
		}
		other, err := Open(t.Context(), o.r.dsnForTest(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		wakes := make(chan struct{}, 100)
		var failures atomic.Int64
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- other.Listen(ctx, func() { wakes <- struct{}{} }, func(error) { failures.Add(1) })
		}()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		waitWake := func(what string) {
			t.Helper()
			select {
			case <-wakes:
			case <-time.After(5 * time.Second):
				t.Fatalf("not woken %s", what)
			}
		}
		waitWake("once listening")
		drain := func() {
			for len(wakes) > 0 {
				<-wakes
			}
		}

		// Not woken before the commit: the notification is sent by it.
		tx, err := o.r.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.r.addOutbox(t.Context(), tx, 0, "", outbox("digest", o.at(0))); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wakes:
			t.Fatal("woken before the event's commit")
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		waitWake("by a committed event")

		// A rolled-back event wakes nobody.
		drain()
		tx, err = o.r.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.r.addOutbox(t.Context(), tx, 0, "", outbox("digest", o.at(0))); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wakes:
			t.Fatal("woken by a rolled-back event")
		case <-time.After(300 * time.Millisecond):
		}

		o.open("r-1", 0, outbox("opened", o.at(0)))
		waitWake("by an alert's opening")

		// Cut the listener's connection.
		drain()
		var cut int
		if err := o.r.db.QueryRowContext(t.Context(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database()`, listenerName).Scan(&cut); err != nil {
			t.Fatal(err)
		}
		if cut != 1 {
			t.Fatalf("%d listening connections cut, want 1", cut)
		}
		waitWake("after listening again")
		if failures.Load() == 0 {
			t.Error("the lost connection was not reported")
		}
		drain()
		o.open("r-2", 0, outbox("opened", o.at(0)))
		waitWake("by an event after the reconnection")
	})
}

// dsnForTest returns the dsn r was opened with, read back from its pool.
func (r *Registry) dsnForTest(t *testing.T) string {
	t.Helper()
	cfg, err := r.connConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ConnString()
}

// TestOutboxIDsInCommitOrder: events written at once through two
// registries on one database are read by a reader that goes on from the
// last id it saw (as the hub does), and it sees every one of them: no id
// commits after a later id was read. Postgres only: SQLite has one
// process and one writer at a time, and a sequence cannot hand out ids
// out of commit order there.
func TestOutboxIDsInCommitOrder(t *testing.T) {
	o := newOutboxRig(t, postgresBackend)
	other, err := Open(t.Context(), o.r.dsnForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	regs := []*Registry{o.r, other}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		r := regs[w%len(regs)]
		wg.Go(func() {
			for i := range each {
				row := AlertRow{Patient: "p-1", Key: fmt.Sprintf("w%d-%d", w, i), State: AlertFiring, Severity: "critical",
					OpenedAt: o.at(0), UpdatedAt: o.at(0), Tier: -1, Body: []byte("{}")}
				if _, err := r.OpenAlert(context.Background(), row, AlertEvent{At: o.at(0), Kind: "opened"},
					outbox("opened", o.at(0))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[int64]int{}
	var last int64
	read := func() {
		evs, err := regs[len(regs)-1].OutboxEvents(t.Context(), last, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			seen[e.ID]++
			last = e.ID
		}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for reading := true; reading; {
		select {
		case <-finished:
			reading = false
		default:
		}
		read()
	}
	read()
	all, err := o.r.OutboxEvents(t.Context(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*each {
		t.Fatalf("%d events stored, want %d", len(all), writers*each)
	}
	var missed int
	for _, e := range all {
		if seen[e.ID] != 1 {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d events not read exactly once by the reader going on from its last id", missed, len(all))
	}
}
