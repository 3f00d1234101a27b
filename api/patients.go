package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// Patient is a patient as the API shows them.
type Patient struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Contact       string     `json:"contact"`
	CreatedAt     time.Time  `json:"created_at"`
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"` // absent while monitored
}

// PatientSummary is a row of the patient list: how the patient is doing.
type PatientSummary struct {
	Patient
	Status       string     `json:"status"` // fine, attention or critical: their worst active alert
	ActiveAlerts int        `json:"active_alerts"`
	LastDataAt   *time.Time `json:"last_data_at"` // their newest stored sample in the last 90 days; null when none
	// LastData is the newest stored sample of each measurement: in the
	// last 90 days, labs in the last two years.
	LastData  map[string]time.Time `json:"last_data"`
	Adherence *float64             `json:"adherence"` // the lowest share of logged doses among their adherence rules; null without
	// FollowUps are their plan's follow-ups that are due or overdue,
	// overdue first, then by due day.
	FollowUps []FollowUp `json:"follow_ups"`
}

// FollowUp is a follow-up of a patient's plan that is due or overdue.
type FollowUp struct {
	Rule     string    `json:"rule"`
	State    string    `json:"state"` // due or overdue
	Due      time.Time `json:"due"`
	Awaits   string    `json:"awaits"` // "an estradiol result"
	Severity string    `json:"severity"`
	Sentence string    `json:"sentence"`
}

// followUpsOf are the verdicts' follow-ups that are due or overdue, in
// the order of PatientSummary.FollowUps.
func followUpsOf(vs []analysis.Verdict) []FollowUp {
	out := []FollowUp{}
	for _, v := range vs {
		if v.FollowUp == analysis.FollowUpDue || v.FollowUp == analysis.FollowUpOverdue {
			out = append(out, FollowUp{Rule: v.Rule, State: v.FollowUp, Due: v.Due, Awaits: v.Awaits, Severity: v.Severity, Sentence: v.Sentence})
		}
	}
	slices.SortStableFunc(out, func(a, b FollowUp) int {
		if a.State != b.State {
			return map[bool]int{true: -1, false: 1}[a.State == analysis.FollowUpOverdue]
		}
		return a.Due.Compare(b.Due)
	})
	return out
}

// Spans of the patient list's last data.
const (
	lastDataSpan = 90 * 24 * time.Hour
	lastLabSpan  = 2 * 365 * 24 * time.Hour
)

// lastSeen remembers each patient's newest stored sample of each
// measurement: told of each one as it is stored, and read from InfluxDB
// the first time it is asked.
type lastSeen struct {
	mu sync.Mutex
	at map[string]map[string]time.Time
}

// Stored tells the API of a patient's points once they are stored.
func (a *API) Stored(patient string, points []ingest.Point) {
	a.seen.mu.Lock()
	defer a.seen.mu.Unlock()
	last, known := a.seen.at[patient]
	if !known {
		return // read from InfluxDB when first asked, which includes these
	}
	for _, p := range points {
		if p.Time.After(last[p.Measurement]) {
			last[p.Measurement] = p.Time
		}
	}
}

// lastData returns a copy of the patient's newest stored sample time of
// each measurement; nil when InfluxDB cannot say for now.
func (a *API) lastData(ctx context.Context, patient string) map[string]time.Time {
	a.seen.mu.Lock()
	last, known := a.seen.at[patient]
	if known {
		last = maps.Clone(last)
	}
	a.seen.mu.Unlock()
	if known {
		return last
	}
	now := a.now()
	read, err := a.series.LastData(ctx, patient, now.Add(-lastDataSpan), now.Add(-lastLabSpan))
	if err != nil {
		return nil // unknown for now; asked again next time
	}
	if read == nil {
		read = map[string]time.Time{}
	}
	a.seen.mu.Lock()
	defer a.seen.mu.Unlock()
	if cur, raced := a.seen.at[patient]; raced { // told of points meanwhile
		mergeNewest(read, cur)
	}
	a.seen.at[patient] = read
	return maps.Clone(read)
}

// mergeNewest keeps in into the newer of each measurement's times.
func mergeNewest(into, from map[string]time.Time) {
	for m, t := range from {
		if t.After(into[m]) {
			into[m] = t
		}
	}
}

// PatientDetails adds the patient's devices and care team.
type PatientDetails struct {
	Patient
	Devices  []Device `json:"devices"`
	CareTeam []string `json:"care_team"`
}

