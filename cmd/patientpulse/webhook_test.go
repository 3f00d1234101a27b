package main

import (
	"encoding/json"
	"fmt"
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
		filepath.Join("..", "..", "examples", "oncall.yaml"), "--mqtt=false", "--cluster=false", "--influx-url", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "nina is not a member of staff") || strings.Contains(errOut, "otto is not") {
		t.Errorf("serve with a rota of unknown staff: exit %d, %s", code, errOut)
	}
}

// TestPagersThroughServe: serve, set up with the clinic's PagerDuty
// service, Slack channel and ntfy topic (loopback receivers standing in),
// triggers PagerDuty and posts to Slack and ntfy when a critical alert
// opens, and acknowledges the PagerDuty incident, under the same dedup
// key, when staff acknowledge the alert; none of them names the patient.
func TestPagersThroughServe(t *testing.T) {
	needServices(t)
	type hit struct {
		path string
		body map[string]any
		text string
		head http.Header
	}
	var mu sync.Mutex
	var hits []hit
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		h := hit{path: r.URL.Path, text: string(raw), head: r.Header.Clone()}
		_ = json.Unmarshal(raw, &h.body)
		mu.Lock()
		hits = append(hits, h)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	seen := func(path string) []hit {
		mu.Lock()
		defer mu.Unlock()
		var out []hit
		for _, h := range hits {
			if h.path == path {
				out = append(out, h)
			}
		}
		return out
	}

	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-pager", "--name", "Ada Pagerfield")
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(plan, []byte("patient: p-pager\neffective: 2026-11-01T00:00:00Z\nrules:\n"+
		"  - {id: vitals-silent, kind: silence, metric: vitals, for: 24h, severity: critical}\n"), 0o600)
	mustStaff(t, dir, "", "plans", "apply", "-f", plan)
	admin := staffToken(t, dir, "admin-pager", "admin")
	const key = "R0UTINGKEY0123456789abcdef012345"
	srv := startServe(t, dir, "t-pagers", "--alert-fire-after", "0s",
		"--pagerduty-url", recv.URL+"/pagerduty", "--pagerduty-routing-key", key,
		"--slack-webhook-url", recv.URL+"/slack", "--ntfy-url", recv.URL+"/clinic-oncall")

	waitUntil(t, 20*time.Second, "PagerDuty, Slack and ntfy hear of the opening", func() bool {
		return len(seen("/pagerduty")) > 0 && len(seen("/slack")) > 0 && len(seen("/clinic-oncall")) > 0
	})
	trigger := seen("/pagerduty")[0].body
	dedup, _ := trigger["dedup_key"].(string)
	if trigger["routing_key"] != key || trigger["event_action"] != "trigger" || dedup == "" {
		t.Errorf("PagerDuty trigger: %v", trigger)
	}
	if p := seen("/clinic-oncall")[0]; p.head.Get("Priority") != "urgent" || !strings.Contains(p.head.Get("Click"), "/a/") {
		t.Errorf("ntfy push: headers %v", p.head)
	}
	_, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/alerts?patient=p-pager", nil)
	list, _ := doc["alerts"].([]any)
	if len(list) != 1 {
		t.Fatalf("alerts of p-pager: %v", doc)
	}
	id := list[0].(map[string]any)["id"]
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", fmt.Sprintf("/v1/alerts/%v/ack", id), map[string]any{"note": "on it"}); st != http.StatusOK {
		t.Fatalf("ack: %d %v", st, doc)
	}
	waitUntil(t, 10*time.Second, "PagerDuty hears of the acknowledgement", func() bool {
		for _, h := range seen("/pagerduty") {
			if h.body["event_action"] == "acknowledge" && h.body["dedup_key"] == dedup {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	for _, h := range hits {
		if strings.Contains(h.text, "p-pager") || strings.Contains(h.text, "Pagerfield") || h.head.Get(notify.WebhookDeliveryHeader) == "" {
			t.Errorf("%s got %q (delivery %q): a page names the patient or has no delivery id", h.path, h.text, h.head.Get(notify.WebhookDeliveryHeader))
		}
	}
}
