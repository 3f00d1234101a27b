package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// Fixtures of the channels' tests: one alert of one patient, its events
// and deliveries, and a loopback receiver that keeps what it is sent.

// The sample alert. Its patient, name, rule and sentence are what a
// minimal page must never carry.
const (
	sampleAlertID  = 41
	samplePatient  = "pt-7f3a9c"
	sampleName     = "Jane Testpatient"
	sampleRule     = "sleep-mean"
	sampleSentence = "7-day mean sleep 5.9 h is below the plan's 7.0 h"
	sampleLink     = "https://pp.example/a/c2FtcGxlLWxpbmstdG9rZW4"
	sampleStaff    = "dr-who" // on call in tier 2
)

// sampleAt is when the sample alert changed.
var sampleAt = time.Date(2025, 11, 3, 9, 30, 0, 0, time.UTC)

// sampleEvent returns the sample alert's change, at severity: an
// escalation reaches tier 2 with sampleStaff on call; an acknowledgement
// is by sampleStaff; a resolution is the condition clearing.
func sampleEvent(change, severity string) alerts.Event {
	ev := alerts.Event{Change: change, At: sampleAt, Alert: alerts.Alert{
		ID: sampleAlertID, Patient: samplePatient, Rule: sampleRule, State: "firing", Severity: severity,
		Sentence: sampleSentence, Value: 5.9, Bound: 7, PlanVersion: 3, OpenedAt: sampleAt.Add(-time.Hour), UpdatedAt: sampleAt,
	}}
	switch change {
	case alerts.ChangeEscalated:
		ev.Tier, ev.OnCall, ev.Alert.Tier = "2", []string{sampleStaff}, "2"
	case alerts.ChangeAcknowledged:
		ev.Actor, ev.Alert.State, ev.Alert.AckedBy = sampleStaff, "acknowledged", sampleStaff
	case alerts.ChangeResolved:
		ev.Alert.State, ev.Alert.ResolvedBy = "resolved", "patientpulse"
	}
	return ev
}

// sampleMessage returns the clinic-wide delivery on channel of
// sampleEvent(change, severity), with the patient's name (which only mail
// under --mail-phi=full may use) and a page link.
func sampleMessage(channel, change, severity string) Message {
	return Message{
		Delivery: registry.OutboxDelivery{ID: "dlv-" + channel + "-" + change, EventID: 7, AlertID: sampleAlertID,
			Channel: channel, State: registry.DeliveryPending, CreatedAt: sampleAt},
		Event:       sampleEvent(change, severity),
		PatientName: sampleName,
		Link:        sampleLink,
	}
}

// sampleEscalatedCritical is the sample critical alert escalated to tier
// 2, as the clinic-wide delivery on channel.
func sampleEscalatedCritical(channel string) Message {
	return sampleMessage(channel, alerts.ChangeEscalated, analysis.SeverityCritical)
}

// toStaff addresses m to sampleStaff at target (an address, topic URL or
// key).
func toStaff(m Message, target string) Message {
	m.Delivery.Recipient, m.Delivery.Target = sampleStaff, target
	return m
}

// assertMinimal fails t if c carries the sample patient, name, rule or
// sentence, in its body or any header.
func assertMinimal(t *testing.T, c captured) {
	t.Helper()
	var b strings.Builder
	b.Write(c.body)
	for k, vs := range c.header {
		b.WriteString("\n" + k + ": " + strings.Join(vs, ", "))
	}
	for _, phi := range []string{samplePatient, sampleName, sampleRule, sampleSentence, "5.9"} {
		if strings.Contains(b.String(), phi) {
			t.Errorf("the request carries %q:\n%s", phi, b.String())
		}
	}
}

// captured is one request a receiver got.
type captured struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// receiver is a loopback HTTP server that keeps every request it gets.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []captured
}

// newReceiver starts a receiver that answers each request with answer (n
// counts requests from 1), or 200 when answer is nil. It stops at the
// test's end.
func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, captured{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		n := len(rc.reqs)
		rc.mu.Unlock()
		if answer != nil {
			answer(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// received returns the requests so far.
func (rc *receiver) received() []captured {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]captured(nil), rc.reqs...)
}

// only returns the one request received; it fails t unless there was
// exactly one.
func (rc *receiver) only(t *testing.T) captured {
	t.Helper()
	reqs := rc.received()
	if len(reqs) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// assertDelivered fails t unless res is a delivery with status.
func assertDelivered(t *testing.T, res Result, status int) {
	t.Helper()
	if !res.Delivered() || res.Status != status || res.Retry || res.RetryAfter != 0 {
		t.Errorf("result %+v, want delivered with %d", res, status)
	}
}

// assertRefused fails t unless res is a final failure, made before any
// request, whose error mentions want.
func assertRefused(t *testing.T, res Result, want string) {
	t.Helper()
	if res.Delivered() || res.Retry || res.Status != 0 || !strings.Contains(res.Err, want) {
		t.Errorf("result %+v, want a final failure without a status mentioning %q", res, want)
	}
}
