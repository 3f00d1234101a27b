// Package alerts turns analysis transitions into alerts that clinicians
// and on-call staff act on: their lifecycle (firing, acknowledged,
// resolved; snoozed; damped against flapping; capped per patient), on-call
// escalation of unacknowledged critical alerts, and the notifiers: the
// websocket hub and an outgoing webhook.
package alerts

import (
	"time"
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
	Tier         string     `json:"tier,omitempty"` // the on-call tier notified last
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
	ChangeEscalated      = "escalated"
	ChangeSuppressed     = "suppressed" // over the patient's cap of non-critical alerts
	ChangeUnsuppressed   = "unsuppressed"
)

// Event is one change of an alert, as every notifier receives it.
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

// Notifier hears of every change of an alert once it is stored. Notify
// must not block: a notifier queues what it cannot send at once.
type Notifier interface {
	Notify(Event)
}
