package api

import (
	"net/http"
	"time"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// audit answers the audit log, newest first, filtered by the query's
// actor, patient, action (or a prefix such as "staff."), outcome, since
// and until (RFC 3339), and paged with limit and before: next_before, when
// present, is the before of the next page. The read is itself recorded.
func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := registry.AuditFilter{Actor: q.Get("actor"), Patient: q.Get("patient"), Action: q.Get("action"), Outcome: q.Get("outcome")}
	var err error
	if f.Since, err = timeParam(r, "since", time.Time{}); err != nil {
		a.fail(w, r, err)
		return
	}
	if f.Until, err = timeParam(r, "until", time.Time{}); err != nil {
		a.fail(w, r, err)
		return
	}
	if f.Limit, f.Before, err = page(r, registry.MaxAuditPage); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if err := a.reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionAuditRead, Patient: f.Patient}); err != nil {
		a.fail(w, r, err)
		return
	}
	entries, err := a.reg.AuditEntries(ctx, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := map[string]any{"entries": entries}
	if len(entries) == f.Limit {
		out["next_before"] = entries[len(entries)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
