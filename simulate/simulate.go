// Package simulate is `patientpulse simulate`: a virtual clinic, a cohort
// of patients (see personas) with their plans, each with a watch sending
// over MQTT and a phone app over HTTPS with its own credentials, against
// a running pipeline. bench reads the same cohort (PersonaIndex,
// PlanTemplate, History) to measure analysis's memory.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/examples"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

// Options are a simulation's own settings (simulate's flags).
type Options struct {
	Patients  int
	Backfill  time.Duration // history sent at once, back from now
	Interval  time.Duration // how often the devices send, live
	Seed      uint64        // the same seed sends the same data
	URL       string        // the pipeline's HTTP(S) base URL (default http://<http-addr>)
	Clinician string        // put every simulated patient in this clinician's care team
	Once      bool          // send the backfill and stop

	// Enroll enrols a device of patient and returns its token, as
	// `patientpulse devices enroll` does (with its broker account, where
	// the broker's accounts are patientpulse's).
	Enroll func(ctx context.Context, patient, device string) (token string, err error)
}

// Validate reports every problem of o and of the settings in c that a
// simulation uses, at once.
func (o Options) Validate(c *server.Config) error {
	var errs []error
	if o.Patients < 1 || o.Patients > 10000 || o.Backfill < 24*time.Hour || o.Interval < time.Second {
		errs = append(errs, errors.New("simulate: want 1 to 10000 patients, a backfill of at least 1 day (24h) and an interval of at least 1s"))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("timezone: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs a simulation, checked by Validate, with the registry reg and
// the pipeline's settings c (its data directory, broker, HTTP address
// and time zone): it enrols the cohort, sends o.Backfill of history as
// fast as the pipeline takes it, then goes on live, each device sending
// what its day brings every o.Interval, until ctx ends (or, with o.Once,
// once the history is sent). Progress goes to out.
func Run(ctx context.Context, o Options, c *server.Config, reg *registry.Registry, out io.Writer) error {
	if o.URL == "" {
		o.URL = "http://" + c.HTTPAddr
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	s := &simulation{args: o, reg: reg, cfg: c, loc: loc, out: out, http: &http.Client{Timeout: 30 * time.Second}}
	if err := s.enrol(ctx); err != nil {
		return err
	}
	defer s.disconnect()
	fmt.Fprintf(out, "simulate: %d patients enrolled; sending %s of history\n", o.Patients, o.Backfill)
	if err := s.send(ctx, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(out, "simulate: history sent (%d messages, %d samples)\n", s.messages, s.samples)
	if o.Once {
		return nil
	}
	fmt.Fprintf(out, "simulate: live, every %s; Ctrl-C stops\n", o.Interval)
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := s.send(ctx, now); err != nil && ctx.Err() == nil {
				fmt.Fprintf(out, "simulate: %v\n", err)
			}
		}
	}
}

// simulation is a running cohort.
type simulation struct {
	args     Options
	reg      *registry.Registry
	cfg      *server.Config
	loc      *time.Location
	out      io.Writer
	http     *http.Client
	patients []simPatient
	messages int
	samples  int
}

// simPatient is one virtual patient and their devices.
type simPatient struct {
	index     int
	persona   persona
	start     time.Time // the day the course (and the plan) began
	regimen   []simDose
	watch     mqtt.Client
	watchID   string
	appID     string
	appToken  string
	sentUntil time.Time // everything up to here is sent
	seq       int64
}

// enrol makes sure every virtual patient exists with their plan and their
// devices, whose tokens it keeps in <data-dir>/simulate/tokens.json (the
// registry keeps only hashes).
func (s *simulation) enrol(ctx context.Context) error {
	dir := filepath.Join(s.cfg.DataDir, "simulate")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tokensFile := filepath.Join(dir, "tokens.json")
	tokens := map[string]string{}
	if b, err := os.ReadFile(tokensFile); err == nil {
		if err := json.Unmarshal(b, &tokens); err != nil {
			return fmt.Errorf("simulate: %s: %w", tokensFile, err)
		}
	}
	save := func() error {
		b, _ := json.MarshalIndent(tokens, "", "  ")
		return os.WriteFile(tokensFile, b, 0o600)
	}
	start := time.Now().In(s.loc).Add(-s.args.Backfill)
	start = time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, s.loc)
	if err := s.catalogue(ctx); err != nil {
		return err
	}
	for i := range s.args.Patients {
		p := simPatient{index: i, persona: personaOf(i), watchID: simWatchID(i), appID: simAppID(i)}
		id := simPatientID(i)
		if err := s.reg.AddPatient(ctx, registry.Patient{ID: id, Name: patientName(i)}); err != nil && !errors.Is(err, registry.ErrExists) {
			return err
		}
		plans, err := analysis.PlanHistory(ctx, s.reg, id)
		if err != nil {
			return err
		}
		if len(plans) == 0 {
			data, err := examples.Plans.ReadFile("plans/" + p.persona.template)
			if err != nil {
				return err
			}
			plan, err := analysis.ParsePlan(data)
			if err != nil {
				return err
			}
			plan.Patient, plan.Effective = id, start
			if _, err := analysis.SavePlan(ctx, s.reg, &plan); err != nil {
				return err
			}
			plans = []analysis.Plan{plan}
			if raised, ok := raiseEstradiol(p.persona, plan, time.Now()); ok {
				if _, err := analysis.SavePlan(ctx, s.reg, &raised); err != nil {
					return err
				}
				plans = append(plans, raised)
			}
		}
		p.start = plans[0].Effective.In(s.loc)
		p.regimen = dosesOf(plans, s.loc)
		for _, dev := range []string{p.watchID, p.appID} {
			if tokens[dev] != "" {
				continue
			}
			if _, err := s.reg.Device(ctx, dev); err == nil {
				return fmt.Errorf("simulate: device %s is enrolled but its token is not in %s: remove the simulation's patients "+
					"(a fresh --data-dir) or that file's devices to start afresh", dev, tokensFile)
			}
			tok, err := s.args.Enroll(ctx, id, dev)
			if err != nil {
				return err
			}
			tokens[dev] = tok
			if err := save(); err != nil {
				return err
			}
		}
		if err := s.treatments(ctx, i, id); err != nil {
			return err
		}
		if s.args.Clinician != "" {
			if err := s.reg.AssignPatient(ctx, s.args.Clinician, id); err != nil {
				return err
			}
		}
		p.appToken = tokens[p.appID]
		opts := mqtt.NewClientOptions().AddBroker(s.cfg.MQTT.URL).SetClientID(p.watchID).SetCleanSession(true).
			SetUsername(p.watchID).SetPassword(tokens[p.watchID]).SetConnectTimeout(10 * time.Second)
		p.watch = mqtt.NewClient(opts)
		if tok := p.watch.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			return fmt.Errorf("simulate: watch %s cannot connect to the broker: %v", p.watchID, tok.Error())
		}
		p.sentUntil = p.start
		s.patients = append(s.patients, p)
	}
	return nil
}

// raiseEstradiol is the second version of a responding patient's plan:
// her clinician raised her estradiol two weeks in (from 0.05 to 0.075
// mg), so that "is the change working?" has a change to compare (her
// sleep goes on improving). None when that is less than a week ago.
func raiseEstradiol(who persona, first analysis.Plan, now time.Time) (analysis.Plan, bool) {
	raised := first
	raised.Version = 0
	raised.Effective = first.Effective.AddDate(0, 0, 14)
	raised.Regimen = slices.Clone(first.Regimen)
	i := slices.IndexFunc(raised.Regimen, func(d analysis.Dose) bool { return d.Medication == "estradiol" })
	if who.name != "responding" || i < 0 || raised.Effective.After(now.AddDate(0, 0, -7)) {
		return analysis.Plan{}, false
	}
	raised.Regimen[i].Amount *= 1.5
	return raised, true
}

// dosesOf is the regimen the app logs: each medication of the newest
// version, due by the schedule of each version in force (counted from
// its effective time, at 08:00), with the newest version's amount.
func dosesOf(plans []analysis.Plan, loc *time.Location) []simDose {
	var out []simDose
	for _, d := range plans[len(plans)-1].Regimen {
		med := d.Medication
		out = append(out, simDose{Medication: med, Route: d.Route, Unit: d.Unit, Amount: d.Amount,
			due: func(from, to time.Time) []time.Time {
				var due []time.Time
				for j, v := range plans {
					k := slices.IndexFunc(v.Regimen, func(d analysis.Dose) bool { return d.Medication == med })
					if k < 0 {
						continue
					}
					end := to
					if j+1 < len(plans) && plans[j+1].Effective.Before(end) {
						end = plans[j+1].Effective
					}
					begin := from
					if v.Effective.After(begin) {
						begin = v.Effective
					}
					due = append(due, v.Regimen[k].Schedule.Due(v.Effective.In(loc).Add(8*time.Hour), begin, end)...)
				}
				return due
			}})
	}
	return out
}

// simCatalogue is the simulated clinic's catalogue of procedures.
var simCatalogue = []registry.ProcedureType{
	{ID: "chemical_peel", Name: "Chemical peel", Category: "Skin", RecoveryDays: 7},
	{ID: "microneedling", Name: "Microneedling", Category: "Skin", RecoveryDays: 3},
	{ID: "laser_resurfacing", Name: "Laser resurfacing", Category: "Skin", RecoveryDays: 10},
	{ID: "pellet_insertion", Name: "Pellet insertion", Category: "Hormone delivery", RecoveryDays: 5},
	{ID: "review_visit", Name: "Review visit", Category: "Consultation", RecoveryDays: 0},
}

// catalogue gives the clinic simCatalogue, where it lacks an entry.
func (s *simulation) catalogue(ctx context.Context) error {
	for _, t := range simCatalogue {
		if err := s.reg.AddProcedureType(ctx, t); err != nil && !errors.Is(err, registry.ErrExists) {
			return err
		}
	}
	return nil
}

// treatments gives every third patient a chemical peel done ten days
// ago, and the next one a pellet insertion done three weeks ago,
// microneedling planned in six days and a chemical peel six days after it
// (which the menopause template's timing rule warns of); and the
// templates' follow-up review visit, done nine days ago, or for every
// fourth patient only planned in three days (so overdue). Once, for a
// patient with none.
func (s *simulation) treatments(ctx context.Context, i int, patient string) error {
	have, err := s.reg.Procedures(ctx, patient)
	if err != nil || len(have) > 0 {
		return err
	}
	now := time.Now().In(s.loc)
	at := func(days int) time.Time {
		d := now.AddDate(0, 0, days)
		return time.Date(d.Year(), d.Month(), d.Day(), 10, 30, 0, 0, s.loc)
	}
	var ps []registry.Procedure
	switch i % 3 {
	case 0:
		ps = append(ps, registry.Procedure{Type: "chemical_peel", Status: registry.ProcedureDone, At: at(-10), PerformedBy: "Dr Patel",
			Notes: "Superficial peel, well tolerated"})
	case 1:
		ps = append(ps,
			registry.Procedure{Type: "pellet_insertion", Status: registry.ProcedureDone, At: at(-21), PerformedBy: "Dr Lee"},
			registry.Procedure{Type: "microneedling", Status: registry.ProcedurePlanned, At: at(6), PerformedBy: "Dr Patel"},
			registry.Procedure{Type: "chemical_peel", Status: registry.ProcedurePlanned, At: at(12), PerformedBy: "Dr Patel"})
	}
	visit := registry.Procedure{Type: "review_visit", Status: registry.ProcedureDone, At: at(-9), PerformedBy: "Dr Lee"}
	if i%4 == 3 {
		visit.Status, visit.At = registry.ProcedurePlanned, at(3)
	}
	ps = append(ps, visit)
	for _, p := range ps {
		p.Patient = patient
		if _, err := s.reg.AddProcedure(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (s *simulation) disconnect() {
	for _, p := range s.patients {
		if p.watch != nil {
			p.watch.Disconnect(250)
		}
	}
}

// send sends every patient's samples from where they stopped up to now.
func (s *simulation) send(ctx context.Context, now time.Time) error {
	for i := range s.patients {
		p := &s.patients[i]
		today := dayIndex(p.start, now, s.loc)
		for d := dayIndex(p.start, p.sentUntil, s.loc); d <= today; d++ {
			dayStart := time.Date(p.start.Year(), p.start.Month(), p.start.Day()+d, 0, 0, 0, 0, s.loc)
			rng := rand.New(rand.NewPCG(s.args.Seed, uint64(p.index)<<32|uint64(d)))
			watch, app := p.persona.deviceDay(rng, d, today, dayStart, p.regimen)
			if err := s.sendWatch(ctx, p, due(watch, p.sentUntil, now)); err != nil {
				return err
			}
			if err := s.sendApp(ctx, p, due(app, p.sentUntil, now)); err != nil {
				return err
			}
		}
		p.sentUntil = now
	}
	return nil
}

// dayIndex is t's day of the course that began on start.
func dayIndex(start, t time.Time, loc *time.Location) int {
	a, b := start.In(loc), t.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}

// due keeps the samples in (after, upTo].
func due(samples []timed, after, upTo time.Time) []timed {
	var out []timed
	for _, t := range samples {
		if t.at.After(after) && !t.at.After(upTo) {
			out = append(out, t)
		}
	}
	return out
}

// sendWatch publishes the watch's samples over MQTT, QoS 1, 100 a message.
func (s *simulation) sendWatch(ctx context.Context, p *simPatient, samples []timed) error {
	for len(samples) > 0 {
		n := min(len(samples), 100)
		p.seq++
		tok := p.watch.Publish("pp/v1/devices/"+p.watchID+"/data", 1, false, envelope(time.Now().UnixMilli()+p.seq, samples[:n]))
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			return fmt.Errorf("simulate: watch %s: no PUBACK: %v", p.watchID, tok.Error())
		}
		s.messages, s.samples = s.messages+1, s.samples+n
		samples = samples[n:]
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// sendApp posts the app's samples over HTTPS, 50 a request, in the
// formats appRequests picks, waiting as the pipeline asks (429 and 503
// with Retry-After).
func (s *simulation) sendApp(ctx context.Context, p *simPatient, samples []timed) error {
	var reqs []request
	reqs, p.seq = appRequests(p.seq, samples)
	for _, r := range reqs {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.args.URL, "/")+r.path, bytes.NewReader(r.body))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+p.appToken)
			req.Header.Set("Content-Type", r.contentType)
			resp, err := s.http.Do(req)
			if err != nil {
				return fmt.Errorf("simulate: app %s: %w", p.appID, err)
			}
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				select {
				case <-time.After(time.Duration(max(wait, 1)) * time.Second):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("simulate: app %s: %s %s answered %d: %.300s", p.appID, r.contentType, r.path, resp.StatusCode, answer)
			}
			break
		}
		s.messages, s.samples = s.messages+1, s.samples+r.samples
	}
	return nil
}
