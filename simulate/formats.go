package simulate

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/patientpulse/patientpulse/ingest"
)

// A phone app speaks more than the envelope: the simulated apps send
// their laboratory results as FHIR R4 (a transaction Bundle of
// Observations, as a lab feed would) and their weekly blood pressure and
// weight as Open mHealth data points (as a HealthKit or Health Connect
// bridge would); everything else goes in the envelope.

// request is one HTTPS request of an app: its path, content type and body.
type request struct {
	path, contentType string
	body              []byte
	samples           int
}

// appRequests splits an app's samples into requests of at most 50
// samples: labs as FHIR, vitals as Open mHealth, the rest as envelopes
// (numbered from seq, which it returns advanced).
func appRequests(seq int64, samples []timed) ([]request, int64) {
	var labs, vitals, other []timed
	for _, s := range samples {
		switch s.sample["type"] {
		case "lab":
			labs = append(labs, s)
		case "vitals":
			vitals = append(vitals, s)
		default:
			other = append(other, s)
		}
	}
	var out []request
	for part := range chunks(other, 50) {
		seq++
		out = append(out, request{"/v1/ingest", "application/json", envelope(seq, part), len(part)})
	}
	for part := range chunks(labs, 50) {
		out = append(out, request{"/v1/fhir", "application/fhir+json", fhirBundle(part), len(part)})
	}
	for part := range chunks(vitals, 50) {
		out = append(out, request{"/v1/ingest", "application/vnd.openmhealth+json", openMHealth(part), len(part)})
	}
	return out, seq
}

// chunks yields s in parts of at most n.
func chunks(s []timed, n int) func(func([]timed) bool) {
	return func(yield func([]timed) bool) {
		for len(s) > 0 {
			k := min(len(s), n)
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// fhirBundle writes lab samples as a FHIR R4 transaction Bundle of
// laboratory Observations, each coded with its analyte's first LOINC code
// (the catalog's) and its unit in UCUM.
func fhirBundle(labs []timed) []byte {
	loinc := map[string]string{}
	for _, a := range ingest.TheCatalog().Analytes {
		loinc[a.Name] = a.LOINC[0]
	}
	quantity := func(v any, unit string) map[string]any {
		return map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
	}
	var entries []map[string]any
	for _, l := range labs {
		s := l.sample
		unit := s["unit"].(string)
		obs := map[string]any{
			"resourceType": "Observation",
			"status":       "final",
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}},
			"code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org",
				"code": loinc[s["analyte"].(string)]}}},
			"effectiveDateTime": s["time"],
			"valueQuantity":     quantity(s["value"], unit),
		}
		rr := map[string]any{}
		if v, ok := s["ref_low"]; ok {
			rr["low"] = quantity(v, unit)
		}
		if v, ok := s["ref_high"]; ok {
			rr["high"] = quantity(v, unit)
		}
		if len(rr) > 0 {
			obs["referenceRange"] = []any{rr}
		}
		entries = append(entries, map[string]any{"resource": obs, "request": map[string]any{"method": "POST", "url": "Observation"}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	return b
}

// openMHealth writes vitals samples as an array of Open mHealth (IEEE
// 1752.1 header) data points: a blood-pressure and a body-weight point for
// each.
func openMHealth(vitals []timed) []byte {
	var points []map[string]any
	point := func(schema, at string, body map[string]any) {
		h := fnv.New64a()
		fmt.Fprint(h, schema, at, body)
		sum := h.Sum64()
		body["effective_time_frame"] = map[string]any{"date_time": at}
		points = append(points, map[string]any{
			"header": map[string]any{
				"uuid":                      fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(sum), uint16(sum>>32), sum>>48&0xfff, sum>>36&0xfff, sum&0xffffffffffff),
				"schema_id":                 map[string]any{"namespace": "omh", "name": schema, "version": "2.0"},
				"source_creation_date_time": at,
			},
			"body": body,
		})
	}
	for _, v := range vitals {
		s, at := v.sample, v.sample["time"].(string)
		if sys, ok := s["systolic"]; ok {
			point("blood-pressure", at, map[string]any{
				"systolic_blood_pressure":  map[string]any{"value": sys, "unit": "mmHg"},
				"diastolic_blood_pressure": map[string]any{"value": s["diastolic"], "unit": "mmHg"}})
		}
		if kg, ok := s["weight_kg"]; ok {
			point("body-weight", at, map[string]any{"body_weight": map[string]any{"value": kg, "unit": "kg"}})
		}
	}
	b, _ := json.Marshal(points)
	return b
}
