package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/patientpulse/patientpulse/bench"
)

// benchCommand runs `patientpulse bench` (package bench) and prints its
// table.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := bench.DefaultSettings()
	var quick bool
	var serveArgs string
	fs := flag.NewFlagSet("patientpulse bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.Messages, "messages", s.Messages, "(a), (b), (c): messages of 10 heart-rate samples each (default: about 20-30 s for the pipeline here)")
	fs.IntVar(&s.Devices, "devices", s.Devices, "(a), (c): devices publishing at once, each its own MQTT client (in (c) for one or more wearables)")
	fs.IntVar(&s.Load, "load", s.Load, "(d): background messages per second while alert latency is measured")
	fs.IntVar(&s.Alerts, "alerts", s.Alerts, "(d): alerts whose latency is measured, 50 a second")
	fs.IntVar(&s.Patients, "patients", s.Patients, "(e): simulated patients held by analysis (figures are scaled to 10,000)")
	fs.IntVar(&s.ColdPatients, "cold-patients", s.ColdPatients, "(f): simulated patients with 90 days of history in InfluxDB, judged from the evaluator's cold start (writing 10,000 patients' history takes about 4 minutes here)")
	fs.IntVar(&s.Consoles, "consoles", s.Consoles, "(c): run (c) again with this many clinicians' consoles on /v1/ws, each subscribed to its care team, and report both rates (0: not)")
	fs.IntVar(&s.ConsolePatients, "console-patients", s.ConsolePatients, "(c): patients in each console's care team; (c) has --consoles × this many patients, each watched by one console")
	fs.BoolVar(&quick, "quick", false, "small sizes, for a smoke test (flags given explicitly still win)")
	fs.StringVar(&serveArgs, "serve-args", "", "extra serve flags for (c) and (d), space-separated, e.g. \"--write-concurrency=4\"")
	fs.StringVar(&s.Postgres, "postgres", "", "run (c) and (d)'s serve on a Postgres registry: a fresh database each on this server (postgres://user@host:port/postgres), dropped after; default SQLite")
	fs.StringVar(&s.CPUProfile, "cpuprofile", "", "write a CPU profile of (c), the pipeline end to end, both runs, to this file (pprof labels role=serve|devices|consoles, consoles=none|connected)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: patientpulse bench [flags]\n\n"+
			"Measures, on this machine and against its own Mosquitto and influxd, the broker's and InfluxDB's own\n"+
			"rates, the pipeline's end-to-end rate (without and with websocket consoles), alert latency under load,\n"+
			"analysis memory and analysis's cold start, and prints one table.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))}
	}
	if quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		q := bench.QuickSettings()
		for _, f := range []struct {
			name       string
			v          *int
			quickValue int
		}{{"messages", &s.Messages, q.Messages}, {"devices", &s.Devices, q.Devices}, {"load", &s.Load, q.Load},
			{"alerts", &s.Alerts, q.Alerts}, {"patients", &s.Patients, q.Patients}, {"cold-patients", &s.ColdPatients, q.ColdPatients}, {"consoles", &s.Consoles, q.Consoles},
			{"console-patients", &s.ConsolePatients, q.ConsolePatients}} {
			if !set[f.name] {
				*f.v = f.quickValue
			}
		}
	}
	s.ServeArgs = strings.Fields(serveArgs)
	if err := s.Validate(); err != nil {
		return usageError{err}
	}
	res, err := bench.Run(ctx, s, stderr)
	if err != nil {
		return err
	}
	res.Print(stdout, s)
	return nil
}
