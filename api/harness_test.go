package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// testPassword is good enough for every password rule.
const testPassword = "lantern-quartz-meadow-71"

// testAPI is the API over a fresh SQLite registry, served by a real
// server, with no series reader or analysis.
type testAPI struct {
	reg *registry.Registry
	srv *httptest.Server
}

func newTestAPI(t *testing.T, series SeriesReader) *testAPI {
	t.Helper()
	return newTestAPIWith(t, series, nil)
}

// newTestAPIWith is newTestAPI with setup (when not nil) applied to the
// API before it serves: its Config, its clock.
func newTestAPIWith(t *testing.T, series SeriesReader, setup func(*API)) *testAPI {
	t.Helper()
	reg, err := registry.Open(t.Context(), testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	manager := alerts.NewManager(alerts.DefaultConfig(), reg, log, nil)
	a := auth.New(reg, auth.DefaultConfig(), reg, log, nil)
	mux := http.NewServeMux()
	api := New(Config{}, reg, a, series, nil, manager, log)
	if setup != nil {
		setup(api)
	}
	api.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &testAPI{reg: reg, srv: srv}
}

// staff adds a staff member and returns an API token of theirs.
func (ta *testAPI) staff(t *testing.T, username string, role registry.Role, patients ...string) string {
	t.Helper()
	ctx := t.Context()
	if err := ta.reg.AddStaff(ctx, username, role, testPassword); err != nil {
		t.Fatal(err)
	}
	for _, p := range patients {
		if err := ta.reg.AssignPatient(ctx, username, p); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := ta.reg.IssueStaffToken(ctx, username, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get answers GET path with token, decoding the JSON answer into out
// when it is not nil.
func (ta *testAPI) get(t *testing.T, token, path string, out any) int {
	t.Helper()
	code, body := ta.send(t, token, http.MethodGet, path, "")
	if out != nil {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatalf("GET %s: %d, body not JSON: %v", path, code, err)
		}
	}
	return code
}

// send sends method path with token (none when empty) and body (JSON,
// none when empty), and returns the status and the body as it came.
func (ta *testAPI) send(t *testing.T, token, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, ta.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}
