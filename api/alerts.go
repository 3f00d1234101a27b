package api

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// alertPatient finds the patient of the route's alert ({aid}).
func (a *API) alertPatient(r *http.Request) (string, error) {
	id, err := strconv.ParseInt(r.PathValue("aid"), 10, 64)
	if err != nil {
		return "", registry.ErrNotFound
	}
	row, err := a.reg.AlertByID(r.Context(), id)
	return row.Patient, err
}

// listAlerts answers the alerts the caller may see, newest first,
// filtered by state (comma-separated), severity and patient. Each patient
// whose alerts are shown gets an audit entry.
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := auth.FromContext(ctx)
	q := r.URL.Query()
	f := registry.AlertFilter{Patient: q.Get("patient"), Severity: q.Get("severity")}
	for _, s := range strings.Split(q.Get("state"), ",") {
		if s == "" {
			continue
		}
		if !slices.Contains([]string{registry.AlertFiring, registry.AlertAcknowledged, registry.AlertResolved, registry.AlertSuppressed}, s) {
			httpx.Error(w, http.StatusBadRequest, "state: want firing, acknowledged, resolved or suppressed (comma-separated)")
			return
		}
		f.States = append(f.States, s)
	}
	var err error
	if f.Limit, f.Before, err = page(r, 1000); err != nil {
		a.fail(w, r, err)
		return
	}
	scope, err := a.auth.Scope(ctx, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if f.Patient != "" && !scope.Includes(f.Patient) {
		a.auth.AuditStaffRefusal(ctx, p.Username, httpx.ClientIP(r), registry.AuditEntry{Action: registry.ActionAccessDenied,
			Patient: f.Patient, Target: r.Pattern})
		httpx.Error(w, http.StatusForbidden, "this patient is not in your care")
		return
	}
	if !scope.All() {
		// Filtered in the query, before its limit: a page filled with other
		// teams' alerts and then emptied would show their ids and counts.
		f.Scoped, f.Within = true, scope.Patients()
	}
	list, err := a.alerts.List(ctx, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []alerts.Alert{}
	seen := map[string]bool{}
	for _, al := range list {
		if !scope.Includes(al.Patient) {
			continue // the query selected only these; this guards the guard
		}
		if !seen[al.Patient] {
			seen[al.Patient] = true
			if err := a.reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionPatientRead, Patient: al.Patient, Target: "alerts"}); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		out = append(out, al)
	}
	if err := a.alerts.WithNotes(ctx, out); err != nil {
		a.fail(w, r, err)
		return
	}
	doc := map[string]any{"alerts": out}
	if len(list) == f.Limit {
		doc["next_before"] = list[len(list)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, doc)
}

// AlertEvent is one step of an alert's life as the API shows it.
type AlertEvent struct {
	At    time.Time `json:"at"`
	Kind  string    `json:"kind"`
	Actor string    `json:"actor,omitempty"`
	Note  string    `json:"note,omitempty"`
}

func (a *API) alert(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("aid"), 10, 64)
	al, evs, err := a.alerts.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]AlertEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, AlertEvent{At: ev.At, Kind: ev.Kind, Actor: ev.Actor, Note: ev.Note})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"alert": al, "events": out})
}

// alertAction answers a staff action on an alert: 200 with the alert as
// it now is, 409 when it is resolved or already acknowledged.
func (a *API) alertAction(act func(a *API, r *http.Request, id int64, actor, note string, until time.Time) (alerts.Alert, error), needsUntil bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Note  string    `json:"note"`
			Until time.Time `json:"until"`
		}
		if r.ContentLength != 0 {
			if err := decode(w, r, &req); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		if needsUntil && req.Until.IsZero() {
			httpx.Error(w, http.StatusBadRequest, "until: required, an RFC 3339 time")
			return
		}
		id, _ := strconv.ParseInt(r.PathValue("aid"), 10, 64)
		p, _ := auth.FromContext(r.Context())
		al, err := act(a, r, id, p.Username, req.Note, req.Until)
		switch {
		case errors.Is(err, alerts.ErrNotActive), errors.Is(err, alerts.ErrAcked), errors.Is(err, registry.ErrConflict):
			httpx.Error(w, http.StatusConflict, alerts.ActionError(err))
		case alerts.IsBadRequest(err):
			httpx.Error(w, http.StatusBadRequest, alerts.ActionError(err))
		case err != nil:
			a.fail(w, r, err)
		default:
			httpx.WriteJSON(w, http.StatusOK, al)
		}
	}
}

func ack(a *API, r *http.Request, id int64, actor, note string, _ time.Time) (alerts.Alert, error) {
	return a.alerts.Ack(r.Context(), id, actor, note)
}

func resolve(a *API, r *http.Request, id int64, actor, note string, _ time.Time) (alerts.Alert, error) {
	return a.alerts.Resolve(r.Context(), id, actor, note)
}

// assign takes the alert on (take) or gives it up, as the caller.
func assign(take bool) func(a *API, r *http.Request, id int64, actor, note string, _ time.Time) (alerts.Alert, error) {
	return func(a *API, r *http.Request, id int64, actor, note string, _ time.Time) (alerts.Alert, error) {
		return a.alerts.Assign(r.Context(), id, actor, note, take)
	}
}

func snooze(a *API, r *http.Request, id int64, actor, note string, until time.Time) (alerts.Alert, error) {
	return a.alerts.Snooze(r.Context(), id, actor, note, until)
}
