// Package bench is `patientpulse bench`: one run on this machine that
// measures the pipeline next to the limits of the services it sits
// between, and prints one table (issue 7, items 3 and 5). Every phase
// starts its own Mosquitto and influxd (internal/services: free loopback
// ports, temporary directories), so bench never touches the user's
// services, and each phase starts from empty services:
//
//	(a) Mosquitto's own QoS 1 rate, publishers to a plain subscriber;
//	(b) InfluxDB's own write rate for (c)'s points, in the pipeline's
//	    line protocol and batches;
//	(c) the pipeline end to end: the same messages as (a), QoS 1 into
//	    serve (in process, package server, a fresh registry), stored,
//	    acknowledged, and counted in InfluxDB; then again, from fresh
//	    services, with --consoles clinicians' consoles on serve's
//	    websocket, each subscribed to its care team of
//	    --console-patients patients, so that every stored sample goes out
//	    to the console that watches its patient;
//	(d) publish-to-websocket alert latency under background load;
//	(e) analysis memory per 10,000 simulated patients (package simulate's
//	    cohort);
//	(f) the analysis evaluator's cold start: --cold-patients simulated
//	    patients with 90 days of history in InfluxDB, from the start to
//	    every patient judged, next to the per-patient path of a plan
//	    change on a sample of them.
//
// The Go benchmarks of this package run the same phases, sized by b.N.
//
// bench never fails on a time: it fails only on a fault (a service that
// cannot start, points or alerts lost, progress that stops for a minute),
// or when interrupted.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/internal/services"
)

// The workload's shape, shared by (a), (b) and (c).
const (
	samplesPerMessage = 10   // heart-rate samples per message
	inFlight          = 32   // QoS 1 publishes awaiting their PUBACK, per device
	batchPoints       = 5000 // (b): points per write, serve's --write-batch-points default
	writesInFlight    = 2    // (b): writes in flight, serve's --write-concurrency default
	historyDays       = 90   // (e): days of history each patient's analysis holds
	stuckAfter        = time.Minute
	maxPipePatients   = 10000 // (c): patients, and wearables, enrolled
	bucket            = "patientpulse"
)

// Targets of issue 7, item 5.
const (
	targetShare    = 0.70 // pipeline / min(broker, InfluxDB)
	targetP99      = 250.0
	targetLoad     = 1000
	targetMemMiB   = 50.0
	targetPatients = 10000
	targetColdSecs = 30.0 // issue 16, item 6: 10,000 patients with 90 days, all judged
)

// Settings are a run's sizes and options (bench's flags).
type Settings struct {
	Messages        int      // (a), (b), (c): messages of 10 heart-rate samples each
	Devices         int      // (a), (c): devices publishing at once, each its own MQTT client, in (c) for one or more wearables (see fleet)
	Load            int      // (d): background messages per second while alert latency is measured
	Alerts          int      // (d): alerts whose latency is measured, 50 a second
	Patients        int      // (e): simulated patients held by analysis (figures are scaled to 10,000)
	ColdPatients    int      // (f): simulated patients with 90 days of history, judged from a cold start
	Consoles        int      // (c): clinicians' consoles on /v1/ws in (c)'s second run; 0: no second run
	ConsolePatients int      // (c): each console's care team; with consoles, (c) has Consoles × ConsolePatients patients
	ServeArgs       []string // extra serve flags for (c) and (d)
	CPUProfile      string   // write a CPU profile of (c) to this file
	// Postgres, when set, is a Postgres server (a postgres:// URL of the
	// database to connect to for CREATE DATABASE): serve's registry in
	// (c) and (d) is then a fresh database on it, dropped after the phase,
	// instead of a SQLite file. (e) and (f) fill their registry once
	// before they measure and keep SQLite.
	Postgres string
}

