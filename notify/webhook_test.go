package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
)

const whTestSecret = "0123456789abcdef-test-secret"

func TestWebhookSignedRequest(t *testing.T) {
	rc := newReceiver(t, nil)
	w := NewWebhook(WebhookConfig{URL: rc.URL + "/hook", Secret: whTestSecret})
	sent := sampleEscalatedCritical(ChannelWebhook)
	assertDelivered(t, w.Send(t.Context(), sent), 200)
	got := rc.only(t)
	if got.method != http.MethodPost || got.path != "/hook" {
		t.Errorf("request %s %s, want POST /hook", got.method, got.path)
	}
	for h, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "patientpulse-notify/1",
		WebhookEventHeader: alerts.ChangeEscalated, WebhookDeliveryHeader: "dlv-webhook-escalated",
	} {
		if v := got.header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	// The clinic's own system gets the whole event: patient, rule and
	// sentence.
	var ev alerts.Event
	if err := json.Unmarshal(got.body, &ev); err != nil || ev.Alert.ID != sampleAlertID || ev.Tier != "2" ||
		ev.Alert.Patient != samplePatient || ev.Alert.Sentence != sampleSentence || !ev.At.Equal(sampleAt) ||
		len(ev.OnCall) != 1 || ev.OnCall[0] != sampleStaff {
		t.Errorf("body decodes to %+v, %v; want the event sent", ev, err)
	}
	if bytes.Contains(got.body, []byte(sampleName)) {
		t.Errorf("the body names the patient: %s", got.body)
	}

	now := time.Now()
	verify := func(secret string, h http.Header, body []byte, at time.Time) error {
		r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		r.Header = h
		return VerifyWebhook([]byte(secret), r, body, time.Minute, at)
	}
	if err := verify(whTestSecret, got.header, got.body, now); err != nil {
		t.Fatalf("VerifyWebhook of the real request: %v", err)
	}
	if err := VerifyWebhook([]byte(whTestSecret), &http.Request{Header: got.header}, got.body, 0, now.Add(4*time.Minute)); err != nil {
		t.Errorf("VerifyWebhook 4 minutes later with the default skew: %v", err)
	}
	tampered := bytes.Replace(got.body, []byte(`"tier":"2"`), []byte(`"tier":"3"`), 1)
	if bytes.Equal(tampered, got.body) {
		t.Fatal("test did not tamper with the body")
	}
	refreshed := got.header.Clone()
	refreshed.Set(WebhookTimestampHeader, strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	unsigned := got.header.Clone()
	unsigned.Del(WebhookSignatureHeader)
	undated := got.header.Clone()
	undated.Del(WebhookTimestampHeader)
	malformed := got.header.Clone()
	malformed.Set(WebhookSignatureHeader, strings.TrimPrefix(got.header.Get(WebhookSignatureHeader), "sha256="))
	for _, tc := range []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		at     time.Time
		want   error
	}{
		{"wrong secret", "0123456789abcdef-other-secret", got.header, got.body, now, ErrWebhookSignature},
		{"empty secret", "", got.header, got.body, now, ErrWebhookSignature},
		{"tampered body", whTestSecret, got.header, tampered, now, ErrWebhookSignature},
		{"old timestamp", whTestSecret, got.header, got.body, now.Add(10 * time.Minute), ErrWebhookTimestamp},
		{"timestamp in the future", whTestSecret, got.header, got.body, now.Add(-10 * time.Minute), ErrWebhookTimestamp},
		{"replayed with a new timestamp", whTestSecret, refreshed, got.body, now.Add(time.Hour), ErrWebhookSignature},
		{"no signature", whTestSecret, unsigned, got.body, now, ErrWebhookSignature},
		{"signature without its sha256= prefix", whTestSecret, malformed, got.body, now, ErrWebhookSignature},
		{"no timestamp", whTestSecret, undated, got.body, now, ErrWebhookTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(tc.secret, tc.header, tc.body, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestWebhookRedelivery checks that each attempt at a delivery carries the
// same delivery id, signed afresh, and another delivery another id.
func TestWebhookRedelivery(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	w := NewWebhook(WebhookConfig{URL: rc.URL, Secret: whTestSecret})
	m := sampleMessage(ChannelWebhook, alerts.ChangeOpened, analysis.SeverityWarning)
	if res := w.Send(t.Context(), m); res.Status != 503 || !res.Retry {
		t.Fatalf("first attempt %+v, want a 503 to retry", res)
	}
	assertDelivered(t, w.Send(t.Context(), m), 200)
	other := sampleMessage(ChannelWebhook, alerts.ChangeResolved, analysis.SeverityWarning)
	assertDelivered(t, w.Send(t.Context(), other), 200)
	reqs := rc.received()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.header.Get(WebhookDeliveryHeader)
		if err := VerifyWebhook([]byte(whTestSecret), &http.Request{Header: r.header}, r.body, time.Minute, time.Now()); err != nil {
			t.Errorf("attempt %d not signed: %v", i+1, err)
		}
	}
	if ids[0] != "dlv-webhook-opened" || ids[1] != ids[0] || ids[2] != "dlv-webhook-resolved" {
		t.Errorf("delivery ids %q, want the first twice, then the second delivery's", ids)
	}
	if got := reqs[2].header.Get(WebhookEventHeader); got != alerts.ChangeResolved {
		t.Errorf("%s = %q, want resolved", WebhookEventHeader, got)
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	const secret = "0123456789abcdef"
	for _, tc := range []struct {
		name string
		cfg  WebhookConfig
		want []string // each in the error; none: valid
	}{
		{name: "disabled", cfg: WebhookConfig{}},
		{name: "disabled ignores the rest", cfg: WebhookConfig{Secret: "x", Events: []string{"paged"}}},
		{name: "https", cfg: WebhookConfig{URL: "https://pager.example/hook", Secret: secret}},
		{name: "http to 127.0.0.1", cfg: WebhookConfig{URL: "http://127.0.0.1:9000/hook", Secret: secret}},
		{name: "http to ::1", cfg: WebhookConfig{URL: "http://[::1]:9000/", Secret: secret}},
		{name: "http to localhost", cfg: WebhookConfig{URL: "http://localhost/", Secret: secret}},
		{name: "events", cfg: WebhookConfig{URL: "https://pager.example/", Secret: secret,
			Events: []string{alerts.ChangeEscalated, alerts.ChangeSuppressed}}},
		{name: "http elsewhere", cfg: WebhookConfig{URL: "http://pager.example/", Secret: secret}, want: []string{"https://"}},
		{name: "other scheme", cfg: WebhookConfig{URL: "ftp://127.0.0.1/", Secret: secret}, want: []string{"https://"}},
		{name: "no host", cfg: WebhookConfig{URL: "https:///hook", Secret: secret}, want: []string{"no host"}},
		{name: "does not parse", cfg: WebhookConfig{URL: "https://pager.example/%zz", Secret: secret}, want: []string{"does not parse"}},
		{name: "short secret", cfg: WebhookConfig{URL: "https://pager.example/", Secret: "short"}, want: []string{"16 bytes"}},
		{name: "every problem at once", cfg: WebhookConfig{URL: "http://relay:hunter2pw@pager.example/", Secret: "short",
			Events: []string{alerts.ChangeOpened, "paged"}},
			want: []string{"https://", "16 bytes", `"paged"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblems(t, tc.cfg.Validate(), tc.want, "hunter2pw", "short")
		})
	}
}

// assertProblems fails t unless err names each of want, one problem a
// line (nil when want is empty), and none of secrets.
func assertProblems(t *testing.T, err error, want []string, secrets ...string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Validate() = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate() = nil, want %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %q, want it to mention %q", err, w)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != len(want) {
		t.Errorf("Validate() gave %d problems, want %d: %q", n, len(want), err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Validate() = %q echoes %q", err, s)
		}
	}
}

// TestWebhookWants checks which changes the router gives the webhook.
func TestWebhookWants(t *testing.T) {
	all := WebhookConfig{URL: "https://pager.example/", Secret: "0123456789abcdef"}
	some := all
	some.Events = []string{alerts.ChangeOpened, alerts.ChangeEscalated}
	for _, tc := range []struct {
		name   string
		cfg    WebhookConfig
		change string
		want   bool
	}{
		{"disabled", WebhookConfig{}, alerts.ChangeOpened, false},
		{"every change", all, alerts.ChangeUpdated, true},
		{"every change, suppressed too", all, alerts.ChangeSuppressed, true},
		{"a chosen change", some, alerts.ChangeEscalated, true},
		{"another change", some, alerts.ChangeResolved, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.wants(tc.change); got != tc.want {
				t.Errorf("wants(%q) = %v, want %v", tc.change, got, tc.want)
			}
		})
	}
}
