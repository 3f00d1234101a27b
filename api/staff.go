package api

import (
	"net/http"
	"time"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// StaffMember is a staff account as the API shows it.
type StaffMember struct {
	Username   string        `json:"username"`
	Role       registry.Role `json:"role"`
	CreatedAt  time.Time     `json:"created_at"`
	DisabledAt *time.Time    `json:"disabled_at,omitempty"`
	Patients   []string      `json:"patients,omitempty"` // the care team, in GET /v1/staff/{username}
}

func staffOf(s registry.Staff) StaffMember {
	m := StaffMember{Username: s.Username, Role: s.Role, CreatedAt: s.CreatedAt}
	if !s.Active() {
		m.DisabledAt = &s.DisabledAt
	}
	return m
}

func (a *API) listStaff(w http.ResponseWriter, r *http.Request) {
	ss, err := a.reg.ListStaff(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]StaffMember, 0, len(ss))
	for _, s := range ss {
		out = append(out, staffOf(s))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"staff": out})
}

func (a *API) staffMember(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, err := a.reg.StaffMember(ctx, r.PathValue("username"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	m := staffOf(s)
	if m.Patients, err = a.reg.AssignedPatients(ctx, s.Username); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, m)
}

func (a *API) addStaff(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string        `json:"username"`
		Role     registry.Role `json:"role"`
		Password string        `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !req.Role.Valid() {
		httpx.Error(w, http.StatusBadRequest, "role: want admin, clinician or oncall")
		return
	}
	ctx := r.Context()
	if err := a.reg.AddStaff(ctx, req.Username, req.Role, req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.reg.StaffMember(ctx, req.Username)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, staffOf(s))
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	a.done(w, r, a.reg.SetPassword(r.Context(), r.PathValue("username"), req.Password))
}

func (a *API) disableStaff(w http.ResponseWriter, r *http.Request) {
	a.done(w, r, a.reg.DisableStaff(r.Context(), r.PathValue("username")))
}

func (a *API) assign(w http.ResponseWriter, r *http.Request) {
	a.done(w, r, a.reg.AssignPatient(r.Context(), r.PathValue("username"), r.PathValue("id")))
}

func (a *API) unassign(w http.ResponseWriter, r *http.Request) {
	a.done(w, r, a.reg.UnassignPatient(r.Context(), r.PathValue("username"), r.PathValue("id")))
}

func (a *API) revokeTokens(w http.ResponseWriter, r *http.Request) {
	a.done(w, r, a.reg.RevokeStaffTokens(r.Context(), r.PathValue("username")))
}

func (a *API) endSessions(w http.ResponseWriter, r *http.Request) {
	a.done(w, r, a.reg.EndSessions(r.Context(), r.PathValue("username")))
}

// issueToken answers 201 {"token": ...}: the only time the token is shown.
func (a *API) issueToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Label string `json:"label"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	token, err := a.reg.IssueStaffToken(r.Context(), r.PathValue("username"), req.Label)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]string{"token": token})
}

// done answers 204 for a change made, or the error.
func (a *API) done(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
