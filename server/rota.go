package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/registry"
)

// rotaPoll is how often serve looks for a rota saved by an admin on
// another instance.
const rotaPoll = 10 * time.Second

// loadRota puts the on-call rota in force in c.Alerts.Rota: the newest
// version an admin saved in the web app, which overrides
// --oncall-schedule's file, else the file. Everyone on the file's rota
// must be able to sign in and act on an alert (else serve refuses to
// start); a saved rota naming someone since disabled is only warned of.
func loadRota(ctx context.Context, c *Config, reg *registry.Registry, log *slog.Logger) error {
	c.Alerts.Rota = &alerts.Rota{}
	active := func(u string) bool {
		st, err := reg.StaffMember(ctx, u)
		return err == nil && st.Active()
	}
	saved, ok, err := reg.LatestRota(ctx)
	if err != nil {
		return err
	}
	if ok {
		s, err := alerts.ParseOnCall([]byte(saved.Body))
		if err != nil {
			return fmt.Errorf("the on-call rota saved in the registry (version %d): %w", saved.Version, err)
		}
		if err := s.CheckStaff(active); err != nil {
			log.Warn("the on-call rota names staff who cannot act on alerts: an admin should change it", "version", saved.Version, "err", err)
		}
		if c.oncallFile != "" {
			log.Info("on-call rota: the version an admin saved overrides --oncall-schedule", "version", saved.Version)
		}
		c.Alerts.Schedule = s
		c.Alerts.Rota.Store(rotaVersion(s, saved))
		return nil
	}
	if err := c.Alerts.Schedule.CheckStaff(active); err != nil {
		return ConfigError{fmt.Errorf("oncall-schedule: %w", err)}
	}
	if c.Alerts.Schedule != nil {
		c.Alerts.Rota.Store(&alerts.RotaVersion{Schedule: c.Alerts.Schedule, Text: c.oncallText})
	}
	return nil
}

func rotaVersion(s *alerts.OnCallSchedule, saved registry.Rota) *alerts.RotaVersion {
	return &alerts.RotaVersion{Schedule: s, Text: saved.Body, Version: saved.Version, SavedAt: saved.SavedAt, SavedBy: saved.SavedBy}
}

// watchRota puts in force, within every (rotaPoll), a rota an admin saved
// through another instance.
func watchRota(ctx context.Context, rota *alerts.Rota, reg *registry.Registry, log *slog.Logger, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		saved, ok, err := reg.LatestRota(ctx)
		if err != nil || !ok {
			continue
		}
		if cur := rota.Load(); cur != nil && cur.Version >= saved.Version {
			continue
		}
		s, err := alerts.ParseOnCall([]byte(saved.Body))
		if err != nil {
			log.Error("the on-call rota saved in the registry cannot be read; the one in force stays", "version", saved.Version, "err", err)
			continue
		}
		rota.Store(rotaVersion(s, saved))
		log.Info("on-call rota: a newer version is in force", "version", saved.Version, "saved_by", saved.SavedBy)
	}
}
