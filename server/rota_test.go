package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestRotaSavedWinsAndSpreads: serve starts with the --oncall-schedule
// file while no rota was saved; a rota saved through another instance is
// put in force by the watch; and at the next start the saved one wins
// over the file.
func TestRotaSavedWinsAndSpreads(t *testing.T) {
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, u := range []string{"otto", "nina"} {
		if err := reg.AddStaff(ctx, u, registry.RoleOnCall, "lantern-quartz-meadow-71"); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "oncall.yaml")
	rotaYAML := func(who string) string {
		return "timezone: UTC\ntiers:\n  - {name: primary, after: 0m, shifts: [{staff: [" + who + "], days: [all], from: \"00:00\", to: \"24:00\"}]}\n"
	}
	if err := os.WriteFile(file, []byte(rotaYAML("otto")), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() *Config {
		t.Helper()
		c := &Config{oncallFile: file}
		var err error
		c.Alerts.Schedule, c.oncallText, err = alerts.LoadOnCall(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := loadRota(ctx, c, reg, log); err != nil {
			t.Fatal(err)
		}
		return c
	}
	onCall := func(c *Config) string {
		return c.Alerts.Rota.Schedule().Tiers[0].Shifts[0].Staff[0]
	}

	c := start()
	if v := c.Alerts.Rota.Load(); v.Version != 0 || onCall(c) != "otto" {
		t.Fatalf("with no rota saved, in force: version %d, %s; want the file's otto", v.Version, onCall(c))
	}
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { watchRota(watchCtx, c.Alerts.Rota, reg, log, 20*time.Millisecond); close(done) }()
	if _, err := reg.SaveRota(ctx, rotaYAML("nina")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Alerts.Rota.Load().Version != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	if v := c.Alerts.Rota.Load(); v.Version != 1 || onCall(c) != "nina" || v.Text != rotaYAML("nina") {
		t.Errorf("after another instance saved version 1, in force: version %d, %s", v.Version, onCall(c))
	}
	if c := start(); onCall(c) != "nina" || c.Alerts.Schedule.Tiers[0].Shifts[0].Staff[0] != "nina" {
		t.Errorf("at the next start %s is on call, want the saved rota's nina over the file's otto", onCall(c))
	}
}
