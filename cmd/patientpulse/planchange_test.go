package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// byRule GETs path and returns the objects of its list named key, by
// their rule.
func byRule(t *testing.T, base, token, path, key string) map[string]map[string]any {
	t.Helper()
	status, doc := call(t, http.DefaultClient, base, token, "GET", path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, status, doc)
	}
	out := map[string]map[string]any{}
	list, _ := doc[key].([]any)
	for _, v := range list {
		m := v.(map[string]any)
		out[fmt.Sprint(m["rule"])] = m
	}
	return out
}

// alertsOf returns the patient's active alerts through the API, by rule.
func alertsOf(t *testing.T, base, token, patient string) map[string]map[string]any {
	t.Helper()
	return byRule(t, base, token, "/v1/alerts?state=firing,acknowledged&patient="+patient, "alerts")
}

// verdictsOf returns what each rule of the patient's plan says now, by rule.
func verdictsOf(t *testing.T, base, token, patient string) map[string]map[string]any {
	t.Helper()
	return byRule(t, base, token, "/v1/patients/"+patient+"/verdicts", "verdicts")
}

// watchedPatient enrols the patient's device, gives a clinician a token
// and the patient, and starts serve with analysis quick (sweeps every
// second), alerts firing at once and the extra flags; serve's log is
// shown on failure.
func watchedPatient(t *testing.T, patient, device, clinician, group string, extra ...string) (dir, token string, srv *instance) {
	t.Helper()
	needServices(t)
	dir = newDataDir(t)
	enroll(t, dir, patient, device)
	token = staffToken(t, dir, clinician, "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", clinician, "--patient", patient)
	srv = startServe(t, dir, group, append([]string{"--analysis-interval", "200ms", "--analysis-sweep", "1s", "--alert-fire-after", "0s"}, extra...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(srv.logs.String())
		}
	})
	return dir, token, srv
}

var hoursRE = regexp.MustCompile(`no heart rate data for ([0-9]+) h`)

