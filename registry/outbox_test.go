package registry

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// outboxRig is a test registry with patient p-1 and a clock of whole
// seconds from t0, on which the outbox tests write alerts.
type outboxRig struct {
	t  *testing.T
	r  *Registry
	t0 time.Time
}

func newOutboxRig(t *testing.T, b backend) *outboxRig {
	t.Helper()
	r, _ := openWithPatient(t, b)
	return &outboxRig{t: t, r: r, t0: time.Now().UTC().Truncate(time.Second).Add(-time.Hour)}
}

// at is t0 plus d.
func (o *outboxRig) at(d time.Duration) time.Time { return o.t0.Add(d) }

// open opens a firing alert of p-1 under key at t0+d with out, and returns
// it as stored.
func (o *outboxRig) open(key string, d time.Duration, out *Outbox) AlertRow {
	o.t.Helper()
	row := AlertRow{Patient: "p-1", Key: key, State: AlertFiring, Severity: "critical", OpenedAt: o.at(d), UpdatedAt: o.at(d),
		Tier: -1, Body: []byte("{}")}
	id, err := o.r.OpenAlert(o.t.Context(), row, AlertEvent{At: row.OpenedAt, Kind: "opened"}, out)
	if err != nil {
		o.t.Fatal(err)
	}
	row.ID = id
	return row
}

// change moves row to state at t0+d with out, and returns it as stored.
func (o *outboxRig) change(row AlertRow, state string, d time.Duration, out *Outbox) AlertRow {
	o.t.Helper()
	prev := row.UpdatedAt
	row.State, row.UpdatedAt = state, o.at(d)
	if state == AlertResolved {
		row.ResolvedAt, row.ResolvedBy = row.UpdatedAt, "alice"
	}
	if err := o.r.UpdateAlert(o.t.Context(), row, prev, AlertEvent{At: row.UpdatedAt, Kind: state}, nil, out); err != nil {
		o.t.Fatal(err)
	}
	return row
}

// deliveries returns the alert's deliveries, oldest first.
func (o *outboxRig) deliveries(alertID int64) []OutboxDelivery {
	o.t.Helper()
	ds, err := o.r.Deliveries(o.t.Context(), DeliveryFilter{AlertID: alertID})
	if err != nil {
		o.t.Fatal(err)
	}
	slices.Reverse(ds)
	return ds
}

// due returns the ids of the deliveries due at t0+d, skipping skip.
func (o *outboxRig) due(d time.Duration, limit int, skip ...string) []string {
	o.t.Helper()
	due, err := o.r.DueDeliveries(o.t.Context(), o.at(d), limit, skip)
	if err != nil {
		o.t.Fatal(err)
	}
	ids := []string{}
	for _, x := range due {
		if x.Event.ID != x.EventID || x.Event.AlertID != x.AlertID {
			o.t.Errorf("due %s comes with event %d of alert %d, want %d of %d", x.ID, x.Event.ID, x.Event.AlertID, x.EventID, x.AlertID)
		}
		ids = append(ids, x.ID)
	}
	return ids
}

// finish records attempt n at delivery id at t0+d, moving it to state.
func (o *outboxRig) finish(id string, n int, d time.Duration, state string, next time.Time) error {
	outcome := map[string]string{DeliveryPending: "retrying", DeliveryDelivered: "delivered", DeliveryFailed: "failed"}[state]
	var alertID int64 // 0 for an unknown delivery
	_ = o.r.db.QueryRowContext(o.t.Context(), o.r.q(`SELECT alert_id FROM outbox_deliveries WHERE id = ?`), id).Scan(&alertID)
	return o.r.FinishAttempt(o.t.Context(), Attempt{Delivery: id, AlertID: alertID, Channel: "pagerduty", Event: "opened", Attempt: n,
		At: o.at(d), Status: 503, Outcome: outcome, Error: "HTTP 503"}, state, next)
}

func outbox(kind string, at time.Time, ds ...OutboxDelivery) *Outbox {
	return &Outbox{Kind: kind, At: at, Body: []byte(`{"change":"` + kind + `"}`), Deliveries: ds}
}

func pd(id, recipient, target string) OutboxDelivery {
	return OutboxDelivery{ID: id, Channel: "pagerduty", Recipient: recipient, Target: target}
}

