package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFollowUpsDueAndOverdue: a plan started 20 days ago wants an
// estradiol result 2 weeks after each regimen change (give or take 3
// days) and a symptom check-in every 14 days. The result is overdue: a
// warning alert, and first in the patient list's follow-ups, the check-in
// due after it. The result comes (late): the alert resolves; the check-in
// comes: nothing is due.
func TestFollowUpsDueAndOverdue(t *testing.T) {
	_, token, srv := watchedPatient(t, "p-fu", "w-fu", "dr-fu", "t-followup", "--alert-resolve-after", "0s")
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -20) // the clinic's days are UTC's here
	plan := map[string]any{
		"effective": ts(start),
		"regimen":   []any{map[string]any{"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "twice_weekly"}},
		"rules": []any{
			map[string]any{"id": "labs-after-change", "kind": "followup", "metric": "labs.estradiol", "due_after": "2w", "grace": "3d", "severity": "warning"},
			map[string]any{"id": "checkins", "kind": "followup", "metric": "symptoms", "every": "14d", "severity": "info"},
		},
	}
	if st, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-fu/plan", plan); st != http.StatusCreated {
		t.Fatalf("PUT plan: %d %v", st, doc)
	}
	// followUps answers the patient list's follow-ups, "state rule due".
	followUps := func() string {
		_, doc := call(t, http.DefaultClient, srv.url, token, "GET", "/v1/patients", nil)
		var out []string
		for _, p := range doc["patients"].([]any) {
			for _, f := range p.(map[string]any)["follow_ups"].([]any) {
				m := f.(map[string]any)
				due, _ := time.Parse(time.RFC3339, fmt.Sprint(m["due"]))
				out = append(out, fmt.Sprintf("%v %v %s %v", m["state"], m["rule"], due.Format("2006-01-02"), m["awaits"]))
			}
		}
		return strings.Join(out, ", ")
	}
	wait := func(wantAlerts, wantFollowUps string) {
		t.Helper()
		var alerts []string
		var fus string
		waitUntil(t, time.Minute, fmt.Sprintf("alerts %q and follow-ups %q", wantAlerts, wantFollowUps), func() bool {
			alerts = alerts[:0]
			for rule, a := range alertsOf(t, srv.url, token, "p-fu") {
				alerts = append(alerts, fmt.Sprintf("%s %v", rule, a["severity"]))
			}
			fus = followUps()
			return strings.Join(alerts, ",") == wantAlerts && fus == wantFollowUps
		})
	}
	day := func(n int) string { return start.AddDate(0, 0, n).Format("2006-01-02") }
	wait("labs-after-change warning",
		"overdue labs-after-change "+day(14)+" an estradiol result, due checkins "+day(14)+" a symptom check-in")
	v := verdictsOf(t, srv.url, token, "p-fu")["labs-after-change"]
	want := fmt.Sprintf("an estradiol result was due on %s (2 weeks after the regimen change of %s, plan v1) and none has come since %s: 6 days overdue",
		start.AddDate(0, 0, 14).Format("2 Jan 2006"), start.Format("2 Jan 2006"), start.AddDate(0, 0, 11).Format("2 Jan 2006"))
	if !strings.HasPrefix(fmt.Sprint(v["sentence"]), want) || v["follow_up"] != "overdue" {
		t.Errorf("the verdict: %v\nwant the sentence %q", v, want)
	}

	mosquittoPub(t, "w-fu", fmt.Sprintf(`{"seq": 1, "samples": [{"type": "lab", "time": %q, "analyte": "estradiol", "value": 412, "unit": "pmol/L"}]}`,
		ts(now.Add(-time.Hour))))
	wait("", "due checkins "+day(14)+" a symptom check-in")
	mosquittoPub(t, "w-fu", fmt.Sprintf(`{"seq": 2, "samples": [{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 1}}]}`,
		ts(now.Add(-time.Hour))))
	wait("", "")
}
