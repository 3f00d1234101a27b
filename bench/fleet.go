package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// fleet is how a run spreads its messages, the same in (a), (b) and (c):
// conns MQTT clients (--devices) publish at once, each carrying in turn
// the messages of one or more wearables (enrolled devices, each with its
// own seq), and each wearable is a patient's. With consoles, (c) has one
// patient for each place in the consoles' care teams (--consoles ×
// --console-patients, care teams dealt round-robin), so that every
// patient is watched by one console and a console is sent its care
// team's samples only; without consoles, one patient a client.
type fleet struct {
	conns     int // MQTT clients publishing at once
	wearables int // wearable w publishes through client w % conns
	patients  int // wearable w is patient w % patients's
	consoles  int // care teams, of teamSize patients each: console i watches patients i, i+consoles, ...
	teamSize  int
}

// newFleet is the fleet of a run with s.
func newFleet(s Settings) fleet {
	f := fleet{conns: s.Devices, patients: s.Devices}
	if s.Consoles > 0 {
		f.consoles, f.teamSize, f.patients = s.Consoles, s.ConsolePatients, s.Consoles*s.ConsolePatients
	}
	f.wearables = max(f.conns, f.patients)
	return f
}

// onConn is how many wearables client d carries.
func (f fleet) onConn(d int) int { return (f.wearables - d + f.conns - 1) / f.conns }

// message is the wearable that sends client d's k-th message (counting
// from 0; the client's wearables take turns), and the message's seq,
// counting each wearable's messages from 1.
func (f fleet) message(d, k int) (wearable int, seq int64) {
	n := f.onConn(d)
	return d + k%n*f.conns, int64(k/n + 1)
}

// patientOf is the patient of wearable w.
func (f fleet) patientOf(w int) int { return w % f.patients }

// careTeam is the patients console i watches.
func (f fleet) careTeam(i int) []int {
	team := make([]int, f.teamSize)
	for j := range team {
		team[j] = i + j*f.consoles
	}
	return team
}

// consoleSamples counts the samples of each console's care team among n
// messages spread as makeMessages spreads them (patient p is in care
// team p % consoles).
func (f fleet) consoleSamples(n int) []int64 {
	counts := make([]int64, f.consoles)
	for i := range n {
		w, _ := f.message(i%f.conns, i/f.conns)
		counts[f.patientOf(w)%f.consoles] += samplesPerMessage
	}
	return counts
}

// deviceID and patientID name wearable or patient i of a phase's prefix.
func deviceID(prefix string, i int) string  { return fmt.Sprintf("%sd%d", prefix, i) }
func patientID(prefix string, i int) string { return fmt.Sprintf("%sp%d", prefix, i) }

// sampleAt is the time and heart rate of sample j of a client's k-th
// message: times step back 1ms from base, distinct on each client and so
// on each wearable.
func sampleAt(base time.Time, k, j int) (time.Time, float64) {
	return base.Add(-time.Duration(k*samplesPerMessage+j) * time.Millisecond), float64(55 + (k+j)%40)
}

// makeMessages builds n messages spread over the fleet's clients:
// payloads[d] holds client d's, its wearables' in turn, each with its
// wearable's seq. Sample times step back from a minute before now (and no
// device id is in a payload, so (a) and (c) send the very same bytes).
func makeMessages(n int, f fleet, now time.Time) [][][]byte {
	base := now.UTC().Add(-time.Minute).Truncate(time.Second)
	payloads := make([][][]byte, f.conns)
	var buf []byte
	for i := range n {
		d, k := i%f.conns, i/f.conns
		_, seq := f.message(d, k)
		buf = fmt.Appendf(buf[:0], `{"seq": %d, "samples": [`, seq)
		for j := range samplesPerMessage {
			if j > 0 {
				buf = append(buf, ", "...)
			}
			at, bpm := sampleAt(base, k, j)
			buf = fmt.Appendf(buf, `{"type": "heart_rate", "time": %q, "bpm": %.0f}`, at.Format(time.RFC3339Nano), bpm)
		}
		buf = append(buf, "]}"...)
		payloads[d] = append(payloads[d], slices.Clone(buf))
	}
	return payloads
}

// enrolDevices enrols, in the fresh registry at dsn, the fleet's patients
// <prefix>p0, ... and wearables <prefix>d0, ..., and returns the
// wearables' ids and tokens.
func enrolDevices(ctx context.Context, dsn, prefix string, f fleet) (ids, tokens []string, err error) {
	reg, err := registry.Open(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	defer reg.Close()
	for p := range f.patients {
		if err := reg.AddPatient(ctx, registry.Patient{ID: patientID(prefix, p)}); err != nil {
			return nil, nil, err
		}
	}
	for w := range f.wearables {
		id := deviceID(prefix, w)
		token, err := reg.EnrollDevice(ctx, id, patientID(prefix, f.patientOf(w)))
		if err != nil {
			return nil, nil, err
		}
		ids, tokens = append(ids, id), append(tokens, token)
	}
	return ids, tokens, nil
}

// clinician is a console's staff member: their API token and care team.
type clinician struct {
	token string
	team  []string // patient ids
}

// addClinicians adds, to the registry at dsn, a clinician for each of the
// fleet's consoles, bench-clinician0, ..., with their care team assigned,
// as `patientpulse staff add`, `staff assign` and `staff token` do.
func addClinicians(ctx context.Context, dsn, prefix string, f fleet) ([]clinician, error) {
	reg, err := registry.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	cs := make([]clinician, f.consoles)
	for i := range cs {
		username := fmt.Sprintf("bench-clinician%d", i)
		if cs[i].token, err = addStaff(ctx, reg, username, registry.RoleClinician); err != nil {
			return nil, err
		}
		for _, p := range f.careTeam(i) {
			id := patientID(prefix, p)
			if err := reg.AssignPatient(ctx, username, id); err != nil {
				return nil, err
			}
			cs[i].team = append(cs[i].team, id)
		}
	}
	return cs, nil
}
