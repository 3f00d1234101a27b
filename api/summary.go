package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// DeviceSummaries gives a patient's weekly summary of the newest closed
// week, as JSON (server.Summaries).
type DeviceSummaries interface {
	Current(ctx context.Context, patient string) ([]byte, error)
}

// deviceSummary answers the weekly summary of the patient whose device
// the bearer token is: the same as published to the device's summary
// topic, or made now when that week's is not published yet. 401 without
// a valid device token, 403 for a revoked device or a deactivated
// patient, 404 while the patient had no plan in force.
func (a *API) deviceSummary(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	dev, err := a.reg.DeviceByToken(ctx, httpx.Bearer(r))
	switch {
	case errors.Is(err, registry.ErrNotFound):
		w.Header().Set("WWW-Authenticate", `Bearer realm="patientpulse"`)
		httpx.Error(w, http.StatusUnauthorized, "a valid device token is required")
		return
	case err != nil:
		a.fail(w, r, err)
		return
	case !dev.Active():
		httpx.Error(w, http.StatusForbidden, "this device's enrolment is revoked")
		return
	}
	pt, err := a.reg.Patient(ctx, dev.PatientID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !pt.Active() {
		httpx.Error(w, http.StatusForbidden, "this device's patient is not monitored now")
		return
	}
	if a.cfg.Summaries == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "this server gives no summaries")
		return
	}
	body, err := a.cfg.Summaries.Current(ctx, dev.PatientID)
	if errors.Is(err, registry.ErrNotFound) {
		httpx.Error(w, http.StatusNotFound, "no summary yet: your clinic has not set your plan for last week")
		return
	}
	if err != nil {
		a.log.Error("device summary failed", "err", registry.Redact(err, dev.PatientID, dev.ID))
		httpx.Error(w, http.StatusServiceUnavailable, "cannot answer now: try again")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}
