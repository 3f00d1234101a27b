package notify

import (
	"net/http"
	"testing"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
)

const ntfyTestToken = "tk_0123456789abcdefghijklmnopq"

// ntfyReceiver answers as an ntfy server does: 200 and the message.
func ntfyReceiver(t *testing.T) *receiver {
	return newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"hwQ2YpKdmg","event":"message","topic":"clinic-topic"}`))
	})
}

// TestNtfyRequest checks ntfy's publish request: the text as the body,
// and Title, Priority, Tags and Click headers, minimal; the token only to
// the configured server.
func TestNtfyRequest(t *testing.T) {
	clinic := ntfyReceiver(t)
	elsewhere := ntfyReceiver(t) // another port: another server
	n := NewNtfy(NtfyConfig{URL: clinic.URL + "/clinic-topic", Token: ntfyTestToken})
	for _, tc := range []struct {
		name                  string
		m                     Message
		rc                    *receiver
		path                  string
		title, priority, tags string
		text                  string
		token                 bool
	}{
		{"escalated critical, clinic-wide", sampleEscalatedCritical(ChannelNtfy), clinic, "/clinic-topic",
			"patientpulse: critical alert escalated to tier 2", "urgent", "rotating_light,escalated",
			"A critical alert for one of your patients: escalated to tier 2. Open it: " + sampleLink, true},
		{"opened warning", sampleMessage(ChannelNtfy, alerts.ChangeOpened, analysis.SeverityWarning), clinic, "/clinic-topic",
			"patientpulse: warning alert opened", "high", "warning,opened",
			"A warning alert for one of your patients: opened. Open it: " + sampleLink, true},
		{"opened info", sampleMessage(ChannelNtfy, alerts.ChangeOpened, analysis.SeverityInfo), clinic, "/clinic-topic",
			"patientpulse: info alert opened", "default", "information_source,opened",
			"An info alert for one of your patients: opened. Open it: " + sampleLink, true},
		{"a staff member's topic on the clinic's server", toStaff(sampleEscalatedCritical(ChannelNtfy), clinic.URL+"/dr-who"), clinic, "/dr-who",
			"patientpulse: critical alert escalated to you (tier 2)", "urgent", "rotating_light,escalated",
			"A critical alert for one of your patients: escalated to you (tier 2). Open it: " + sampleLink, true},
		{"a staff member's topic elsewhere", toStaff(sampleEscalatedCritical(ChannelNtfy), elsewhere.URL+"/dr-who"), elsewhere, "/dr-who",
			"patientpulse: critical alert escalated to you (tier 2)", "urgent", "rotating_light,escalated",
			"A critical alert for one of your patients: escalated to you (tier 2). Open it: " + sampleLink, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(clinic.received()) + len(elsewhere.received())
			tc.m.FullPHI = true // mail's choice: never ntfy's
			assertDelivered(t, n.Send(t.Context(), tc.m), http.StatusOK)
			if after := len(clinic.received()) + len(elsewhere.received()); after != before+1 {
				t.Fatalf("%d requests, want 1", after-before)
			}
			reqs := tc.rc.received()
			got := reqs[len(reqs)-1]
			if got.method != http.MethodPost || got.path != tc.path {
				t.Errorf("request %s %s, want POST %s", got.method, got.path, tc.path)
			}
			auth := ""
			if tc.token {
				auth = "Bearer " + ntfyTestToken
			}
			for h, want := range map[string]string{
				"Title": tc.title, "Priority": tc.priority, "Tags": tc.tags, "Click": sampleLink,
				"Authorization": auth, "Content-Type": "text/plain; charset=utf-8", WebhookDeliveryHeader: tc.m.Delivery.ID,
			} {
				if v := got.header.Get(h); v != want {
					t.Errorf("%s = %q, want %q", h, v, want)
				}
			}
			if string(got.body) != tc.text {
				t.Errorf("body %q, want %q", got.body, tc.text)
			}
			assertMinimal(t, got)
		})
	}
}

// TestNtfyRefuses checks what is never published: a delivery with no
// topic, and one to a topic over plain http elsewhere than loopback.
func TestNtfyRefuses(t *testing.T) {
	rc := ntfyReceiver(t)
	assertRefused(t, NewNtfy(NtfyConfig{}).Send(t.Context(), sampleEscalatedCritical(ChannelNtfy)), "no ntfy topic")
	n := NewNtfy(NtfyConfig{URL: rc.URL + "/clinic-topic", Token: ntfyTestToken})
	res := n.Send(t.Context(), toStaff(sampleEscalatedCritical(ChannelNtfy), "http://ntfy.example/dr-who-s3cret"))
	assertRefused(t, res, "https://")
	if len(rc.received()) != 0 {
		t.Errorf("the clinic's topic got %d requests, want none", len(rc.received()))
	}
	assertProblems(t, NtfyConfig{URL: "http://ntfy.example/dr-who-s3cret"}.Validate(), []string{"https://"}, "s3cret")
}

func TestNtfyConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  NtfyConfig
		want []string
	}{
		{name: "none", cfg: NtfyConfig{}},
		{name: "public topic", cfg: NtfyConfig{URL: "https://ntfy.sh/clinic-s3cret"}},
		{name: "protected topic", cfg: NtfyConfig{URL: "https://ntfy.clinic.example/oncall-s3cret", Token: ntfyTestToken}},
		{name: "loopback", cfg: NtfyConfig{URL: "http://127.0.0.1:2586/clinic-s3cret"}},
		{name: "no topic", cfg: NtfyConfig{URL: "https://ntfy.sh/"}, want: []string{"topic"}},
		{name: "http elsewhere", cfg: NtfyConfig{URL: "http://ntfy.sh/clinic-s3cret"}, want: []string{"https://"}},
		{name: "token without a URL", cfg: NtfyConfig{Token: ntfyTestToken}, want: []string{"token needs the ntfy URL"}},
		{name: "token with a space", cfg: NtfyConfig{URL: "https://ntfy.sh/clinic-s3cret", Token: "tk_s3cret value"},
			want: []string{"token must be printable ASCII"}},
		{name: "token with a newline", cfg: NtfyConfig{URL: "https://ntfy.sh/clinic-s3cret", Token: "tk_s3cret\r\nX-Evil: 1"},
			want: []string{"token must be printable ASCII"}},
		{name: "both wrong", cfg: NtfyConfig{URL: "ftp://ntfy.sh/clinic-s3cret", Token: "tk s3cret"},
			want: []string{"https://", "token must be printable ASCII"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblems(t, tc.cfg.Validate(), tc.want, "s3cret", ntfyTestToken)
		})
	}
}
