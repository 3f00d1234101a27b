package api

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// openAlert stores a firing alert of patient under key and returns its id.
func openAlert(t *testing.T, reg *registry.Registry, patient, key string) int64 {
	t.Helper()
	now := time.Now().UTC()
	id, err := reg.OpenAlert(t.Context(), registry.AlertRow{Patient: patient, Key: key, State: registry.AlertFiring,
		Severity: "warning", OpenedAt: now, UpdatedAt: now, Tier: -1,
		Body: fmt.Appendf(nil, `{"rule": %q, "sentence": "test"}`, key)},
		registry.AlertEvent{At: now, Kind: "opened"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestAlertListFiltersBeforeLimit: a clinician pages through the alerts
// list and sees every alert of their own patients, and nothing of another
// team's, not even an id in next_before.
func TestAlertListFiltersBeforeLimit(t *testing.T) {
	ta := newTestAPI(t, nil)
	ctx := t.Context()
	for _, p := range []string{"p-mine", "p-other"} {
		if err := ta.reg.AddPatient(ctx, registry.Patient{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	cleo := ta.staff(t, "cleo", registry.RoleClinician, "p-mine")
	var mine, others []int64
	mine = append(mine, openAlert(t, ta.reg, "p-mine", "m0"))
	for i := range 5 {
		others = append(others, openAlert(t, ta.reg, "p-other", fmt.Sprintf("o%d", i)))
	}
	mine = append(mine, openAlert(t, ta.reg, "p-mine", "m1"))
	for i := 5; i < 8; i++ {
		others = append(others, openAlert(t, ta.reg, "p-other", fmt.Sprintf("o%d", i)))
	}

	for _, limit := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var seen []int64
			before := int64(0)
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("more than 10 pages for 2 alerts")
				}
				var doc struct {
					Alerts []struct {
						ID      int64  `json:"id"`
						Patient string `json:"patient"`
					} `json:"alerts"`
					NextBefore *int64 `json:"next_before"`
				}
				path := fmt.Sprintf("/v1/alerts?limit=%d", limit)
				if before > 0 {
					path += fmt.Sprintf("&before=%d", before)
				}
				if code := ta.get(t, cleo, path, &doc); code != 200 {
					t.Fatalf("GET %s: status %d", path, code)
				}
				for _, a := range doc.Alerts {
					if a.Patient != "p-mine" || slices.Contains(others, a.ID) {
						t.Errorf("GET %s shows alert %d of %s", path, a.ID, a.Patient)
					}
					seen = append(seen, a.ID)
				}
				if doc.NextBefore == nil {
					break
				}
				if !slices.Contains(mine, *doc.NextBefore) {
					t.Errorf("GET %s: next_before %d is not one of the clinician's alerts %v", path, *doc.NextBefore, mine)
				}
				before = *doc.NextBefore
			}
			slices.Sort(seen)
			if !slices.Equal(seen, mine) {
				t.Errorf("pages showed alerts %v, want %v", seen, mine)
			}
		})
	}
}
