package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFHIROverHTTPS posts FHIR R4 as a client library does, to the FHIR
// base, and reads back what InfluxDB holds: a transaction of four vital
// signs is four points, and the same again (new fullUrls) nothing new; a
// night of stage segments is a point per segment; an estradiol result in
// pg/mL is stored in pmol/L; and a heart rate of 900 is refused with the
// element named.
func TestFHIROverHTTPS(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-fhir", "app-fhir")
	srv := startServe(t, dir, "t-fhir")

	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) string { return ts(now.Add(-ago)) }
	observation := func(code, rest string) string {
		return fmt.Sprintf(`{"resourceType": "Observation", "status": "final",
			"code": {"coding": [{"system": "http://loinc.org", "code": %q}]},
			"subject": {"reference": "Patient/not-this-one"}, %s}`, code, rest)
	}
	mmHg := `"unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"`
	entries := []string{
		observation("8867-4", fmt.Sprintf(`"effectiveDateTime": %q, "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}`, at(time.Minute))),
		observation("29463-7", fmt.Sprintf(`"effectiveDateTime": %q, "valueQuantity": {"value": 154, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}`, at(2*time.Minute))),
		observation("85354-9", fmt.Sprintf(`"effectiveDateTime": %q, "component": [
			{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 121, %s}},
			{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 79, %s}}]`, at(3*time.Minute), mmHg, mmHg)),
		observation("55423-8", fmt.Sprintf(`"effectivePeriod": {"start": %q, "end": %q}, "valueQuantity": {"value": 812, "unit": "steps"}`, at(time.Hour), at(45*time.Minute))),
	}
	// transaction is the Bundle of the entries; each resend of it gets new
	// fullUrls, as a client library makes them.
	transaction := func(send int) string {
		var parts []string
		for i, e := range entries {
			parts = append(parts, fmt.Sprintf(`{"fullUrl": "urn:uuid:0c7e2b6f-51b8-4c1e-9d5a-%06d%06d", "resource": %s, "request": {"method": "POST", "url": "Observation"}}`, send, i, e))
		}
		return `{"resourceType": "Bundle", "type": "transaction", "entry": [` + strings.Join(parts, ",") + `]}`
	}

	status, answer := postFHIR(t, srv.url+"/v1/fhir", token, transaction(1))
	if status != 200 || answer["type"] != "transaction-response" || strings.Count(fmt.Sprint(answer["entry"]), "201 Created") != 4 {
		t.Fatalf("transaction answered %d %v, want 200 and a transaction-response of four 201 Created", status, answer)
	}
	points := map[string]bool{}
	fields := map[string]any{}
	stored := query(t, "app-fhir")
	for _, r := range stored {
		points[r.Measurement+"@"+r.Time.Format(time.RFC3339)] = true
		fields[r.Measurement+"."+r.Field] = r.Value
		if r.Tags["patient"] != "p-fhir" {
			t.Errorf("%s.%s stored for patient %q, want the token's", r.Measurement, r.Field, r.Tags["patient"])
		}
	}
	if len(points) != 4 {
		t.Errorf("InfluxDB holds %d points (%v), want 4", len(points), points)
	}
	if w, _ := fields["vitals.weight_kg"].(float64); fmt.Sprintf("%.2f", w) != "69.85" || fields["activity.steps"] != 812.0 || fields["vitals.diastolic"] != 79.0 {
		t.Errorf("stored %v, want weight_kg 69.85 (154 lb), steps 812, diastolic 79", fields)
	}

	if status, answer := postFHIR(t, srv.url+"/v1/fhir", token, transaction(2)); status != 200 || answer["type"] != "transaction-response" {
		t.Fatalf("the resend answered %d %v, want 200 and a transaction-response", status, answer)
	}
	if again := rowStrings(query(t, "app-fhir")); !slices.Equal(again, rowStrings(stored)) {
		t.Errorf("after a resend InfluxDB holds\n%q\nwant what it held before\n%q", again, rowStrings(stored))
	}

	// A night as its stage segments, in a batch: a point at each segment's
	// end, the awake one with a total_min of 0.
	segment := func(start, end time.Duration, stage string) string {
		return `{"resource": ` + observation("93832-4", fmt.Sprintf(`"effectivePeriod": {"start": %q, "end": %q},
			"valueCodeableConcept": {"coding": [{"system": "http://developer.apple.com/documentation/healthkit", "code": %q}]}`,
			at(start), at(end), "HKCategoryValueSleepAnalysis"+stage)) + `}`
	}
	night := `{"resourceType": "Bundle", "type": "batch", "entry": [` + segment(9*time.Hour, 8*time.Hour, "AsleepCore") + "," +
		segment(8*time.Hour, 7*time.Hour+30*time.Minute, "AsleepDeep") + "," + segment(7*time.Hour+30*time.Minute, 7*time.Hour+20*time.Minute, "Awake") + `]}`
	if status, answer := postFHIR(t, srv.url+"/v1/fhir", token, night); status != 200 || strings.Count(fmt.Sprint(answer["entry"]), "201 Created") != 3 {
		t.Fatalf("the night's segments answered %d %v, want a batch-response of three 201 Created", status, answer)
	}
	var sleep []string
	for _, r := range query(t, "app-fhir") {
		if r.Measurement == "sleep" && r.Field != "seq" { // seq: 0, FHIR has none
			sleep = append(sleep, fmt.Sprintf("%s=%v@%s", r.Field, r.Value, ts(r.Time)))
		}
	}
	slices.Sort(sleep)
	wantSleep := []string{"awake_min=10@" + at(7*time.Hour+20*time.Minute), "deep_min=30@" + at(7*time.Hour+30*time.Minute),
		"light_min=60@" + at(8*time.Hour), "total_min=0@" + at(7*time.Hour+20*time.Minute),
		"total_min=30@" + at(7*time.Hour+30*time.Minute), "total_min=60@" + at(8*time.Hour)}
	if !slices.Equal(sleep, wantSleep) {
		t.Errorf("InfluxDB holds the night as\n%q\nwant\n%q", sleep, wantSleep)
	}

	lab := observation("2243-4", fmt.Sprintf(`"effectiveDateTime": %q, "valueQuantity": {"value": 120, "unit": "pg/mL", "system": "http://unitsofmeasure.org", "code": "pg/mL"}`, at(4*time.Minute)))
	if status, answer := postFHIR(t, srv.url+"/v1/fhir/Observation", token, lab); status != 201 || answer["resourceType"] != "OperationOutcome" {
		t.Fatalf("lab Observation answered %d %v, want 201", status, answer)
	}
	for _, r := range query(t, "app-fhir") {
		if r.Measurement == "labs" && r.Field == "value" && fmt.Sprintf("%.2f", r.Value) != "440.52" {
			t.Errorf("estradiol 120 pg/mL stored as %v, want 440.52 pmol/L", r.Value)
		}
	}

	tooFast := observation("8867-4", fmt.Sprintf(`"effectiveDateTime": %q, "valueQuantity": {"value": 900, "code": "/min"}`, at(time.Minute)))
	status, answer = postFHIR(t, srv.url+"/v1/fhir/Observation", token, tooFast)
	if status != 422 || !strings.Contains(fmt.Sprint(answer["issue"]), "Observation.valueQuantity.value") {
		t.Errorf("a heart rate of 900 answered %d %v, want 422 naming Observation.valueQuantity.value", status, answer)
	}
	srv.stop()
	assertNoPHI(t, srv.logs.String(), "p-fhir", "app-fhir", "Test Patient", token)
}

// postFHIR posts a FHIR document with a device token and reads the answer,
// which must be FHIR JSON.
func postFHIR(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/fhir+json") {
		t.Fatalf("answer %d (%s) is not FHIR JSON: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return resp.StatusCode, doc
}
