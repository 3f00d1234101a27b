package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/notify"
)

// TestAlertEscalatesToWebhook: a critical alert nobody acknowledges is
// escalated along examples/oncall.yaml, and the clinic's paging system
// hears of its opening and its escalation through the signed webhook.
func TestAlertEscalatesToWebhook(t *testing.T) {
	needServices(t)
	const secret = "a webhook secret of the clinic"
	var mu sync.Mutex
	var got []alerts.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook([]byte(secret), r, body, time.Minute, time.Now()); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev alerts.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer hook.Close()

	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-hook")
	for _, u := range []string{"otto", "nina", "sam", "dr-lee", "dr-khan"} {
		mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", u, "--role", "oncall")
	}
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(planFile, []byte("patient: p-hook\neffective: 2026-11-01T00:00:00Z\nrules:\n"+
		"  - {id: vitals-silent, kind: silence, metric: vitals, for: 24h, severity: critical}\n"), 0o600)
	mustStaff(t, dir, "", "plans", "apply", "-f", planFile)
	startServe(t, dir, "t-hook", "--alert-fire-after", "0s", "--oncall-schedule", filepath.Join("..", "..", "examples", "oncall.yaml"),
		"--webhook-url", hook.URL, "--webhook-secret", secret, "--webhook-events", "opened,escalated")

	waitUntil(t, 20*time.Second, "the webhook hears of the opening and the escalation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	opened, escalated := got[0], got[1]
	if opened.Change != "opened" || opened.Alert.Patient != "p-hook" || opened.Alert.Severity != "critical" {
		t.Errorf("first webhook event: %+v", opened)
	}
	if escalated.Change != "escalated" || escalated.Tier != "primary" || len(escalated.OnCall) == 0 ||
		!slices.ContainsFunc(escalated.OnCall, func(u string) bool { return strings.Contains("otto nina sam", u) }) {
		t.Errorf("second webhook event: %+v, want the escalation to the primary tier, naming who is on call", escalated)
	}
}

// TestOnCallScheduleOfUnknownStaff: serve refuses a rota naming staff who
// cannot sign in, naming them.
func TestOnCallScheduleOfUnknownStaff(t *testing.T) {
	dir := newDataDir(t)
	mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", "otto", "--role", "oncall")
	_, errOut, code := staffRun(t, dir, strings.NewReader(""), "serve", "--oncall-schedule",
		filepath.Join("..", "..", "examples", "oncall.yaml"), "--mqtt=false", "--influx-url", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "nina is not a member of staff") || strings.Contains(errOut, "otto is not") {
		t.Errorf("serve with a rota of unknown staff: exit %d, %s", code, errOut)
	}
}
