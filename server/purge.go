package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// purgeInterval is how often serve purges the registry, besides at start.
const purgeInterval = time.Hour

// purger deletes what the registry keeps no longer: sessions past their
// idle timeout or maximum age, or ended; and, with a retention, the
// transitions and resolved alerts older than it (registry.PurgeHistory).
// The audit log is never purged.
type purger struct {
	reg        *registry.Registry
	idle       time.Duration // sessions unused this long have ended
	maxAge     time.Duration // sessions this old have ended
	retention  time.Duration // 0: keep transitions and alerts for ever
	interval   time.Duration
	log        *slog.Logger
	purgedOnce chan struct{} // closed after the first purge: for tests
}

// Run purges at once and then every interval, until ctx ends; it returns
// nil then. A failed purge is logged and tried again at the next tick.
func (p *purger) Run(ctx context.Context) error {
	p.purge(ctx)
	if p.purgedOnce != nil {
		close(p.purgedOnce)
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.purge(ctx)
		}
	}
}

func (p *purger) purge(ctx context.Context) {
	now := time.Now()
	n, err := p.reg.PurgeSessions(ctx, now.Add(-p.idle), now.Add(-p.maxAge))
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("purge of expired sessions failed", "err", err)
	case n > 0:
		p.log.Info("expired sessions purged", "sessions", n)
	}
	if p.retention <= 0 {
		return
	}
	h, err := p.reg.PurgeHistory(ctx, now.Add(-p.retention))
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("purge of old transitions and alerts failed", "err", err)
	case h != registry.Purged{}:
		p.log.Info("history older than the retention purged", "transitions", h.Transitions, "alerts", h.Alerts, "alert_events", h.AlertEvents, "digests", h.Digests)
	}
}
