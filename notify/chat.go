package notify

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
)

// ChatConfig sets the clinic's chat channels: Slack and Teams incoming
// webhooks. Their URLs carry the webhook's secret and are never echoed.
type ChatConfig struct {
	SlackURL string // a Slack incoming webhook; "" for none
	TeamsURL string // a Teams incoming webhook (Office 365 connector); "" for none
}

// Validate reports every problem at once: each URL set must be https://
// (http:// only to a loopback address, for tests).
func (c ChatConfig) Validate() error {
	var errs []error
	if c.SlackURL != "" {
		errs = append(errs, checkURL("slack", c.SlackURL))
	}
	if c.TeamsURL != "" {
		errs = append(errs, checkURL("teams", c.TeamsURL))
	}
	return errors.Join(errs...)
}

// Chat posts a text to a Slack- or Teams-style incoming webhook: what
// Message.Minimal says (the severity, the change, the tier and the link;
// Teams also gets Message.Title as the card's summary), never the
// patient, the rule or the sentence, for a channel's members may be many
// and its history kept elsewhere. The delivery id is in
// X-Patientpulse-Delivery, though chat services do not de-duplicate: a
// redelivery after a lost answer posts again.
type Chat struct {
	kind string
	url  string
	post *poster
}

var _ Channel = (*Chat)(nil)

// NewChat returns the chat channel of kind, ChannelSlack or ChannelTeams,
// posting to url, which should have passed ChatConfig.Validate. It
// panics on another kind.
func NewChat(kind, url string) *Chat {
	if kind != ChannelSlack && kind != ChannelTeams {
		panic("notify: no chat channel " + kind)
	}
	return &Chat{kind: kind, url: url, post: newPoster(url)}
}

// slackMessage is a Slack incoming webhook's message: text only.
type slackMessage struct {
	Text string `json:"text"`
}

// teamsCard is a legacy actionable message card, as Teams connectors
// take it: summary (the notification) and text.
type teamsCard struct {
	Type    string `json:"@type"`
	Context string `json:"@context"`
	Summary string `json:"summary"`
	Text    string `json:"text"`
}

// slackEscaper escapes Slack's control characters, which would otherwise
// make links and mentions of a text.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Send posts m once.
func (c *Chat) Send(ctx context.Context, m Message) Result {
	var v any = slackMessage{Text: slackEscaper.Replace(m.Minimal())}
	if c.kind == ChannelTeams {
		v = teamsCard{Type: "MessageCard", Context: "https://schema.org/extensions", Summary: m.Title(), Text: m.Minimal()}
	}
	body, _ := json.Marshal(v) // strings only: encoding cannot fail
	return c.post.do(ctx, c.url, "application/json", body, map[string]string{WebhookDeliveryHeader: m.Delivery.ID})
}
