package notify

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
)

// TestChatRequest checks the Slack and Teams incoming webhooks' documented
// shapes: Slack's {"text"}, Teams' MessageCard with summary and text;
// both minimal, with the delivery id.
func TestChatRequest(t *testing.T) {
	const escalated = "A critical alert for one of your patients: escalated to tier 2. Open it: " + sampleLink
	acked := sampleMessage(ChannelSlack, alerts.ChangeAcknowledged, analysis.SeverityWarning)
	acked.Event.Actor = "<!channel> & co" // would notify the whole channel unescaped
	for _, tc := range []struct {
		name, kind string
		m          Message
		want       map[string]any
	}{
		{"slack", ChannelSlack, sampleEscalatedCritical(ChannelSlack), map[string]any{"text": escalated}},
		{"slack escapes its control characters", ChannelSlack, acked, map[string]any{
			"text": "A warning alert for one of your patients: acknowledged by &lt;!channel&gt; &amp; co. Open it: " + sampleLink}},
		{"teams", ChannelTeams, sampleEscalatedCritical(ChannelTeams), map[string]any{
			"@type":    "MessageCard",
			"@context": "https://schema.org/extensions",
			"summary":  "patientpulse: critical alert escalated to tier 2",
			"text":     escalated,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
			c := NewChat(tc.kind, rc.URL+"/services/T000/B000/XXXX")
			tc.m.FullPHI = true // mail's choice: never a chat's
			assertDelivered(t, c.Send(t.Context(), tc.m), http.StatusOK)
			got := rc.only(t)
			if got.method != http.MethodPost || got.path != "/services/T000/B000/XXXX" {
				t.Errorf("request %s %s, want POST to the webhook", got.method, got.path)
			}
			for h, want := range map[string]string{"Content-Type": "application/json", WebhookDeliveryHeader: tc.m.Delivery.ID} {
				if v := got.header.Get(h); v != want {
					t.Errorf("%s = %q, want %q", h, v, want)
				}
			}
			var body map[string]any
			if err := json.Unmarshal(got.body, &body); err != nil || !reflect.DeepEqual(body, tc.want) {
				t.Errorf("body %s (%v), want %v", got.body, err, tc.want)
			}
			assertMinimal(t, got)
		})
	}
}

func TestNewChatOtherKind(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewChat(ntfy) did not panic")
		}
	}()
	NewChat(ChannelNtfy, "https://chat.example/hook")
}

func TestChatConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ChatConfig
		want []string
	}{
		{name: "none", cfg: ChatConfig{}},
		{name: "both", cfg: ChatConfig{SlackURL: "https://hooks.slack.com/services/T0/B0/s3cret",
			TeamsURL: "https://clinic.webhook.office.com/webhookb2/s3cret"}},
		{name: "loopback", cfg: ChatConfig{SlackURL: "http://127.0.0.1:9/hook", TeamsURL: "http://localhost/hook"}},
		{name: "slack over http", cfg: ChatConfig{SlackURL: "http://hooks.slack.com/services/T0/B0/s3cret"}, want: []string{"slack URL must be https://"}},
		{name: "teams without a host", cfg: ChatConfig{TeamsURL: "https:///webhookb2/s3cret"}, want: []string{"teams URL has no host"}},
		{name: "both wrong", cfg: ChatConfig{SlackURL: "ftp://hooks.slack.com/s3cret", TeamsURL: "http://office.example/s3cret"},
			want: []string{"slack URL must be https://", "teams URL must be https://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblems(t, tc.cfg.Validate(), tc.want, "s3cret")
		})
	}
}
