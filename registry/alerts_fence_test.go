package registry

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestAlertWritesFenced: a fence runs first in the alert write's
// transaction, sees the transaction, and its error refuses the whole
// write: no alert, event or outbox row. A nil fence writes as before.
func TestAlertWritesFenced(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		o := newOutboxRig(t, b)
		ctx := t.Context()
		errLost := errors.New("lease lost")
		refuse := func(ctx context.Context, tx *sql.Tx) error {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
				t.Errorf("the fence's query in the write's transaction: %v", err)
			}
			return errLost
		}
		allow := func(context.Context, *sql.Tx) error { return nil }
		out := func(kind string) *Outbox { return &Outbox{Kind: kind, At: o.at(0), Body: []byte(`{}`)} }
		events := func() int {
			evs, err := o.r.OutboxEvents(ctx, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}

		row := AlertRow{Patient: "p-1", Key: "k", State: AlertFiring, Severity: "critical", OpenedAt: o.at(0), UpdatedAt: o.at(0),
			Tier: -1, Body: []byte("{}")}
		if _, err := o.r.OpenAlertFenced(ctx, refuse, row, AlertEvent{At: row.OpenedAt, Kind: "opened"}, out("opened")); !errors.Is(err, errLost) {
			t.Fatalf("OpenAlertFenced with a refusing fence: %v, want the fence's error", err)
		}
		if rows, err := o.r.Alerts(ctx, AlertFilter{}); err != nil || len(rows) != 0 || events() != 0 {
			t.Fatalf("a refused open wrote %d alerts, %d outbox events (%v)", len(rows), events(), err)
		}
		id, err := o.r.OpenAlertFenced(ctx, allow, row, AlertEvent{At: row.OpenedAt, Kind: "opened"}, out("opened"))
		if err != nil {
			t.Fatal(err)
		}
		row.ID = id

		next := row
		next.Tier, next.UpdatedAt = 0, o.at(time.Minute)
		err = o.r.UpdateAlertFenced(ctx, refuse, next, row.UpdatedAt, AlertEvent{At: next.UpdatedAt, Kind: "escalated"}, nil, out("escalated"))
		if !errors.Is(err, errLost) {
			t.Fatalf("UpdateAlertFenced with a refusing fence: %v, want the fence's error", err)
		}
		stored, err := o.r.AlertByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := o.r.AlertEvents(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Tier != -1 || len(evs) != 1 || events() != 1 {
			t.Fatalf("a refused update wrote: tier %d, %d alert events, %d outbox events", stored.Tier, len(evs), events())
		}
		if err := o.r.UpdateAlertFenced(ctx, nil, next, row.UpdatedAt, AlertEvent{At: next.UpdatedAt, Kind: "escalated"}, nil, out("escalated")); err != nil {
			t.Fatalf("UpdateAlertFenced without a fence: %v", err)
		}
		if stored, err = o.r.AlertByID(ctx, id); err != nil || stored.Tier != 0 || events() != 2 {
			t.Fatalf("an unfenced update: tier %d, %d outbox events (%v)", stored.Tier, events(), err)
		}
	})
}
