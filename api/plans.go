package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// Analysis is what the API asks of the analysis stage (analysis.Evaluator):
// it hears of every plan change, tells each rule's verdict now of the
// patients this instance judges (Owns: with several instances, the
// others' are read from the views their owners write in the registry),
// and tries a draft plan over the patient's last days.
type Analysis interface {
	PlanChanged(patientID string)
	Owns(patientID string) bool
	Verdicts(patientID string) []analysis.Verdict
	Preview(ctx context.Context, draft analysis.Plan, days int) (*analysis.PlanPreview, error)
}

// plan answers the newest version of the patient's plan (it may take
// effect in the future: effective says when).
func (a *API) plan(w http.ResponseWriter, r *http.Request) {
	plans, err := analysis.PlanHistory(r.Context(), a.reg, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(plans) == 0 {
		httpx.Error(w, http.StatusNotFound, "this patient has no plan yet")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, withWords(plans[len(plans)-1]))
}

// PlanInWords is a plan version with each regimen line and rule in words.
type PlanInWords struct {
	analysis.Plan
	RegimenWords []string          `json:"regimen_words"`
	RuleWords    map[string]string `json:"rule_words"`
}

func withWords(p analysis.Plan) PlanInWords {
	out := PlanInWords{Plan: p, RegimenWords: []string{}, RuleWords: map[string]string{}}
	for _, d := range p.Regimen {
		out.RegimenWords = append(out.RegimenWords, d.Words())
	}
	for i := range p.Rules {
		out.RuleWords[p.Rules[i].ID] = p.Rules[i].Words()
	}
	return out
}

// verdicts answers what each rule of the patient's plan says now: this
// instance's evaluator's answer when it judges the patient, otherwise what
// their owner last wrote.
func (a *API) verdicts(w http.ResponseWriter, r *http.Request) {
	vs, err := a.verdictsOf(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"verdicts": vs})
}

// viewVerdicts are the verdicts of a patient's view; none when they do
// not decode (the view is rewritten at the owner's next evaluation).
func viewVerdicts(v registry.PatientView) []analysis.Verdict {
	var vs []analysis.Verdict
	if err := json.Unmarshal(v.Verdicts, &vs); err != nil {
		return nil
	}
	return vs
}

func (a *API) planHistory(w http.ResponseWriter, r *http.Request) {
	plans, err := analysis.PlanHistory(r.Context(), a.reg, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"versions": plans})
}

// PlanProblems is the answer to a plan that fails validation: every
// problem, one sentence each.
type PlanProblems struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems"`
}

// putPlan stores the body as the patient's next plan version: 201 with the
// stored version, or 422 naming every problem.
func (a *API) putPlan(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, ok := a.readPlan(w, r, id)
	if !ok {
		return
	}
	if pt, err := a.reg.Patient(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	} else if !pt.Active() {
		httpx.Error(w, http.StatusConflict, "patient "+id+" is deactivated: reactivate them before changing their plan")
		return
	}
	_, err := analysis.SavePlanWithin(r.Context(), a.reg, &p, a.cfg.Backfill)
	var perr *analysis.PlanError
	switch {
	case errors.As(err, &perr):
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, PlanProblems{Error: "the plan has problems", Problems: perr.Problems})
		return
	case errors.Is(err, registry.ErrPlanOrder):
		httpx.Error(w, http.StatusConflict, "effective: "+err.Error())
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	if a.analysis != nil {
		a.analysis.PlanChanged(id)
	}
	httpx.WriteJSON(w, http.StatusCreated, withWords(p))
}

// readPlan reads the body as a plan of patient id, as analysis.ParsePlan
// reads a plan file (JSON is YAML): a body naming no patient is id's. It
// answers the request itself and returns false when the body is not a
// valid plan: 415 unless it is sent as application/json (or
// application/yaml), 413 over maxBodyBytes, 400 when it is not a plan at
// all or names another patient, and 422 naming every problem, those of
// decoding and of validation for the backfill horizon (Config.Backfill)
// at once.
func (a *API) readPlan(w http.ResponseWriter, r *http.Request, id string) (analysis.Plan, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && mt != "application/yaml") {
		httpx.Error(w, http.StatusUnsupportedMediaType, "body: send the plan as application/json (or application/yaml)")
		return analysis.Plan{}, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		httpx.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: a plan is at most %d KiB", maxBodyBytes>>10))
		return analysis.Plan{}, false
	case err != nil:
		httpx.Error(w, http.StatusBadRequest, "body: could not be read")
		return analysis.Plan{}, false
	}
	p, err := analysis.DecodePlan(data)
	var decodeErr *analysis.PlanError
	if err != nil && !errors.As(err, &decodeErr) {
		httpx.Error(w, http.StatusBadRequest, "body: "+err.Error())
		return analysis.Plan{}, false
	}
	if p.Patient == "" {
		p.Patient = id
	}
	if p.Patient != id {
		httpx.Error(w, http.StatusBadRequest, "patient: the plan names another patient than the URL")
		return analysis.Plan{}, false
	}
	var perr *analysis.PlanError
	if errors.As(analysis.JoinPlanErrors(err, p.ValidateWithin(a.cfg.Backfill)), &perr) {
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, PlanProblems{Error: "the plan has problems", Problems: perr.Problems})
		return analysis.Plan{}, false
	}
	return p, true
}

// transitions answers the changes of the patient's rules' verdicts, oldest
// first, after the id given as after; next_after pages on.
func (a *API) transitions(w http.ResponseWriter, r *http.Request) {
	after, err := intParam(r, "after", 0)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.reg.Transitions(r.Context(), r.PathValue("id"), after, int(limit))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	type item struct {
		ID int64 `json:"id"`
		analysis.Transition
	}
	out := make([]item, 0, len(ts))
	for _, t := range ts {
		var tr analysis.Transition
		if err := json.Unmarshal(t.Body, &tr); err != nil {
			a.fail(w, r, err)
			return
		}
		out = append(out, item{t.ID, tr})
	}
	doc := map[string]any{"transitions": out}
	if len(out) > 0 {
		doc["next_after"] = out[len(out)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, doc)
}
