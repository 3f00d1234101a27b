package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// digestZone is the clinic's time zone in the digest tests: not UTC, so
// that a digest hour taken as UTC would be noticed.
var digestZone = time.FixedZone("clinic", 2*3600)

// digestAt is a time of the clinic's zone, day days after 3 December 2026.
func digestAt(day, hour, minute int) time.Time {
	return time.Date(2026, 12, 3+day, hour, minute, 0, 0, digestZone)
}

// digestRig is a registry with clinicians and their care teams:
//
//   - bob (care team p-1, p-2): mail, digest at 08:00;
//   - carol (p-3): mail, no digest;
//   - dave (p-1): a digest at 08:00 but no mail address;
//   - erin (no patients): mail, digest at 08:00;
//
// and a digester over it whose clock the test sets.
type digestRig struct {
	t     *testing.T
	reg   *registry.Registry
	m     *alerts.Manager
	clock time.Time
	wakes int // calls of the digesters' wake
	key   int // for distinct alert keys
}

func newDigestRig(t *testing.T) *digestRig {
	t.Helper()
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	for _, p := range []string{"p-1", "p-2", "p-3"} {
		if err := reg.AddPatient(ctx, registry.Patient{ID: p, Name: "Name of " + p}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name, email string
		hour        int
		patients    []string
	}{
		{"bob", "bob@clinic.test", 8, []string{"p-1", "p-2"}},
		{"carol", "carol@clinic.test", -1, []string{"p-3"}},
		{"dave", "", 8, []string{"p-1"}},
		{"erin", "erin@clinic.test", 8, nil},
	} {
		if err := reg.AddStaff(ctx, s.name, registry.RoleClinician, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		for _, p := range s.patients {
			if err := reg.AssignPatient(ctx, s.name, p); err != nil {
				t.Fatal(err)
			}
		}
		c := registry.StaffContact{Username: s.name, Email: s.email, DigestHour: s.hour}
		if s.email == "" {
			c.NtfyURL = "https://ntfy.example/dave"
		}
		if err := reg.SetStaffContact(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &digestRig{t: t, reg: reg, m: alerts.NewManager(alerts.DefaultConfig(), reg, log, nil)}
}

// digester is a digester on the rig's clock, as a process starting now
// would have.
func (r *digestRig) digester() *Digester {
	d := NewDigester(r.m, digestZone, func() { r.wakes++ }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.now = func() time.Time { return r.clock }
	return d
}

// open stores an alert of patient opened at, in state, with the rule as
// its sentence too.
func (r *digestRig) open(patient, rule, severity, state string, at time.Time) {
	r.t.Helper()
	r.key++
	body, err := json.Marshal(map[string]any{"rule": rule, "sentence": "sentence of " + rule})
	if err != nil {
		r.t.Fatal(err)
	}
	row := registry.AlertRow{Patient: patient, Key: fmt.Sprintf("%s-%d", rule, r.key), State: state, Severity: severity,
		OpenedAt: at, UpdatedAt: at, Tier: -1, Body: body}
	if state == registry.AlertResolved {
		row.ResolvedAt, row.ResolvedBy = at.Add(time.Minute), "patientpulse"
	}
	if _, err := r.reg.OpenAlert(r.t.Context(), row, registry.AlertEvent{At: at, Kind: alerts.ChangeOpened}, nil); err != nil {
		r.t.Fatal(err)
	}
}

// digests returns the digests written, by delivery id.
func (r *digestRig) digests() map[string]Digest {
	r.t.Helper()
	ctx := r.t.Context()
	dels, err := r.reg.Deliveries(ctx, registry.DeliveryFilter{})
	if err != nil {
		r.t.Fatal(err)
	}
	evs, err := r.reg.OutboxEvents(ctx, 0, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]Digest{}
	for _, d := range dels {
		i := slices.IndexFunc(evs, func(e registry.OutboxEvent) bool { return e.ID == d.EventID })
		if i < 0 || evs[i].Kind != DigestKind || evs[i].AlertID != 0 {
			r.t.Fatalf("delivery %s is not of a digest", d.ID)
		}
		if d.Channel != ChannelEmail || d.Recipient != "bob" || d.Target != "bob@clinic.test" || d.State != registry.DeliveryPending {
			r.t.Errorf("delivery %+v, want a pending mail to bob@clinic.test", d)
		}
		var dg Digest
		if err := json.Unmarshal(evs[i].Body, &dg); err != nil {
			r.t.Fatal(err)
		}
		out[d.ID] = dg
	}
	return out
}

// digestRules returns the rules of a digest's alerts, in its order.
func digestRules(dg Digest) []string {
	var out []string
	for _, a := range dg.Alerts {
		out = append(out, a.Rule)
	}
	return out
}

// TestDigester: a day without warnings writes no digest; at 08:00 in the
// clinic's zone bob's digest is written, once, across checks and a
// restart, with the warnings of his care team's patients opened since
// 08:00 the day before, in any state, oldest first; nobody without a
// digest hour, a mail address or patients gets one; the next day's,
// looked for only late in the day (serve was down at 08:00), is written
// then with that day's warnings.
func TestDigester(t *testing.T) {
	t.Parallel()
	r := newDigestRig(t)
	ctx := t.Context()
	r.open("p-1", "before-window", analysis.SeverityWarning, registry.AlertFiring, digestAt(-1, 7, 59))
	r.open("p-1", "window-start", analysis.SeverityWarning, registry.AlertFiring, digestAt(-1, 8, 0))
	r.open("p-2", "resolved-since", analysis.SeverityWarning, registry.AlertResolved, digestAt(-1, 20, 0))
	r.open("p-1", "critical", analysis.SeverityCritical, registry.AlertFiring, digestAt(0, 1, 0))
	r.open("p-1", "info", analysis.SeverityInfo, registry.AlertFiring, digestAt(0, 2, 0))
	r.open("p-3", "carols-patient", analysis.SeverityWarning, registry.AlertFiring, digestAt(0, 3, 0))
	r.open("p-2", "acknowledged", analysis.SeverityWarning, registry.AlertAcknowledged, digestAt(0, 7, 59))
	r.open("p-1", "at-the-hour", analysis.SeverityWarning, registry.AlertFiring, digestAt(0, 8, 0))

	d := r.digester()
	r.clock = digestAt(-5, 9, 0)
	d.check(ctx)
	if got := r.digests(); len(got) != 0 || r.wakes != 0 {
		t.Fatalf("a quiet day: %d digests, %d wakes; want none", len(got), r.wakes)
	}
	r.clock = digestAt(0, 7, 59) // 05:59 UTC
	d.check(ctx)
	if got := r.digests(); len(got) != 0 || r.wakes != 0 {
		t.Fatalf("before the hour: %d digests, %d wakes; want none", len(got), r.wakes)
	}

	// Run looks at once.
	r.clock = digestAt(0, 8, 0)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- d.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.digests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := []string{"window-start", "resolved-since", "acknowledged"}
	got := r.digests()
	if dg, ok := got["digest-bob-2026-12-03"]; len(got) != 1 || !ok || dg.Username != "bob" || dg.Date != "2026-12-03" ||
		!slices.Equal(digestRules(dg), want) {
		t.Fatalf("digests at 08:00: %s, want bob's of 2026-12-03 with %q", describeDigests(got), want)
	}
	if r.wakes != 1 {
		t.Errorf("%d wakes, want 1", r.wakes)
	}
	if a := got["digest-bob-2026-12-03"].Alerts[0]; a.Patient != "p-1" || a.Sentence != "sentence of window-start" ||
		a.Severity != analysis.SeverityWarning {
		t.Errorf("digest's first alert %+v, want p-1's window-start warning with its sentence", a)
	}

	// Later checks, and a restarted process, write it no more.
	r.clock = digestAt(0, 8, 1)
	d.check(ctx)
	r.clock = digestAt(0, 23, 0)
	r.digester().check(ctx)
	if got := r.digests(); len(got) != 1 || r.wakes != 1 {
		t.Errorf("after more checks and a restart: %d digests, %d wakes; want 1 and 1", len(got), r.wakes)
	}

	// The next day's holds the day's warnings.
	r.open("p-2", "next-day", analysis.SeverityWarning, registry.AlertFiring, digestAt(1, 6, 0))
	r.clock = digestAt(1, 17, 30)
	r.digester().check(ctx)
	got = r.digests()
	if dg := got["digest-bob-2026-12-04"]; len(got) != 2 || !slices.Equal(digestRules(dg), []string{"at-the-hour", "next-day"}) {
		t.Errorf("digests on the next day: %s, want bob's of 2026-12-04 with at-the-hour and next-day", describeDigests(got))
	}
	if r.wakes != 2 {
		t.Errorf("%d wakes, want 2", r.wakes)
	}
}

// describeDigests says which rules each digest holds.
func describeDigests(ds map[string]Digest) string {
	var b strings.Builder
	for id, dg := range ds {
		fmt.Fprintf(&b, "%s for %s of %s: %q; ", id, dg.Username, dg.Date, digestRules(dg))
	}
	return b.String()
}