// TestOutboxWithAlertChange: an alert's opening and change write their
// event and deliveries in the change's transaction: a refused change
// writes none, and an outbox that cannot be written leaves the alert as
// it was.
func TestOutboxWithAlertChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		a := o.open("mrs", 0, outbox("opened", o.at(0),
			OutboxDelivery{Channel: "webhook"}, OutboxDelivery{Channel: "email", Recipient: "alice", Target: "alice@example.org"}))

		evs, err := o.r.OutboxEvents(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 {
			t.Fatalf("%d outbox events after the opening, want 1", len(evs))
		}
		e := evs[0]
		if e.AlertID != a.ID || e.Patient != "p-1" || e.Kind != "opened" || !e.At.Equal(o.at(0)) || string(e.Body) != `{"change":"opened"}` {
			t.Errorf("event = %+v, want alert %d of p-1, opened at %s, its body", e, a.ID, o.at(0))
		}
		ds := o.deliveries(a.ID)
		if len(ds) != 2 {
			t.Fatalf("%d deliveries after the opening, want 2", len(ds))
		}
		for i, want := range []struct{ channel, recipient, target string }{{"webhook", "", ""}, {"email", "alice", "alice@example.org"}} {
			d := ds[i]
			if d.Channel != want.channel || d.Recipient != want.recipient || d.Target != want.target {
				t.Errorf("delivery %d on %s to %q at %q, want %s to %q at %q", i, d.Channel, d.Recipient, d.Target, want.channel, want.recipient, want.target)
			}
			if d.ID == "" || d.EventID != e.ID || d.AlertID != a.ID || d.State != DeliveryPending || d.Attempts != 0 ||
				!d.CreatedAt.Equal(o.at(0)) || !d.NextAt.Equal(o.at(0)) || !d.DoneAt.IsZero() || d.LastError != "" {
				t.Errorf("delivery %d = %+v, want a new pending one of event %d, due at its time", i, d, e.ID)
			}
		}
		if ds[0].ID == ds[1].ID {
			t.Errorf("both deliveries have id %s", ds[0].ID)
		}

		// A conflicting change writes nothing.
		stale := a
		stale.State, stale.UpdatedAt = AlertAcknowledged, o.at(time.Minute)
		err = o.r.UpdateAlert(ctx, stale, o.at(-time.Minute), AlertEvent{At: stale.UpdatedAt, Kind: "acknowledged"}, nil,
			outbox("acknowledged", stale.UpdatedAt, OutboxDelivery{Channel: "webhook"}))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("UpdateAlert with a stale time: %v, want ErrConflict", err)
		}
		// Nor does an opening refused as a duplicate.
		row := AlertRow{Patient: "p-1", Key: "mrs", State: AlertFiring, Severity: "critical", OpenedAt: o.at(time.Minute),
			UpdatedAt: o.at(time.Minute), Tier: -1, Body: []byte("{}")}
		if _, err := o.r.OpenAlert(ctx, row, AlertEvent{At: row.OpenedAt, Kind: "opened"},
			outbox("opened", row.OpenedAt, OutboxDelivery{Channel: "webhook"})); !errors.Is(err, ErrExists) {
			t.Fatalf("OpenAlert of an open key: %v, want ErrExists", err)
		}
		// An outbox that cannot be written (a delivery id taken) undoes the change.
		err = o.r.UpdateAlert(ctx, stale, a.UpdatedAt, AlertEvent{At: stale.UpdatedAt, Kind: "acknowledged"}, nil,
			outbox("acknowledged", stale.UpdatedAt, OutboxDelivery{ID: ds[0].ID, Channel: "webhook"}))
		if err == nil {
			t.Fatal("UpdateAlert with a taken delivery id succeeded")
		}
		if got, err := o.r.AlertByID(ctx, a.ID); err != nil || got.State != AlertFiring {
			t.Errorf("alert after a failed outbox write: %+v, %v; want still firing", got, err)
		}
		if n := count(t, o.r, `SELECT COUNT(*) FROM alert_events WHERE alert_id = ?`, a.ID); n != 1 {
			t.Errorf("%d alert events after refused changes, want 1", n)
		}
		if n := count(t, o.r, `SELECT COUNT(*) FROM outbox_events`); n != 1 {
			t.Errorf("%d outbox events after refused changes, want 1", n)
		}
		if n := count(t, o.r, `SELECT COUNT(*) FROM outbox_deliveries`); n != 2 {
			t.Errorf("%d deliveries after refused changes, want 2", n)
		}

		// A change that goes through writes its own.
		a = o.change(a, AlertAcknowledged, time.Minute, outbox("acknowledged", o.at(time.Minute), OutboxDelivery{Channel: "webhook"}))
		evs, err = o.r.OutboxEvents(ctx, e.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != "acknowledged" || evs[0].AlertID != a.ID {
			t.Fatalf("events after the opening's: %+v, want the acknowledgement", evs)
		}
		ds = o.deliveries(a.ID)
		if len(ds) != 3 || ds[2].EventID != evs[0].ID || ds[2].Channel != "webhook" {
			t.Errorf("deliveries %+v, want the acknowledgement's webhook delivery last", ds)
		}
		// A change without an outbox writes no event.
		o.change(a, AlertResolved, 2*time.Minute, nil)
		if n := count(t, o.r, `SELECT COUNT(*) FROM outbox_events`); n != 2 {
			t.Errorf("%d outbox events after a change without an outbox, want 2", n)
		}
	})
}

