package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSimulateClinic runs `patientpulse simulate --once` against a real
// pipeline: every persona's rule fires, the responding patient stays
// quiet, and every sample the simulation sent is accepted.
func TestSimulateClinic(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	admin := staffToken(t, dir, "sim-admin", "admin")
	srv := startServe(t, dir, "t-sim", "--alert-fire-after", "0s", "--alert-resolve-after", "0s", "--analysis-interval", "100ms")
	var stdout, stderr bytes.Buffer
	args := []string{"simulate", "--data-dir", dir, "--mqtt-url", broker.URL, "--url", srv.url,
		"--patients", "10", "--backfill", "720h", "--seed", "3", "--once"}
	args = append(args, registryArgs(t, dir)...)
	if code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "history sent") {
		t.Fatalf("simulate said: %s", stderr.String())
	}

	want := map[string][]string{
		"sim-p002": {"peel-near-needling#forecast", "sleep-short"},
		"sim-p003": {"estradiol-adherence", "progesterone-adherence"},
		"sim-p004": {"review-visit", "watch-silent"},
		"sim-p005": {"mood-worsening"},
		"sim-p006": {"hrv-drop"},
		"sim-p007": {"flushes-high#forecast"},
		"sim-p008": {"mrs-severe", "review-visit"},
		"sim-p010": {"hematocrit-high"},
	}
	var got map[string][]string
	defer func() {
		if t.Failed() {
			t.Logf("active alerts by patient: %v", got)
		}
	}()
	active := func() {
		_, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/alerts?state=firing,acknowledged", nil)
		got = map[string][]string{}
		list, _ := doc["alerts"].([]any)
		for _, v := range list {
			a := v.(map[string]any)
			key := fmt.Sprint(a["rule"])
			if a["forecast"] == true {
				key += "#forecast"
			}
			got[fmt.Sprint(a["patient"])] = append(got[fmt.Sprint(a["patient"])], key)
		}
		for _, rules := range got {
			sort.Strings(rules)
		}
	}
	waitUntil(t, 60*time.Second, "every persona's alert", func() bool {
		active()
		for p, rules := range want {
			for _, r := range rules {
				if !slices.Contains(got[p], r) {
					return false
				}
			}
		}
		return true
	})
	// The responding patients end with none. With --alert-fire-after 0s
	// an alert opens as soon as a rule holds, and a patient judged
	// before the last of their history was read (on a loaded machine,
	// with the partition feed of a Postgres registry between ingest and
	// analysis) has one for a moment, resolved (--alert-resolve-after
	// 0s) once the rest is read and the rule clears.
	quiet := func() bool { return len(got["sim-p001"]) == 0 && len(got["sim-p009"]) == 0 }
	for deadline := time.Now().Add(20 * time.Second); !quiet() && time.Now().Before(deadline); active() {
		time.Sleep(200 * time.Millisecond)
	}
	if !quiet() {
		t.Errorf("the responding patients have alerts: %v, %v", got["sim-p001"], got["sim-p009"])
	}
	// The responding woman checks in every day, so every rule of her plan
	// judges: the demo shows no "not judged" for her.
	vs := verdictsOf(t, srv.url, admin, "sim-p001")
	if len(vs) == 0 {
		t.Error("sim-p001 has no verdicts")
	}
	for rule, v := range vs {
		if v["judged"] != true {
			t.Errorf("sim-p001's %s: %v", rule, v["sentence"])
		}
	}
	if m := metric(t, srv.url, "patientpulse_ingest_samples_rejected_total"); m != 0 {
		t.Errorf("the pipeline rejected %v simulated samples", m)
	}
	// Treatments: sim-p001 had a chemical peel, sim-p002 a pellet, and
	// microneedling and a peel too close after it planned (warned above);
	// both had their review visit, sim-p004's is only planned (overdue
	// above); the clinic's catalogue has them.
	for patient, want := range map[string]string{"sim-p001": "[chemical_peel:done review_visit:done]",
		"sim-p002": "[pellet_insertion:done review_visit:done microneedling:planned chemical_peel:planned]",
		"sim-p004": "[chemical_peel:done review_visit:planned]"} {
		_, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/patients/"+patient+"/procedures", nil)
		var got []string
		for _, p := range doc["procedures"].([]any) {
			m := p.(map[string]any)
			got = append(got, fmt.Sprint(m["type"], ":", m["status"]))
		}
		if fmt.Sprint(got) != want {
			t.Errorf("%s's procedures: %v, want %s", patient, got, want)
		}
	}
}
