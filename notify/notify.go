// Package notify delivers alert events: to the staff consoles over a
// websocket (the hub), and from the registry's outbox to email, the
// clinic's signed webhook, PagerDuty, Slack- and Teams-style chat and ntfy,
// one file per channel. The alert manager writes each change's event and
// its deliveries to the outbox in the change's transaction (Router names
// them); the Dispatcher delivers them at least once, each with a stable
// delivery id, retrying with backoff and recording every attempt, and
// resumes what is pending after a restart or a kill.
package notify

import (
	"context"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/registry"
)

// Channel names, as deliveries store them.
const (
	ChannelEmail     = "email"
	ChannelWebhook   = "webhook"
	ChannelPagerDuty = "pagerduty"
	ChannelSlack     = "slack"
	ChannelTeams     = "teams"
	ChannelNtfy      = "ntfy"
)

// Channel sends one delivery. Send is called once per attempt, with the
// attempt's deadline in ctx; it must not log or return the message's
// content, a patient's data or a credential.
type Channel interface {
	Send(ctx context.Context, m Message) Result
}

// Message is one delivery as a channel sends it.
type Message struct {
	Delivery registry.OutboxDelivery // ID is the delivery id; Recipient and Target say to whom
	Event    alerts.Event            // the alert's change, its Alert.ID set; zero for a digest
	Digest   *Digest                 // a daily digest instead of an event
	// PatientName is the patient's name for a channel that may carry it
	// (mail under --mail-phi=full); "" otherwise.
	PatientName string
	// Link opens the alert and acknowledges it in one tap after sign-in
	// (a page link); for a digest, the console.
	Link string
	// FullPHI is the clinic's choice for mail: patient, rule and sentence
	// (true), or only that there is an alert and the link (false).
	FullPHI bool
}

// Result is the outcome of one attempt.
type Result struct {
	Status     int           // the HTTP or SMTP status; 0 when there was no answer
	Err        string        // "" when delivered; recorded: never the body, a credential or a patient's data
	Retry      bool          // a later attempt may succeed
	RetryAfter time.Duration // the receiver's wish for the next attempt, when positive
}

// Delivered reports whether the attempt delivered the message.
func (r Result) Delivered() bool { return r.Err == "" }

// Digest is a staff member's daily list of the warnings of their care
// team's patients.
type Digest struct {
	Username string         `json:"username"`
	Date     string         `json:"date"` // the local day, 2006-01-02
	Alerts   []alerts.Alert `json:"alerts"`
}
