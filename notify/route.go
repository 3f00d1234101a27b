package notify

import (
	"context"
	"slices"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// Router names each alert change's deliveries (it is the alerts.Router):
//
//   - the clinic's webhook: every change it asks for (--webhook-events);
//   - the clinic-wide pager and chat channels: PagerDuty triggers at a
//     critical alert's opening, rise to critical and escalation, and
//     hears of its acknowledgement and resolution; ntfy hears of openings,
//     rises and escalations of warning and critical alerts; Slack and
//     Teams of those and their acknowledgements and resolutions;
//   - each staff member on call in the tier an escalation reaches: on
//     every channel of theirs (mail when there is a mail server, ntfy,
//     PagerDuty); a PagerDuty key
//     paged for an alert also hears of its acknowledgement and
//     resolution.
type Router struct {
	reg     *registry.Registry
	webhook WebhookConfig
	clinic  map[string]bool // the clinic-wide channels set up besides the webhook
	mail    bool
}

// Routes says which channels are set up.
type Routes struct {
	Webhook WebhookConfig
	Clinic  []string // the clinic-wide channels besides the webhook: pagerduty, ntfy, slack, teams
	Mail    bool     // staff members' addresses are mailed (there is a mail server)
}

// NewRouter returns a router over reg's staff contacts.
func NewRouter(reg *registry.Registry, routes Routes) *Router {
	r := &Router{reg: reg, webhook: routes.Webhook, clinic: map[string]bool{}, mail: routes.Mail}
	for _, c := range routes.Clinic {
		r.clinic[c] = true
	}
	return r
}

var _ alerts.Router = (*Router)(nil)

// Route returns ev's deliveries.
func (r *Router) Route(ctx context.Context, ev alerts.Event) ([]registry.OutboxDelivery, error) {
	var out []registry.OutboxDelivery
	add := func(channel, recipient, target string) {
		out = append(out, registry.OutboxDelivery{Channel: channel, Recipient: recipient, Target: target})
	}
	if r.webhook.wants(ev.Change) {
		add(ChannelWebhook, "", "")
	}
	sev := ev.Alert.Severity
	pages := ev.Change == alerts.ChangeOpened || ev.Change == alerts.ChangeSeverityRaised || ev.Change == alerts.ChangeEscalated
	settles := ev.Change == alerts.ChangeAcknowledged || ev.Change == alerts.ChangeResolved
	critical := sev == analysis.SeverityCritical
	warns := critical || sev == analysis.SeverityWarning
	if r.clinic[ChannelPagerDuty] && critical && (pages || settles) {
		add(ChannelPagerDuty, "", "")
	}
	if r.clinic[ChannelNtfy] && warns && pages {
		add(ChannelNtfy, "", "")
	}
	for _, chat := range []string{ChannelSlack, ChannelTeams} {
		if r.clinic[chat] && warns && (pages || settles) {
			add(chat, "", "")
		}
	}
	switch {
	case ev.Change == alerts.ChangeEscalated && len(ev.OnCall) > 0:
		contacts, err := r.reg.StaffContacts(ctx, ev.OnCall...)
		if err != nil {
			return nil, err
		}
		for _, name := range ev.OnCall {
			c, ok := contacts[name]
			if !ok {
				continue
			}
			for _, ch := range []struct{ channel, target string }{
				{ChannelEmail, c.Email}, {ChannelNtfy, c.NtfyURL}, {ChannelPagerDuty, c.PagerDutyKey},
			} {
				if ch.target != "" && (ch.channel != ChannelEmail || r.mail) {
					add(ch.channel, name, ch.target)
				}
			}
		}
	case settles && ev.Alert.ID != 0:
		paged, err := r.reg.Deliveries(ctx, registry.DeliveryFilter{AlertID: ev.Alert.ID, Channel: ChannelPagerDuty})
		if err != nil {
			return nil, err
		}
		type key struct{ recipient, target string }
		var seen []key
		for _, d := range paged {
			k := key{d.Recipient, d.Target}
			if d.Recipient != "" && !slices.Contains(seen, k) {
				seen = append(seen, k)
				add(ChannelPagerDuty, d.Recipient, d.Target)
			}
		}
	}
	return out, nil
}
