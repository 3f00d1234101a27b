package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTimingRuleWarnsThenAlerts: a plan with an estradiol pellet, inserted
// ten days ago, and "no chemical peel within 14 days of an estradiol
// dose". A peel planned in two days is recorded with a warning in the
// answer and opens a warning (a forecast) at once; marked done anyway, the
// rule fires a critical alert and the warning resolves. A peel planned
// clear of the pellets is recorded without one.
func TestTimingRuleWarnsThenAlerts(t *testing.T) {
	dir, token, srv := watchedPatient(t, "p-tm", "w-tm", "dr-tm", "t-timing", "--alert-resolve-after", "0s")
	admin := staffToken(t, dir, "admin-tm", "admin")
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/procedure-types",
		map[string]any{"id": "chemical_peel", "name": "Chemical peel", "category": "Skin", "recovery_days": 7}); st != http.StatusCreated {
		t.Fatalf("catalogue: %d %v", st, doc)
	}
	inserted := time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	plan := map[string]any{
		"effective": ts(inserted),
		"regimen":   []any{map[string]any{"medication": "estradiol", "route": "implant", "amount": 25, "unit": "mg", "schedule": "every_4_months"}},
		"rules": []any{map[string]any{"id": "peel-after-pellet", "kind": "timing", "procedure": "chemical_peel", "not_within": "14d",
			"of": map[string]any{"medication": "estradiol"}, "severity": "critical"}},
	}
	if st, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-tm/plan", plan); st != http.StatusCreated {
		t.Fatalf("PUT plan: %d %v", st, doc)
	}
	// active returns the patient's active alerts of the rule, as
	// "severity forecast|alert".
	active := func() []string {
		_, doc := call(t, http.DefaultClient, srv.url, token, "GET", "/v1/alerts?state=firing,acknowledged&patient=p-tm", nil)
		var out []string
		list, _ := doc["alerts"].([]any)
		for _, v := range list {
			a := v.(map[string]any)
			if a["rule"] == "peel-after-pellet" {
				out = append(out, fmt.Sprintf("%v %s", a["severity"], map[bool]string{true: "forecast", false: "alert"}[a["forecast"] == true]))
			}
		}
		return out
	}
	waitFor := func(want string) {
		t.Helper()
		var got []string
		waitUntil(t, time.Minute, "alerts "+want, func() bool {
			got = active()
			return strings.Join(got, ",") == want
		})
	}

	// Clear of both pellets (ten days ago, and in about four months): no warning.
	st, doc := call(t, http.DefaultClient, srv.url, token, "POST", "/v1/patients/p-tm/procedures",
		map[string]any{"type": "chemical_peel", "status": "planned", "at": ts(inserted.Add(40 * 24 * time.Hour))})
	if st != http.StatusCreated || doc["warnings"] != nil {
		t.Fatalf("a peel planned 30 days on: %d %v, want 201 without warnings", st, doc)
	}
	planned := inserted.Add(12 * 24 * time.Hour)
	st, doc = call(t, http.DefaultClient, srv.url, token, "POST", "/v1/patients/p-tm/procedures",
		map[string]any{"type": "chemical_peel", "status": "planned", "at": ts(planned), "performed_by": "Dr Lee"})
	warnings, _ := doc["warnings"].([]any)
	want := fmt.Sprintf("the chemical peel planned for %s is 12 days from the estradiol dose due %s: the plan wants no chemical peel within 14 days of an estradiol dose; warned before it is done",
		planned.Format("2 Jan 2006"), inserted.Format("2 Jan 2006"))
	if st != http.StatusCreated || len(warnings) != 1 || !strings.HasPrefix(fmt.Sprint(warnings[0]), want) {
		t.Fatalf("a peel planned within 14 days: %d %v\nwant 201 warning %q", st, doc, want)
	}
	id := fmt.Sprint(doc["id"])
	waitFor("warning forecast")

	st, doc = call(t, http.DefaultClient, srv.url, token, "PATCH", "/v1/patients/p-tm/procedures/"+id,
		map[string]any{"status": "done", "at": ts(time.Now())})
	if warnings, _ := doc["warnings"].([]any); st != http.StatusOK || len(warnings) != 1 || !strings.Contains(fmt.Sprint(warnings[0]), "the chemical peel done on") {
		t.Fatalf("marked done: %d %v, want a warning that it was done", st, doc)
	}
	waitFor("critical alert")
	v := verdictsOf(t, srv.url, token, "p-tm")["peel-after-pellet"]
	if v["holds"] != true || !strings.Contains(fmt.Sprint(v["sentence"]), "is 10 days from the estradiol dose due") {
		t.Errorf("the verdict: %v", v)
	}
}
