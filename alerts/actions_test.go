package alerts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

func TestManagerStaffActions(t *testing.T) {
	long := strings.Repeat("n", 1001)
	mtRunCases(t, []mtCase{
		{
			name:     "ack",
			steps:    []mtStep{mtFire(0, "r1", mtCrit, 150), mtAck(mtMin, "r1", "alice", "on my way", "")},
			alerts:   []string{"p1 r1 acknowledged critical acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice: on my way"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s"},
			check: func(t *testing.T, r *mtRig) {
				a := r.alert(r.alertID(mtP1, "r1"))
				if a.AckedAt == nil || !a.AckedAt.Equal(mtT0.Add(mtMin)) {
					t.Errorf("acked at %v, want t0+1m", a.AckedAt)
				}
				if ev := r.rec.all()[1]; ev.Actor != "alice" || ev.Note != "on my way" || ev.Alert.AckedBy != "alice" {
					t.Errorf("notified %+v", ev)
				}
			},
		},
		{
			name:     "ack twice",
			steps:    []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""), mtAck(2*mtMin, "r1", "bob", "", "acked")},
			alerts:   []string{"p1 r1 acknowledged warning acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s"},
		},
		{
			name: "resolve by a user, then every action is refused",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtResolve(mtMin, "r1", "bob", "seen in clinic", ""),
				mtAck(2*mtMin, "r1", "alice", "", "not-active"), mtResolve(2*mtMin, "r1", "alice", "", "not-active"),
				mtSnooze(2*mtMin, "r1", "alice", time.Hour, "not-active")},
			alerts:   []string{"p1 r1 resolved warning resolved=bob"},
			events:   [][]string{{"opened", "resolved by bob: seen in clinic"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s"},
		},
		{
			name: "a resolved-by-patientpulse alert refuses actions",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtClear(mtMin, "r1"),
				mtAck(2*mtMin, "r1", "alice", "", "not-active"), mtResolve(2*mtMin, "r1", "alice", "", "not-active"),
				mtSnooze(2*mtMin, "r1", "alice", time.Hour, "not-active")},
			alerts:   []string{"p1 r1 resolved warning resolved=patientpulse"},
			events:   [][]string{{"opened", "resolved: the condition cleared"}},
			notified: []string{"opened p1 r1 @0s", "resolved p1 r1 @1m0s"},
		},
		{
			name: "snooze must end in the next 30 days",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120),
				mtSnooze(mtMin, "r1", "alice", 0, "bad"),
				mtSnooze(mtMin, "r1", "alice", mtMin, "bad"),
				mtSnooze(mtMin, "r1", "alice", mtMin+30*24*time.Hour+time.Second, "bad"),
				mtSnooze(mtMin, "r1", "alice", mtMin+30*24*time.Hour, "")},
			alerts:   []string{"p1 r1 firing warning snoozed-until=+720h1m0s"},
			events:   [][]string{{"opened", "snoozed by alice"}},
			notified: []string{"opened p1 r1 @0s", "snoozed p1 r1 @1m0s snoozed-until=+720h1m0s"},
		},
		{
			name: "a snooze ends at the tick at its end",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtSnooze(mtMin, "r1", "alice", 11*mtMin, ""),
				mtTick(11*mtMin - time.Second), mtTick(11 * mtMin), mtTick(12 * mtMin)},
			alerts:   []string{"p1 r1 firing warning"},
			events:   [][]string{{"opened", "snoozed by alice", "updated: the snooze ended"}},
			notified: []string{"opened p1 r1 @0s", "snoozed p1 r1 @1m0s snoozed-until=+11m0s", "updated p1 r1 @11m0s"},
		},
		{
			name: "an acknowledged alert can be snoozed and resolved",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120), mtAck(mtMin, "r1", "alice", "", ""), mtSnooze(2*mtMin, "r1", "alice", time.Hour, ""),
				mtResolve(3*mtMin, "r1", "bob", "", "")},
			alerts:   []string{"p1 r1 resolved warning acked=alice resolved=bob snoozed-until=+1h0m0s"},
			events:   [][]string{{"opened", "acknowledged by alice", "snoozed by alice", "resolved by bob"}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @1m0s", "snoozed p1 r1 @2m0s snoozed-until=+1h0m0s", "resolved p1 r1 @3m0s snoozed-until=+1h0m0s"},
		},
		{
			name: "a note of more than 1000 bytes is refused",
			steps: []mtStep{mtFire(0, "r1", mtWarn, 120),
				mtAck(mtMin, "r1", "alice", long, "bad"), mtResolve(mtMin, "r1", "alice", long, "bad"),
				{at: mtMin, act: &mtAct{verb: "snooze", patient: mtP1, key: "r1", actor: "alice", note: long, until: time.Hour, wantErr: "bad"}},
				mtAck(2*mtMin, "r1", "alice", long[:1000], "")},
			alerts:   []string{"p1 r1 acknowledged warning acked=alice"},
			events:   [][]string{{"opened", "acknowledged by alice: " + long[:1000]}},
			notified: []string{"opened p1 r1 @0s", "acknowledged p1 r1 @2m0s"},
		},
	})
}

