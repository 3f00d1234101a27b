package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHematocritRuleFiresFromFHIRLab: the testosterone plan template, as
// a clinic applies it, fires its critical hematocrit rule from a
// laboratory result posted as a FHIR Observation, in the units the
// laboratory reported.
func TestHematocritRuleFiresFromFHIRLab(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-hct", "lab-hct")
	template, err := os.ReadFile(filepath.Join("..", "..", "examples", "plans", "hypogonadism-testosterone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Replace(string(template), "patient: p-002", "patient: p-hct", 1)
	plan = strings.Replace(plan, "effective: 2026-11-01T00:00:00Z", "effective: "+ts(time.Now().Add(-40*24*time.Hour)), 1)
	file := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(file, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	mustStaff(t, dir, "", "plans", "apply", "-f", file)
	clinician := staffToken(t, dir, "dr-hct", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "dr-hct", "--patient", "p-hct")
	srv := startServe(t, dir, "t-labs", "--analysis-interval", "1s", "--alert-fire-after", "0s")

	lab := fmt.Sprintf(`{"resourceType": "Observation", "status": "final",
		"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
		"code": {"coding": [{"system": "http://loinc.org", "code": "4544-3", "display": "Hematocrit [Volume Fraction] of Blood by Automated count"}]},
		"effectiveDateTime": %q,
		"valueQuantity": {"value": 0.56, "unit": "L/L", "system": "http://unitsofmeasure.org", "code": "L/L"},
		"referenceRange": [{"low": {"value": 0.4, "code": "L/L"}, "high": {"value": 0.52, "code": "L/L"}}]}`,
		ts(time.Now().Add(-2*time.Hour)))
	if status, answer := postFHIR(t, srv.url+"/v1/fhir/Observation", token, lab); status != http.StatusCreated {
		t.Fatalf("the lab Observation answered %d %v, want 201", status, answer)
	}
	var sentence string
	waitUntil(t, time.Minute, "hematocrit-high to fire", func() bool {
		status, doc := call(t, http.DefaultClient, srv.url, clinician, "GET", "/v1/patients/p-hct/transitions", nil)
		if status != http.StatusOK {
			t.Fatalf("GET transitions: %d %v", status, doc)
		}
		list, _ := doc["transitions"].([]any)
		for _, v := range list {
			if m := v.(map[string]any); m["rule"] == "hematocrit-high" && m["change"] == "fired" {
				sentence = fmt.Sprint(m["sentence"])
				return true
			}
		}
		return false
	})
	if want := "latest hematocrit (of 90 days) 56 % is above the plan's 54 %"; !strings.HasPrefix(sentence, want) {
		t.Errorf("sentence %q, want it to start %q", sentence, want)
	}
	// The alert manager opens the alert after the transition is recorded,
	// in its own step: on Postgres that is seen to take longer than the
	// test's next request.
	waitUntil(t, 10*time.Second, "the hematocrit-high alert", func() bool {
		status, doc := call(t, http.DefaultClient, srv.url, clinician, "GET", "/v1/alerts?patient=p-hct", nil)
		return status == http.StatusOK && strings.Contains(fmt.Sprint(doc["alerts"]), "hematocrit-high")
	})
}
