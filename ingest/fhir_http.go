package ingest

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/patientpulse/patientpulse/registry"
)

// MediaFHIR is the media type of FHIR R4 JSON. A request with it on
// /v1/ingest, or any request under the FHIR base /v1/fhir, is read as FHIR
// and answered in FHIR.
const MediaFHIR = "application/fhir+json"

// FHIR base paths: POST FHIRBase takes a Bundle, POST FHIRBase+"/Observation"
// one Observation, as FHIR's RESTful API has it.
const FHIRBase = "/v1/fhir"

// issue is one issue of an OperationOutcome.
type issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`

	reason     string // Reason* label for metrics; not sent
	structural bool   // the resource does not read as FHIR: 400, not 422
}

// operationOutcome is FHIR's answer about what happened to a request.
type operationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []issue `json:"issue"`
}

func outcome(issues ...issue) *operationOutcome {
	return &operationOutcome{ResourceType: "OperationOutcome", Issue: issues}
}

// responseBundle is the answer to a Bundle: one entry per entry posted,
// in order.
type responseBundle struct {
	ResourceType string          `json:"resourceType"`
	Type         string          `json:"type"`
	Entry        []responseEntry `json:"entry"`
}

type responseEntry struct {
	Response entryResponse `json:"response"`
}

type entryResponse struct {
	Status  string            `json:"status"`
	Outcome *operationOutcome `json:"outcome,omitempty"`
}

// isFHIR reports whether r is a FHIR request: one under the FHIR base, or
// one whose body is FHIR JSON.
func isFHIR(r *http.Request) bool {
	if r.URL.Path == FHIRBase || strings.HasPrefix(r.URL.Path, FHIRBase+"/") {
		return true
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == MediaFHIR
}

// fhirAnswers is the response writer of a FHIR request: it marks the
// request so that every answer, refusals before the body is read included,
// is an OperationOutcome or a Bundle in MediaFHIR.
type fhirAnswers struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w fhirAnswers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// write answers with status and v as FHIR JSON, never cached.
func (w fhirAnswers) write(status int, v any) {
	w.Header().Set("Content-Type", MediaFHIR+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// refusal answers a request refused before its body was judged.
func (w fhirAnswers) refusal(status int, msg string) {
	w.write(status, outcome(issue{Severity: "error", Code: refusalCode(status), Diagnostics: msg}))
}

// refusalCode is the OperationOutcome issue type of a refusal by HTTP
// status.
func refusalCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "login"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusRequestEntityTooLarge:
		return "too-long"
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusTooManyRequests:
		return "throttled"
	case http.StatusServiceUnavailable:
		return "transient"
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return "not-supported"
	}
	return "invalid"
}

// ingestFHIR stores a FHIR body posted to path and answers in FHIR.
func (h *HTTP) ingestFHIR(ctx context.Context, w fhirAnswers, path string, dev registry.Device, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.WriteWait)
	defer cancel()
	status, answer, err := h.intake.IngestFHIR(ctx, TransportHTTP, dev, body, fhirExpects(path), h.writer.TryWrite)
	if h.storeFailed(w, err) {
		return
	}
	w.write(status, answer)
}

// fhirExpects returns the resource type a path takes: "Observation",
// "Bundle", or "" for either (/v1/ingest).
func fhirExpects(path string) string {
	switch strings.TrimSuffix(path, "/") {
	case FHIRBase + "/Observation":
		return "Observation"
	case FHIRBase:
		return "Bundle"
	}
	return ""
}
