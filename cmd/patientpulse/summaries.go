package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

// summariesCommand runs `patientpulse summaries publish`: it publishes
// the newest closed week's summary of every active patient with an
// active device (or of --patient only) to their devices, as serve does
// when the week closes, and answers how many it reached.
func summariesCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "publish" {
		return usageError{fmt.Errorf("summaries: want publish")}
	}
	var patient string
	define := func(fs *flag.FlagSet) {
		fs.StringVar(&patient, "patient", "", "publish only this patient's summary (default: every active patient with an active device)")
	}
	reg, c, err := adminSetup(ctx, "summaries publish", args[1:], stderr, getenv, define)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	var patients []string
	if patient != "" {
		pt, err := reg.Patient(ctx, patient)
		if err != nil {
			return fmt.Errorf("summaries publish: %w", err)
		}
		if !pt.Active() {
			return fmt.Errorf("summaries publish: patient %s is deactivated", patient)
		}
		patients = []string{patient}
	}
	src := ingest.NewInflux(c.Influx)
	defer src.Close()
	s := &server.Summaries{Reg: reg, Src: src, Analysis: c.Analysis, MQTT: c.MQTT, Log: slog.New(slog.NewTextHandler(stderr, nil))}
	week := s.Week()
	p, err := s.Publish(ctx, week, patients)
	target := fmt.Sprintf("%s: %d patients, %d devices", week.Name, p.Patients, p.Devices)
	if aerr := reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionSummariesPublish, Patient: patient, Target: target}); err == nil {
		err = aerr
	}
	if err != nil {
		return fmt.Errorf("summaries publish: %w", err)
	}
	fmt.Fprintf(stdout, "published the summary of %s (%s to %s) for %d patients, to %d devices\n", week.Name,
		week.From.Format("Mon 2 Jan"), week.To.AddDate(0, 0, -1).Format("Mon 2 Jan 2006"), p.Patients, p.Devices)
	if p.Skipped > 0 {
		fmt.Fprintf(stdout, "%d patients had no plan in force at the week's end: nothing to summarise\n", p.Skipped)
	}
	if patient != "" && p.Patients == 0 && p.Skipped == 0 {
		return fmt.Errorf("summaries publish: patient %s has no active device to publish to", patient)
	}
	return nil
}
