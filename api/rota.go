package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/internal/httpx"
)

// RotaText is the on-call rota in force as YAML, for an admin to edit.
type RotaText struct {
	YAML string `json:"yaml"` // "" without a rota
	// Version is the saved version in force; 0 for --oncall-schedule's
	// file, or none.
	Version int64      `json:"version"`
	SavedAt *time.Time `json:"saved_at,omitempty"`
	SavedBy string     `json:"saved_by,omitempty"`
}

func (a *API) rotaText(w http.ResponseWriter, _ *http.Request) {
	out := RotaText{}
	if v := a.cfg.Rota.Load(); v != nil {
		out = RotaText{YAML: v.Text, Version: v.Version, SavedBy: v.SavedBy}
		if !v.SavedAt.IsZero() {
			out.SavedAt = &v.SavedAt
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// saveRota checks a new rota ({"yaml": "…"}, as --oncall-schedule takes
// it) and its staff, stores it as the next version and puts it in force
// here at once (other instances within their poll, server.watchRota);
// 422 with every problem otherwise.
func (a *API) saveRota(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Rota == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "this server keeps no on-call rota")
		return
	}
	var req struct {
		YAML string `json:"yaml"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	s, err := alerts.ParseOnCall([]byte(req.YAML))
	if err == nil {
		err = s.CheckStaff(func(u string) bool {
			st, err := a.reg.StaffMember(ctx, u)
			return err == nil && st.Active()
		})
	}
	if err != nil {
		problems := []string{err.Error()}
		var oe *alerts.OnCallError
		if errors.As(err, &oe) {
			problems = oe.Problems
		}
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, PlanProblems{Error: "the rota has problems", Problems: problems})
		return
	}
	saved, err := a.reg.SaveRota(ctx, req.YAML)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.cfg.Rota.Store(&alerts.RotaVersion{Schedule: s, Text: saved.Body, Version: saved.Version, SavedAt: saved.SavedAt, SavedBy: saved.SavedBy})
	a.rotaText(w, r)
}