// TestOutboxEvents: events come oldest first after the id given, at most
// limit; LastOutboxEvent is the newest id, 0 at first.
func TestOutboxEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		if last, err := o.r.LastOutboxEvent(ctx); err != nil || last != 0 {
			t.Fatalf("LastOutboxEvent of an empty outbox = %d, %v; want 0", last, err)
		}
		a := o.open("a", 0, outbox("opened", o.at(0)))
		o.open("b", time.Second, outbox("opened", o.at(time.Second)))
		o.change(a, AlertAcknowledged, 2*time.Second, outbox("acknowledged", o.at(2*time.Second)))
		if _, err := o.r.AddOutbox(ctx, *outbox("digest", o.at(3*time.Second), OutboxDelivery{ID: "digest-1", Channel: "email"})); err != nil {
			t.Fatal(err)
		}
		all, err := o.r.OutboxEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for i, e := range all {
			kinds = append(kinds, e.Kind)
			if i > 0 && e.ID <= all[i-1].ID {
				t.Errorf("event %d has id %d after %d", i, e.ID, all[i-1].ID)
			}
		}
		if want := []string{"opened", "opened", "acknowledged", "digest"}; !slices.Equal(kinds, want) {
			t.Fatalf("events %v, want %v", kinds, want)
		}
		if all[3].AlertID != 0 || all[3].Patient != "" {
			t.Errorf("the digest's event is of alert %d, patient %q; want none", all[3].AlertID, all[3].Patient)
		}
		if last, err := o.r.LastOutboxEvent(ctx); err != nil || last != all[3].ID {
			t.Errorf("LastOutboxEvent = %d, %v; want %d", last, err, all[3].ID)
		}
		page, err := o.r.OutboxEvents(ctx, all[0].ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || page[0].ID != all[1].ID || page[1].ID != all[2].ID {
			t.Errorf("2 events after %d: %+v, want events %d and %d", all[0].ID, page, all[1].ID, all[2].ID)
		}
		if rest, err := o.r.OutboxEvents(ctx, all[3].ID, 10); err != nil || len(rest) != 0 {
			t.Errorf("events after the last: %+v, %v; want none", rest, err)
		}
	})
}

