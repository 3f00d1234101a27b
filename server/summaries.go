package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Summaries makes patients' weekly summaries (analysis.Summarize) and
// publishes each to the patient's active devices, retained, on their
// summary topics (ingest.SummaryTopic); serve runs it so that each week's
// goes out once when it closes in the clinic's time zone, and
// `patientpulse summaries publish` whenever an admin asks.
type Summaries struct {
	Reg      *registry.Registry
	Src      analysis.Source
	Analysis analysis.Config
	MQTT     ingest.MQTTConfig
	// Owns says whether this instance publishes the patient's (the
	// evaluator's ownership); nil: every patient's.
	Owns func(patient string) bool
	Log  *slog.Logger
	Now  func() time.Time // nil: time.Now
}

func (s *Summaries) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Week is the newest week that has closed.
func (s *Summaries) Week() analysis.Week { return analysis.ClosedWeek(s.now(), s.Analysis.Location) }

// Current returns the patient's summary of the newest closed week: as it
// was published, or else made now.
func (s *Summaries) Current(ctx context.Context, patient string) ([]byte, error) {
	week := s.Week()
	body, _, err := s.Reg.Summary(ctx, patient, week.Name)
	if !errors.Is(err, registry.ErrNotFound) {
		return body, err
	}
	sum, err := analysis.Summarize(ctx, s.Analysis, s.Reg, s.Src, patient, week, s.now())
	if err != nil {
		return nil, err
	}
	return json.Marshal(sum)
}

// Published is what one Publish did.
type Published struct {
	Patients int // whose summary reached every active device of theirs
	Devices  int
	Skipped  int // active patients with a device but no plan in force at the week's end
	Failed   int // whose summary could not be made (the error says why, for the first)
}

// Publish makes week's summary of each of the patients (every active one
// with an active device when nil) and publishes it to each of their
// active devices, then records it as published. Patients without an
// active device are left out; so are those without a plan in force at
// the week's end, counted as Skipped. A patient whose summary cannot be
// made is counted as Failed, and the others are published all the same.
func (s *Summaries) Publish(ctx context.Context, week analysis.Week, patients []string) (Published, error) {
	devices, err := s.activeDevices(ctx)
	if err != nil {
		return Published{}, err
	}
	return s.publish(ctx, week, patients, devices)
}

func (s *Summaries) publish(ctx context.Context, week analysis.Week, patients []string, devices map[string][]string) (Published, error) {
	var out Published
	if patients == nil {
		for id := range devices {
			patients = append(patients, id)
		}
		slices.Sort(patients)
	}
	type made struct {
		patient string
		body    []byte
		msgs    int
	}
	var bodies []made
	var msgs []ingest.Retained
	var failed error
	for _, id := range patients {
		if len(devices[id]) == 0 {
			continue
		}
		sum, err := analysis.Summarize(ctx, s.Analysis, s.Reg, s.Src, id, week, s.now())
		if errors.Is(err, registry.ErrNotFound) {
			out.Skipped++
			continue
		}
		var body []byte
		if err == nil {
			body, err = json.Marshal(sum)
		}
		if err != nil {
			if out.Failed++; failed == nil {
				failed = fmt.Errorf("a patient's weekly summary: %s", registry.Redact(err, id))
			}
			continue
		}
		for _, d := range devices[id] {
			msgs = append(msgs, ingest.Retained{Topic: ingest.SummaryTopic(d), Payload: body})
		}
		bodies = append(bodies, made{id, body, len(devices[id])})
	}
	sent, err := ingest.PublishRetained(ctx, s.MQTT, msgs)
	for _, b := range bodies {
		if sent < b.msgs {
			break
		}
		sent -= b.msgs
		if rerr := s.Reg.RecordSummary(ctx, b.patient, week.Name, b.body); rerr != nil {
			return out, errors.Join(err, errors.New(registry.Redact(rerr, b.patient)))
		}
		out.Patients++
		out.Devices += b.msgs
	}
	if failed != nil {
		err = errors.Join(err, fmt.Errorf("%d summaries not made; %w", out.Failed, failed))
	}
	return out, err
}

// activeDevices returns the active devices of each active patient.
func (s *Summaries) activeDevices(ctx context.Context) (map[string][]string, error) {
	pts, err := s.Reg.ListPatients(ctx)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, p := range pts {
		active[p.ID] = p.Active()
	}
	devs, err := s.Reg.ListDevices(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, d := range devs {
		if d.Active() && active[d.PatientID] {
			out[d.PatientID] = append(out[d.PatientID], d.ID)
		}
	}
	return out, nil
}

// summaryCheck is how often Run looks for summaries still to publish.
const summaryCheck = time.Hour

// Run publishes the newest closed week's summaries of the patients this
// instance owns that are not yet published: at once, then every
// summaryCheck and when the week closes, until ctx ends. A failure is
// logged and tried again at the next check.
func (s *Summaries) Run(ctx context.Context) error {
	for {
		week := s.Week()
		if err := s.catchUp(ctx, week); err != nil && ctx.Err() == nil {
			s.Log.Warn("weekly summaries not published; trying again within the hour", "week", week.Name, "err", err)
		}
		wait := min(summaryCheck, week.Next().To.Sub(s.now()))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, time.Second)):
		}
	}
}

func (s *Summaries) catchUp(ctx context.Context, week analysis.Week) error {
	done, err := s.Reg.SummarisedPatients(ctx, week.Name)
	if err != nil {
		return err
	}
	devices, err := s.activeDevices(ctx)
	if err != nil {
		return err
	}
	var due []string
	for id := range devices {
		if !done[id] && (s.Owns == nil || s.Owns(id)) {
			due = append(due, id)
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.Sort(due)
	p, err := s.publish(ctx, week, due, devices)
	if p.Patients > 0 {
		s.Log.Info("weekly summaries published", "week", week.Name, "patients", p.Patients, "devices", p.Devices)
	}
	if err != nil {
		return fmt.Errorf("after %d patients: %w", p.Patients, err)
	}
	return nil
}
