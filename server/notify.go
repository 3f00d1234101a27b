package server

import (
	"context"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// delivery is serve's notify stage beside the hub: the router the alert
// manager writes each change's deliveries with, the links pages carry, and
// the dispatcher that sends the deliveries.
type delivery struct {
	*notify.Dispatcher
	router *notify.Router
	links  *notify.Links
}

// newDelivery sets up the channels c names, with a dispatcher whose
// claims are in holder's name (the cluster member id).
func newDelivery(ctx context.Context, c *Config, reg *registry.Registry, holder string, log *slog.Logger,
	promReg prometheus.Registerer) (*delivery, error) {
	key, err := reg.ServerKey(ctx, notify.LinkKeyName, 32)
	if err != nil {
		return nil, err
	}
	links := notify.NewLinks(key, c.PublicURL)
	// PagerDuty and ntfy are always there for staff members' own keys
	// and topics; clinic-wide only when the clinic names its own.
	channels := map[string]notify.Channel{
		notify.ChannelPagerDuty: notify.NewPagerDuty(c.PagerDuty),
		notify.ChannelNtfy:      notify.NewNtfy(c.Ntfy),
	}
	routes := notify.Routes{Webhook: c.Webhook, Mail: c.SMTP.URL != ""}
	if c.Webhook.URL != "" {
		channels[notify.ChannelWebhook] = notify.NewWebhook(c.Webhook)
	}
	if routes.Mail {
		email, err := notify.NewEmail(c.SMTP)
		if err != nil {
			return nil, ConfigError{err}
		}
		channels[notify.ChannelEmail] = email
	}
	for _, ch := range []struct {
		name string
		on   bool
	}{{notify.ChannelPagerDuty, c.PagerDuty.RoutingKey != ""}, {notify.ChannelNtfy, c.Ntfy.URL != ""},
		{notify.ChannelSlack, c.Chat.SlackURL != ""}, {notify.ChannelTeams, c.Chat.TeamsURL != ""}} {
		if ch.on {
			routes.Clinic = append(routes.Clinic, ch.name)
		}
	}
	if c.Chat.SlackURL != "" {
		channels[notify.ChannelSlack] = notify.NewChat(notify.ChannelSlack, c.Chat.SlackURL)
	}
	if c.Chat.TeamsURL != "" {
		channels[notify.ChannelTeams] = notify.NewChat(notify.ChannelTeams, c.Chat.TeamsURL)
	}
	warnUnpaged(ctx, c, reg, log)
	log.Info("paging", "webhook", c.Webhook.URL != "", "clinic_channels", routes.Clinic, "staff_mail", routes.Mail)
	dc := c.Notify
	dc.Holder = holder
	return &delivery{
		Dispatcher: notify.NewDispatcher(dc, reg, channels, links, log, promReg),
		router:     notify.NewRouter(reg, routes),
		links:      links,
	}, nil
}

// warnUnpaged warns of the rota's members whom an escalation could reach
// only on an open console: they have no contact, or only an address while
// there is no mail server.
func warnUnpaged(ctx context.Context, c *Config, reg *registry.Registry, log *slog.Logger) {
	s := c.Alerts.Schedule
	if s == nil {
		return
	}
	var members []string
	for _, t := range s.Tiers {
		for _, sh := range t.Shifts {
			members = append(members, sh.Staff...)
		}
	}
	slices.Sort(members)
	members = slices.Compact(members)
	contacts, err := reg.StaffContacts(ctx, members...)
	if err != nil {
		log.Warn("cannot read the rota's contacts", "err", err)
		return
	}
	var unpaged []string
	for _, m := range members {
		ct := contacts[m]
		if ct.NtfyURL == "" && ct.PagerDutyKey == "" && (ct.Email == "" || c.SMTP.URL == "") {
			unpaged = append(unpaged, m)
		}
	}
	if len(unpaged) > 0 {
		log.Warn("on-call staff with no channel to page them: an escalation reaches them only on an open console; "+
			"set one with `patientpulse staff contact` (an email address needs --smtp-url)", "staff", unpaged)
	}
}