// TestDueDeliveries: only pending deliveries due by now, soonest first and
// at most limit, leaving out those skipped; a later event's delivery on
// the same channel to the same recipient and target waits while an
// earlier one of its alert is pending (due or not, in flight or not), and
// goes once that one is delivered or failed. Digests do not wait for one
// another.
func TestDueDeliveries(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		a := o.open("a", 0, outbox("opened", o.at(0), pd("a1-alice", "alice", "key-a"), pd("a1-clinic", "", "")))
		o.change(a, AlertAcknowledged, time.Second, outbox("acknowledged", o.at(time.Second),
			pd("a2-alice", "alice", "key-a"), pd("a2-clinic", "", ""),
			pd("a2-bob", "bob", "key-b"), // no earlier one to bob: not waiting
			OutboxDelivery{ID: "a2-mail", Channel: "email", Recipient: "alice", Target: "alice@example.org"})) // another channel
		o.open("b", 2*time.Second, outbox("opened", o.at(2*time.Second), pd("b1-alice", "alice", "key-a"))) // another alert
		o.open("c", 3*time.Second, outbox("opened", o.at(3*time.Second),
			OutboxDelivery{ID: "c1-later", Channel: "webhook", NextAt: o.at(time.Hour)})) // due only later

		if got := o.due(-time.Second, 10); len(got) != 0 {
			t.Errorf("due before any event: %v, want none", got)
		}
		want := []string{"a1-alice", "a1-clinic", "a2-bob", "a2-mail", "b1-alice"}
		if got := o.due(time.Minute, 10); !slices.Equal(got, want) {
			t.Errorf("due = %v, want %v", got, want)
		}
		if got := o.due(time.Minute, 2); !slices.Equal(got, want[:2]) {
			t.Errorf("2 due = %v, want %v", got, want[:2])
		}
		// In flight: skipped, and the acknowledgement still waits behind it.
		if got := o.due(time.Minute, 10, "a1-alice", "a2-mail"); !slices.Equal(got, []string{"a1-clinic", "a2-bob", "b1-alice"}) {
			t.Errorf("due skipping a1-alice and a2-mail = %v, want a1-clinic, a2-bob, b1-alice", got)
		}
		// Retrying later: not due, and the acknowledgement waits still.
		if err := o.finish("a1-alice", 1, time.Minute, DeliveryPending, o.at(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got := o.due(2*time.Minute, 10); slices.Contains(got, "a1-alice") || slices.Contains(got, "a2-alice") {
			t.Errorf("due while a1-alice waits to retry = %v, want neither a1-alice nor a2-alice", got)
		}
		if got := o.due(10*time.Minute, 10); !slices.Contains(got, "a1-alice") || slices.Contains(got, "a2-alice") {
			t.Errorf("due when a1-alice retries = %v, want a1-alice without a2-alice", got)
		}
		// Delivered: the acknowledgement goes.
		if err := o.finish("a1-alice", 2, 10*time.Minute, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := o.due(10*time.Minute, 10); !slices.Contains(got, "a2-alice") || slices.Contains(got, "a2-clinic") {
			t.Errorf("due after a1-alice was delivered = %v, want a2-alice, not a2-clinic", got)
		}
		// Failed: so does the clinic's.
		if err := o.finish("a1-clinic", 1, 10*time.Minute, DeliveryFailed, time.Time{}); err != nil {
			t.Fatal(err)
		}
		// Soonest due first, not oldest event first: a2-bob retries at 3 min.
		if err := o.finish("a2-bob", 1, 2*time.Minute, DeliveryPending, o.at(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		want = []string{"a2-alice", "a2-clinic", "a2-mail", "b1-alice", "a2-bob"}
		if got := o.due(10*time.Minute, 10); !slices.Equal(got, want) {
			t.Errorf("due after a1-clinic failed = %v, want %v", got, want)
		}
		if got := o.due(time.Hour, 10); !slices.Contains(got, "c1-later") {
			t.Errorf("due at its time = %v, want c1-later among them", got)
		}

		// Digests (alert 0) to one address do not wait for one another.
		ctx := t.Context()
		for _, id := range []string{"digest-1", "digest-2"} {
			if _, err := o.r.AddOutbox(ctx, *outbox("digest", o.at(0), OutboxDelivery{ID: id, Channel: "email", Recipient: "alice",
				Target: "alice@example.org"})); err != nil {
				t.Fatal(err)
			}
		}
		if got := o.due(time.Minute, 20); !slices.Contains(got, "digest-1") || !slices.Contains(got, "digest-2") {
			t.Errorf("due = %v, want both digests", got)
		}
	})
}

// TestNextDue: the soonest time DueDeliveries would return a delivery:
// none in flight (skipped) and none waiting behind an earlier one, whose
// own time does not count while it waits.
func TestNextDue(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		next := func(skip ...string) string {
			t.Helper()
			at, ok, err := o.r.NextDue(ctx, skip)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return "none"
			}
			return at.Sub(o.t0).String()
		}
		if got := next(); got != "none" {
			t.Errorf("NextDue of an empty outbox = %s, want none", got)
		}
		a := o.open("a", time.Second, outbox("opened", o.at(time.Second), pd("a1", "alice", "k")))
		o.change(a, AlertAcknowledged, 2*time.Second, outbox("acknowledged", o.at(2*time.Second), pd("a2", "alice", "k")))
		o.open("b", 3*time.Second, outbox("opened", o.at(3*time.Second), OutboxDelivery{ID: "b1", Channel: "webhook", NextAt: o.at(time.Hour)}))
		if got := next(); got != "1s" {
			t.Errorf("NextDue = %s, want 1s (a1)", got)
		}
		// a1 in flight: a2 waits behind it, so b1 is next.
		if got := next("a1"); got != "1h0m0s" {
			t.Errorf("NextDue skipping a1 = %s, want 1h0m0s (b1; a2 waits)", got)
		}
		// a1 retries at 10 min: a2 still waits, whatever its own time.
		if err := o.finish("a1", 1, time.Minute, DeliveryPending, o.at(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != "10m0s" {
			t.Errorf("NextDue while a1 retries = %s, want 10m0s (a1)", got)
		}
		if err := o.finish("a1", 2, 10*time.Minute, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != "2s" {
			t.Errorf("NextDue after a1 = %s, want 2s (a2)", got)
		}
		if got := next("a2", "b1"); got != "none" {
			t.Errorf("NextDue skipping a2 and b1 = %s, want none", got)
		}
	})
}

// TestFinishAttempt: each attempt is recorded and moves its delivery on:
// to its next attempt while pending, then delivered; a delivery already
// finished refuses another attempt with ErrConflict.
func TestFinishAttempt(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		a := o.open("a", 0, outbox("opened", o.at(0), pd("a1", "", "")))
		next := o.at(time.Minute + 30*time.Second)
		if err := o.finish("a1", 1, time.Minute, DeliveryPending, next); err != nil {
			t.Fatal(err)
		}
		d := o.deliveries(a.ID)[0]
		if d.State != DeliveryPending || d.Attempts != 1 || !d.NextAt.Equal(next) || !d.DoneAt.IsZero() || d.LastError != "HTTP 503" {
			t.Errorf("after a failed attempt: %+v, want pending, 1 attempt, next at %s, its error", d, next)
		}
		err := o.r.FinishAttempt(ctx, Attempt{Delivery: "a1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 2,
			At: o.at(2 * time.Minute), Status: 202, Outcome: "delivered"}, DeliveryDelivered, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		d = o.deliveries(a.ID)[0]
		if d.State != DeliveryDelivered || d.Attempts != 2 || !d.DoneAt.Equal(o.at(2*time.Minute)) || d.LastError != "" {
			t.Errorf("after delivery: %+v, want delivered at %s after 2 attempts, no error", d, o.at(2*time.Minute))
		}
		err = o.r.FinishAttempt(ctx, Attempt{Delivery: "a1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 3,
			At: o.at(3 * time.Minute), Outcome: "failed", Error: "late"}, DeliveryFailed, time.Time{})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("a second finish: %v, want ErrConflict", err)
		}
		if err := o.finish("nobody", 1, time.Minute, DeliveryDelivered, time.Time{}); !errors.Is(err, ErrConflict) {
			t.Errorf("finishing an unknown delivery: %v, want ErrConflict", err)
		}
		if d := o.deliveries(a.ID)[0]; d.State != DeliveryDelivered || d.Attempts != 2 {
			t.Errorf("after the refused finish: %+v, want still delivered after 2 attempts", d)
		}

		atts, err := o.r.Attempts(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) != 2 {
			t.Fatalf("%d attempts recorded, want 2 (the refused one not): %+v", len(atts), atts)
		}
		for i, want := range []Attempt{
			{Delivery: "a1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 1, At: o.at(time.Minute), Status: 503,
				Outcome: "retrying", Error: "HTTP 503"},
			{Delivery: "a1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 2, At: o.at(2 * time.Minute), Status: 202,
				Outcome: "delivered"},
		} {
			got := atts[i]
			if !got.At.Equal(want.At) {
				t.Errorf("attempt %d at %s, want %s", i+1, got.At, want.At)
			}
			got.ID, got.At = 0, want.At
			if got != want {
				t.Errorf("attempt %d = %+v, want %+v", i+1, got, want)
			}
		}
	})
}

// TestAttemptsOrder: an alert's attempts come oldest first, each as
// recorded, and none of another alert's.
func TestAttemptsOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		a := o.open("a", 0, outbox("opened", o.at(0), pd("a1", "", ""), OutboxDelivery{ID: "a1-hook", Channel: "webhook"}))
		b := o.open("b", 0, outbox("opened", o.at(0), pd("b1", "", "")))
		rec := func(alert int64, id, channel string, n int, d time.Duration, state, outcome string, next time.Time) {
			t.Helper()
			err := o.r.FinishAttempt(ctx, Attempt{Delivery: id, AlertID: alert, Channel: channel, Event: "opened", Attempt: n,
				At: o.at(d), Status: 500 + n, Outcome: outcome, Error: "try " + id}, state, next)
			if err != nil {
				t.Fatal(err)
			}
		}
		rec(a.ID, "a1", "pagerduty", 1, time.Second, DeliveryPending, "retrying", o.at(3*time.Second))
		rec(a.ID, "a1-hook", "webhook", 1, 2*time.Second, DeliveryFailed, "failed", time.Time{})
		rec(b.ID, "b1", "pagerduty", 1, 2*time.Second, DeliveryDelivered, "delivered", time.Time{})
		rec(a.ID, "a1", "pagerduty", 2, 3*time.Second, DeliveryDelivered, "delivered", time.Time{})
		atts, err := o.r.Attempts(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range atts {
			got = append(got, x.Delivery+" "+x.Channel+" "+x.Outcome+" "+x.At.Sub(o.t0).String()+" "+x.Error)
			if x.AlertID != a.ID || x.Event != "opened" || x.Status != 500+x.Attempt {
				t.Errorf("attempt %+v, want of alert %d, opened, status %d", x, a.ID, 500+x.Attempt)
			}
		}
		want := []string{"a1 pagerduty retrying 1s try a1", "a1-hook webhook failed 2s try a1-hook", "a1 pagerduty delivered 3s try a1"}
		if !slices.Equal(got, want) {
			t.Errorf("attempts = %q, want %q", got, want)
		}
	})
}

