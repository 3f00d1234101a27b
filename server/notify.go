package server

import (
	"context"
	"log/slog"

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

// newDelivery sets up the channels c names.
func newDelivery(ctx context.Context, c *Config, reg *registry.Registry, log *slog.Logger, promReg prometheus.Registerer) (*delivery, error) {
	key, err := reg.ServerKey(ctx, notify.LinkKeyName, 32)
	if err != nil {
		return nil, err
	}
	links := notify.NewLinks(key, c.PublicURL)
	channels := map[string]notify.Channel{}
	if c.Webhook.URL != "" {
		channels[notify.ChannelWebhook] = notify.NewWebhook(c.Webhook)
	}
	if c.SMTP.URL != "" {
		email, err := notify.NewEmail(c.SMTP)
		if err != nil {
			return nil, ConfigError{err}
		}
		channels[notify.ChannelEmail] = email
	}
	return &delivery{
		Dispatcher: notify.NewDispatcher(c.Notify, reg, channels, links, log, promReg),
		router:     notify.NewRouter(reg, c.Webhook),
		links:      links,
	}, nil
}