// Device is an enrolled device as the API shows it.
type Device struct {
	ID         string     `json:"id"`
	EnrolledAt time.Time  `json:"enrolled_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func patientOf(p registry.Patient) Patient {
	out := Patient{ID: p.ID, Name: p.Name, Contact: p.Contact, CreatedAt: p.CreatedAt}
	if !p.Active() {
		out.DeactivatedAt = &p.DeactivatedAt
	}
	return out
}

// listPatients answers the patients the caller may see, recording the
// listing (how many) in the audit log. Deactivated patients are left out
// unless include=deactivated.
func (a *API) listPatients(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := auth.FromContext(ctx)
	scope, err := a.auth.Scope(ctx, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	all, err := a.reg.ListPatients(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	active, err := a.reg.Alerts(ctx, registry.AlertFilter{All: true, States: []string{registry.AlertFiring, registry.AlertAcknowledged}})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var views map[string]registry.PatientView // read at the first patient another instance judges
	out := []PatientSummary{}
	withDeactivated := r.URL.Query().Get("include") == "deactivated"
	for _, pt := range all {
		if !scope.Includes(pt.ID) || (!pt.Active() && !withDeactivated) {
			continue
		}
		sum := PatientSummary{Patient: patientOf(pt), Status: "fine", FollowUps: []FollowUp{}, LastData: a.lastData(ctx, pt.ID)}
		for _, al := range active {
			if al.Patient != pt.ID {
				continue
			}
			sum.ActiveAlerts++
			if al.Severity == "critical" {
				sum.Status = "critical"
			} else if sum.Status == "fine" {
				sum.Status = "attention"
			}
		}
		if a.analysis != nil {
			var vs []analysis.Verdict
			if a.analysis.Owns(pt.ID) {
				vs = a.analysis.Verdicts(pt.ID)
			} else {
				if views == nil {
					if views, err = a.reg.PatientViews(ctx); err != nil {
						a.fail(w, r, err)
						return
					}
				}
				view := views[pt.ID]
				vs = viewVerdicts(view)
				if sum.LastData == nil {
					sum.LastData = map[string]time.Time{}
				}
				mergeNewest(sum.LastData, view.LastData)
			}
			for _, v := range vs {
				if v.Kind == analysis.KindAdherence && v.Judged && (sum.Adherence == nil || v.Value < *sum.Adherence) {
					share := v.Value
					sum.Adherence = &share
				}
			}
			sum.FollowUps = followUpsOf(vs)
		}
		now := a.now()
		for m, t := range sum.LastData {
			span := lastDataSpan
			if m == "labs" {
				span = lastLabSpan
			}
			if !t.After(now.Add(-span)) {
				delete(sum.LastData, m) // older than the list looks
			}
		}
		sum.LastDataAt = newestSince(sum.LastData, now.Add(-lastDataSpan))
		out = append(out, sum)
	}
	err = a.reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionPatientList, Target: fmt.Sprintf("%d patients", len(out))})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"patients": out})
}

// newestSince returns the newest of the times after since, or nil.
func newestSince(last map[string]time.Time, since time.Time) *time.Time {
	var newest *time.Time
	for _, t := range last {
		if t.After(since) && (newest == nil || t.After(*newest)) {
			newest = &t
		}
	}
	return newest
}

func (a *API) addPatient(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Contact string `json:"contact"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reg.AddPatient(r.Context(), registry.Patient{ID: req.ID, Name: req.Name, Contact: req.Contact}); err != nil {
		a.fail(w, r, err)
		return
	}
	a.answerPatient(w, r, http.StatusCreated, req.ID)
}

