package api

import (
	"fmt"
	"net/http"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/httpx"
)

// previewPlan tries the body, a draft of the patient's next plan version
// (as PUT takes it), over the patient's last `days` days (default 30, at
// most 90) of stored data, and answers what it would have raised, when,
// which days it could not judge, and what it says now; 422 names every
// problem of the draft, as PUT does. Nothing is stored.
func (a *API) previewPlan(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	days, err := intParam(r, "days", analysis.DefaultPreviewDays)
	if err == nil && (days < 1 || days > analysis.MaxPreviewDays) {
		err = fmt.Errorf("%w: days: want 1 to %d", errBadRequest, analysis.MaxPreviewDays)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, ok := a.readPlan(w, r, id)
	if !ok {
		return
	}
	if a.analysis == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "analysis is not running")
		return
	}
	pv, err := a.analysis.Preview(r.Context(), p, int(days))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, pv)
}

var _ Analysis = (*analysis.Evaluator)(nil)