// DefaultSettings are the sizes of a full run: about 20-30 s of (c) on a
// small machine, and the load and patients of the targets.
func DefaultSettings() Settings {
	return Settings{Messages: 200000, Devices: 8, Load: targetLoad, Alerts: 200, Patients: targetPatients, ColdPatients: targetPatients, Consoles: 50, ConsolePatients: 5}
}

// QuickSettings are small sizes, for a smoke test.
func QuickSettings() Settings {
	return Settings{Messages: 4000, Devices: 4, Load: 200, Alerts: 20, Patients: 500, ColdPatients: 100, Consoles: 20, ConsolePatients: 5}
}

// Validate reports every problem of s at once, the serve flags of
// ServeArgs among them, before anything starts.
func (s Settings) Validate() error {
	var problems []error
	if s.Devices < 1 || s.Devices > 1000 {
		problems = append(problems, errors.New("bench: --devices must be 1 to 1000"))
	}
	if s.Messages < max(s.Devices, s.Consoles*s.ConsolePatients) || s.Messages > 5_000_000 {
		problems = append(problems, errors.New("bench: --messages must be at least --devices and --consoles × --console-patients, and at most 5000000"))
	}
	if s.Load < 1 || s.Load > 100000 {
		problems = append(problems, errors.New("bench: --load must be 1 to 100000 messages a second"))
	}
	if s.Alerts < 1 || s.Alerts > 10000 {
		problems = append(problems, errors.New("bench: --alerts must be 1 to 10000"))
	}
	if s.Patients < 1 || s.Patients > 100000 {
		problems = append(problems, errors.New("bench: --patients must be 1 to 100000"))
	}
	if s.ColdPatients < 1 || s.ColdPatients > 40000 {
		// InfluxDB 1.8 takes at most 100,000 values of a tag (device: two a patient).
		problems = append(problems, errors.New("bench: --cold-patients must be 1 to 40000"))
	}
	if s.Consoles < 0 || s.Consoles > 1000 {
		problems = append(problems, errors.New("bench: --consoles must be 0 to 1000"))
	}
	if s.ConsolePatients < 1 || s.ConsolePatients > 1000 {
		problems = append(problems, errors.New("bench: --console-patients must be 1 to 1000"))
	} else if s.Consoles*s.ConsolePatients > maxPipePatients {
		problems = append(problems, fmt.Errorf("bench: --consoles × --console-patients must be at most %d", maxPipePatients))
	}
	if s.Postgres != "" && !strings.HasPrefix(s.Postgres, "postgres://") && !strings.HasPrefix(s.Postgres, "postgresql://") {
		problems = append(problems, errors.New("bench: --postgres must be a postgres:// URL"))
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	_, err := serveConfig(s.ServeArgs)
	return err
}

// Run runs every phase with s, checked by Validate, writing progress
// lines to progress, and returns the figures. On an error or when ctx
// ends, every service it started is stopped.
func Run(ctx context.Context, s Settings, progress io.Writer) (*Results, error) {
	b := &bencher{s: s, progress: progress}
	res, err := b.run(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("bench: interrupted; every service it started is stopped")
	}
	return res, err
}

// bencher is one run of bench.
type bencher struct {
	s        Settings
	progress io.Writer // progress lines
}

func (b *bencher) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// Results are the figures of one run; Print writes them.
type Results struct {
	started time.Time

	brokerMsgs, brokerSecs float64 // (a)
	influxMsgs, influxSecs float64 // (b), in messages' worth of points
	cpuA, cpuB             cpuUse
	pipe                   pipeFigures // (c)
	pipeConsoles           pipeFigures // (c) with --consoles consoles; zero without

	p50, p95, p99 float64 // (d), ms
	alerts        int
	loadAchieved  float64

	memPatients int // (e)
	memBytes    float64
	memSecs     float64

	cold coldFigures // (f)
}

// pipeFigures are the figures of one run of (c).
type pipeFigures struct {
	msgs, secs float64 // the end-to-end rate, over secs
	pubackMsgs float64 // how fast the broker took the messages
	counted    int64   // points counted in InfluxDB
	written    int64   // by serve's metric: more than counted when messages came twice
	cpu        cpuUse

	// The consoles, in a run with them.
	consoles     int     // connected before the first publish
	samples      int64   // sample messages they received, in all
	expected     int64   // their care teams' samples, in all
	complete     int     // consoles that received every sample of their care team
	evicted      int     // disconnected by serve for falling behind,
	firstEvicted float64 // the first this many seconds after the first publish,
	lastEvicted  float64 // and the last this many
	dropped      int     // disconnected otherwise
	consolesLag  float64 // seconds from the end of the window to the last sample on those left
	feedDropped  int64   // device messages whose samples serve's live feed dropped, by its metric
}

// run runs the phases in order; each stops what it started before the
// next begins, also on an error or an interruption.
func (b *bencher) run(ctx context.Context) (*Results, error) {
	res := &Results{started: time.Now()}
	// The services of (a) and (b) start together, so that a missing
	// binary is reported before anything is measured.
	sv, err := startServices(ctx, "")
	if err != nil {
		return nil, err
	}
	payloads := makeMessages(b.s.Messages, newFleet(b.s), time.Now())
	err = func() error {
		defer sv.close()
		if err := b.broker(ctx, sv, payloads, res); err != nil {
			return fmt.Errorf("bench (a) broker: %w", err)
		}
		if err := b.influxWrite(ctx, sv, res); err != nil {
			return fmt.Errorf("bench (b) InfluxDB: %w", err)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	if err := b.pipeline(ctx, payloads, res); err != nil {
		return nil, fmt.Errorf("bench (c) pipeline: %w", err)
	}
	payloads = nil
	if err := b.latency(ctx, res); err != nil {
		return nil, fmt.Errorf("bench (d) alert latency: %w", err)
	}
	if err := b.memory(ctx, res); err != nil {
		return nil, fmt.Errorf("bench (e) analysis memory: %w", err)
	}
	if err := b.coldStart(ctx, res); err != nil {
		return nil, fmt.Errorf("bench (f) cold start: %w", err)
	}
	return res, nil
}

// phaseServices are one phase's own Mosquitto and influxd, a directory
// for its serve's data, and its serve's registry.
type phaseServices struct {
	mq     *services.Mosquitto
	in     *services.Influx
	dir    string
	db     string       // the registry's dsn: <dir>/patientpulse.db, or a Postgres database of the phase's own
	dropDB func() error // removes db's Postgres database; nil for SQLite
}

// startServices starts a phase's services; with postgres (a server's URL,
// Settings.Postgres) its registry is a fresh database there.
func startServices(ctx context.Context, postgres string) (*phaseServices, error) {
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return nil, err
	}
	sv := &phaseServices{dir: dir, db: filepath.Join(dir, "patientpulse.db")}
	if postgres != "" {
		if sv.db, sv.dropDB, err = freshDatabase(ctx, postgres); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if sv.mq, err = services.StartMosquitto(); err != nil {
		sv.close()
		return nil, serviceError(err)
	}
	if sv.in, err = services.StartInflux(); err != nil {
		sv.close()
		return nil, serviceError(err)
	}
	return sv, nil
}

func serviceError(err error) error {
	if errors.Is(err, services.ErrMissingBinary) {
		return fmt.Errorf("bench runs its own Mosquitto and InfluxDB 1.8: %w\n%s", err, services.InstallHint)
	}
	return fmt.Errorf("bench: %w", err)
}

// close stops both services and removes their directories; calling it
// again does nothing.
func (s *phaseServices) close() {
	if s.mq != nil {
		s.mq.Stop()
	}
	if s.in != nil {
		s.in.Close()
	}
	if s.dropDB != nil {
		_ = s.dropDB() // a leftover database is harmless, and bench has nowhere to report it after its table
		s.dropDB = nil
	}
	os.RemoveAll(s.dir)
}
