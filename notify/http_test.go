package notify

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpChannels returns each HTTP channel posting to url (a clinic-wide
// ntfy topic too), with the message each is given in the tests.
func httpChannels(url string) map[string]struct {
	ch Channel
	m  Message
} {
	type entry = struct {
		ch Channel
		m  Message
	}
	return map[string]entry{
		ChannelWebhook:   {NewWebhook(WebhookConfig{URL: url, Secret: whTestSecret}), sampleEscalatedCritical(ChannelWebhook)},
		ChannelPagerDuty: {NewPagerDuty(PagerDutyConfig{URL: url, RoutingKey: pdTestKey}), sampleEscalatedCritical(ChannelPagerDuty)},
		ChannelSlack:     {NewChat(ChannelSlack, url), sampleEscalatedCritical(ChannelSlack)},
		ChannelTeams:     {NewChat(ChannelTeams, url), sampleEscalatedCritical(ChannelTeams)},
		ChannelNtfy:      {NewNtfy(NtfyConfig{URL: url}), sampleEscalatedCritical(ChannelNtfy)},
	}
}

// TestChannelStatuses checks how every HTTP channel judges an answer: 2xx
// delivers; 408, 429 and 5xx are worth retrying, after the receiver's
// Retry-After when it gives one; any other status (a redirect too, never
// followed) is final. What the receiver says is never kept.
func TestChannelStatuses(t *testing.T) {
	inAMinute := time.Now().Add(time.Minute).Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		retry      bool
		wait       [2]time.Duration // the range of Result.RetryAfter
	}{
		{name: "200", status: 200},
		{name: "202 (PagerDuty's)", status: 202},
		{name: "204", status: 204},
		{name: "400", status: 400},
		{name: "400 ignores Retry-After", status: 400, retryAfter: "7"},
		{name: "401", status: 401},
		{name: "403", status: 403},
		{name: "404", status: 404},
		{name: "410", status: 410},
		{name: "307 not followed", status: 307},
		{name: "408", status: 408, retry: true},
		{name: "429", status: 429, retry: true},
		{name: "429 Retry-After seconds", status: 429, retryAfter: "7", retry: true, wait: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 Retry-After date", status: 429, retryAfter: inAMinute, retry: true, wait: [2]time.Duration{50 * time.Second, time.Minute}},
		{name: "429 Retry-After unparsable", status: 429, retryAfter: "soon", retry: true},
		{name: "500", status: 500, retry: true},
		{name: "502", status: 502, retry: true},
		{name: "503", status: 503, retry: true},
		{name: "503 Retry-After seconds", status: 503, retryAfter: "120", retry: true, wait: [2]time.Duration{2 * time.Minute, 2 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			elsewhere := newReceiver(t, nil)
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", elsewhere.URL)
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, "no thanks, %s (%s)", sampleName, samplePatient) // echoes PHI
			})
			for name, c := range httpChannels(rc.URL + "/hook") {
				res := c.ch.Send(t.Context(), c.m)
				if res.Status != tc.status || res.Retry != tc.retry || res.RetryAfter < tc.wait[0] || res.RetryAfter > tc.wait[1] {
					t.Errorf("%s: result %+v, want status %d, retry %v, Retry-After within %v", name, res, tc.status, tc.retry, tc.wait)
				}
				wantErr := "HTTP " + strconv.Itoa(tc.status)
				if tc.status/100 == 2 {
					wantErr = ""
				}
				if res.Err != wantErr {
					t.Errorf("%s: error %q, want %q", name, res.Err, wantErr)
				}
			}
			if n := len(rc.received()); n != len(httpChannels(rc.URL)) {
				t.Errorf("the receiver got %d requests, want one a channel", n)
			}
			if n := len(elsewhere.received()); n != 0 {
				t.Errorf("a redirect was followed: %d requests elsewhere", n)
			}
		})
	}
}

// TestChannelNoAnswer checks that a refused connection and a receiver
// that does not answer before the attempt's deadline are worth retrying,
// and that their errors leave out the URL's credentials, query and path
// and every channel's secret.
func TestChannelNoAnswer(t *testing.T) {
	refused := newReceiver(t, nil)
	refusedURL := "http://relay:hunter2pw@" + refused.Listener.Addr().String() + "/hook-s3cretpath?token=tok3nvalue"
	refused.Close()
	hanging := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	hangingURL := strings.Replace(hanging.URL, "http://", "http://relay:hunter2pw@", 1) + "/hook-s3cretpath?token=tok3nvalue"
	for _, tc := range []struct {
		name, url string
		timeout   time.Duration
		want      string
	}{
		{"refused", refusedURL, 5 * time.Second, "connection refused"},
		{"no answer", hangingURL, 200 * time.Millisecond, "no answer before the attempt's deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, c := range httpChannels(tc.url) {
				ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
				res := c.ch.Send(ctx, c.m)
				cancel()
				if res.Delivered() || !res.Retry || res.Status != 0 || !strings.Contains(res.Err, tc.want) {
					t.Errorf("%s: result %+v, want a retry without a status, saying %q", name, res, tc.want)
				}
				for _, secret := range []string{"hunter2pw", "tok3nvalue", "s3cretpath", whTestSecret, pdTestKey, samplePatient} {
					if strings.Contains(res.Err, secret) {
						t.Errorf("%s: error %q carries %q", name, res.Err, secret)
					}
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, value string
		want        time.Duration
	}{
		{"none", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"seconds padded", " 30 ", 30 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"RFC 850 date", now.Add(time.Hour).Format(time.RFC850), time.Hour},
		{"date passed", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"unparsable", "soon", 0},
		{"huge", "99999999999999", 1 << 31 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryAfter(tc.value, now); got != tc.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}
