package registry

import (
	"testing"
	"time"
)

// TestRotaVersions: no rota until one is saved; each save is the next
// version, by the context's actor, audited by version, and the newest is
// the one returned.
func TestRotaVersions(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := WithActor(t.Context(), Actor{Name: "ada"})
		if _, ok, err := r.LatestRota(ctx); ok || err != nil {
			t.Fatalf("LatestRota of a new registry: %v, %v; want none", ok, err)
		}
		for i, body := range []string{"timezone: UTC\ntiers: []\n", "timezone: Europe/London\ntiers: []\n"} {
			saved, err := r.SaveRota(ctx, body)
			if err != nil || saved.Version != int64(i+1) || saved.SavedBy != "ada" || time.Since(saved.SavedAt) > time.Minute {
				t.Fatalf("SaveRota #%d = %+v, %v", i+1, saved, err)
			}
		}
		latest, ok, err := r.LatestRota(ctx)
		if err != nil || !ok || latest.Version != 2 || latest.Body != "timezone: Europe/London\ntiers: []\n" || latest.SavedBy != "ada" {
			t.Errorf("LatestRota = %+v, %v, %v; want version 2", latest, ok, err)
		}
		entries, err := r.AuditEntries(ctx, AuditFilter{Action: ActionRotaChange, Limit: 10})
		if err != nil || len(entries) != 2 || entries[0].Target != "v2" || entries[0].Actor != "ada" {
			t.Errorf("the rota's audit entries: %+v, %v", entries, err)
		}
	})
}