// TestManagerAckAudit: an acknowledgement is audited with the alert, the
// patient and the context's actor, in the transaction of the change.
func TestManagerAckAudit(t *testing.T) {
	r := mtNewRig(t, mtBaseConfig())
	r.run([]mtStep{mtFire(0, "r1", mtCrit, 150)})
	id := r.alertID(mtP1, "r1")
	r.clk.set(mtT0.Add(mtMin))
	actx := registry.WithActor(r.ctx, registry.Actor{Name: "alice"})
	a, err := r.m.Ack(actx, id, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.State != registry.AlertAcknowledged || a.AckedBy != "alice" {
		t.Errorf("Ack returned %+v", a)
	}
	if _, err := r.m.Ack(actx, id, "bob", ""); !errors.Is(err, ErrAcked) || !strings.Contains(err.Error(), "alice") {
		t.Errorf("second Ack: %v, want ErrAcked naming alice", err)
	}
	entries, err := r.reg.AuditEntries(r.ctx, registry.AuditFilter{Action: "alert."})
	if err != nil {
		t.Fatal(err)
	}
	want := registry.AuditEntry{Actor: "alice", Action: registry.ActionAlertAck, Patient: mtP1, Target: fmt.Sprintf("alert %d", id), Outcome: registry.OutcomeOK}
	if len(entries) != 1 {
		t.Fatalf("audit entries %+v, want one alert.ack", entries)
	}
	got := entries[0]
	got.ID, got.At = 0, time.Time{}
	if got != want {
		t.Errorf("audit entry %+v, want %+v", got, want)
	}
	// A refused action leaves no entry; a resolution and a snooze do.
	r.clk.set(mtT0.Add(2 * mtMin))
	if _, err := r.m.Snooze(actx, id, "alice", "", mtT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Resolve(actx, id, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Resolve(actx, id, "alice", ""); !errors.Is(err, ErrNotActive) {
		t.Errorf("Resolve of a resolved alert: %v", err)
	}
	entries, err = r.reg.AuditEntries(r.ctx, registry.AuditFilter{Action: "alert."})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range slices.Backward(entries) {
		actions = append(actions, e.Action)
	}
	mtSame(t, "audited actions", actions, []string{registry.ActionAlertAck, registry.ActionAlertSnooze, registry.ActionAlertResolve})
	if _, err := r.m.Ack(actx, 9999, "alice", ""); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Ack of an unknown alert: %v, want ErrNotFound", err)
	}
}

// TestManagerConcurrentAck: of two acknowledgements of one alert, exactly
// one wins, both within one manager and across two (two processes).
func TestManagerConcurrentAck(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two managers %v", two), func(t *testing.T) {
			r := mtNewRig(t, mtBaseConfig())
			other := r.m
			if two {
				other = r.newManager()
			}
			for i := range 10 {
				rule := fmt.Sprintf("r%d", i)
				r.run([]mtStep{mtFire(time.Duration(i)*mtMin, rule, mtCrit, 150)})
				id := r.alertID(mtP1, rule)
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for j, m := range []*Manager{r.m, other} {
					wg.Go(func() {
						_, errs[j] = m.Ack(r.ctx, id, fmt.Sprintf("staff%d", j), "")
					})
				}
				wg.Wait()
				var ok, lost int
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case errors.Is(err, ErrAcked) || errors.Is(err, registry.ErrConflict):
						lost++
					default:
						t.Errorf("alert %d: Ack: %v", id, err)
					}
				}
				if ok != 1 || lost != 1 {
					t.Errorf("alert %d: %d acks succeeded, %d lost (%v), want one each", id, ok, lost, errs)
				}
				_, evs, err := r.m.Get(r.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, ev := range evs {
					kinds = append(kinds, ev.Kind)
				}
				mtSame(t, "events", kinds, []string{"opened", "acknowledged"})
			}
		})
	}
}

