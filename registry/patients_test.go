package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAddPatient(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "taken", Name: "Jane Roe"}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			p       Patient
			wantErr error
		}{
			{name: "with name", p: Patient{ID: "p-001", Name: "Ada Lovelace"}},
			{name: "without name", p: Patient{ID: "p-002"}},
			{name: "duplicate", p: Patient{ID: "taken", Name: "Someone Else"}, wantErr: ErrExists},
			{name: "empty id", p: Patient{ID: ""}, wantErr: ErrInvalidID},
			{name: "id with slash", p: Patient{ID: "a/b"}, wantErr: ErrInvalidID},
			{name: "id with mqtt wildcard", p: Patient{ID: "p+"}, wantErr: ErrInvalidID},
			{name: "id too long", p: Patient{ID: strings.Repeat("p", 65)}, wantErr: ErrInvalidID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := r.AddPatient(ctx, tt.p)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("AddPatient(%q) = %v, want %v", tt.p.ID, err, tt.wantErr)
				}
				if err != nil {
					if tt.p.Name != "" && strings.Contains(err.Error(), tt.p.Name) {
						t.Errorf("error %q contains the patient's name", err)
					}
					return
				}
				got, err := r.Patient(ctx, tt.p.ID)
				if err != nil {
					t.Fatalf("Patient(%q): %v", tt.p.ID, err)
				}
				if got.ID != tt.p.ID || got.Name != tt.p.Name {
					t.Errorf("Patient(%q) = %+v, want id and name of %+v", tt.p.ID, got, tt.p)
				}
				if time.Since(got.CreatedAt) > time.Minute || got.CreatedAt.Location() != time.UTC {
					t.Errorf("CreatedAt = %v, want about now, in UTC", got.CreatedAt)
				}
			})
		}
		// The duplicate did not overwrite the original.
		if p, err := r.Patient(ctx, "taken"); err != nil || p.Name != "Jane Roe" {
			t.Errorf("Patient(taken) = %+v, %v; want the first patient unchanged", p, err)
		}
	})
}

func TestPatientCreatedAtRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		at := time.Date(2026, 11, 1, 9, 30, 15, 123456789, time.FixedZone("CET", 3600))
		if err := r.AddPatient(ctx, Patient{ID: "p-1", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		p, err := r.Patient(ctx, "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if !p.CreatedAt.Equal(at) {
			t.Errorf("CreatedAt = %v, want %v", p.CreatedAt, at)
		}
	})
}

func TestPatientNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		for _, id := range []string{"nobody", "", "not a valid id"} {
			_, err := r.Patient(t.Context(), id)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Patient(%q) = %v, want ErrNotFound", id, err)
			}
		}
	})
}

func TestListPatients(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		got, err := r.ListPatients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || len(got) != 0 {
			t.Errorf("ListPatients on an empty store = %#v, want an empty, non-nil slice", got)
		}
		for _, id := range []string{"p-10", "P-2", "p-02", "a"} {
			if err := r.AddPatient(ctx, Patient{ID: id, Name: "Name " + id}); err != nil {
				t.Fatal(err)
			}
		}
		got, err = r.ListPatients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range got {
			ids = append(ids, p.ID)
			if p.Name != "Name "+p.ID {
				t.Errorf("patient %s has name %q, want %q", p.ID, p.Name, "Name "+p.ID)
			}
		}
		if want := "P-2 a p-02 p-10"; strings.Join(ids, " ") != want {
			t.Errorf("ListPatients ids = %q, want %q (byte order)", strings.Join(ids, " "), want)
		}
	})
}

