// Package api is the staff-facing REST API under /v1/: patients and their
// data, the staff accounts and care teams (admins), the staff's contact
// channels, who is on call, the alerts and their one-tap links, the
// deliveries of alert events (admins), and the audit log (admins). Every
// endpoint goes through auth.Require: one authentication, one
// authorization check, and the audit entry of every read of a patient's
// data.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// SeriesReader reads a patient's stored samples (ingest.Influx).
type SeriesReader interface {
	Series(ctx context.Context, patient, typ string, from, to time.Time, limit int) ([]ingest.SeriesPoint, error)
	LastData(ctx context.Context, patient string, since, labsSince time.Time) (map[string]time.Time, error)
	DeviceLastData(ctx context.Context, patient string, since time.Time) (map[string]map[string]time.Time, error)
}

// Limits of the API's answers and requests.
const (
	maxBodyBytes    = 64 << 10
	maxSeriesPoints = 50000
	maxSeriesRange  = 400 * 24 * time.Hour
)

// Config sets up the API.
type Config struct {
	// Backfill is the backfill horizon (ingest.Limits.Backfill): a plan's
	// windows reach at most this far back. 0: the default.
	Backfill time.Duration
	// Rota holds the on-call schedule in force, which GET /v1/oncall shows
	// and PUT /v1/oncall/schedule replaces; nil: none, and none can be set.
	Rota *alerts.Rota
	// Links checks the one-tap links pages carry (GET /v1/ack-links/);
	// nil: no link is valid.
	Links *notify.Links
	// Devices enrols and revokes devices; nil: the API cannot.
	Devices Enroller
	// Endpoints are where enrolled devices send, as they reach them.
	Endpoints DeviceEndpoints
	// Location is the clinic's time zone, for the dates of reports; nil:
	// UTC.
	Location *time.Location
	// MinWearHours is how many hours of samples make an activity or
	// heart-rate day (analysis.Config.MinWearHours); 0: the default.
	MinWearHours int
	// Summaries gives patients' weekly summaries to their devices (GET
	// /v1/device/summary); nil: it answers 503.
	Summaries DeviceSummaries
}

// API serves the staff endpoints.
type API struct {
	cfg      Config
	reg      *registry.Registry
	auth     *auth.Auth
	series   SeriesReader
	analysis Analysis // may be nil
	seen     lastSeen
	alerts   *alerts.Manager
	log      *slog.Logger
	now      func() time.Time
}

// New returns the API over the registry, the stored samples, the analysis
// (which may be nil) and the alerts.
func New(cfg Config, reg *registry.Registry, a *auth.Auth, series SeriesReader, an Analysis, al *alerts.Manager, log *slog.Logger) *API {
	return &API{cfg: cfg, reg: reg, auth: a, series: series, analysis: an, alerts: al, log: log, now: time.Now,
		seen: lastSeen{at: map[string]map[string]time.Time{}}}
}

// endpoint is one route of the API and what it requires.
type endpoint struct {
	pattern   string
	perm      auth.Permission
	what      string // for the audit entry of a patient read (any route that reads a patient's data)
	h         http.HandlerFunc
	patientOf func(*http.Request) (string, error) // nil: the route's {id}
}