// TestDeliveriesAndCounts: Deliveries filters by state, alert and
// channel, newest first, at most Limit; DeliveryCounts counts every state, zero included.
func TestDeliveriesAndCounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		counts, err := o.r.DeliveryCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{DeliveryPending: 0, DeliveryDelivered: 0, DeliveryFailed: 0}; !maps.Equal(counts, want) {
			t.Errorf("counts of an empty outbox = %v, want %v", counts, want)
		}
		a := o.open("a", 0, outbox("opened", o.at(0), pd("a1", "", ""), pd("a2", "alice", "k")))
		a = o.change(a, AlertAcknowledged, time.Second, outbox("acknowledged", o.at(time.Second), pd("a3", "", "")))
		o.change(a, AlertResolved, 4*time.Second, outbox("resolved", o.at(4*time.Second), OutboxDelivery{ID: "a-hook", Channel: "webhook"}))
		b := o.open("b", 2*time.Second, outbox("opened", o.at(2*time.Second), pd("b1", "", "")))
		if err := o.finish("a1", 1, 3*time.Second, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := o.finish("a2", 1, 3*time.Second, DeliveryFailed, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := o.finish("b1", 1, 3*time.Second, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		ids := func(f DeliveryFilter) []string {
			t.Helper()
			ds, err := o.r.Deliveries(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, d := range ds {
				out = append(out, d.ID)
			}
			return out
		}
		for _, tt := range []struct {
			name string
			f    DeliveryFilter
			want []string
		}{
			{"all", DeliveryFilter{}, []string{"a-hook", "b1", "a3", "a1", "a2"}},
			{"delivered", DeliveryFilter{State: DeliveryDelivered}, []string{"b1", "a1"}},
			{"failed", DeliveryFilter{State: DeliveryFailed}, []string{"a2"}},
			{"pending", DeliveryFilter{State: DeliveryPending}, []string{"a-hook", "a3"}},
			{"of a", DeliveryFilter{AlertID: a.ID}, []string{"a-hook", "a3", "a1", "a2"}},
			{"delivered of b", DeliveryFilter{AlertID: b.ID, State: DeliveryDelivered}, []string{"b1"}},
			{"webhook", DeliveryFilter{Channel: "webhook"}, []string{"a-hook"}},
			{"pagerduty of a", DeliveryFilter{AlertID: a.ID, Channel: "pagerduty"}, []string{"a3", "a1", "a2"}},
			{"failed of b", DeliveryFilter{AlertID: b.ID, State: DeliveryFailed}, nil},
			{"limit", DeliveryFilter{Limit: 2}, []string{"a-hook", "b1"}},
		} {
			got := ids(tt.f)
			// a1 and a2 share their event: either order is newest first.
			if len(got) == len(tt.want) && len(got) >= 2 && got[len(got)-2] == "a2" && got[len(got)-1] == "a1" {
				got[len(got)-2], got[len(got)-1] = "a1", "a2"
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			}
		}
		counts, err = o.r.DeliveryCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{DeliveryPending: 2, DeliveryDelivered: 2, DeliveryFailed: 1}; !maps.Equal(counts, want) {
			t.Errorf("counts = %v, want %v", counts, want)
		}
	})
}

// TestAddOutboxOnce: a digest is written once per delivery id; a delivery
// written without an id gets one.
func TestAddOutboxOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		dg := *outbox("digest", o.at(0), OutboxDelivery{ID: "digest-alice-2026-01-02", Channel: "email", Recipient: "alice", Target: "alice@example.org"})
		for i, want := range []bool{true, false} {
			added, err := o.r.AddOutbox(ctx, dg)
			if err != nil || added != want {
				t.Fatalf("AddOutbox #%d = %v, %v; want %v", i+1, added, err, want)
			}
		}
		if n := count(t, o.r, `SELECT COUNT(*) FROM outbox_events`); n != 1 {
			t.Errorf("%d events after writing the digest twice, want 1", n)
		}
		ds, err := o.r.Deliveries(ctx, DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].ID != "digest-alice-2026-01-02" || ds[0].AlertID != 0 || ds[0].Target != "alice@example.org" {
			t.Errorf("deliveries %+v, want the digest's one", ds)
		}
		added, err := o.r.AddOutbox(ctx, *outbox("digest", o.at(0), OutboxDelivery{Channel: "email", Target: "bob@example.org"}))
		if err != nil || !added {
			t.Fatalf("AddOutbox without an id = %v, %v; want added", added, err)
		}
		ds, err = o.r.Deliveries(ctx, DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 2 || ds[0].ID == "" || ds[0].ID == ds[1].ID {
			t.Errorf("deliveries %+v, want a new id for the second", ds)
		}
	})
}

