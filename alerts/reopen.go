package alerts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// holding is what the manager knows of a condition that holds.
type holding struct {
	since time.Time // its latest fired (or forecast) transition: it has held since
	// newest is the key's newest alert while it has no active one, read
	// once (looked) and kept until an alert of the key opens: a resolved
	// alert never changes, and only the manager opens alerts.
	looked bool
	newest *Alert // nil: the key has no alert
}

// track notes whether t's condition holds, and since when.
func (m *Manager) track(t analysis.Transition) {
	k := condKey{t.Patient, keyOf(t)}
	switch t.Change {
	case analysis.ChangeFired, analysis.ChangeForecast:
		if h := m.holding[k]; h == nil || !h.since.Equal(t.At) { // resume hands a transition over twice
			m.holding[k] = &holding{since: t.At}
		}
	case analysis.ChangeCleared, analysis.ChangeForecastCleared:
		delete(m.holding, k)
	}
}

// holdsOn takes in an update of a condition that holds and held before:
// the active alert of its key takes the analysis' new word; with none, an
// alert that staff resolved while the condition held reopens (reopening).
// Updates come for every holding condition at every sweep, so one that
// says nothing new writes nothing, and reads the registry at most once:
// the patient's active alerts, or nothing once the key is known to have
// none.
func (m *Manager) holdsOn(ctx context.Context, k condKey, t analysis.Transition) {
	_, raising := m.raise[k]
	_, clearing := m.clear[k]
	if raising || clearing || !t.Holds {
		return // a pending condition settles by its own transition's time
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.holdOn(ctx, k, t)
	// A conflict is a staff action in between: the next sweep's update
	// comes soon enough.
	if err != nil && !errors.Is(err, registry.ErrConflict) {
		m.log.Error("alerts: taking in an update failed", "err", registry.Redact(err, k.patient))
	}
}

// holdOn is holdsOn's work, with m.mu held.
func (m *Manager) holdOn(ctx context.Context, k condKey, t analysis.Transition) error {
	var rows []registry.AlertRow // the patient's active alerts
	read := false
	// A key known to have no active alert has none still: only the manager
	// opens alerts, and opening one forgets what was looked up.
	if h := m.holding[k]; h == nil || !h.looked {
		var err error
		if rows, err = m.activeRows(ctx, k.patient); err != nil {
			return err
		}
		read = true
		for _, row := range rows {
			if row.Key == k.key {
				return m.refresh(ctx, row, t)
			}
		}
	}
	note, err := m.reopening(ctx, k, t)
	if note == "" || err != nil {
		return err
	}
	if !read {
		if rows, err = m.activeRows(ctx, k.patient); err != nil {
			return err
		}
	}
	err = m.open(ctx, t, rows, m.now(), note)
	if h := m.holding[k]; h != nil && errors.Is(err, registry.ErrExists) {
		h.looked, h.newest = false, nil // opened elsewhere after all: read again next time
	}
	return err
}

// refresh takes an update into the active alert of row when it says
// something new: a new sentence, value, bound or plan version (a
// silence's hours grow by themselves, so its value alone does not count:
// its sentence says the whole hours), or a higher severity, which raises
// the alert as a repeat does.
func (m *Manager) refresh(ctx context.Context, row registry.AlertRow, t analysis.Transition) error {
	a, err := alertOf(row)
	if err != nil {
		return err
	}
	news := t.Sentence != a.Sentence || t.Bound != a.Bound || t.PlanVersion != a.PlanVersion || a.NotJudged ||
		t.Kind != analysis.KindSilence && t.Value != a.Value
	if !news && severityRank(t.Severity) <= severityRank(row.Severity) {
		return nil
	}
	return m.repeat(ctx, row, t, m.now())
}

// reopening returns why the condition of k, which holds with no active
// alert, opens a new one now, or "": staff resolved the key's newest alert
// while the condition held (at or after its latest fired transition), and
// since then its value has got worse (not a silence's, whose hours grow
// by themselves) or Renotify has passed. A key with no alert at all is
// left to resume, which opens the alert its transition lost.
func (m *Manager) reopening(ctx context.Context, k condKey, t analysis.Transition) (string, error) {
	h := m.holding[k]
	if h == nil {
		return "", nil // not known to hold: no fired transition since the last clearing
	}
	if !h.looked {
		newest, err := m.newest(ctx, k)
		if err != nil {
			return "", err
		}
		h.looked, h.newest = true, newest
	}
	r := h.newest
	if r == nil || r.State != registry.AlertResolved || r.ResolvedAt == nil || r.ResolvedBy == patientpulseActor ||
		r.ResolvedAt.Before(h.since) {
		return "", nil
	}
	side := r.side
	if side == "" { // resolved before alerts kept their side
		side = t.Side
	}
	worse := side == "below" && t.Value < r.Value || (side == "above" || side == "band") && t.Value > r.Value
	switch {
	case worse && t.Kind != analysis.KindSilence:
		return fmt.Sprintf("reopened: worse (%s) than when %s resolved it (%s)", number(t.Value), r.ResolvedBy, number(r.Value)), nil
	case m.now().Sub(*r.ResolvedAt) >= m.cfg.Renotify:
		return fmt.Sprintf("reopened: still holds %s after %s resolved it", span(m.cfg.Renotify), r.ResolvedBy), nil
	}
	return "", nil
}

// newest returns the newest alert of k, or nil.
func (m *Manager) newest(ctx context.Context, k condKey) (*Alert, error) {
	rows, err := m.reg.Alerts(ctx, registry.AlertFilter{Patient: k.patient, All: true})
	if err != nil {
		return nil, err
	}
	for _, row := range rows { // newest first
		if row.Key == k.key {
			a, err := alertOf(row)
			return &a, err
		}
	}
	return nil, nil
}

// number writes a value for a note: three significant digits, whole
// numbers from 100 up.
func number(v float64) string {
	digits := 2
	if a := math.Abs(v); a > 0 {
		digits = max(0, 2-int(math.Floor(math.Log10(a))))
	}
	p := math.Pow(10, float64(digits))
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}

// span writes a duration for a note: 24h, 1h30m, 5m.
func span(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
	}
	return s
}
