package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// SavePlan validates p and stores it as the patient's next plan version,
// whose number it returns (and sets in p). The error of an invalid plan is
// a *PlanError naming every problem.
func SavePlan(ctx context.Context, reg *registry.Registry, p *Plan) (int, error) {
	return SavePlanWithin(ctx, reg, p, 0)
}

// SavePlanWithin is SavePlan for a clinic whose backfill horizon is
// horizon (0: the default), as Plan.ValidateWithin.
func SavePlanWithin(ctx context.Context, reg *registry.Registry, p *Plan, horizon time.Duration) (int, error) {
	if err := p.ValidateWithin(horizon); err != nil {
		return 0, err
	}
	p.Version = 0
	body, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("save plan: %w", err)
	}
	v, err := reg.AddPlanVersion(ctx, p.Patient, p.Effective, body)
	if err != nil {
		return 0, err
	}
	p.Version = v
	return v, nil
}

// PlanHistory returns every version of the patient's plan, oldest first;
// empty when there is none.
func PlanHistory(ctx context.Context, reg *registry.Registry, patientID string) ([]Plan, error) {
	stored, err := reg.PlanVersions(ctx, patientID)
	if err != nil {
		return nil, err
	}
	plans := make([]Plan, 0, len(stored))
	for _, sv := range stored {
		var p Plan
		if err := json.Unmarshal(sv.Body, &p); err != nil {
			return nil, fmt.Errorf("plan %s v%d: %w", patientID, sv.Version, err)
		}
		p.Patient, p.Version, p.Effective = patientID, sv.Version, sv.Effective
		plans = append(plans, p)
	}
	return plans, nil
}