// editPatient changes the patient's name or contact, those given.
func (a *API) editPatient(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name    *string `json:"name"`
		Contact *string `json:"contact"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	pt, err := a.reg.Patient(ctx, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Name != nil {
		pt.Name = *req.Name
	}
	if req.Contact != nil {
		pt.Contact = *req.Contact
	}
	if err := a.reg.UpdatePatient(ctx, id, pt.Name, pt.Contact); err != nil {
		a.fail(w, r, err)
		return
	}
	a.answerPatient(w, r, http.StatusOK, id)
}

// deactivatePatient takes the patient out of monitoring, revoking their
// devices (and their broker accounts); 409 while alerts of theirs are
// active.
func (a *API) deactivatePatient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	revoked, err := a.reg.DeactivatePatient(ctx, id)
	if errors.Is(err, registry.ErrActiveAlerts) {
		httpx.Error(w, http.StatusConflict, fmt.Sprintf("patient %s has active alerts: resolve them before deactivating the patient", id))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.Devices != nil {
		if err := a.cfg.Devices.RemoveAccounts(ctx, revoked...); err != nil {
			httpx.Error(w, http.StatusBadGateway, fmt.Sprintf("patient %s is deactivated and their devices revoked, so their data is refused, "+
				"but a broker account could not be removed (%v): revoke each device again to remove it", id, err))
			return
		}
	}
	a.answerPatient(w, r, http.StatusOK, id)
}

func (a *API) reactivatePatient(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.reg.ReactivatePatient(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	a.answerPatient(w, r, http.StatusOK, id)
}

func (a *API) answerPatient(w http.ResponseWriter, r *http.Request, status int, id string) {
	pt, err := a.reg.Patient(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, status, patientOf(pt))
}

func (a *API) patient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	pt, err := a.reg.Patient(ctx, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	team, err := a.reg.CareTeam(ctx, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	devices, err := a.reg.ListDevices(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := PatientDetails{Patient: patientOf(pt), Devices: []Device{}, CareTeam: team}
	for _, d := range devices {
		if d.PatientID != id {
			continue
		}
		out.Devices = append(out.Devices, deviceOf(d))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// The series endpoint takes times from minSeriesTime up to maxSeriesTime.
// InfluxDB holds a time as int64 nanoseconds since 1970 (years 1677 to
// 2262): a time beyond them wraps around, and a range checked here would
// not be the range read.
var (
	minSeriesTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxSeriesTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// seriesTimeProblem says what is wrong with parameter name's time t, or
// "" when it is within the series endpoint's years.
func seriesTimeProblem(name string, t time.Time) string {
	if t.Before(minSeriesTime) || !t.Before(maxSeriesTime) {
		return fmt.Sprintf("%s: want a time from %d to %d", name, minSeriesTime.Year(), maxSeriesTime.Year()-1)
	}
	return ""
}

// patientSeries answers one sample type of the patient over [from, to):
// by default the last 30 days.
func (a *API) patientSeries(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	typ := r.URL.Query().Get("type")
	if !ingest.IsMeasurement(typ) {
		httpx.Error(w, http.StatusBadRequest, "type: want one of "+strings.Join(ingest.Measurements(), ", "))
		return
	}
	now := a.now()
	to, err := timeParam(r, "to", now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if msg := seriesTimeProblem("to", to); msg != "" {
		httpx.Error(w, http.StatusUnprocessableEntity, msg)
		return
	}
	from, err := timeParam(r, "from", to.Add(-30*24*time.Hour))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if msg := seriesTimeProblem("from", from); msg != "" {
		httpx.Error(w, http.StatusUnprocessableEntity, msg)
		return
	}
	if !from.Before(to) || to.Sub(from) > maxSeriesRange {
		httpx.Error(w, http.StatusUnprocessableEntity, "from must be before to, at most 400 days apart")
		return
	}
	if _, err := a.reg.Patient(ctx, id); err != nil {
		a.fail(w, r, err)
		return
	}
	points, err := a.series.Series(ctx, id, typ, from, to, maxSeriesPoints)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"patient": id, "type": typ, "from": from.UTC(), "to": to.UTC(), "points": points,
	})
}

// catalog answers the vocabulary of samples, instruments and lab
// analytes (ingest.Catalog): what the web app labels and scales charts by.
func (a *API) catalog(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "private, max-age=300")
	httpx.WriteJSON(w, http.StatusOK, ingest.TheCatalog())
}

// PatientNote is a staff member's free-text note on a patient.
type PatientNote struct {
	ID     int64     `json:"id"`
	Author string    `json:"author"`
	At     time.Time `json:"at"`
	Note   string    `json:"note"`
}

func patientNoteOf(n registry.PatientNote) PatientNote {
	return PatientNote{ID: n.ID, Author: n.Author, At: n.At, Note: n.Note}
}

// patientNotes answers the patient's notes, newest first.
func (a *API) patientNotes(w http.ResponseWriter, r *http.Request) {
	notes, err := a.reg.PatientNotes(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]PatientNote, 0, len(notes))
	for _, n := range notes {
		out = append(out, patientNoteOf(n))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"notes": out})
}

// addPatientNote stores a note ({"note": "…"}) by the caller: anyone who
// may see the patient may leave one (a handover). It is audited.
func (a *API) addPatientNote(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Note string `json:"note"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.reg.AddPatientNote(r.Context(), r.PathValue("id"), req.Note)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, patientNoteOf(n))
}
