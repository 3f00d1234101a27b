package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestPurgerAtStart: serve's purger deletes expired sessions, and with a
// retention old resolved alerts, as soon as it starts; a live session and
// an active alert stay.
func TestPurgerAtStart(t *testing.T) {
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.AddStaff(ctx, "alice", registry.RoleClinician, "lantern-quartz-meadow-71"); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	expired, _, err := reg.CreateSession(ctx, "alice", now.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	live, _, err := reg.CreateSession(ctx, "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	old := now.AddDate(0, 0, -100)
	row := registry.AlertRow{Patient: "p-1", Key: "r", State: registry.AlertFiring, Severity: "warning",
		OpenedAt: old, UpdatedAt: old, Tier: -1, Body: []byte("{}")}
	resolvedID, err := reg.OpenAlert(ctx, row, registry.AlertEvent{At: old, Kind: "opened"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	row.ID, row.State, row.ResolvedAt, row.UpdatedAt = resolvedID, registry.AlertResolved, old.Add(time.Hour), old.Add(time.Hour)
	if err := reg.UpdateAlert(ctx, row, old, registry.AlertEvent{At: row.UpdatedAt, Kind: "resolved"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	row = registry.AlertRow{Patient: "p-1", Key: "r", State: registry.AlertFiring, Severity: "warning",
		OpenedAt: old, UpdatedAt: old, Tier: -1, Body: []byte("{}")}
	activeID, err := reg.OpenAlert(ctx, row, registry.AlertEvent{At: old, Kind: "opened"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	p := &purger{reg: reg, idle: 30 * time.Minute, maxAge: 12 * time.Hour, retention: 30 * 24 * time.Hour,
		interval: time.Hour, log: slog.New(slog.NewTextHandler(io.Discard, nil)), purgedOnce: make(chan struct{})}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	select {
	case <-p.purgedOnce:
	case <-time.After(10 * time.Second):
		t.Fatal("no purge within 10s of start")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil when its context ends", err)
	}

	if _, _, err := reg.SessionByID(ctx, expired); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("expired session: %v, want purged (ErrNotFound)", err)
	}
	if _, _, err := reg.SessionByID(ctx, live); err != nil {
		t.Errorf("live session: %v, want kept", err)
	}
	if _, err := reg.AlertByID(ctx, resolvedID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("alert resolved 100 days ago: %v, want purged", err)
	}
	if _, err := reg.AlertByID(ctx, activeID); err != nil {
		t.Errorf("active alert opened 100 days ago: %v, want kept", err)
	}
}
