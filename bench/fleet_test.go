package bench

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestFleet: the messages makeMessages builds are spread as (c) enrols
// and watches them: every wearable sends, its seqs run 1, 2, ... in the
// order its client publishes them, every patient has a wearable, and
// with consoles every patient is in exactly one care team of
// --console-patients, so that the care teams' samples are every sample.
func TestFleet(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		messages, devices         int
		consoles, consolePatients int
		wearables, patients       int
	}{
		{name: "default", messages: 20000, devices: 8, consoles: 50, consolePatients: 5, wearables: 250, patients: 250},
		{name: "quick", messages: 4000, devices: 4, consoles: 20, consolePatients: 5, wearables: 100, patients: 100},
		{name: "no consoles", messages: 1000, devices: 8, consolePatients: 5, wearables: 8, patients: 8},
		{name: "fewer patients than devices", messages: 1000, devices: 8, consoles: 1, consolePatients: 3, wearables: 8, patients: 3},
		{name: "one message a wearable", messages: 6, devices: 2, consoles: 3, consolePatients: 2, wearables: 6, patients: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{Messages: tc.messages, Devices: tc.devices, Consoles: tc.consoles, ConsolePatients: tc.consolePatients,
				Load: 1, Alerts: 1, Patients: 1, ColdPatients: 1}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			f := newFleet(s)
			if f.wearables != tc.wearables || f.patients != tc.patients {
				t.Fatalf("%d wearables of %d patients, want %d of %d", f.wearables, f.patients, tc.wearables, tc.patients)
			}
			payloads := makeMessages(tc.messages, f, time.Now())
			lastSeq := make([]int64, f.wearables)
			samples := make([]int64, f.patients)
			n := 0
			for d := range payloads {
				for k, p := range payloads[d] {
					var m struct {
						Seq     int64             `json:"seq"`
						Samples []json.RawMessage `json:"samples"`
					}
					if err := json.Unmarshal(p, &m); err != nil {
						t.Fatalf("client %d, message %d: %v: %s", d, k, err, p)
					}
					w, seq := f.message(d, k)
					if w%f.conns != d || seq != m.Seq || m.Seq != lastSeq[w]+1 {
						t.Fatalf("client %d, message %d: wearable %d (on client %d), seq %d in the payload, %d by message, after %d",
							d, k, w, w%f.conns, m.Seq, seq, lastSeq[w])
					}
					lastSeq[w] = m.Seq
					samples[f.patientOf(w)] += int64(len(m.Samples))
					n++
				}
			}
			if n != tc.messages {
				t.Errorf("%d messages, want %d", n, tc.messages)
			}
			if i := slices.Index(lastSeq, 0); i >= 0 {
				t.Errorf("wearable %d sends nothing", i)
			}
			if i := slices.Index(samples, 0); i >= 0 {
				t.Errorf("patient %d has no samples", i)
			}
			if tc.consoles == 0 {
				return
			}
			watched, reckoned := make([]int, f.patients), f.consoleSamples(tc.messages)
			for i := range tc.consoles {
				team := f.careTeam(i)
				if len(team) != tc.consolePatients {
					t.Errorf("console %d watches %d patients, want %d", i, len(team), tc.consolePatients)
				}
				var want int64
				for _, p := range team {
					watched[p]++
					want += samples[p]
				}
				if got := reckoned[i]; got != want {
					t.Errorf("console %d: %d samples reckoned, its care team's are %d", i, got, want)
				}
			}
			for p, n := range watched {
				if n != 1 {
					t.Errorf("patient %d is in %d care teams, want 1", p, n)
				}
			}
		})
	}
}
