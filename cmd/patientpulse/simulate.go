package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/patientpulse/patientpulse/server"
	"github.com/patientpulse/patientpulse/simulate"
)

// simulateCommand runs `patientpulse simulate` (package simulate): a
// cohort of virtual patients with their plans and devices. It sends
// --backfill of history as fast as the pipeline takes it, then goes on
// live, each device sending what its day brings every --interval. The
// same --seed sends the same data.
func simulateCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var o simulate.Options
	reg, c, err := adminSetup(ctx, "simulate", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.IntVar(&o.Patients, "patients", 12, "virtual patients (every persona appears in the first 10)")
		fs.DurationVar(&o.Backfill, "backfill", 30*24*time.Hour, "history sent at once, back from now (the plans take effect at its start)")
		fs.DurationVar(&o.Interval, "interval", time.Minute, "how often the devices send, live")
		fs.Uint64Var(&o.Seed, "seed", 1, "the same seed sends the same data")
		fs.StringVar(&o.URL, "url", "", "the pipeline's HTTP(S) base URL (default http://<http-addr>)")
		fs.StringVar(&o.Clinician, "clinician", "", "put every simulated patient in this clinician's care team")
		fs.BoolVar(&o.Once, "once", false, "send the backfill and stop")
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := o.Validate(c); err != nil {
		return usageError{err}
	}
	o.Enroll = server.Devices{Reg: reg, Config: c}.Enroll
	return simulate.Run(ctx, o, c, reg, stderr)
}
