package registry

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func count(t *testing.T, r *Registry, query string, args ...any) int {
	t.Helper()
	var n int
	if err := r.db.QueryRowContext(t.Context(), r.q(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestPurgeSessions: ended, idle and too old sessions are deleted; one in
// use stays and still works.
func TestPurgeSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		if err := r.AddStaff(ctx, "alice", RoleClinician, alicePassword); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		live, _, err := r.CreateSession(ctx, "alice", now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.TouchSession(ctx, live, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		ended, _, _ := r.CreateSession(ctx, "alice", now.Add(-time.Minute))
		if err := r.EndSession(ctx, ended, now); err != nil {
			t.Fatal(err)
		}
		idle, _, _ := r.CreateSession(ctx, "alice", now.Add(-2*time.Hour))
		old, _, _ := r.CreateSession(ctx, "alice", now.Add(-13*time.Hour))
		if err := r.TouchSession(ctx, old, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		audit := count(t, r, `SELECT COUNT(*) FROM audit`)

		n, err := r.PurgeSessions(ctx, now.Add(-30*time.Minute), now.Add(-12*time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("PurgeSessions = %d, %v; want 3 (ended, idle, too old)", n, err)
		}
		if got := count(t, r, `SELECT COUNT(*) FROM sessions`); got != 1 {
			t.Errorf("%d sessions left, want 1", got)
		}
		if _, _, err := r.SessionByID(ctx, live); err != nil {
			t.Errorf("the session in use: %v", err)
		}
		for _, id := range []string{ended, idle, old} {
			if _, _, err := r.SessionByID(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("a purged session: %v, want ErrNotFound", err)
			}
		}
		if got := count(t, r, `SELECT COUNT(*) FROM audit`); got != audit {
			t.Errorf("audit log has %d entries after the purge, want %d", got, audit)
		}
	})
}

// TestPurgeHistory: transitions, resolved alerts and settled digests
// older than the retention go, with their events and deliveries; active
// alerts, pending digests, each rule's latest transitions and the audit
// log stay.
func TestPurgeHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "p-1"}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		old, recent := now.AddDate(0, 0, -100), now.AddDate(0, 0, -10)
		err := r.RecordTransitions(ctx, "p-1", []Transition{
			{Rule: "sleep", Change: "raise", At: old.Add(-time.Hour), Body: []byte("{}")},
			{Rule: "sleep", Change: "clear", At: old.Add(-time.Minute), Body: []byte("{}")},
			{Rule: "sleep", Change: "raise", At: old, Body: []byte("{}")},                // sleep's latest raise: kept
			{Rule: "mood", Change: "raise", At: old.Add(-time.Hour), Body: []byte("{}")}, // mood's latest raise: kept
			{Rule: "sleep", Change: "clear", At: recent, Body: []byte("{}")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		alert := func(key, state string, opened, resolved time.Time) int64 {
			t.Helper()
			row := AlertRow{Patient: "p-1", Key: key, State: AlertFiring, Severity: "warning", OpenedAt: opened, UpdatedAt: opened, Tier: -1, Body: []byte("{}")}
			id, err := r.OpenAlert(ctx, row, AlertEvent{At: opened, Kind: "opened"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if state == AlertFiring {
				return id
			}
			prev := row.UpdatedAt
			row.ID, row.State, row.UpdatedAt = id, state, opened.Add(time.Minute)
			kind := "acknowledged"
			if state == AlertResolved {
				row.ResolvedAt, row.ResolvedBy, row.UpdatedAt, kind = resolved, "alice", resolved, "resolved"
			} else {
				row.AckedAt, row.AckedBy = row.UpdatedAt, "alice"
			}
			if err := r.UpdateAlert(ctx, row, prev, AlertEvent{At: row.UpdatedAt, Kind: kind}, nil, nil); err != nil {
				t.Fatal(err)
			}
			return id
		}
		oldResolved := alert("a", AlertResolved, old.Add(-time.Hour), old)
		recentResolved := alert("b", AlertResolved, old, recent)
		oldFiring := alert("c", AlertFiring, old, time.Time{})
		oldAcked := alert("d", AlertAcknowledged, old, time.Time{})
		// Digests: an old delivered one goes, an old pending one and a
		// recent one stay.
		digest := func(id string, at time.Time, state string) {
			t.Helper()
			if _, err := r.AddOutbox(ctx, Outbox{Kind: "digest", At: at, Body: []byte("{}"),
				Deliveries: []OutboxDelivery{{ID: id, Channel: "email", Recipient: "alice", Target: "alice@example.org"}}}); err != nil {
				t.Fatal(err)
			}
			if state != DeliveryPending {
				if err := r.FinishAttempt(ctx, Attempt{Delivery: id, Channel: "email", Event: "digest", Attempt: 1, At: at, Outcome: state}, state, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		digest("digest-old", old, DeliveryDelivered)
		digest("digest-old-pending", old, DeliveryPending)
		digest("digest-recent", recent, DeliveryDelivered)
		audit := count(t, r, `SELECT COUNT(*) FROM audit`)

		p, err := r.PurgeHistory(ctx, now.AddDate(0, 0, -30))
		if err != nil {
			t.Fatal(err)
		}
		if p != (Purged{Transitions: 2, Alerts: 1, AlertEvents: 2, Digests: 1}) {
			t.Errorf("PurgeHistory = %+v, want 2 transitions, 1 alert with its 2 events, 1 digest", p)
		}
		ds, err := r.Deliveries(ctx, DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, d := range ds {
			left = append(left, d.ID)
		}
		slices.Sort(left)
		if want := []string{"digest-old-pending", "digest-recent"}; !slices.Equal(left, want) {
			t.Errorf("deliveries left %v, want %v", left, want)
		}
		if n := count(t, r, `SELECT COUNT(*) FROM delivery_attempts WHERE delivery = 'digest-old'`); n != 0 {
			t.Errorf("the purged digest keeps %d attempts", n)
		}
		ts, err := r.Transitions(ctx, "p-1", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, tr := range ts {
			kept = append(kept, tr.Rule+" "+tr.Change)
		}
		if want := []string{"sleep raise", "mood raise", "sleep clear"}; !slices.Equal(kept, want) {
			t.Errorf("transitions left %v, want %v", kept, want)
		}
		if _, err := r.AlertByID(ctx, oldResolved); !errors.Is(err, ErrNotFound) {
			t.Errorf("old resolved alert: %v, want ErrNotFound", err)
		}
		if n := count(t, r, `SELECT COUNT(*) FROM alert_events WHERE alert_id = ?`, oldResolved); n != 0 {
			t.Errorf("old resolved alert keeps %d events", n)
		}
		for _, id := range []int64{recentResolved, oldFiring, oldAcked} {
			if _, err := r.AlertByID(ctx, id); err != nil {
				t.Errorf("alert %d: %v, want kept", id, err)
			}
			if n := count(t, r, `SELECT COUNT(*) FROM alert_events WHERE alert_id = ?`, id); n == 0 {
				t.Errorf("alert %d lost its events", id)
			}
		}
		if got := count(t, r, `SELECT COUNT(*) FROM audit`); got != audit || audit == 0 {
			t.Errorf("audit log has %d entries after the purge, want %d", got, audit)
		}
		if _, err := r.db.ExecContext(ctx, `DELETE FROM audit`); err == nil {
			t.Error("deleting the audit log succeeded, want its trigger to refuse")
		}
	})
}