// TestManagerAssign: a staff member takes an active alert on, another
// takes it from them, the second gives it up; each is an assigned event
// and an alert.assign audit entry. Taking on one's own alert, giving up
// one nobody has and anything on a resolved alert are refused, and kept
// alerts keep their assignee through an update of the condition.
func TestManagerAssign(t *testing.T) {
	r := mtNewRig(t, mtBaseConfig())
	r.run([]mtStep{mtFire(0, "r1", mtCrit, 150)})
	id := r.alertID(mtP1, "r1")
	r.clk.set(mtT0.Add(mtMin))
	as := func(name string) context.Context { return registry.WithActor(r.ctx, registry.Actor{Name: name}) }
	a, err := r.m.Assign(as("alice"), id, "alice", "I'll call her", true)
	if err != nil || a.Assignee != "alice" || a.State != registry.AlertFiring {
		t.Fatalf("alice takes it on: %+v, %v", a, err)
	}
	if _, err := r.m.Assign(as("alice"), id, "alice", "", true); !IsBadRequest(err) {
		t.Errorf("taking on one's own alert: %v, want a bad request", err)
	}
	r.clk.set(mtT0.Add(2 * mtMin))
	if a, err = r.m.Assign(as("bob"), id, "bob", "", true); err != nil || a.Assignee != "bob" {
		t.Fatalf("bob takes it from alice: %+v, %v", a, err)
	}
	if got, _, err := r.m.Get(r.ctx, id); err != nil || got.Assignee != "bob" {
		t.Errorf("stored: %+v, %v; want bob's", got, err)
	}
	r.clk.set(mtT0.Add(3 * mtMin))
	if a, err = r.m.Assign(as("bob"), id, "bob", "", false); err != nil || a.Assignee != "" {
		t.Fatalf("bob gives it up: %+v, %v", a, err)
	}
	if _, err := r.m.Assign(as("bob"), id, "bob", "", false); !IsBadRequest(err) {
		t.Errorf("giving up an alert nobody has: %v, want a bad request", err)
	}
	_, evs, err := r.m.Get(r.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, ev := range evs {
		if ev.Kind == ChangeAssigned {
			steps = append(steps, ev.Actor+":"+ev.Note)
		}
	}
	mtSame(t, "assigned events", steps, []string{"alice:I'll call her", "bob:", "bob:"})
	entries, err := r.reg.AuditEntries(r.ctx, registry.AuditFilter{Action: registry.ActionAlertAssign})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Actor != "bob" || entries[2].Actor != "alice" || entries[0].Target != fmt.Sprintf("alert %d", id) {
		t.Errorf("audit entries %+v, want alice's and bob's two alert.assign", entries)
	}
	if _, err := r.m.Assign(as("alice"), id, "alice", "", true); err != nil {
		t.Fatal(err)
	}
	r.clk.set(mtT0.Add(4 * mtMin))
	if _, err := r.m.Resolve(as("alice"), id, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Assign(as("bob"), id, "bob", "", true); !errors.Is(err, ErrNotActive) {
		t.Errorf("taking on a resolved alert: %v, want ErrNotActive", err)
	}
}
