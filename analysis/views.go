package analysis

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// With several instances, only a patient's owner holds them: what the
// patient list and page show of them (each rule's verdict, each
// measurement's newest sample) is written to the registry as a view
// (registry.PatientView) when the owner judges them, for the other
// instances to answer from. Views are written in batches, one
// transaction per partition (fenced like the transitions), at the end of
// each tick, sweep and takeover, and only when they changed; the view of
// a judgement that records transitions or rule states is written with
// them, in their transaction.

// noteView keeps the patient's view as judged now, to be written at the
// next flush, unless it is the one written last.
func (e *Evaluator) noteView(p *patient, verdicts []Verdict, now time.Time) {
	if v := e.newView(p, verdicts, now); v != nil {
		p.view = v
		e.views[p.id] = *v
	}
}

// newView is the patient's view as judged now, or nil when it is the one
// written (or kept) last.
func (e *Evaluator) newView(p *patient, verdicts []Verdict, now time.Time) *registry.PatientView {
	body, err := json.Marshal(verdicts)
	if err != nil {
		return nil // a Verdict always marshals
	}
	last := p.lastData()
	if p.view != nil && bytes.Equal(p.view.Verdicts, body) && maps.Equal(p.view.LastData, last) {
		return nil
	}
	return &registry.PatientView{Patient: p.id, Verdicts: body, LastData: last, JudgedAt: now}
}

// lastData is the newest sample time of each measurement the patient's
// rules read.
func (p *patient) lastData() map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range p.series {
		if s.newest == 0 {
			continue
		}
		if t := time.Unix(s.newest, 0).UTC(); t.After(out[s.key.measurement]) {
			out[s.key.measurement] = t
		}
	}
	return out
}

// flushViews writes the views kept since the last flush, one fenced
// transaction per partition. Views of a partition whose write failed
// otherwise stay kept, for the next flush; a fenced partition is let go.
func (e *Evaluator) flushViews(ctx context.Context) {
	if len(e.views) == 0 {
		return
	}
	byPart := map[int][]registry.PatientView{}
	for id, v := range e.views {
		part, _, ok := e.ownerOf(id)
		if !ok {
			delete(e.views, id)
			continue
		}
		byPart[part] = append(byPart[part], v)
	}
	var failed error
	for _, part := range slices.Sorted(maps.Keys(byPart)) {
		views := byPart[part]
		_, epoch, ok := e.ownerOf(views[0].Patient)
		if !ok {
			continue // fenced out by an earlier partition's write
		}
		err := e.reg.WritePatientViews(ctx, e.fence(part, epoch), views)
		switch {
		case isFenced(err):
			e.fencedOut(part)
		case err != nil:
			if failed == nil {
				failed = err
			}
		default:
			for _, v := range views {
				delete(e.views, v.Patient)
			}
		}
	}
	if failed != nil && ctx.Err() == nil {
		e.log.Warn("analysis: writing patient views failed; retried at the next flush", "err", failed.Error())
	}
}
