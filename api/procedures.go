package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// ProcedureType is an entry of the clinic's catalogue of procedures.
type ProcedureType struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Category     string `json:"category"`
	RecoveryDays int    `json:"recovery_days"`
}

// Procedure is one of a patient's procedures, planned or done.
type Procedure struct {
	ID          int64     `json:"id"`
	Type        string    `json:"type"`
	Status      string    `json:"status"` // planned, done or cancelled
	At          time.Time `json:"at"`
	PerformedBy string    `json:"performed_by"`
	Notes       string    `json:"notes"`
	RecordedBy  string    `json:"recorded_by"`
	RecordedAt  time.Time `json:"recorded_at"`
	// Warnings, in the answer to recording or changing it: what the
	// timing rules of the patient's plan say of it (a peel planned within
	// 14 days of a pellet), one sentence each.
	Warnings []string `json:"warnings,omitempty"`
}

func procedureOf(p registry.Procedure) Procedure {
	return Procedure{ID: p.ID, Type: p.Type, Status: p.Status, At: p.At, PerformedBy: p.PerformedBy, Notes: p.Notes,
		RecordedBy: p.RecordedBy, RecordedAt: p.RecordedAt}
}

func (a *API) procedureTypes(w http.ResponseWriter, r *http.Request) {
	ts, err := a.reg.ProcedureTypes(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]ProcedureType, 0, len(ts))
	for _, t := range ts {
		out = append(out, ProcedureType(t))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"types": out})
}

func (a *API) addProcedureType(w http.ResponseWriter, r *http.Request) {
	var req ProcedureType
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reg.AddProcedureType(r.Context(), registry.ProcedureType(req)); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, req)
}

func (a *API) procedures(w http.ResponseWriter, r *http.Request) {
	ps, err := a.reg.Procedures(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Procedure, 0, len(ps))
	for _, p := range ps {
		out = append(out, procedureOf(p))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"procedures": out})
}

// procedureChange is the body that records or changes a procedure; in a
// change, what is absent stays.
type procedureChange struct {
	Type        string     `json:"type"`
	Status      *string    `json:"status"`
	At          *time.Time `json:"at"`
	PerformedBy *string    `json:"performed_by"`
	Notes       *string    `json:"notes"`
}

func (c procedureChange) apply(p *registry.Procedure) {
	if c.Status != nil {
		p.Status = *c.Status
	}
	if c.At != nil {
		p.At = c.At.UTC()
	}
	if c.PerformedBy != nil {
		p.PerformedBy = *c.PerformedBy
	}
	if c.Notes != nil {
		p.Notes = *c.Notes
	}
}

// addProcedure records a procedure of the patient, planned or done.
func (a *API) addProcedure(w http.ResponseWriter, r *http.Request) {
	var req procedureChange
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := a.reg.Patient(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	p := registry.Procedure{Patient: id, Type: req.Type}
	req.apply(&p)
	saved, err := a.reg.AddProcedure(r.Context(), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, a.procedureChanged(r.Context(), saved))
}

// procedureChanged has the patient's timing rules judged again, and
// answers the procedure with what they say of it now. The procedure is
// recorded whatever they say: it is the clinician's call, warned.
func (a *API) procedureChanged(ctx context.Context, p registry.Procedure) Procedure {
	if a.analysis != nil {
		a.analysis.PlanChanged(p.Patient)
	}
	out := procedureOf(p)
	if p.Status == registry.ProcedureCancelled {
		return out
	}
	warnings, err := analysis.TimingConflicts(ctx, a.reg, p.Patient, p.ID, a.location(), a.now())
	if err != nil {
		// The procedure is recorded; the warnings are on the patient's page.
		a.log.Warn("api: judging a procedure's timing failed", "err", registry.Redact(err, p.Patient))
	}
	out.Warnings = warnings
	return out
}

// changeProcedure marks a procedure done or cancelled, or moves it.
func (a *API) changeProcedure(w http.ResponseWriter, r *http.Request) {
	var req procedureChange
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	pid, err := strconv.ParseInt(r.PathValue("pid"), 10, 64)
	if err != nil || req.Type != "" {
		a.fail(w, r, fmt.Errorf("%w: a procedure's id is a number, and its type stays", errBadRequest))
		return
	}
	saved, err := a.reg.UpdateProcedure(r.Context(), r.PathValue("id"), pid, req.apply)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.procedureChanged(r.Context(), saved))
}
