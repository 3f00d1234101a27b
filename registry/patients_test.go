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
