package main

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// night publishes one night's sleep of total minutes, ending at end, as
// the watch over MQTT.
func night(t *testing.T, device string, seq int, end time.Time, total int) {
	t.Helper()
	mosquittoPub(t, device, fmt.Sprintf(`{"seq": %d, "samples": [{"type": "sleep", "start": %q, "end": %q, "total_min": %d}]}`,
		seq, ts(end.Add(-11*time.Hour)), ts(end), total))
}

// transitionsOf reads the patient's transitions through the API, each as
// "change value", and the sentences.
func transitionsOf(t *testing.T, base, token, patient string) (changes, sentences []string) {
	t.Helper()
	status, doc := call(t, http.DefaultClient, base, token, "GET", "/v1/patients/"+patient+"/transitions", nil)
	if status != http.StatusOK {
		t.Fatalf("GET transitions: %d %v", status, doc)
	}
	list, _ := doc["transitions"].([]any)
	for _, v := range list {
		m := v.(map[string]any)
		changes = append(changes, fmt.Sprintf("%s %v", m["change"], m["value"]))
		sentences = append(sentences, fmt.Sprint(m["sentence"]))
	}
	return changes, sentences
}

// TestPlanRuleFiresAndClears: a clinician sets a plan through the API;
// sleep published over MQTT makes its rule fire, and later nights bring
// the patient back inside the target. A restart rebuilds the state from
// InfluxDB: no transition is repeated, and a night published after it is
// judged together with the nights before the restart.
func TestPlanRuleFiresAndClears(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-an", "w-an")
	token := staffToken(t, dir, "dr-an", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "dr-an", "--patient", "p-an")
	fast := []string{"--analysis-interval", "200ms", "--analysis-sweep", "1s"}
	srv := startServe(t, dir, "t-analysis", fast...)

	plan := map[string]any{
		"effective": ts(time.Now().Add(-30 * 24 * time.Hour)),
		"regimen":   []any{map[string]any{"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "twice_weekly"}},
		"rules": []any{map[string]any{"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
			"over": "7d", "aggregate": "mean", "below": 420, "min_days": 1, "severity": "warning"}},
	}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-an/plan", plan); status != http.StatusCreated || doc["version"] != 1.0 {
		t.Fatalf("PUT plan: %d %v", status, doc)
	}
	bad := map[string]any{"effective": ts(time.Now()), "rules": []any{map[string]any{"id": "x", "kind": "threshold", "metric": "sleep.nap_min"}}}
	if status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-an/plan", bad); status != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(doc["problems"]), "unknown metric") {
		t.Errorf("PUT an invalid plan: %d %v, want 422 naming the unknown metric", status, doc)
	}
	// A plan that makes no clinical sense, sent as the web editor sends
	// it (JSON on one line) with a bad duration: both problems at once,
	// each naming its rule.
	nonsense := map[string]any{"effective": ts(time.Now()), "rules": []any{
		map[string]any{"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
			"over": "7 days", "aggregate": "mean", "below": 420, "severity": "warning"},
		map[string]any{"id": "flushes-high", "kind": "threshold", "metric": "symptoms.hot_flushes", "instrument": "mrs",
			"over": "7d", "aggregate": "mean", "above": 99, "severity": "warning"},
	}}
	status, doc := call(t, http.DefaultClient, srv.url, token, "PUT", "/v1/patients/p-an/plan", nonsense)
	if want := []any{
		`rules[0] (sleep-short).over: line 1: "7 days" is not a duration: want a whole number and m, h, d or w, such as 7d`,
		"rules[1] (flushes-high).above: 99 is outside hot_flushes' range 0–4",
	}; status != http.StatusUnprocessableEntity || doc["error"] != "the plan has problems" || !reflect.DeepEqual(doc["problems"], want) {
		t.Errorf("PUT a plan that makes no clinical sense: %d %v, want 422 with the problems %q", status, doc, want)
	}
	req, _ := http.NewRequest("PUT", srv.url+"/v1/patients/p-an/plan", strings.NewReader("patient: p-an"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("PUT a plan as text/plain: %v %v, want 415", resp, err)
	} else {
		resp.Body.Close()
	}

	morning := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	wait := func(want ...string) []string {
		t.Helper()
		var got, sentences []string
		// Generous: make test runs the packages side by side on two
		// cores, and this wait ends as soon as the transitions are there.
		waitUntil(t, time.Minute, fmt.Sprintf("transitions %v", want), func() bool {
			got, sentences = transitionsOf(t, srv.url, token, "p-an")
			return strings.Join(got, ",") == strings.Join(want, ",")
		})
		return sentences
	}
	night(t, "w-an", 1, morning, 300)
	sentences := wait("fired 300")
	if want := "7-day mean sleep 5 h is below the plan's 7 h (plan v1, since "; !strings.HasPrefix(sentences[0], want) {
		t.Errorf("sentence %q, want it to start %q", sentences[0], want)
	}
	night(t, "w-an", 2, morning.Add(-24*time.Hour), 600)
	night(t, "w-an", 3, morning.Add(-48*time.Hour), 600)
	defer func() {
		if t.Failed() {
			t.Log(srv.logs.String())
		}
	}()
	wait("fired 300", "cleared 500") // (300+600+600)/3

	srv.stop()
	srv = startServe(t, dir, "t-analysis", fast...)
	// The restarted evaluator reads the patient back and judges them again:
	// that must record nothing new. evaluations_total counts an evaluation
	// as it begins, one at a time, so at 3 the first two after the restart
	// (the start-up's and a sweep's) have recorded whatever they found.
	waitUntil(t, 20*time.Second, "two evaluations after the restart", func() bool {
		return metric(t, srv.url, "patientpulse_analysis_evaluations_total") >= 3
	})
	wait("fired 300", "cleared 500")
	// (300+600+600+100)/4 = 400: only the nights from before the restart,
	// read back from InfluxDB, make that mean.
	night(t, "w-an", 4, morning.Add(-72*time.Hour), 100)
	wait("fired 300", "cleared 500", "fired 400")

	srv.stop()
	for _, s := range []string{"p-an", "w-an", token} {
		if strings.Contains(srv.logs.String(), s) {
			t.Errorf("serve's log mentions %q", s)
		}
	}
}
