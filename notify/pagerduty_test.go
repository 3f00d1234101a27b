package notify

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
)

const (
	pdTestKey  = "R0clinicWideServiceKey0000000001" // the clinic-wide service's
	pdStaffKey = "P0drWhoOwnIntegrationKey00000002" // a staff member's own
)

// pdReceiver answers as the Events API v2 does: 202 and a JSON status.
func pdReceiver(t *testing.T) *receiver {
	return newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"patientpulse-alert-41"}`))
	})
}

// TestPagerDutyRequest checks each event against the Events API v2 shape:
// routing_key, event_action, dedup_key, payload (summary, source,
// severity, timestamp, custom_details) and links, nothing else, and
// nothing of the patient.
func TestPagerDutyRequest(t *testing.T) {
	const (
		critical = analysis.SeverityCritical
		warning  = analysis.SeverityWarning
		info     = analysis.SeverityInfo
	)
	for _, tc := range []struct {
		name     string
		m        Message
		key      string // routing_key
		action   string
		summary  string
		severity string
		tier     string // custom_details.tier; "" for none
	}{
		{"escalated, clinic-wide", sampleEscalatedCritical(ChannelPagerDuty), pdTestKey, "trigger",
			"patientpulse: critical alert escalated to tier 2", critical, "2"},
		{"escalated to a staff member's key", toStaff(sampleEscalatedCritical(ChannelPagerDuty), pdStaffKey), pdStaffKey, "trigger",
			"patientpulse: critical alert escalated to you (tier 2)", critical, "2"},
		{"opened", sampleMessage(ChannelPagerDuty, alerts.ChangeOpened, critical), pdTestKey, "trigger",
			"patientpulse: critical alert opened", critical, ""},
		{"raised to warning", sampleMessage(ChannelPagerDuty, alerts.ChangeSeverityRaised, warning), pdTestKey, "trigger",
			"patientpulse: warning alert raised to warning", warning, ""},
		{"opened, info", sampleMessage(ChannelPagerDuty, alerts.ChangeOpened, info), pdTestKey, "trigger",
			"patientpulse: info alert opened", info, ""},
		{"acknowledged, on the staff member's key", toStaff(sampleMessage(ChannelPagerDuty, alerts.ChangeAcknowledged, critical), pdStaffKey),
			pdStaffKey, "acknowledge", "patientpulse: critical alert acknowledged by dr-who", critical, ""},
		{"resolved", sampleMessage(ChannelPagerDuty, alerts.ChangeResolved, critical), pdTestKey, "resolve",
			"patientpulse: critical alert resolved (the condition cleared)", critical, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := pdReceiver(t)
			p := NewPagerDuty(PagerDutyConfig{URL: rc.URL + "/v2/enqueue", RoutingKey: pdTestKey})
			tc.m.FullPHI = true // mail's choice: never PagerDuty's
			assertDelivered(t, p.Send(t.Context(), tc.m), http.StatusAccepted)
			got := rc.only(t)
			if got.method != http.MethodPost || got.path != "/v2/enqueue" {
				t.Errorf("request %s %s, want POST /v2/enqueue", got.method, got.path)
			}
			for h, want := range map[string]string{
				"Content-Type": "application/json", WebhookDeliveryHeader: tc.m.Delivery.ID,
			} {
				if v := got.header.Get(h); v != want {
					t.Errorf("%s = %q, want %q", h, v, want)
				}
			}
			details := map[string]any{"alert_id": 41, "change": tc.m.Event.Change, "delivery_id": tc.m.Delivery.ID}
			if tc.tier != "" {
				details["tier"] = tc.tier
			}
			want := jsonValue(t, map[string]any{
				"routing_key":  tc.key,
				"event_action": tc.action,
				"dedup_key":    "patientpulse-alert-41",
				"payload": map[string]any{
					"summary":        tc.summary,
					"source":         "patientpulse",
					"severity":       tc.severity,
					"timestamp":      "2025-11-03T09:30:00Z",
					"custom_details": details,
				},
				"links": []any{map[string]any{"href": sampleLink, "text": "Open and acknowledge"}},
			})
			if body := jsonValue(t, json.RawMessage(got.body)); !reflect.DeepEqual(body, want) {
				t.Errorf("body\n%s\nwant\n%s", got.body, mustJSON(t, want))
			}
			assertMinimal(t, got)
		})
	}
}

// jsonValue returns v as encoding/json decodes it into an any.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(mustJSON(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPagerDutyRefuses checks what PagerDuty is never sent: changes it
// has no action for, and a delivery without a key.
func TestPagerDutyRefuses(t *testing.T) {
	rc := pdReceiver(t)
	p := NewPagerDuty(PagerDutyConfig{URL: rc.URL, RoutingKey: pdTestKey})
	for _, change := range []string{alerts.ChangeUpdated, alerts.ChangeSnoozed, alerts.ChangeSuppressed, alerts.ChangeUnsuppressed} {
		assertRefused(t, p.Send(t.Context(), sampleMessage(ChannelPagerDuty, change, analysis.SeverityCritical)), "no action")
	}
	digest := Message{Delivery: sampleEscalatedCritical(ChannelPagerDuty).Delivery, Link: sampleLink,
		Digest: &Digest{Username: sampleStaff, Date: "2025-11-03"}}
	assertRefused(t, p.Send(t.Context(), digest), "no action")
	keyless := NewPagerDuty(PagerDutyConfig{URL: rc.URL})
	assertRefused(t, keyless.Send(t.Context(), sampleEscalatedCritical(ChannelPagerDuty)), "no pagerduty routing key")
	if n := len(rc.received()); n != 0 {
		t.Errorf("PagerDuty got %d requests, want none", n)
	}
	// A staff member's key needs no clinic-wide one.
	assertDelivered(t, keyless.Send(t.Context(), toStaff(sampleEscalatedCritical(ChannelPagerDuty), pdStaffKey)), http.StatusAccepted)
}

func TestPagerDutyDefaultURL(t *testing.T) {
	if got := NewPagerDuty(PagerDutyConfig{}).cfg.URL; got != "https://events.pagerduty.com/v2/enqueue" {
		t.Errorf("URL %q, want the Events API v2 endpoint", got)
	}
}

func TestPagerDutyConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PagerDutyConfig
		want []string
	}{
		{name: "staff keys only, the default endpoint", cfg: PagerDutyConfig{}},
		{name: "clinic-wide key", cfg: PagerDutyConfig{RoutingKey: pdTestKey}},
		{name: "loopback endpoint", cfg: PagerDutyConfig{URL: "http://127.0.0.1:8080/v2/enqueue", RoutingKey: pdTestKey}},
		{name: "https endpoint", cfg: PagerDutyConfig{URL: "https://events.eu.pagerduty.com/v2/enqueue"}},
		{name: "http endpoint elsewhere", cfg: PagerDutyConfig{URL: "http://events.pagerduty.com/v2/enqueue"}, want: []string{"https://"}},
		{name: "key too short", cfg: PagerDutyConfig{RoutingKey: "k3ysecret"}, want: []string{"PagerDuty integration key"}},
		{name: "key with a space", cfg: PagerDutyConfig{RoutingKey: strings.Repeat("k3ysecret ", 3)}, want: []string{"PagerDuty integration key"}},
		{name: "both", cfg: PagerDutyConfig{URL: "ftp://events.example/", RoutingKey: "k3ysecret-k3ysecret-k3ysecret!"},
			want: []string{"https://", "PagerDuty integration key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblems(t, tc.cfg.Validate(), tc.want, "k3ysecret")
		})
	}
}