// TestEditAndDeactivatePatient: the name and contact change with an audit
// entry naming what changed, never the values; a patient with an active
// alert is not deactivated; deactivating revokes every active device
// (named in the audit), leaves the patient out of LatestPlanVersions, and
// reactivating brings them back with their devices still revoked.
func TestEditAndDeactivatePatient(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "p-1", Name: "Jane Roe", Contact: "jane@example.invalid"}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"w-1", "ph-1", "old-1"} {
			if _, err := r.EnrollDevice(ctx, d, "p-1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.RevokeDevice(ctx, "old-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddPlanVersion(ctx, "p-1", time.Now(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}

		if err := r.UpdatePatient(ctx, "p-1", "Jane Doe", "jane@example.invalid"); err != nil {
			t.Fatal(err)
		}
		if err := r.UpdatePatient(ctx, "p-1", "Jane Doe", "+44 20 7946 0000"); err != nil {
			t.Fatal(err)
		}
		if p, err := r.Patient(ctx, "p-1"); err != nil || p.Name != "Jane Doe" || p.Contact != "+44 20 7946 0000" || !p.Active() {
			t.Errorf("after the edits: %+v, %v", p, err)
		}
		for _, bad := range []struct{ name, contact string }{{"Jane\x1b[2J", ""}, {"Jane", "call\nme"}, {"Jane", strings.Repeat("x", MaxContactLen+1)}} {
			err := r.UpdatePatient(ctx, "p-1", bad.name, bad.contact)
			if !errors.Is(err, ErrInvalidName) || strings.Contains(err.Error(), "call") {
				t.Errorf("UpdatePatient(%q, %q) = %v, want ErrInvalidName not repeating it", bad.name, bad.contact, err)
			}
		}
		if err := r.UpdatePatient(ctx, "nobody", "A", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdatePatient of an unknown patient: %v", err)
		}
		edits, err := r.AuditEntries(ctx, AuditFilter{Action: ActionPatientEdit, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(edits) != 2 || edits[0].Target != "contact" || edits[1].Target != "name" {
			t.Errorf("the edits' audit entries: %+v, want name then contact, without their values", edits)
		}

		at := time.Now().UTC()
		row := AlertRow{Patient: "p-1", Key: "k", State: AlertFiring, Severity: "warning", OpenedAt: at, UpdatedAt: at, Tier: -1, Body: []byte("{}")}
		row.ID, err = r.OpenAlert(ctx, row, AlertEvent{At: at, Kind: "opened"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.DeactivatePatient(ctx, "p-1"); !errors.Is(err, ErrActiveAlerts) {
			t.Fatalf("deactivating a patient with a firing alert: %v, want ErrActiveAlerts", err)
		}
		if d, _ := r.Device(ctx, "w-1"); !d.Active() {
			t.Error("a refused deactivation revoked a device")
		}
		resolved := row
		resolved.State, resolved.ResolvedAt, resolved.UpdatedAt = AlertResolved, at.Add(time.Second), at.Add(time.Second)
		if err := r.UpdateAlert(ctx, resolved, row.UpdatedAt, AlertEvent{AlertID: row.ID, At: resolved.UpdatedAt, Kind: "resolved"}, nil, nil); err != nil {
			t.Fatal(err)
		}

		revoked, err := r.DeactivatePatient(ctx, "p-1")
		if err != nil || strings.Join(revoked, ",") != "ph-1,w-1" {
			t.Fatalf("DeactivatePatient = %v, %v; want ph-1 and w-1 revoked", revoked, err)
		}
		for _, d := range []string{"w-1", "ph-1"} {
			if dev, _ := r.Device(ctx, d); dev.Active() {
				t.Errorf("device %s is active after the deactivation", d)
			}
		}
		if p, _ := r.Patient(ctx, "p-1"); p.Active() || time.Since(p.DeactivatedAt) > time.Minute {
			t.Errorf("after the deactivation: %+v", p)
		}
		if latest, _ := r.LatestPlanVersions(ctx); len(latest) != 0 {
			t.Errorf("LatestPlanVersions lists a deactivated patient: %v", latest)
		}
		if _, err := r.DeactivatePatient(ctx, "p-1"); !errors.Is(err, ErrDisabled) {
			t.Errorf("deactivating twice: %v, want ErrDisabled", err)
		}
		entries, _ := r.AuditEntries(ctx, AuditFilter{Action: ActionPatientDeactivate, Limit: 10})
		if len(entries) != 1 || entries[0].Target != "ph-1,w-1" || entries[0].Patient != "p-1" {
			t.Errorf("the deactivation's audit entry: %+v", entries)
		}

		if err := r.ReactivatePatient(ctx, "p-1"); err != nil {
			t.Fatal(err)
		}
		if err := r.ReactivatePatient(ctx, "p-1"); !errors.Is(err, ErrExists) {
			t.Errorf("reactivating an active patient: %v, want ErrExists", err)
		}
		if err := r.ReactivatePatient(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("reactivating an unknown patient: %v, want ErrNotFound", err)
		}
		if latest, _ := r.LatestPlanVersions(ctx); latest["p-1"] != 1 {
			t.Errorf("after the reactivation LatestPlanVersions = %v", latest)
		}
		if d, _ := r.Device(ctx, "w-1"); d.Active() {
			t.Error("reactivating brought a revoked device back")
		}
	})
}