// TestStaffContacts: a contact is stored, replaced and read back; the
// audit entry names its channels, never its addresses; a disabled member's
// contact and members without one are left out; an unknown member has
// none.
func TestStaffContacts(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := WithActor(t.Context(), Actor{Name: "cli:root"})
		for _, name := range []string{"bob", "carol", "dave"} {
			if err := r.AddStaff(ctx, name, RoleOnCall, alicePassword); err != nil {
				t.Fatal(err)
			}
		}
		alice := StaffContact{Username: "alice", Email: "alice@example.org", NtfyURL: "https://ntfy.example/alice-topic",
			PagerDutyKey: "R0UTINGKEYalice00000000000000000", DigestHour: 7}
		for _, c := range []StaffContact{
			alice,
			{Username: "bob", Email: "bob@example.org", DigestHour: -1},
			{Username: "dave", NtfyURL: "https://ntfy.example/dave", DigestHour: -1},
		} {
			if err := r.SetStaffContact(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := r.AuditEntries(t.Context(), AuditFilter{Action: ActionStaffContact})
		if err != nil {
			t.Fatal(err)
		}
		var targets []string
		for _, e := range entries {
			targets = append(targets, e.Target)
			if e.Actor != "cli:root" || e.Outcome != OutcomeOK {
				t.Errorf("audit entry %+v, want by cli:root, ok", e)
			}
			for _, secret := range []string{"@example.org", "ntfy.example", "R0UTINGKEY"} {
				if strings.Contains(e.Target, secret) {
					t.Errorf("audit entry %q names an address (%s)", e.Target, secret)
				}
			}
		}
		want := []string{"dave (ntfy)", "bob (email)", "alice (email, ntfy, pagerduty, digest at 07:00)"}
		if !slices.Equal(targets, want) {
			t.Errorf("audit targets %q, want %q", targets, want)
		}

		if err := r.DisableStaff(ctx, "dave"); err != nil {
			t.Fatal(err)
		}
		all, err := r.StaffContacts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all["bob"].Email != "bob@example.org" || all["bob"].DigestHour != -1 {
			t.Errorf("contacts %+v, want alice's and bob's (dave disabled, carol without)", all)
		}
		got := all["alice"]
		if got.UpdatedAt.IsZero() || time.Since(got.UpdatedAt) > time.Minute {
			t.Errorf("alice's contact updated at %s, want now", got.UpdatedAt)
		}
		got.UpdatedAt = time.Time{}
		if got != alice {
			t.Errorf("alice's contact = %+v, want %+v", got, alice)
		}

		// Replacing one drops what it no longer sets.
		if err := r.SetStaffContact(ctx, StaffContact{Username: "alice", Email: "a2@example.org", DigestHour: -1}); err != nil {
			t.Fatal(err)
		}
		some, err := r.StaffContacts(ctx, "alice", "carol", "dave", "nobody")
		if err != nil {
			t.Fatal(err)
		}
		if len(some) != 1 || some["alice"].Email != "a2@example.org" || some["alice"].NtfyURL != "" || some["alice"].PagerDutyKey != "" ||
			some["alice"].DigestHour != -1 {
			t.Errorf("contacts of alice, carol, dave, nobody = %+v, want alice's new one alone", some)
		}
		if err := r.SetStaffContact(ctx, StaffContact{Username: "nobody", Email: "x@example.org"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a contact for an unknown member: %v, want ErrNotFound", err)
		}
		if err := r.SetStaffContact(ctx, StaffContact{Username: "carol", DigestHour: -1}); err != nil {
			t.Fatal(err)
		}
		if entries, err := r.AuditEntries(ctx, AuditFilter{Action: ActionStaffContact, Limit: 1}); err != nil || entries[0].Target != "carol (none)" {
			t.Errorf("audit of an empty contact: %+v, %v; want carol (none)", entries, err)
		}
	})
}

// TestServerKey: a key is made once, the same for every caller and
// across a reopening of the file; another name gets another key; asking
// with another size is an error.
func TestServerKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, path := openTest(t, be)
		ctx := t.Context()
		k1, err := r.ServerKey(ctx, "page-links", 32)
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != 32 || bytes.Equal(k1, make([]byte, 32)) {
			t.Fatalf("key %x, want 32 random bytes", k1)
		}
		k2, err := r.ServerKey(ctx, "page-links", 32)
		if err != nil || !bytes.Equal(k1, k2) {
			t.Errorf("second ServerKey = %x, %v; want the first, %x", k2, err, k1)
		}
		other, err := r.ServerKey(ctx, "other", 32)
		if err != nil || bytes.Equal(other, k1) {
			t.Errorf("another name's key = %x, %v; want another key", other, err)
		}
		if _, err := r.ServerKey(ctx, "page-links", 16); err == nil {
			t.Error("ServerKey with another size succeeded")
		}
		r2, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		k3, err := r2.ServerKey(ctx, "page-links", 32)
		if err != nil || !bytes.Equal(k1, k3) {
			t.Errorf("ServerKey after reopening = %x, %v; want %x", k3, err, k1)
		}
		if n := count(t, r, `SELECT COUNT(*) FROM server_keys`); n != 2 {
			t.Errorf("%d server keys stored, want 2", n)
		}
	})
}

