// Package alerts turns analysis transitions into alerts that clinicians
// and on-call staff act on: their lifecycle (firing, acknowledged,
// resolved; snoozed; damped against flapping; capped per patient) and
// on-call escalation of unacknowledged critical alerts. Each change is
// written with its event to the registry's outbox, from which package
// notify delivers it.
package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// Alert is an alert as staff see it: over the API, the websocket and the
// webhook.
type Alert struct {
	ID           int64      `json:"id"`
	Patient      string     `json:"patient"`
	Rule         string     `json:"rule"`
	Forecast     bool       `json:"forecast,omitempty"` // a predicted crossing, not a crossing
	State        string     `json:"state"`              // firing, acknowledged, resolved or suppressed
	Severity     string     `json:"severity"`           // info, warning or critical
	Sentence     string     `json:"sentence"`           // the latest word of the analysis
	Value        float64    `json:"value"`
	Bound        float64    `json:"bound"`
	PlanVersion  int        `json:"plan_version"`
	NotJudged    bool       `json:"not_judged,omitempty"` // the rule can no longer judge (too little data)
	OpenedAt     time.Time  `json:"opened_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	AckedAt      *time.Time `json:"acked_at,omitempty"`
	AckedBy      string     `json:"acked_by,omitempty"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
	ResolvedBy   string     `json:"resolved_by,omitempty"` // a username, or "patientpulse" when the condition cleared
	SnoozedUntil *time.Time `json:"snoozed_until,omitempty"`
	Tier         string     `json:"tier,omitempty"`     // the on-call tier notified last
	Assignee     string     `json:"assignee,omitempty"` // the staff member who took it on ("assign to me")
	// Notes are what staff said on acting on it, oldest first: filled by
	// Manager.WithNotes for those who read the alert, not kept in it.
	Notes []Note `json:"notes,omitempty"`
	// side is which way of Bound the condition lies (below, above or
	// band: worse is further that way); a resolved alert's Value and side
	// are the ones at its resolution, which a reopening compares with.
	side string
}

// Note is what a staff member said on acting on an alert.
type Note struct {
	Change string    `json:"change"` // acknowledged, resolved, snoozed
	Actor  string    `json:"actor"`
	Note   string    `json:"note"`
	At     time.Time `json:"at"`
}

// Active reports whether the alert still wants attention: firing or
// acknowledged.
func (a *Alert) Active() bool { return a.State == "firing" || a.State == "acknowledged" }

// Changes of an alert, as events carry them.
const (
	ChangeOpened         = "opened"
	ChangeUpdated        = "updated"         // the condition repeated (a new value or sentence)
	ChangeSeverityRaised = "severity_raised" // while firing
	ChangeAcknowledged   = "acknowledged"
	ChangeResolved       = "resolved"
	ChangeSnoozed        = "snoozed"
	ChangeAssigned       = "assigned" // a staff member took it on, or gave it up (Assignee "")
	ChangeEscalated      = "escalated"
	ChangeSuppressed     = "suppressed" // over the patient's cap of non-critical alerts
	ChangeUnsuppressed   = "unsuppressed"
)

// Event is one change of an alert, as the outbox keeps it and every
// channel receives it.
type Event struct {
	Change string    `json:"change"`
	Alert  Alert     `json:"alert"`
	Actor  string    `json:"actor,omitempty"` // who made the change; "" for patientpulse
	Note   string    `json:"note,omitempty"`
	At     time.Time `json:"at"`
	// Escalations: the tier reached and the staff on call in it, whom the
	// notifiers address.
	Tier   string   `json:"tier,omitempty"`
	OnCall []string `json:"on_call,omitempty"`
}

// Router names the deliveries of an alert's change: one per channel and
// recipient. The manager writes them, with the event, to the registry's
// outbox in the change's transaction; the notify stage delivers them from
// there and the consoles read the event. Route must not call back into
// the manager.
type Router interface {
	Route(ctx context.Context, ev Event) ([]registry.OutboxDelivery, error)
}

// take copies what the analysis says of the condition into a.
func (a *Alert) take(t analysis.Transition) {
	a.Sentence, a.Value, a.Bound, a.PlanVersion, a.NotJudged = t.Sentence, t.Value, t.Bound, t.PlanVersion, false
	if t.Side != "" { // a rule that left the plan clears without one
		a.side = t.Side
	}
}

// row is the stored form of a.
func (a *Alert) row(key string, tier int) registry.AlertRow {
	r := registry.AlertRow{ID: a.ID, Patient: a.Patient, Key: key, State: a.State, Severity: a.Severity,
		OpenedAt: a.OpenedAt, UpdatedAt: a.UpdatedAt, AckedBy: a.AckedBy, ResolvedBy: a.ResolvedBy, Tier: tier}
	for _, f := range []struct {
		dst *time.Time
		src *time.Time
	}{{&r.AckedAt, a.AckedAt}, {&r.ResolvedAt, a.ResolvedAt}, {&r.SnoozedUntil, a.SnoozedUntil}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	r.Body = mustJSON(body{Rule: a.Rule, Forecast: a.Forecast, Sentence: a.Sentence, Value: a.Value, Bound: a.Bound,
		PlanVersion: a.PlanVersion, NotJudged: a.NotJudged, Tier: a.Tier, Assignee: a.Assignee, Side: a.side})
	return r
}

// body is what the registry keeps of an alert beside its columns.
type body struct {
	Rule        string  `json:"rule"`
	Forecast    bool    `json:"forecast,omitempty"`
	Sentence    string  `json:"sentence"`
	Value       float64 `json:"value"`
	Bound       float64 `json:"bound"`
	PlanVersion int     `json:"plan_version"`
	NotJudged   bool    `json:"not_judged,omitempty"`
	Tier        string  `json:"tier,omitempty"`
	Assignee    string  `json:"assignee,omitempty"`
	Side        string  `json:"side,omitempty"` // with Value, what a resolution is compared with (alerts stored before it lack it)
}

// alertOf reads a stored alert.
func alertOf(r registry.AlertRow) (Alert, error) {
	var b body
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return Alert{}, fmt.Errorf("alert %d: %w", r.ID, err)
	}
	a := Alert{ID: r.ID, Patient: r.Patient, Rule: b.Rule, Forecast: b.Forecast, State: r.State, Severity: r.Severity,
		Sentence: b.Sentence, Value: b.Value, Bound: b.Bound, PlanVersion: b.PlanVersion, NotJudged: b.NotJudged,
		OpenedAt: r.OpenedAt, UpdatedAt: r.UpdatedAt, AckedBy: r.AckedBy, ResolvedBy: r.ResolvedBy, Tier: b.Tier, Assignee: b.Assignee, side: b.Side}
	for _, f := range []struct {
		dst **time.Time
		src time.Time
	}{{&a.AckedAt, r.AckedAt}, {&a.ResolvedAt, r.ResolvedAt}, {&a.SnoozedUntil, r.SnoozedUntil}} {
		if !f.src.IsZero() {
			t := f.src
			*f.dst = &t
		}
	}
	return a, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}
