package registry

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// copyFixture is what populate wrote besides rows: the secrets that read
// the registry back (shown once, never stored).
type copyFixture struct {
	deviceToken, staffToken, sessionID string
	purgedAlert                        int64 // the id of an alert purged before the copy
}

// populate fills r through its API with some of everything the registry
// keeps: every table of copyOrder has rows.
func populate(t *testing.T, r *Registry) copyFixture {
	t.Helper()
	ctx := WithActor(t.Context(), testActor)
	var f copyFixture
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for _, p := range []Patient{{ID: "p-1", Name: "Pat One"}, {ID: "P-2"}, {ID: "p-10", Name: "Zoë Ten"}} {
		must(r.AddPatient(ctx, p))
	}
	var err error
	f.deviceToken, err = r.EnrollDevice(ctx, "d-1", "p-1")
	must(err)
	_, err = r.EnrollDevice(ctx, "d-2", "P-2")
	must(err)
	must(r.RevokeDevice(ctx, "d-2"))
	must(r.AddStaff(ctx, "alice", RoleClinician, alicePassword))
	must(r.AddStaff(ctx, "bob", RoleOnCall, "nightly-pager-duty-7"))
	must(r.AssignPatient(ctx, "alice", "p-1"))
	must(r.AssignPatient(ctx, "alice", "p-10"))
	f.staffToken, err = r.IssueStaffToken(ctx, "alice", "laptop")
	must(err)
	f.sessionID, _, err = r.CreateSession(ctx, "alice", t0)
	must(err)
	must(r.SetStaffContact(ctx, StaffContact{Username: "bob", Email: "bob@example.org", DigestHour: 7}))
	_, err = r.ServerKey(ctx, "links", 32)
	must(err)
	_, err = r.AddPlanVersion(ctx, "p-1", t0, []byte(`{"rules":[]}`))
	must(err)
	_, err = r.AddPatientNote(ctx, "p-1", "Handover: recheck the patch site")
	must(err)
	_, err = r.SaveRota(ctx, "timezone: UTC\ntiers: []\n")
	must(err)
	must(r.AddProcedureType(ctx, ProcedureType{ID: "chemical_peel", Name: "Chemical peel", Category: "Skin", RecoveryDays: 7}))
	_, err = r.AddProcedure(ctx, Procedure{Patient: "p-1", Type: "chemical_peel", Status: ProcedurePlanned, At: t0})
	must(err)
	must(r.RecordSummary(ctx, "p-1", "2026-W48", []byte(`{"week":"2026-W48"}`)))
	_, err = r.AddPlanVersion(ctx, "p-1", t0.Add(24*time.Hour), []byte(`{"rules":[1]}`))
	must(err)
	must(r.RecordTransitions(ctx, "p-1", []Transition{
		{Rule: "sleep-short", Change: "raised", At: t0, Body: []byte(`{"v":1}`)},
		{Rule: "sleep-short", Change: "cleared", At: t0.Add(time.Hour), Body: []byte(`{"v":2}`)},
	}, map[string][]byte{"sleep-short": []byte(`{"state":"ok"}`)}))

	a := AlertRow{Patient: "p-1", Key: "sleep-short", State: AlertFiring, Severity: "warning", OpenedAt: t0, UpdatedAt: t0,
		Tier: -1, Body: []byte(`{"title":"short sleep"}`)}
	a.ID, err = r.OpenAlert(ctx, a, AlertEvent{At: t0, Kind: "opened", Body: []byte(`{"x":1}`)},
		outbox("opened", t0, pd("del-1", "bob", "key-b"), OutboxDelivery{ID: "del-2", Channel: "webhook"}))
	must(err)
	must(r.FinishAttempt(ctx, Attempt{Delivery: "del-1", AlertID: a.ID, Channel: "pagerduty", Event: "opened", Attempt: 1,
		At: t0.Add(time.Second), Status: 202, Outcome: "delivered"}, DeliveryDelivered, time.Time{}))
	prev := a.UpdatedAt
	a.UpdatedAt, a.State, a.AckedAt, a.AckedBy = t0.Add(time.Minute), AlertAcknowledged, t0.Add(time.Minute), "alice"
	must(r.UpdateAlert(ctx, a, prev, AlertEvent{At: a.AckedAt, Kind: "acknowledged", Actor: "alice", Note: "seen"},
		&AuditEntry{Action: ActionAlertAck, Patient: "p-1", Target: fmt.Sprintf("alert %d", a.ID)}, outbox("acknowledged", a.AckedAt)))
	_, err = r.AddOutbox(ctx, Outbox{Kind: "digest", At: t0, Body: []byte(`{}`),
		Deliveries: []OutboxDelivery{{ID: "digest-bob", Channel: "email", Recipient: "bob", Target: "bob@example.org"}}})
	must(err)
	// An alert resolved long ago and purged, the newest: its id must
	// stay used.
	old := AlertRow{Patient: "P-2", Key: "old", State: AlertFiring, Severity: "info", OpenedAt: t0.Add(-100 * 24 * time.Hour),
		UpdatedAt: t0.Add(-100 * 24 * time.Hour), Tier: -1, Body: []byte(`{}`)}
	f.purgedAlert, err = r.OpenAlert(ctx, old, AlertEvent{At: old.OpenedAt, Kind: "opened"}, nil)
	must(err)
	old.ID, old.State, old.ResolvedAt = f.purgedAlert, AlertResolved, old.OpenedAt.Add(time.Hour)
	prev = old.UpdatedAt
	old.UpdatedAt = old.ResolvedAt
	must(r.UpdateAlert(ctx, old, prev, AlertEvent{At: old.ResolvedAt, Kind: "resolved"}, nil, nil))
	purged, err := r.PurgeHistory(ctx, t0.Add(-24*time.Hour))
	must(err)
	if purged.Alerts != 1 {
		t.Fatalf("purged %d alerts, want the old one", purged.Alerts)
	}

	must(r.Audit(ctx, AuditEntry{Action: ActionSignIn, Actor: "alice", Address: "192.0.2.1", Target: "password", Outcome: OutcomeFailed}))
	return f
}

