package notify

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// PagerDutyEventsURL is PagerDuty's Events API v2 endpoint.
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutyConfig sets up PagerDuty: the clinic-wide service, and the
// endpoint for every key (staff members' own keys too).
type PagerDutyConfig struct {
	URL        string // the Events API v2 endpoint; "" for PagerDutyEventsURL; http:// only to a loopback address, for tests
	RoutingKey string // the clinic-wide service's integration key; "" for none
}

// Validate reports every problem at once. It never echoes the key, which
// must look like a staff member's own key (see CheckContact).
func (c PagerDutyConfig) Validate() error {
	errs := []error{CheckContact(registry.StaffContact{PagerDutyKey: c.RoutingKey, DigestHour: -1})}
	if c.URL != "" {
		errs = append(errs, checkURL("pagerduty", c.URL))
	}
	return errors.Join(errs...)
}

// PagerDuty sends alert events to PagerDuty's Events API v2: an alert's
// opening, rise and escalation trigger, its acknowledgement acknowledges
// and its resolution resolves, all under one dedup key per alert, so that
// PagerDuty keeps one incident per alert and a redelivery joins it
// rather than opening another. A delivery addressed to a staff member
// carries their own key (its Target); the others go to the clinic-wide
// service. Events say only the severity, the change, the tier and the
// link, never the patient, the rule or the sentence. PagerDuty has no
// delivery id of its own: the id goes in custom_details.delivery_id and
// in X-Patientpulse-Delivery. Acknowledge and resolve events carry the
// payload too, as Alertmanager's resolve events do.
type PagerDuty struct {
	cfg  PagerDutyConfig
	post *poster
}

var _ Channel = (*PagerDuty)(nil)

// NewPagerDuty returns the PagerDuty channel of cfg, which should have
// passed Validate.
func NewPagerDuty(cfg PagerDutyConfig) *PagerDuty {
	if cfg.URL == "" {
		cfg.URL = PagerDutyEventsURL
	}
	return &PagerDuty{cfg: cfg, post: newPoster(cfg.URL, cfg.RoutingKey)}
}

// pdEvent is an Events API v2 alert event.
type pdEvent struct {
	RoutingKey  string    `json:"routing_key"`
	EventAction string    `json:"event_action"`
	DedupKey    string    `json:"dedup_key"`
	Payload     pdPayload `json:"payload"`
	Links       []pdLink  `json:"links"`
}

type pdPayload struct {
	Summary       string    `json:"summary"`
	Source        string    `json:"source"`
	Severity      string    `json:"severity"`
	Timestamp     string    `json:"timestamp"` // when patientpulse saw the change
	CustomDetails pdDetails `json:"custom_details"`
}

// pdDetails are what an event says besides the summary: nothing of the
// patient.
type pdDetails struct {
	AlertID    int64  `json:"alert_id"`
	Change     string `json:"change"`
	Tier       string `json:"tier,omitempty"`
	DeliveryID string `json:"delivery_id"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// Send posts m's event once. A change PagerDuty has no action for, and a
// delivery with no key, fail at once.
func (p *PagerDuty) Send(ctx context.Context, m Message) Result {
	action := pdAction(m.Event.Change)
	if action == "" || m.Event.Alert.ID == 0 {
		return Result{Err: "pagerduty has no action for this event (" + m.Event.Change + ")"}
	}
	key := m.Delivery.Target
	if key == "" {
		key = p.cfg.RoutingKey
	}
	if key == "" {
		return Result{Err: "no pagerduty routing key: the clinic-wide key is not set up"}
	}
	ev, a := m.Event, m.Event.Alert
	// Strings and numbers only: encoding cannot fail.
	body, _ := json.Marshal(pdEvent{
		RoutingKey:  key,
		EventAction: action,
		DedupKey:    "patientpulse-alert-" + strconv.FormatInt(a.ID, 10),
		Payload: pdPayload{
			Summary:       m.Title(),
			Source:        "patientpulse",
			Severity:      pdSeverity(a.Severity),
			Timestamp:     ev.At.UTC().Format(time.RFC3339Nano),
			CustomDetails: pdDetails{AlertID: a.ID, Change: ev.Change, Tier: ev.Tier, DeliveryID: m.Delivery.ID},
		},
		Links: []pdLink{{Href: m.Link, Text: "Open and acknowledge"}},
	})
	return p.post.do(ctx, p.cfg.URL, "application/json", body, map[string]string{WebhookDeliveryHeader: m.Delivery.ID})
}

// pdAction is the event action of an alert's change; "" for a change
// PagerDuty is not told of.
func pdAction(change string) string {
	switch change {
	case alerts.ChangeOpened, alerts.ChangeSeverityRaised, alerts.ChangeEscalated:
		return "trigger"
	case alerts.ChangeAcknowledged:
		return "acknowledge"
	case alerts.ChangeResolved:
		return "resolve"
	}
	return ""
}

// pdSeverity is PagerDuty's severity of an alert's: the same name, and
// critical for one PagerDuty would refuse (a page errs on the loud side).
func pdSeverity(s string) string {
	switch s {
	case analysis.SeverityInfo, analysis.SeverityWarning:
		return s
	}
	return analysis.SeverityCritical
}
