package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestProcedures: the catalogue takes good entries only; a patient's
// procedure needs a catalogued type, a status and a time; planned, then
// done; listed oldest first; every change audited, by its status.
func TestProcedures(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := WithActor(t.Context(), Actor{Name: "dr-lee"})
		if err := r.AddPatient(ctx, Patient{ID: "p-1"}); err != nil {
			t.Fatal(err)
		}
		peel := ProcedureType{ID: "chemical_peel", Name: "Chemical peel", Category: "Skin", RecoveryDays: 7}
		if err := r.AddProcedureType(ctx, peel); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []ProcedureType{
			{ID: "chemical_peel", Name: "Again"},
			{ID: "no name"},
			{ID: "pellet", Name: "Pellet", RecoveryDays: 400},
			{ID: "laser", Name: "Laser\x1b[2J"},
		} {
			if err := r.AddProcedureType(ctx, bad); err == nil {
				t.Errorf("AddProcedureType(%+v) succeeded", bad)
			}
		}
		if types, err := r.ProcedureTypes(ctx); err != nil || len(types) != 1 || types[0] != peel {
			t.Errorf("ProcedureTypes = %+v, %v", types, err)
		}

		at := time.Date(2026, 12, 10, 9, 30, 0, 0, time.UTC)
		for _, bad := range []Procedure{
			{Patient: "p-1", Type: "laser", Status: ProcedurePlanned, At: at},
			{Patient: "p-1", Type: "chemical_peel", Status: "maybe", At: at},
			{Patient: "p-1", Type: "chemical_peel", Status: ProcedurePlanned},
			{Patient: "p-1", Type: "chemical_peel", Status: ProcedurePlanned, At: at, Notes: "bad\x00note"},
		} {
			if _, err := r.AddProcedure(ctx, bad); err == nil || !errors.Is(err, ErrInvalidProcedure) && !errors.Is(err, ErrInvalidNote) {
				t.Errorf("AddProcedure(%+v) = %v, want it refused", bad, err)
			}
		}
		later, err := r.AddProcedure(ctx, Procedure{Patient: "p-1", Type: "chemical_peel", Status: ProcedurePlanned, At: at, PerformedBy: "Dr Lee", Notes: "  after the patch change  "})
		if err != nil || later.ID == 0 || later.Notes != "after the patch change" || later.RecordedBy != "dr-lee" {
			t.Fatalf("AddProcedure = %+v, %v", later, err)
		}
		earlier, err := r.AddProcedure(ctx, Procedure{Patient: "p-1", Type: "chemical_peel", Status: ProcedureDone, At: at.Add(-30 * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		done, err := r.UpdateProcedure(ctx, "p-1", later.ID, func(p *Procedure) { p.Status = ProcedureDone })
		if err != nil || done.Status != ProcedureDone || done.Notes != "after the patch change" || !done.At.Equal(at) {
			t.Errorf("UpdateProcedure = %+v, %v", done, err)
		}
		if _, err := r.UpdateProcedure(ctx, "p-2", later.ID, func(p *Procedure) {}); !errors.Is(err, ErrNotFound) {
			t.Errorf("another patient's procedure: %v, want ErrNotFound", err)
		}
		if _, err := r.UpdateProcedure(ctx, "p-1", later.ID, func(p *Procedure) { p.Status = "gone" }); !errors.Is(err, ErrInvalidProcedure) {
			t.Errorf("a bad status: %v", err)
		}
		ps, err := r.Procedures(ctx, "p-1")
		if err != nil || len(ps) != 2 || ps[0].ID != earlier.ID || ps[1].Status != ProcedureDone {
			t.Errorf("Procedures = %+v, %v; want the earlier first, the later done", ps, err)
		}
		entries, _ := r.AuditEntries(ctx, AuditFilter{Action: "procedure.", Limit: 10})
		var got []string
		for _, e := range entries {
			got = append(got, e.Action+" "+e.Target)
		}
		if len(got) != 4 || !strings.Contains(got[0], "(done)") || got[3] != "procedure.type chemical_peel" {
			t.Errorf("the audit entries: %q", got)
		}
	})
}