// registryView is what the Registry API reads of a populated registry.
type registryView struct {
	Patients       []Patient
	Devices        []Device
	Staff          []Staff
	Assigned       []string
	Plans          []PlanVersion
	Transitions    []Transition
	RuleStates     map[string][]byte
	Notes          []PatientNote
	Alerts         []AlertRow
	Events         map[int64][]AlertEvent
	Attempts       map[int64][]Attempt
	Deliveries     []OutboxDelivery
	Outbox         []OutboxEvent
	Contacts       map[string]StaffContact
	Key            []byte
	Audit          []AuditEntry
	ByDevice       Device
	ByStaffToken   Staff
	SessionOf      Staff
	Authenticated  Staff
	SignInFailures int
}

func readView(t *testing.T, r *Registry, f copyFixture) registryView {
	t.Helper()
	ctx := t.Context()
	var v registryView
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	var err error
	v.Patients, err = r.ListPatients(ctx)
	keep(err)
	v.Devices, err = r.ListDevices(ctx)
	keep(err)
	v.Staff, err = r.ListStaff(ctx)
	keep(err)
	v.Assigned, err = r.AssignedPatients(ctx, "alice")
	keep(err)
	v.Plans, err = r.PlanVersions(ctx, "p-1")
	keep(err)
	v.Transitions, err = r.Transitions(ctx, "p-1", 0, 100)
	keep(err)
	v.RuleStates, err = r.RuleStates(ctx, "p-1")
	keep(err)
	v.Notes, err = r.PatientNotes(ctx, "p-1")
	keep(err)
	v.Alerts, err = r.Alerts(ctx, AlertFilter{All: true})
	keep(err)
	v.Events, v.Attempts = map[int64][]AlertEvent{}, map[int64][]Attempt{}
	for _, a := range v.Alerts {
		v.Events[a.ID], err = r.AlertEvents(ctx, a.ID)
		keep(err)
		v.Attempts[a.ID], err = r.Attempts(ctx, a.ID)
		keep(err)
	}
	v.Deliveries, err = r.Deliveries(ctx, DeliveryFilter{})
	keep(err)
	v.Outbox, err = r.OutboxEvents(ctx, 0, 100)
	keep(err)
	v.Contacts, err = r.StaffContacts(ctx)
	keep(err)
	v.Key, err = r.ServerKey(ctx, "links", 32)
	keep(err)
	v.Audit, err = r.AuditEntries(ctx, AuditFilter{})
	keep(err)
	v.ByDevice, err = r.DeviceByToken(ctx, f.deviceToken)
	keep(err)
	v.ByStaffToken, err = r.StaffByToken(ctx, f.staffToken)
	keep(err)
	_, v.SessionOf, err = r.SessionByID(ctx, f.sessionID)
	keep(err)
	v.Authenticated, err = r.Authenticate(ctx, "alice", alicePassword)
	keep(err)
	v.SignInFailures, _, err = r.SignInFailures(ctx, "alice", "", time.Time{})
	keep(err)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCopyToPostgres copies a populated SQLite registry into a new
// Postgres database and reads both back through the Registry API: they
// must answer alike, and the copy must go on numbering where SQLite left
// off.
func TestCopyToPostgres(t *testing.T) {
	ctx := t.Context()
	from := filepath.Join(t.TempDir(), "pp.db")
	src, err := Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	f := populate(t, src)
	want := readView(t, src, f)
	wantCounts := map[string]int64{}
	for _, table := range copyOrder {
		var n int64
		if err := src.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("the fixture leaves table %s empty: the test would not see it copied", table)
		}
		wantCounts[table] = n
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	to := testservices.PostgresDB(t)
	copied, err := CopyToPostgres(ctx, from, to)
	if err != nil {
		t.Fatalf("CopyToPostgres: %v", err)
	}
	var tables []string
	for _, c := range copied {
		tables = append(tables, c.Table)
		if c.Rows != wantCounts[c.Table] {
			t.Errorf("copied %d rows of %s, want %d", c.Rows, c.Table, wantCounts[c.Table])
		}
	}
	if !slices.Equal(tables, copyOrder) {
		t.Errorf("copied tables %v, want %v", tables, copyOrder)
	}

	dst, err := Open(ctx, to, MustExist())
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got := readView(t, dst, f)
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s after the copy:\n got %+v\nwant %+v", gv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}

	// New rows number on past the copied ones, and past the purged alert.
	a := AlertRow{Patient: "P-2", Key: "new", State: AlertFiring, Severity: "info", OpenedAt: time.Now(), UpdatedAt: time.Now(),
		Tier: -1, Body: []byte(`{}`)}
	id, err := dst.OpenAlert(ctx, a, AlertEvent{At: a.OpenedAt, Kind: "opened"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id <= f.purgedAlert || id <= want.Alerts[0].ID {
		t.Errorf("new alert id %d, want above the copied %d and the purged %d", id, want.Alerts[0].ID, f.purgedAlert)
	}
	if err := dst.AddPatient(ctx, Patient{ID: "p-new"}); err != nil {
		t.Fatal(err)
	}
	es, err := dst.AuditEntries(ctx, AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Action != ActionPatientAdd || es[0].ID <= got.Audit[0].ID {
		t.Errorf("newest audit entry %+v, want patient.add numbered after the copied entries", es[0])
	}

	// The target is no longer empty: a second copy is refused whole.
	if _, err := CopyToPostgres(ctx, from, to); !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), "patients") {
		t.Errorf("second copy: %v, want ErrTargetNotEmpty naming a table", err)
	}
	if ps, err := dst.ListPatients(ctx); err != nil || len(ps) != len(want.Patients)+1 {
		t.Errorf("patients after the refused copy: %d (%v), want %d", len(ps), err, len(want.Patients)+1)
	}
}

// TestCopyToPostgresRefuses: the wrong kinds of source or target, and a
// missing source file, are refused before anything is written.
func TestCopyToPostgresRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, from, to, want string
	}{
		{name: "postgres source", from: "postgres://u@127.0.0.1/a", to: "postgres://u@127.0.0.1/b", want: "--from"},
		{name: "sqlite target", from: filepath.Join(dir, "a.db"), to: filepath.Join(dir, "b.db"), want: "--to"},
		{name: "missing source", from: filepath.Join(dir, "none.db"), to: "postgres://u:s3cret@127.0.0.1:1/b", want: "no registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CopyToPostgres(t.Context(), tt.from, tt.to)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CopyToPostgres(%s, %s) = %v, want an error containing %q", tt.from, tt.to, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q repeats a password", err)
			}
		})
	}
}

// TestCopyOrderCoversSchema: every table the schema makes is copied or
// left out on purpose, each once.
func TestCopyOrderCoversSchema(t *testing.T) {
	r, _ := openTest(t, sqliteBackend)
	tables, err := queryAll(t.Context(), r, "tables", `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`, nil, scanString)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, table := range tables {
		if !notCopied[table] {
			want = append(want, table)
		}
	}
	got := slices.Sorted(slices.Values(copyOrder))
	if !slices.Equal(got, want) {
		t.Errorf("copyOrder holds %v, want the schema's tables %v", got, want)
	}
}