// endpoints is every route of the API. It reads nothing of a, so that
// Patterns can list them without an API.
func (a *API) endpoints() []endpoint {
	return []endpoint{
		{"GET /v1/patients", auth.SignedIn, "", a.listPatients, nil},
		{"POST /v1/patients", auth.Administer, "", a.addPatient, nil},
		{"GET /v1/patients/{id}", auth.ReadPatient, "details", a.patient, nil},
		{"PATCH /v1/patients/{id}", auth.Administer, "", a.editPatient, nil},
		{"POST /v1/patients/{id}/deactivate", auth.Administer, "", a.deactivatePatient, nil},
		{"POST /v1/patients/{id}/reactivate", auth.Administer, "", a.reactivatePatient, nil},
		{"GET /v1/patients/{id}/devices", auth.ReadPatient, "devices", a.patientDevices, nil},
		{"POST /v1/patients/{id}/devices", auth.Administer, "", a.enrollDevice, nil},
		{"POST /v1/devices/{device}/revoke", auth.Administer, "", a.revokeDevice, nil},
		{"GET /v1/patients/{id}/series", auth.ReadPatient, "series", a.patientSeries, nil},
		{"GET /v1/patients/{id}/plan", auth.ReadPatient, "plan", a.plan, nil},
		{"PUT /v1/patients/{id}/plan", auth.CarePatient, "", a.putPlan, nil},
		{"POST /v1/patients/{id}/plan/preview", auth.CarePatient, "plan preview", a.previewPlan, nil},
		{"GET /v1/patients/{id}/plan/history", auth.ReadPatient, "plan history", a.planHistory, nil},
		{"GET /v1/patients/{id}/transitions", auth.ReadPatient, "transitions", a.transitions, nil},
		{"GET /v1/patients/{id}/notes", auth.ReadPatient, "notes", a.patientNotes, nil},
		{"POST /v1/patients/{id}/notes", auth.ReadPatient, "", a.addPatientNote, nil},
		{"GET /v1/patients/{id}/verdicts", auth.ReadPatient, "verdicts", a.verdicts, nil},
		{"GET /v1/patients/{id}/procedures", auth.ReadPatient, "procedures", a.procedures, nil},
		{"POST /v1/patients/{id}/procedures", auth.CarePatient, "", a.addProcedure, nil},
		{"PATCH /v1/patients/{id}/procedures/{pid}", auth.CarePatient, "", a.changeProcedure, nil},
		{"GET /v1/procedure-types", auth.SignedIn, "", a.procedureTypes, nil},
		{"POST /v1/procedure-types", auth.Administer, "", a.addProcedureType, nil},
		{"GET /v1/patients/{id}/report", auth.ReadPatient, "report", a.patientReport, nil},
		{"GET /v1/patients/{id}/comparison", auth.ReadPatient, "comparison", a.comparison, nil},
		{"GET /v1/comparisons", auth.Administer, "", a.clinicComparisons, nil},
		{"GET /v1/staff", auth.Administer, "", a.listStaff, nil},
		{"POST /v1/staff", auth.Administer, "", a.addStaff, nil},
		{"GET /v1/staff/{username}", auth.Administer, "", a.staffMember, nil},
		{"POST /v1/staff/{username}/disable", auth.Administer, "", a.disableStaff, nil},
		{"PUT /v1/staff/{username}/password", auth.Administer, "", a.setPassword, nil},
		{"PUT /v1/staff/{username}/patients/{id}", auth.Administer, "", a.assign, nil},
		{"DELETE /v1/staff/{username}/patients/{id}", auth.Administer, "", a.unassign, nil},
		{"POST /v1/staff/{username}/tokens", auth.Administer, "", a.issueToken, nil},
		{"DELETE /v1/staff/{username}/tokens", auth.Administer, "", a.revokeTokens, nil},
		{"DELETE /v1/staff/{username}/sessions", auth.Administer, "", a.endSessions, nil},
		// A staff member's own contact, or anyone's for an admin: the handlers check which.
		{"GET /v1/staff/{username}/contact", auth.SignedIn, "", a.contact, nil},
		{"PUT /v1/staff/{username}/contact", auth.SignedIn, "", a.putContact, nil},
		{"GET /v1/audit", auth.Administer, "", a.audit, nil},
		{"GET /v1/oncall", auth.SignedIn, "", a.onCall, nil},
		{"GET /v1/oncall/schedule", auth.Administer, "", a.rotaText, nil},
		{"PUT /v1/oncall/schedule", auth.Administer, "", a.saveRota, nil},
		{"GET /v1/catalog", auth.SignedIn, "", a.catalog, nil},
		{"GET /v1/notify/deliveries", auth.Administer, "", a.deliveries, nil},
		{"GET /v1/ack-links/{token}", auth.SignedIn, "", a.ackLink, nil},
		{"GET /v1/alerts", auth.SignedIn, "", a.listAlerts, nil},
		{"GET /v1/alerts/{aid}", auth.ReadPatient, "alert", a.alert, a.alertPatient},
		{"POST /v1/alerts/{aid}/ack", auth.HandleAlert, "", a.alertAction(ack, false), a.alertPatient},
		{"POST /v1/alerts/{aid}/resolve", auth.HandleAlert, "", a.alertAction(resolve, false), a.alertPatient},
		{"POST /v1/alerts/{aid}/snooze", auth.HandleAlert, "", a.alertAction(snooze, true), a.alertPatient},
		{"POST /v1/alerts/{aid}/assign", auth.HandleAlert, "", a.alertAction(assign(true), false), a.alertPatient},
		{"POST /v1/alerts/{aid}/unassign", auth.HandleAlert, "", a.alertAction(assign(false), false), a.alertPatient},
	}
}

