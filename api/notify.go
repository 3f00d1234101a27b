package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// Contact is a staff member's contact channels as the API shows them: of
// the PagerDuty key, only whether one is set.
type Contact struct {
	Username        string `json:"username"`
	Email           string `json:"email"`
	NtfyURL         string `json:"ntfy_url"`
	PagerDutyKeySet bool   `json:"pagerduty_key_set"`
	DigestHour      int    `json:"digest_hour"` // -1: no digest
}

func contactOf(c registry.StaffContact) Contact {
	return Contact{Username: c.Username, Email: c.Email, NtfyURL: c.NtfyURL, PagerDutyKeySet: c.PagerDutyKey != "", DigestHour: c.DigestHour}
}

// selfOrAdmin reports whether the caller may see and change the contact
// of the route's {username}: their own, anyone's for an admin (auth's
// Administer check). It answers a refusal (403), audited as auth.Require
// audits its own.
func (a *API) selfOrAdmin(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	p, _ := auth.FromContext(ctx)
	if p.Username == r.PathValue("username") {
		return true
	}
	err := a.auth.Check(ctx, p, auth.Administer, "")
	switch {
	case errors.Is(err, auth.ErrForbidden):
		a.auth.AuditStaffRefusal(ctx, p.Username, httpx.ClientIP(r), registry.AuditEntry{Action: registry.ActionAccessDenied,
			Target: r.Pattern})
		httpx.Error(w, http.StatusForbidden, "only admins may see or change another staff member's contact")
		return false
	case err != nil:
		a.fail(w, r, err)
		return false
	}
	return true
}

