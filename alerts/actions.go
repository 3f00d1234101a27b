package alerts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/registry"
)

// Errors of staff actions on an alert.
var (
	ErrNotActive = errors.New("the alert is resolved")
	ErrAcked     = errors.New("the alert is acknowledged already")
)

// Ack acknowledges a firing alert on behalf of actor: its escalation stops.
func (m *Manager) Ack(ctx context.Context, id int64, actor, note string) (Alert, error) {
	return m.act(ctx, id, actor, note, registry.ActionAlertAck, func(a *Alert, now time.Time) (string, error) {
		switch a.State {
		case registry.AlertResolved:
			return "", ErrNotActive
		case registry.AlertAcknowledged:
			return "", fmt.Errorf("%w by %s", ErrAcked, a.AckedBy)
		}
		a.State, a.AckedAt, a.AckedBy = registry.AlertAcknowledged, &now, actor
		return ChangeAcknowledged, nil
	})
}

// Resolve resolves an active alert on behalf of actor.
func (m *Manager) Resolve(ctx context.Context, id int64, actor, note string) (Alert, error) {
	return m.act(ctx, id, actor, note, registry.ActionAlertResolve, func(a *Alert, now time.Time) (string, error) {
		if a.State == registry.AlertResolved {
			return "", ErrNotActive
		}
		a.State, a.ResolvedAt, a.ResolvedBy = registry.AlertResolved, &now, actor
		return ChangeResolved, nil
	})
}

// Snooze hides an active alert from consoles and holds its escalation
// until the given time, on behalf of actor.
func (m *Manager) Snooze(ctx context.Context, id int64, actor, note string, until time.Time) (Alert, error) {
	return m.act(ctx, id, actor, note, registry.ActionAlertSnooze, func(a *Alert, now time.Time) (string, error) {
		switch {
		case a.State == registry.AlertResolved:
			return "", ErrNotActive
		case !until.After(now) || until.Sub(now) > 30*24*time.Hour:
			return "", fmt.Errorf("%w: until must be in the next 30 days", errBadRequest)
		}
		u := until.UTC()
		a.SnoozedUntil = &u
		return ChangeSnoozed, nil
	})
}

// Assign makes actor the one who handles an active alert ("assign to
// me"), taking it from whoever had it; with take false, actor gives it up
// for someone else to take.
func (m *Manager) Assign(ctx context.Context, id int64, actor, note string, take bool) (Alert, error) {
	return m.act(ctx, id, actor, note, registry.ActionAlertAssign, func(a *Alert, _ time.Time) (string, error) {
		switch {
		case a.State == registry.AlertResolved:
			return "", ErrNotActive
		case take && a.Assignee == actor:
			return "", fmt.Errorf("%w: it is assigned to you already", errBadRequest)
		case !take && a.Assignee == "":
			return "", fmt.Errorf("%w: nobody has it", errBadRequest)
		}
		a.Assignee = ""
		if take {
			a.Assignee = actor
		}
		return ChangeAssigned, nil
	})
}

var errBadRequest = errors.New("bad request")

// IsBadRequest reports whether err is a staff action's mistake (400).
func IsBadRequest(err error) bool { return errors.Is(err, errBadRequest) }

// act carries out a staff action: fn changes the alert and names the
// change; the change, its event and the audit entry are stored together.
func (m *Manager) act(ctx context.Context, id int64, actor, note, action string, fn func(*Alert, time.Time) (string, error)) (Alert, error) {
	if len(note) > 1000 {
		return Alert{}, fmt.Errorf("%w: note: at most 1000 bytes", errBadRequest)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	row, err := m.reg.AlertByID(ctx, id)
	if err != nil {
		return Alert{}, err
	}
	a, err := alertOf(row)
	if err != nil {
		return Alert{}, err
	}
	now := m.now()
	change, err := fn(&a, now)
	if err != nil {
		return Alert{}, err
	}
	audit := &registry.AuditEntry{Actor: actor, Address: registry.ActorFrom(ctx).Address, Action: action, Patient: a.Patient,
		Target: "alert " + strconv.FormatInt(id, 10)}
	stored, err := m.update(ctx, nil, a, row, Event{Change: change, At: now, Actor: actor, Note: note}, audit)
	if err == nil && change == ChangeAcknowledged {
		m.toAck.Observe(now.Sub(a.OpenedAt).Seconds())
	}
	return stored, err
}

// Get returns an alert and its events.
func (m *Manager) Get(ctx context.Context, id int64) (Alert, []registry.AlertEvent, error) {
	row, err := m.reg.AlertByID(ctx, id)
	if err != nil {
		return Alert{}, nil, err
	}
	a, err := alertOf(row)
	if err != nil {
		return Alert{}, nil, err
	}
	evs, err := m.reg.AlertEvents(ctx, id)
	return a, evs, err
}

// List returns the alerts f selects, newest first.
func (m *Manager) List(ctx context.Context, f registry.AlertFilter) ([]Alert, error) {
	rows, err := m.reg.Alerts(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(rows))
	for _, row := range rows {
		a, err := alertOf(row)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// WithNotes gives each alert of list its notes.
func (m *Manager) WithNotes(ctx context.Context, list []Alert) error {
	ids := make([]int64, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	notes, err := m.reg.AlertNotes(ctx, ids)
	if err != nil {
		return err
	}
	for i := range list {
		list[i].Notes = nil
		for _, ev := range notes[list[i].ID] {
			list[i].Notes = append(list[i].Notes, Note{Change: ev.Kind, Actor: ev.Actor, Note: ev.Note, At: ev.At})
		}
	}
	return nil
}

// Active returns every active alert (firing or acknowledged), newest
// first: the snapshot a reconnecting console gets.
func (m *Manager) Active(ctx context.Context) ([]Alert, error) {
	return m.List(ctx, registry.AlertFilter{All: true, States: []string{registry.AlertFiring, registry.AlertAcknowledged}})
}

// ActionError is the sentence for a staff action that failed; it names no
// patient.
func ActionError(err error) string {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return "no such alert"
	case errors.Is(err, auth.ErrForbidden):
		return "this alert's patient is not in your care"
	case errors.Is(err, ErrNotActive), errors.Is(err, ErrAcked), errors.Is(err, registry.ErrConflict), IsBadRequest(err):
		return err.Error()
	}
	return "cannot do that now: try again"
}
