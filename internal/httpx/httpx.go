// Package httpx holds the small HTTP helpers that the ingest collector and
// the staff API share: JSON answers and the bearer token of a request.
package httpx

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
)

// WriteJSON answers with status and v as JSON, never cached: answers carry
// health data or credentials.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Problem is the body of every refusal of the staff API.
type Problem struct {
	Error string `json:"error"` // one sentence saying what is wrong
}

// Error answers with status and a Problem saying msg.
func Error(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Problem{Error: msg})
}

// Bearer returns the token of an "Authorization: Bearer" header, or "".
func Bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// ClientIP is the address the request came from, without its port.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