func (a *API) contact(w http.ResponseWriter, r *http.Request) {
	if !a.selfOrAdmin(w, r) {
		return
	}
	c, err := notify.LoadContact(r.Context(), a.reg, r.PathValue("username"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, contactOf(c))
}

// putContact replaces a staff member's contact with the body's: a channel
// left out or empty is unset, as is the digest; only pagerduty_key left
// out keeps the stored key, which the answer never shows.
func (a *API) putContact(w http.ResponseWriter, r *http.Request) {
	if !a.selfOrAdmin(w, r) {
		return
	}
	var req struct {
		Email        string  `json:"email"`
		NtfyURL      string  `json:"ntfy_url"`
		PagerDutyKey *string `json:"pagerduty_key"`
		DigestHour   *int    `json:"digest_hour"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	c, err := notify.LoadContact(ctx, a.reg, r.PathValue("username"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c.Email, c.NtfyURL, c.DigestHour = req.Email, req.NtfyURL, -1
	if req.PagerDutyKey != nil {
		c.PagerDutyKey = *req.PagerDutyKey
	}
	if req.DigestHour != nil {
		c.DigestHour = *req.DigestHour
	}
	if err := notify.CheckContact(c); err != nil {
		httpx.Error(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if err := a.reg.SetStaffContact(ctx, c); err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, contactOf(c))
}

// OnCallTier is one tier of the on-call schedule and who is on call in
// it now.
type OnCallTier struct {
	Name   string        `json:"name"`
	After  string        `json:"after"` // how long an alert stays unacknowledged before the tier is paged, as "15m0s"
	OnCall []string      `json:"on_call"`
	Shifts []OnCallShift `json:"shifts"` // the rota of the tier
}

// OnCallShift is when some staff are on call: from From to To ("08:00",
// "24:00"; a To before From runs past midnight) in the schedule's time
// zone, on each of Days ("mon" ... "sun").
type OnCallShift struct {
	Staff []string `json:"staff"`
	Days  []string `json:"days"`
	From  string   `json:"from"`
	To    string   `json:"to"`
}

func shiftsOf(t alerts.OnCallTier) []OnCallShift {
	out := []OnCallShift{}
	for _, sh := range t.Shifts {
		week := slices.Clone(sh.Days)
		slices.SortFunc(week, func(a, b time.Weekday) int { return (int(a)+6)%7 - (int(b)+6)%7 }) // Monday first
		days := []string{}
		for _, d := range week {
			days = append(days, strings.ToLower(d.String()[:3]))
		}
		out = append(out, OnCallShift{Staff: sh.Staff, Days: days,
			From: fmt.Sprintf("%02d:%02d", sh.From/60, sh.From%60), To: fmt.Sprintf("%02d:%02d", sh.To/60, sh.To%60)})
	}
	return out
}

// OnCallNow is who is on call now: the schedule's time zone (the shifts'
// wall clock) and its tiers; no zone and no tiers without a schedule.
type OnCallNow struct {
	Timezone string       `json:"timezone,omitempty"`
	Tiers    []OnCallTier `json:"tiers"`
}

func (a *API) onCall(w http.ResponseWriter, _ *http.Request) {
	out := OnCallNow{Tiers: []OnCallTier{}}
	if s := a.cfg.Rota.Schedule(); s != nil {
		out.Timezone = "UTC"
		if s.Location != nil {
			out.Timezone = s.Location.String()
		}
		now := a.now()
		for i, t := range s.Tiers {
			out.Tiers = append(out.Tiers, OnCallTier{Name: t.Name, After: t.After.String(), OnCall: append([]string{}, s.OnCall(i, now)...),
				Shifts: shiftsOf(t)})
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// Delivery is one delivery of the outbox as admins see it: to whom and
// on which channel, never where (no address, URL or key).
type Delivery struct {
	ID        string     `json:"id"`
	AlertID   int64      `json:"alert_id"` // 0 for a digest
	Channel   string     `json:"channel"`
	Recipient string     `json:"recipient"` // a staff member; "" for a clinic-wide channel
	State     string     `json:"state"`
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	NextAt    time.Time  `json:"next_at"`
	DoneAt    *time.Time `json:"done_at"` // null while pending
	LastError string     `json:"last_error"`
}

// maxDeliveries is the most deliveries one answer lists.
const maxDeliveries = 1000

// deliveries answers the newest deliveries, those in the query's state
// (pending, failed or delivered) when it names one, at most limit
// (default 100), and how many there are in each state.
func (a *API) deliveries(w http.ResponseWriter, r *http.Request) {
	f := registry.DeliveryFilter{State: r.URL.Query().Get("state")}
	if f.State != "" && !slices.Contains([]string{registry.DeliveryPending, registry.DeliveryFailed, registry.DeliveryDelivered}, f.State) {
		httpx.Error(w, http.StatusBadRequest, "state: want pending, failed or delivered")
		return
	}
	n, err := intParam(r, "limit", 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f.Limit = int(min(max(n, 1), maxDeliveries))
	ctx := r.Context()
	ds, err := a.reg.Deliveries(ctx, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	counts, err := a.reg.DeliveryCounts(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]Delivery, 0, len(ds))
	for _, d := range ds {
		v := Delivery{ID: d.ID, AlertID: d.AlertID, Channel: d.Channel, Recipient: d.Recipient, State: d.State, Attempts: d.Attempts,
			CreatedAt: d.CreatedAt, NextAt: d.NextAt, LastError: d.LastError}
		if !d.DoneAt.IsZero() {
			v.DoneAt = &d.DoneAt
		}
		out = append(out, v)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": out, "counts": counts})
}

// ackLink answers the alert a page's one-tap link names: {"alert_id": N},
// 404 for a link that is not one, 410 for an expired one. It shows no
// more than the id: the page then asks for the alert, and acknowledges
// it, as the caller, whom those endpoints authorize.
func (a *API) ackLink(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Links == nil {
		httpx.Error(w, http.StatusNotFound, notify.ErrLinkInvalid.Error())
		return
	}
	id, err := a.cfg.Links.Verify(r.PathValue("token"), a.now())
	switch {
	case errors.Is(err, notify.ErrLinkExpired):
		httpx.Error(w, http.StatusGone, err.Error())
	case err != nil:
		httpx.Error(w, http.StatusNotFound, notify.ErrLinkInvalid.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, map[string]int64{"alert_id": id})
	}
}