// TestSilenceCountsFromStoredSample: a heart rate stored for 3 days ago,
// then a plan effective 30 days ago with a 24-hour silence rule: the alert
// says about 72 h (counted from the sample, not the plan), and its age
// grows at the next sweeps.
func TestSilenceCountsFromStoredSample(t *testing.T) {
	_, token, srv := watchedPatient(t, "p-si", "w-si", "dr-si", "t-silence")

	// 72 h 29 min 40 s ago: the alert says 72 h, and 73 h from a sweep about
	// 20 s on (a silence's sentence, in whole hours, moves the alert).
	heard := time.Now().Add(-72*time.Hour - 30*time.Minute + 20*time.Second).Truncate(time.Second)
	mosquittoPub(t, "w-si", fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 64}]}`, ts(heard)))
	waitUntil(t, 10*time.Second, "the heart rate stored", func() bool { return len(query(t, "w-si")) > 0 })

	plan := map[string]any{
		"effective": ts(time.Now().Add(-30 * 24 * time.Hour)),
		"regimen":   []any{},
		"rules":     []any{map[string]any{"id": "watch-silent", "kind": "silence", "metric": "heart_rate", "for": "24h", "severity": "warning"}},
	}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-si/plan", plan); status != http.StatusCreated {
		t.Fatalf("PUT plan: %d %v", status, doc)
	}
	var alert map[string]any
	waitUntil(t, 20*time.Second, "the silence alert", func() bool {
		alert = alertsOf(t, srv.url, token, "p-si")["watch-silent"]
		return alert != nil
	})
	if m := hoursRE.FindStringSubmatch(fmt.Sprint(alert["sentence"])); m == nil || m[1] != "72" ||
		!strings.Contains(fmt.Sprint(alert["sentence"]), "longer than the plan's 24 h (plan v1, since ") {
		t.Fatalf("alert sentence %q, want no heart rate data for 72 h (from the sample 3 days ago, not the plan 30 days ago)", alert["sentence"])
	}
	first := alert["value"].(float64)
	if first < 72.4 || first >= 72.5 {
		t.Errorf("alert value %v h, want 72.4 to 72.5", first)
	}
	// The age grows: the sweeps pass the rule on with its value now.
	waitUntil(t, 40*time.Second, "the alert to say 73 h", func() bool {
		alert = alertsOf(t, srv.url, token, "p-si")["watch-silent"]
		m := hoursRE.FindStringSubmatch(fmt.Sprint(alert["sentence"]))
		return m != nil && m[1] == "73"
	})
	if v := alert["value"].(float64); v <= 72.5 {
		t.Errorf("alert value %v h with the sentence %q", v, alert["sentence"])
	}
	v := verdictsOf(t, srv.url, token, "p-si")["watch-silent"]
	if hours := v["value"].(float64); v["judged"] != true || v["holds"] != true || hours <= 72.5 || hours > 72.6 {
		t.Errorf("verdict %v, want holding at a little more than 72.5 h", v)
	}
}

// TestPlanChangeKeepsMonitoring: a patient with four open alerts (sleep,
// MRS, adherence, silence) gets a new plan version effective now that
// changes one threshold: every rule is still judged, and every open alert
// says what its rule says under the new version.
func TestPlanChangeKeepsMonitoring(t *testing.T) {
	dir, token, srv := watchedPatient(t, "p-pc", "w-pc", "dr-pc", "t-planchange")

	now := time.Now().UTC().Truncate(time.Second)
	// Five short nights, a severe MRS check-in (total 20) yesterday, no
	// estradiol logged, and the watch last heard 30 h ago.
	for i := range 5 {
		night(t, "w-pc", i+1, now.Add(-time.Duration(i)*24*time.Hour-time.Hour), 300)
	}
	mosquittoPub(t, "w-pc", fmt.Sprintf(`{"seq": 6, "samples": [
		{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 4, "heart_discomfort": 2,
		 "sleep_problems": 3, "joint_muscle": 2, "depressive_mood": 2, "irritability": 1, "anxiety": 2, "exhaustion": 2,
		 "sexual_problems": 1, "bladder": 1, "vaginal_dryness": 0}},
		{"type": "heart_rate", "time": %q, "bpm": 70}]}`, ts(now.Add(-24*time.Hour)), ts(now.Add(-30*time.Hour))))
	waitUntil(t, 10*time.Second, "the samples stored", func() bool { return len(query(t, "w-pc")) >= 7 })

	plan := func(effective time.Time, sleepBelow int) map[string]any {
		return map[string]any{
			"effective": ts(effective),
			"regimen":   []any{map[string]any{"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "daily"}},
			"rules": []any{
				map[string]any{"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
					"over": "7d", "aggregate": "mean", "below": sleepBelow, "severity": "warning"},
				map[string]any{"id": "mrs-severe", "kind": "score", "instrument": "mrs", "score": "total", "above": 16, "severity": "critical"},
				map[string]any{"id": "estradiol-adherence", "kind": "adherence", "medication": "estradiol", "over": "14d", "below": 0.8, "severity": "warning"},
				map[string]any{"id": "watch-silent", "kind": "silence", "metric": "heart_rate", "for": "24h", "severity": "warning"},
			},
		}
	}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-pc/plan", plan(now.Add(-30*24*time.Hour), 420)); status != http.StatusCreated {
		t.Fatalf("PUT plan v1: %d %v", status, doc)
	}
	rules := []string{"sleep-short", "mrs-severe", "estradiol-adherence", "watch-silent"}
	waitUntil(t, 20*time.Second, "four open alerts", func() bool { return len(alertsOf(t, srv.url, token, "p-pc")) == 4 })

	// Tried first: the preview says what v2 would have raised over the last
	// 7 days, judges it now as saved, and stores nothing.
	started := time.Now()
	status, pv := call(t, http.DefaultClient, srv.url, token, "POST", "/v1/patients/p-pc/plan/preview?days=7", plan(now, 390))
	t.Logf("preview of 7 days over InfluxDB: %v", time.Since(started))
	if status != http.StatusOK {
		t.Fatalf("POST preview: %d %v", status, pv)
	}
	summary := fmt.Sprint(pv["summary"])
	if !regexp.MustCompile(`^This plan would have raised [4-9] alerts in the last 7 days: `).MatchString(summary) {
		t.Errorf("preview summary %q", summary)
	}
	previewed, _ := pv["rules"].([]any)
	if len(previewed) != len(rules) {
		t.Fatalf("preview of %d rules: %v", len(previewed), pv)
	}
	for i, r := range rules {
		rp := previewed[i].(map[string]any)
		nowV, _ := rp["now"].(map[string]any)
		ts, _ := rp["transitions"].([]any)
		if !strings.Contains(summary, r+" on ") {
			t.Errorf("preview summary %q does not name %s", summary, r)
		}
		if rp["rule"] != r || nowV["judged"] != true || nowV["holds"] != true || nowV["plan_version"] != 2.0 || len(ts) == 0 ||
			ts[0].(map[string]any)["change"] != "fired" {
			t.Errorf("preview of %s: %v", r, rp)
		}
	}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "POST", "/v1/patients/p-pc/plan/preview?days=91", plan(now, 390)); status != http.StatusBadRequest {
		t.Errorf("a preview of 91 days: %d %v, want 400", status, doc)
	}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "GET", "/v1/patients/p-pc/plan", nil); status != http.StatusOK || doc["version"] != 1.0 {
		t.Errorf("after the preview the plan is v%v, want v1 (%d)", doc["version"], status)
	}

	// The admin command's dry run says the same, and saves nothing either.
	body, _ := json.Marshal(plan(now, 390))
	file := filepath.Join(t.TempDir(), "v2.json")
	if err := os.WriteFile(file, []byte(strings.Replace(string(body), "{", `{"patient":"p-pc",`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, dir, "plans", "apply", "--dry-run", "--days", "7", "-f", file, "--influx-url", influx.URL, "--influx-bucket", "patientpulse")
	if !strings.HasPrefix(out, "Plan for p-pc, tried over its last 7 days (nothing saved):\n"+summary+"\n") ||
		!strings.Contains(out, "\nmrs-severe (score, critical): alert when the latest MRS total is above 16\n  now: MRS total 20 is above the plan's 16 (plan v2, since ") {
		t.Errorf("plans apply --dry-run printed:\n%s\nwant the summary %q and each rule", out, summary)
	}

	// v2 from now: sleep 420 -> 390 min.
	if status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-pc/plan", plan(now, 390)); status != http.StatusCreated || doc["version"] != 2.0 {
		t.Fatalf("PUT plan v2: %d %v", status, doc)
	}
	var open map[string]map[string]any
	waitUntil(t, 20*time.Second, "every open alert to say plan v2", func() bool {
		open = alertsOf(t, srv.url, token, "p-pc")
		for _, r := range rules {
			if a := open[r]; a == nil || !strings.Contains(fmt.Sprint(a["sentence"]), "(plan v2, since ") {
				return false
			}
		}
		return true
	})
	for _, r := range rules {
		s := fmt.Sprint(open[r]["sentence"])
		if strings.Contains(s, "not judged") || open[r]["not_judged"] == true || open[r]["plan_version"] != 2.0 {
			t.Errorf("%s alert after the change: %q (not_judged %v, plan v%v)", r, s, open[r]["not_judged"], open[r]["plan_version"])
		}
	}
	if s := fmt.Sprint(open["sleep-short"]["sentence"]); !strings.HasPrefix(s, "7-day mean sleep 5 h is below the plan's 6.5 h") {
		t.Errorf("sleep alert %q, want the new bound of 6.5 h", s)
	}
	if s := fmt.Sprint(open["mrs-severe"]["sentence"]); !strings.HasPrefix(s, "MRS total 20 is above the plan's 16") {
		t.Errorf("MRS alert %q", s)
	}
	if s := fmt.Sprint(open["estradiol-adherence"]["sentence"]); !strings.HasPrefix(s, "estradiol: 0 of ") {
		t.Errorf("adherence alert %q", s)
	}
	vs := verdictsOf(t, srv.url, token, "p-pc")
	for _, r := range rules {
		if v := vs[r]; v == nil || v["judged"] != true || v["holds"] != true || v["plan_version"] != 2.0 {
			t.Errorf("%s verdict under v2: %v, want judged and holding", r, v)
		}
	}
	// No rule went through "not judged" on the way.
	changes, sentences := transitionsOf(t, srv.url, token, "p-pc")
	for i, c := range changes {
		if strings.HasPrefix(c, "not_judged") {
			t.Errorf("transition %s: %s", c, sentences[i])
		}
	}
}