// Routes registers every endpoint on mux, each behind auth.Require, and
// GET /v1/device/summary, which a device's token opens.
func (a *API) Routes(mux *http.ServeMux) {
	for _, e := range a.endpoints() {
		if e.patientOf != nil {
			mux.Handle(e.pattern, a.auth.RequireFor(e.perm, e.what, e.patientOf, e.h))
		} else {
			mux.Handle(e.pattern, a.auth.Require(e.perm, e.what, e.h))
		}
	}
	mux.HandleFunc("GET /v1/device/summary", a.deviceSummary)
}

// Patterns lists the routes Routes registers ("GET /v1/patients", ...).
func Patterns() []string {
	var ps []string
	for _, e := range (*API)(nil).endpoints() {
		ps = append(ps, e.pattern)
	}
	return ps
}

// fail answers a registry error with the status it stands for. Registry
// errors name ids, never names, tokens or passwords; what is logged names
// no patient either.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		httpx.Error(w, http.StatusNotFound, err.Error())
	case errors.Is(err, registry.ErrExists), errors.Is(err, registry.ErrDisabled), errors.Is(err, registry.ErrRevoked):
		httpx.Error(w, http.StatusConflict, err.Error())
	case errors.Is(err, registry.ErrInvalidID), errors.Is(err, registry.ErrInvalidName), errors.Is(err, registry.ErrWeakPassword),
		errors.Is(err, registry.ErrInvalidNote), errors.Is(err, registry.ErrInvalidProcedure),
		errors.Is(err, errBadRequest):
		httpx.Error(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ingest.ErrTooManyPoints):
		httpx.Error(w, http.StatusUnprocessableEntity, err.Error()+": ask for a shorter range")
	default:
		if !errors.Is(err, context.Canceled) {
			a.log.Error("staff api request failed", "route", r.Pattern,
				"err", registry.Redact(err, r.PathValue("id"), r.URL.Query().Get("patient")))
		}
		httpx.Error(w, http.StatusServiceUnavailable, "cannot answer now: try again")
	}
}

var errBadRequest = errors.New("bad request")

// decode reads a JSON body into v, refusing unknown fields and bodies
// over maxBodyBytes.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", errBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body: one JSON object expected", errBadRequest)
	}
	return nil
}

// timeParam reads an RFC 3339 query parameter; def when absent.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: want an RFC 3339 time such as 2026-11-01T00:00:00Z", errBadRequest, name)
	}
	return t, nil
}

// page reads the paging parameters: limit (default 100, 1 to most) and
// before (an id: the next page starts below it).
func page(r *http.Request, most int) (limit int, before int64, err error) {
	n, err := intParam(r, "limit", 100)
	if err != nil {
		return 0, 0, err
	}
	if before, err = intParam(r, "before", 0); err != nil {
		return 0, 0, err
	}
	return int(min(max(n, 1), int64(most))), before, nil
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s: want a whole number", errBadRequest, name)
	}
	return n, nil
}
