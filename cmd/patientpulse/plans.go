package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

const plansCommands = "apply or show"

// plansCommand runs `patientpulse plans ...`: apply stores a plan file as
// the patient's next version (with --dry-run, prints what it would have
// raised over the patient's last days instead); show prints a patient's plan in force (or,
// with --history, every version) as YAML that apply takes back.
func plansCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{fmt.Errorf("plans: want %s", plansCommands)}
	}
	var file, patient string
	var history, dryRun bool
	var days int
	var define func(fs *flag.FlagSet)
	var required []string
	switch args[0] {
	case "apply":
		define = func(fs *flag.FlagSet) {
			fs.StringVar(&file, "f", "", "plan file, YAML or JSON (- for standard input)")
			fs.BoolVar(&dryRun, "dry-run", false, "save nothing: print what the plan would have raised over the patient's last --days of data in InfluxDB, and which rules cannot judge yet")
			fs.IntVar(&days, "days", analysis.DefaultPreviewDays, fmt.Sprintf("with --dry-run, the days tried (1 to %d)", analysis.MaxPreviewDays))
		}
		required = []string{"f"}
	case "show":
		define = func(fs *flag.FlagSet) {
			fs.StringVar(&patient, "patient", "", "patient id")
			fs.BoolVar(&history, "history", false, "every version, oldest first")
		}
		required = []string{"patient"}
	default:
		return usageError{fmt.Errorf("plans: unknown command %q (want %s)", args[0], plansCommands)}
	}
	reg, c, err := adminSetup(ctx, "plans "+args[0], args[1:], stderr, getenv, define, required...)
	if err != nil {
		return err
	}
	defer reg.Close()

	if args[0] == "apply" {
		var data []byte
		if file == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return fmt.Errorf("plans apply: %w", err)
		}
		// Windows reach as far back as serve's --backfill-horizon, read
		// from the same settings.
		p, err := analysis.ParsePlanWithin(data, c.Limits.Backfill)
		if err != nil {
			return err
		}
		if dryRun {
			return previewPlan(ctx, c, reg, p, days, stdout)
		}
		v, err := analysis.SavePlanWithin(ctx, reg, &p, c.Limits.Backfill)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "applied plan v%d for %s, in force from %s\n", v, p.Patient, p.Effective.UTC().Format("2006-01-02T15:04:05Z07:00"))
		return nil
	}

	plans, err := analysis.PlanHistory(ctx, reg, patient)
	if err != nil {
		return err
	}
	if len(plans) == 0 {
		return fmt.Errorf("plans show: patient %s has no plan", patient)
	}
	if !history {
		plans = plans[len(plans)-1:]
	}
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	for _, p := range plans {
		if err := enc.Encode(p); err != nil {
			return errors.Join(fmt.Errorf("plans show: %w", err), enc.Close())
		}
	}
	return enc.Close()
}

// previewPlan prints what plan p would have raised over the patient's last
// days, read from serve's InfluxDB, and saves nothing.
func previewPlan(ctx context.Context, c *server.Config, reg *registry.Registry, p analysis.Plan, days int, stdout io.Writer) error {
	if days < 1 || days > analysis.MaxPreviewDays {
		return usageError{fmt.Errorf("plans apply: --days must be 1 to %d", analysis.MaxPreviewDays)}
	}
	if _, err := reg.Patient(ctx, p.Patient); err != nil {
		return fmt.Errorf("plans apply: %w", err)
	}
	src := ingest.NewInflux(c.Influx)
	defer src.Close()
	pv, err := analysis.Preview(ctx, c.Analysis, reg, src, p, days, time.Now())
	if err != nil {
		return fmt.Errorf("plans apply --dry-run: %w", err)
	}
	fmt.Fprintf(stdout, "Plan for %s, tried over its last %d days (nothing saved):\n%s", p.Patient, days, pv.Text(c.Analysis.Location))
	return nil
}