// TestPurgeHistoryOutbox: purging a resolved alert deletes its outbox
// events, deliveries and attempts, and no other alert's.
func TestPurgeHistoryOutbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		old := -100 * 24 * time.Hour
		a := o.open("old", old, outbox("opened", o.at(old), pd("old-1", "", "")))
		if err := o.r.FinishAttempt(ctx, Attempt{Delivery: "old-1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 1,
			At: o.at(old), Outcome: "delivered"}, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		o.change(a, AlertResolved, old+time.Hour, outbox("resolved", o.at(old+time.Hour), pd("old-2", "", "")))
		kept := o.open("kept", old, outbox("opened", o.at(old), pd("kept-1", "", "")))
		if err := o.r.FinishAttempt(ctx, Attempt{Delivery: "kept-1", AlertID: kept.ID, Channel: "pagerduty", Event: "opened", Attempt: 1,
			At: o.at(old), Outcome: "delivered"}, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		p, err := o.r.PurgeHistory(ctx, o.at(-30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if p.Alerts != 1 {
			t.Fatalf("PurgeHistory = %+v, want 1 alert", p)
		}
		for table, n := range map[string]int{"outbox_events": 1, "outbox_deliveries": 1, "delivery_attempts": 1} {
			if got := count(t, o.r, `SELECT COUNT(*) FROM `+table+` WHERE alert_id = ?`, a.ID); got != 0 {
				t.Errorf("%s keeps %d rows of the purged alert", table, got)
			}
			if got := count(t, o.r, `SELECT COUNT(*) FROM `+table+` WHERE alert_id = ?`, kept.ID); got != n {
				t.Errorf("%s has %d rows of the active alert, want %d", table, got, n)
			}
		}
	})
}
