package notify

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// routeRig is a registry for routers with patient p-1 and, with staff,
// on-call staff alice (mail, ntfy, PagerDuty), bob (mail, PagerDuty),
// carol (no contact), dave (mail and PagerDuty, disabled) and erin
// (PagerDuty).
type routeRig struct {
	t   *testing.T
	reg *registry.Registry
	at  time.Time
}

// newRouteRig returns a rig, with its staff when staff is true (each
// member costs a password hash, seconds under -race).
func newRouteRig(t *testing.T, staff bool) *routeRig {
	t.Helper()
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := reg.AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	r := &routeRig{t: t, reg: reg, at: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	if !staff {
		return r
	}
	for _, c := range []registry.StaffContact{
		{Username: "alice", Email: "alice@example.org", NtfyURL: "https://ntfy.example/alice", PagerDutyKey: "key-alice"},
		{Username: "bob", Email: "bob@example.org", PagerDutyKey: "key-bob"},
		{Username: "carol"},
		{Username: "dave", Email: "dave@example.org", PagerDutyKey: "key-dave"},
		{Username: "erin", PagerDutyKey: "key-erin"},
	} {
		if err := reg.AddStaff(ctx, c.Username, registry.RoleOnCall, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		c.DigestHour = -1
		if c.Username != "carol" {
			if err := reg.SetStaffContact(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := reg.DisableStaff(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	return r
}

// routed lists deliveries as "channel recipient target", sorted.
func routed(ds []registry.OutboxDelivery) []string {
	out := []string{}
	for _, d := range ds {
		if d.ID != "" || d.State != "" {
			out = append(out, "unexpected id or state: "+d.ID+d.State)
		}
		out = append(out, d.Channel+" "+d.Recipient+" "+d.Target)
	}
	slices.Sort(out)
	return out
}

// routeAlert is an alert of p-1 stored in the registry, whose changes the
// router routes and the registry stores with their deliveries, as the
// alert manager does.
type routeAlert struct {
	rig    *routeRig
	router *Router
	row    registry.AlertRow
}

func (r *routeRig) open(router *Router, key, severity string) *routeAlert {
	r.t.Helper()
	r.at = r.at.Add(time.Second)
	a := &routeAlert{rig: r, router: router, row: registry.AlertRow{Patient: "p-1", Key: key, State: registry.AlertFiring,
		Severity: severity, OpenedAt: r.at, UpdatedAt: r.at, Tier: -1, Body: []byte("{}")}}
	ev := a.event(alerts.ChangeOpened, nil)
	ds, err := router.Route(r.t.Context(), ev)
	if err != nil {
		r.t.Fatal(err)
	}
	a.row.ID, err = r.reg.OpenAlert(r.t.Context(), a.row, registry.AlertEvent{At: r.at, Kind: ev.Change},
		&registry.Outbox{Kind: ev.Change, At: r.at, Body: []byte("{}"), Deliveries: ds})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (a *routeAlert) event(change string, onCall []string) alerts.Event {
	return alerts.Event{Change: change, At: a.rig.at, OnCall: onCall, Tier: "1",
		Alert: alerts.Alert{ID: a.row.ID, Patient: "p-1", Rule: a.row.Key, Severity: a.row.Severity, State: a.row.State}}
}

// change routes and stores a change of the alert, and returns its
// deliveries.
func (a *routeAlert) change(change string, onCall ...string) []string {
	a.rig.t.Helper()
	a.rig.at = a.rig.at.Add(time.Second)
	ds, err := a.router.Route(a.rig.t.Context(), a.event(change, onCall))
	if err != nil {
		a.rig.t.Fatal(err)
	}
	a.store(change, ds)
	return routed(ds)
}

// store stores a change of the alert with the deliveries ds.
func (a *routeAlert) store(change string, ds []registry.OutboxDelivery) {
	a.rig.t.Helper()
	prev := a.row.UpdatedAt
	a.row.UpdatedAt = a.rig.at
	err := a.rig.reg.UpdateAlert(a.rig.t.Context(), a.row, prev, registry.AlertEvent{At: a.rig.at, Kind: change}, nil,
		&registry.Outbox{Kind: change, At: a.rig.at, Body: []byte("{}"), Deliveries: ds})
	if err != nil {
		a.rig.t.Fatal(err)
	}
}

// TestRouteWebhook: the webhook hears of every change, or only of those
// its Events name; none without a URL.
func TestRouteWebhook(t *testing.T) {
	r := newRouteRig(t, false)
	hook := WebhookConfig{URL: "https://hooks.example/pp", Secret: "0123456789abcdef"}
	filtered := hook
	filtered.Events = []string{alerts.ChangeOpened, alerts.ChangeResolved}
	changes := []string{alerts.ChangeOpened, alerts.ChangeUpdated, alerts.ChangeSeverityRaised, alerts.ChangeAcknowledged,
		alerts.ChangeResolved, alerts.ChangeSnoozed, alerts.ChangeEscalated, alerts.ChangeSuppressed, alerts.ChangeUnsuppressed}
	for _, tt := range []struct {
		name string
		cfg  WebhookConfig
		want func(change string) bool
	}{
		{"every change", hook, func(string) bool { return true }},
		{"events", filtered, func(c string) bool { return c == alerts.ChangeOpened || c == alerts.ChangeResolved }},
		{"no URL", WebhookConfig{Events: []string{alerts.ChangeOpened}}, func(string) bool { return false }},
	} {
		router := NewRouter(r.reg, Routes{Webhook: tt.cfg, Mail: true})
		for _, change := range changes {
			for _, sev := range []string{analysis.SeverityInfo, analysis.SeverityCritical} {
				ds, err := router.Route(t.Context(), alerts.Event{Change: change, Alert: alerts.Alert{ID: 999, Patient: "p-1", Severity: sev}})
				if err != nil {
					t.Fatal(err)
				}
				want := []string{}
				if tt.want(change) {
					want = []string{"webhook  "}
				}
				if got := routed(ds); !slices.Equal(got, want) {
					t.Errorf("%s: %s %s routed to %q, want %q", tt.name, sev, change, got, want)
				}
			}
		}
	}
}

// TestRouteClinicChannels: the clinic-wide channels hear of changes by
// change and severity, as Router says: PagerDuty of a critical alert's
// pages and settlements, ntfy of warning and critical pages, Slack and
// Teams of warning and critical pages and settlements; and only the
// channels set up.
func TestRouteClinicChannels(t *testing.T) {
	r := newRouteRig(t, false)
	all := NewRouter(r.reg, Routes{Clinic: []string{ChannelPagerDuty, ChannelNtfy, ChannelSlack, ChannelTeams}, Mail: true})
	onlySlack := NewRouter(r.reg, Routes{Clinic: []string{ChannelSlack}, Mail: true})
	pages := map[string]bool{alerts.ChangeOpened: true, alerts.ChangeSeverityRaised: true, alerts.ChangeEscalated: true}
	settles := map[string]bool{alerts.ChangeAcknowledged: true, alerts.ChangeResolved: true}
	for _, change := range []string{alerts.ChangeOpened, alerts.ChangeUpdated, alerts.ChangeSeverityRaised, alerts.ChangeAcknowledged,
		alerts.ChangeResolved, alerts.ChangeSnoozed, alerts.ChangeEscalated, alerts.ChangeSuppressed, alerts.ChangeUnsuppressed} {
		for _, sev := range []string{analysis.SeverityInfo, analysis.SeverityWarning, analysis.SeverityCritical} {
			warns := sev != analysis.SeverityInfo
			want, wantSlack := []string{}, []string{}
			if sev == analysis.SeverityCritical && (pages[change] || settles[change]) {
				want = append(want, "pagerduty  ")
			}
			if warns && pages[change] {
				want = append(want, "ntfy  ")
			}
			if warns && (pages[change] || settles[change]) {
				want = append(want, "slack  ", "teams  ")
				wantSlack = append(wantSlack, "slack  ")
			}
			ev := alerts.Event{Change: change, Alert: alerts.Alert{ID: 999, Patient: "p-1", Severity: sev}}
			for _, c := range []struct {
				router *Router
				want   []string
			}{{all, want}, {onlySlack, wantSlack}} {
				ds, err := c.router.Route(t.Context(), ev)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(c.want)
				if got := routed(ds); !slices.Equal(got, c.want) {
					t.Errorf("%s %s routed to %q, want %q", sev, change, got, c.want)
				}
			}
		}
	}
}

// TestRouteStaff: an escalation pages each member on call in the tier
// on every channel of their contact, besides the clinic's channels;
// members without a contact and disabled ones are left out. An
// acknowledgement or resolution goes to each staff PagerDuty key paged
// for that alert, once each however often it was paged, to the key as
// paged, however many other deliveries the alert had since; not to keys
// paged for another alert, nor to mail or ntfy.
func TestRouteStaff(t *testing.T) {
	r := newRouteRig(t, true)
	t.Run("escalation", func(t *testing.T) {
		router := NewRouter(r.reg, Routes{Clinic: []string{ChannelPagerDuty}, Mail: true})
		a := r.open(router, "mrs", analysis.SeverityCritical)
		got := a.change(alerts.ChangeEscalated, "alice", "bob", "carol", "dave", "erin", "nobody")
		want := []string{
			"email alice alice@example.org", "ntfy alice https://ntfy.example/alice", "pagerduty alice key-alice",
			"email bob bob@example.org", "pagerduty bob key-bob",
			"pagerduty erin key-erin",
			"pagerduty  ", // the clinic's
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("escalation routed to\n%q\nwant\n%q", got, want)
		}
		if got := a.change(alerts.ChangeEscalated); !slices.Equal(got, []string{"pagerduty  "}) {
			t.Errorf("escalation to nobody routed to %q, want the clinic's PagerDuty alone", got)
		}
		// Without a mail server, addresses are not mailed.
		noMail := r.open(NewRouter(r.reg, Routes{}), "noise", analysis.SeverityCritical)
		if got, want := noMail.change(alerts.ChangeEscalated, "alice"), []string{"ntfy alice https://ntfy.example/alice", "pagerduty alice key-alice"}; !slices.Equal(got, want) {
			t.Errorf("escalation without a mail server routed to %q, want %q", got, want)
		}
		// A warning's escalation pages the staff too: escalation decides
		// who is paged, routing does not second-guess it.
		w := r.open(NewRouter(r.reg, Routes{Mail: true}), "sleep", analysis.SeverityWarning)
		if got := w.change(alerts.ChangeEscalated, "erin"); !slices.Equal(got, []string{"pagerduty erin key-erin"}) {
			t.Errorf("a warning's escalation to erin routed to %q, want erin's key", got)
		}
	})
	t.Run("settles", func(t *testing.T) {
		router := NewRouter(r.reg, Routes{Clinic: []string{ChannelPagerDuty}, Mail: true})
		a := r.open(router, "hr", analysis.SeverityCritical)
		b := r.open(router, "temp", analysis.SeverityCritical)
		a.change(alerts.ChangeEscalated, "alice", "erin")
		a.change(alerts.ChangeEscalated, "alice") // alice paged again
		b.change(alerts.ChangeEscalated, "bob")
		// However many deliveries on other channels came since (the
		// webhook hears of every update of a long-lived alert).
		r.at = r.at.Add(time.Second)
		hooks := make([]registry.OutboxDelivery, 1001)
		for i := range hooks {
			hooks[i] = registry.OutboxDelivery{Channel: ChannelWebhook}
		}
		a.store(alerts.ChangeUpdated, hooks)
		// alice's key changes after she was paged: the incident is under the old one.
		if err := r.reg.SetStaffContact(t.Context(), registry.StaffContact{Username: "alice", Email: "alice@example.org",
			PagerDutyKey: "key-alice-new", DigestHour: -1}); err != nil {
			t.Fatal(err)
		}
		want := []string{"pagerduty  ", "pagerduty alice key-alice", "pagerduty erin key-erin"}
		for _, change := range []string{alerts.ChangeAcknowledged, alerts.ChangeResolved} {
			if got := a.change(change); !slices.Equal(got, want) {
				t.Errorf("%s routed to %q, want %q", change, got, want)
			}
		}
		if got := b.change(alerts.ChangeAcknowledged); !slices.Equal(got, []string{"pagerduty  ", "pagerduty bob key-bob"}) {
			t.Errorf("the other alert's acknowledgement routed to %q, want the clinic's and bob's", got)
		}
		// An alert never escalated settles on the clinic's channel alone.
		c := r.open(router, "mood", analysis.SeverityCritical)
		if got := c.change(alerts.ChangeResolved); !slices.Equal(got, []string{"pagerduty  "}) {
			t.Errorf("resolution of an alert never escalated routed to %q, want the clinic's PagerDuty", got)
		}
		// Without the clinic's PagerDuty, the staff keys still hear.
		d := r.open(NewRouter(r.reg, Routes{Mail: true}), "spo2", analysis.SeverityCritical)
		d.change(alerts.ChangeEscalated, "erin")
		if got := d.change(alerts.ChangeAcknowledged); !slices.Equal(got, []string{"pagerduty erin key-erin"}) {
			t.Errorf("acknowledgement without the clinic's PagerDuty routed to %q, want erin's key", got)
		}
	})
}

// TestRouteRegistryError: a registry that cannot be read fails the route
// (the alert's change then fails with it) instead of paging nobody.
func TestRouteRegistryError(t *testing.T) {
	r := newRouteRig(t, false)
	router := NewRouter(r.reg, Routes{Mail: true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, change := range []string{alerts.ChangeEscalated, alerts.ChangeAcknowledged} {
		ev := alerts.Event{Change: change, OnCall: []string{"alice"}, Alert: alerts.Alert{ID: 1, Patient: "p-1", Severity: "critical"}}
		if ds, err := router.Route(ctx, ev); err == nil {
			t.Errorf("%s with the registry unreadable: %s, want an error", change, fmt.Sprint(routed(ds)))
		}
	}
}
