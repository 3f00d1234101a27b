package notify

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// NtfyConfig sets up ntfy push notifications: the clinic-wide topic, and
// the token of a protected ntfy server.
type NtfyConfig struct {
	// URL is the clinic-wide topic's URL (https://ntfy.sh/<topic> or a
	// topic of the clinic's own server); "" for none. Anyone who knows a
	// topic may read it, so it is kept out of errors.
	URL string
	// Token is an access token of URL's server, sent as a bearer token to
	// that server only (a staff member's topic elsewhere never sees it);
	// "" for none.
	Token string
}

// Validate reports every problem at once. It never echoes the URL or the
// token. The URL must name a topic, as a staff member's own does (see
// CheckContact).
func (c NtfyConfig) Validate() error {
	errs := []error{CheckContact(registry.StaffContact{NtfyURL: c.URL, DigestHour: -1})}
	switch {
	case c.Token == "":
	case c.URL == "":
		errs = append(errs, errors.New("ntfy token needs the ntfy URL: it is sent only to that URL's server"))
	case strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		errs = append(errs, errors.New("ntfy token must be printable ASCII without spaces"))
	}
	return errors.Join(errs...)
}

// Ntfy publishes alert events to ntfy topics: a staff member's own topic
// (a delivery's Target) or the clinic-wide one. The push says what
// Message.Title and Message.Minimal say, never the patient, the rule or
// the sentence (a topic is readable by whoever knows its name), with a
// priority by severity and the link to open on a tap. The delivery id is
// in X-Patientpulse-Delivery; ntfy does not de-duplicate.
type Ntfy struct {
	cfg    NtfyConfig
	server string // scheme and host of cfg.URL, the one server given the token
}

var _ Channel = (*Ntfy)(nil)

// NewNtfy returns the ntfy channel of cfg, which should have passed
// Validate.
func NewNtfy(cfg NtfyConfig) *Ntfy {
	n := &Ntfy{cfg: cfg}
	if u, err := url.Parse(cfg.URL); err == nil && u.Host != "" {
		n.server = serverOf(u)
	}
	return n
}

// Send publishes m once.
func (n *Ntfy) Send(ctx context.Context, m Message) Result {
	topic := m.Delivery.Target
	if topic == "" {
		topic = n.cfg.URL
	}
	if topic == "" {
		return Result{Err: "no ntfy topic: the clinic-wide topic is not set up"}
	}
	if err := checkURL("ntfy topic", topic); err != nil {
		return Result{Err: err.Error()}
	}
	priority, tag := ntfyPriority(m.Event.Alert.Severity)
	tags := tag
	if m.Event.Change != "" {
		tags += "," + m.Event.Change
	}
	headers := map[string]string{
		"Title":               m.Title(),
		"Priority":            priority,
		"Tags":                tags,
		"Click":               m.Link,
		WebhookDeliveryHeader: m.Delivery.ID,
	}
	u, _ := url.Parse(topic) // checkURL parsed it
	if n.cfg.Token != "" && serverOf(u) == n.server {
		headers["Authorization"] = "Bearer " + n.cfg.Token
	}
	return newPoster(topic, n.cfg.Token).do(ctx, topic, "text/plain; charset=utf-8", []byte(m.Minimal()), headers)
}

// ntfyPriority is the ntfy priority of a severity, and its emoji tag.
func ntfyPriority(severity string) (priority, tag string) {
	switch severity {
	case analysis.SeverityCritical:
		return "urgent", "rotating_light" // 5
	case analysis.SeverityWarning:
		return "high", "warning" // 4
	}
	return "default", "information_source" // 3
}

// serverOf is u's scheme and host, lower case.
func serverOf(u *url.URL) string {
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
