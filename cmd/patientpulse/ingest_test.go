package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// ts formats a time for an envelope.
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func TestMQTTSamplesStoredUnderPatient(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-mqtt", "watch-mqtt")
	startServe(t, dir, "t-mqtt")

	now := time.Now().UTC().Truncate(time.Second)
	night := now.Add(-2 * time.Hour)
	payload := fmt.Sprintf(`{"seq": 7, "samples": [
		{"type": "heart_rate", "time": %q, "bpm": 72},
		{"type": "sleep", "start": %q, "end": %q, "total_min": 410, "deep_min": 70},
		{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 3, "irritability": 1}},
		{"type": "dose", "time": %q, "medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg"}]}`,
		ts(now.Add(-time.Minute)), ts(night.Add(-8*time.Hour)), ts(night), ts(now.Add(-3*time.Minute)), ts(now.Add(-4*time.Minute)))
	published := time.Now()
	mosquittoPub(t, "watch-mqtt", payload)

	var rows []row
	waitUntil(t, 2*time.Second, "samples in InfluxDB", func() bool {
		rows = query(t, "watch-mqtt")
		return len(rows) == 10 // bpm, total_min, deep_min, hot_flushes, irritability, amount, and seq on each point
	})
	t.Logf("stored within %v of publishing", time.Since(published).Round(time.Millisecond))
	want := map[string]struct {
		value any
		time  time.Time
		tags  string
	}{
		"heart_rate.bpm":        {72.0, now.Add(-time.Minute), "device=watch-mqtt patient=p-mqtt"},
		"heart_rate.seq":        {int64(7), now.Add(-time.Minute), "device=watch-mqtt patient=p-mqtt"},
		"sleep.total_min":       {410.0, night, "device=watch-mqtt patient=p-mqtt"},
		"sleep.deep_min":        {70.0, night, "device=watch-mqtt patient=p-mqtt"},
		"sleep.seq":             {int64(7), night, "device=watch-mqtt patient=p-mqtt"},
		"symptoms.hot_flushes":  {3.0, now.Add(-3 * time.Minute), "device=watch-mqtt instrument=mrs patient=p-mqtt"},
		"symptoms.irritability": {1.0, now.Add(-3 * time.Minute), "device=watch-mqtt instrument=mrs patient=p-mqtt"},
		"symptoms.seq":          {int64(7), now.Add(-3 * time.Minute), "device=watch-mqtt instrument=mrs patient=p-mqtt"},
		"dose.amount":           {0.05, now.Add(-4 * time.Minute), "device=watch-mqtt medication=estradiol patient=p-mqtt route=transdermal unit=mg"},
		"dose.seq":              {int64(7), now.Add(-4 * time.Minute), "device=watch-mqtt medication=estradiol patient=p-mqtt route=transdermal unit=mg"},
	}
	got := map[string]row{}
	for _, r := range rows {
		got[r.Measurement+"."+r.Field] = r
	}
	if len(got) != len(want) {
		t.Errorf("stored fields %v, want exactly %d", keys(got), len(want))
	}
	for key, w := range want {
		r, ok := got[key]
		if !ok {
			t.Errorf("%s not stored", key)
			continue
		}
		if r.Value != w.value || !r.Time.Equal(w.time) || tagString(r.Tags) != w.tags {
			t.Errorf("%s = %v at %v tags %q; want %v at %v tags %q", key, r.Value, r.Time, tagString(r.Tags), w.value, w.time, w.tags)
		}
	}
}

func keys(m map[string]row) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// tagString renders the tags besides Flux's own as "k=v k=v", sorted.
func tagString(tags map[string]string) string {
	var parts []string
	for k, v := range tags {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func TestMQTTRejectionsAnswered(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-bad", "watch-bad")
	const deviceTTL = 300 * time.Millisecond
	srv := startServe(t, dir, "t-bad", "--device-cache-ttl", deviceTTL.String(), "--log-level", "debug")
	listener := mqttClient(t, "listener-bad")
	docs := subscribeErrors(t, listener, "watch-bad")
	strangers := subscribeErrors(t, listener, "watch-stranger")

	now := time.Now().UTC().Truncate(time.Second)
	mosquittoPub(t, "watch-bad", fmt.Sprintf(`{"seq": 1, "samples": [
		{"type": "heart_rate", "time": %q, "bpm": 400},
		{"type": "heart_rate", "time": %q, "bpm": 64}]}`, ts(now.Add(-2*time.Minute)), ts(now.Add(-time.Minute))))
	doc := nextDoc(t, docs)
	details, _ := doc["details"].([]any)
	if doc["seq"] != 1.0 || len(details) != 1 {
		t.Fatalf("error document %v, want seq 1 and one detail", doc)
	}
	d := details[0].(map[string]any)
	if d["sample"] != 0.0 || d["field"] != "bpm" || !strings.Contains(d["problem"].(string), "between") {
		t.Errorf("detail %v, want sample 0 field bpm with a range problem", d)
	}
	waitUntil(t, 2*time.Second, "the good neighbour stored", func() bool {
		rows := query(t, "watch-bad")
		return len(rows) == 2 && rows[0].Field == "bpm" && rows[0].Value == 64.0
	})

	mosquittoPub(t, "watch-bad", `{"seq": 2, "samples": "many"}`)
	if doc := nextDoc(t, docs); doc["seq"] != 2.0 || doc["error"] == "" {
		t.Errorf("malformed envelope answered %v", doc)
	}
	mosquittoPub(t, "watch-stranger", fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 60}]}`, ts(now)))
	if doc := nextDoc(t, strangers); !strings.Contains(doc["error"].(string), "not enrolled") {
		t.Errorf("unknown device answered %v", doc)
	}
	cli(t, dir, "devices", "revoke", "--device", "watch-bad")
	time.Sleep(deviceTTL) // a revocation takes effect within the device cache's ttl
	mosquittoPub(t, "watch-bad", fmt.Sprintf(`{"seq": 3, "samples": [{"type": "heart_rate", "time": %q, "bpm": 60}]}`, ts(now)))
	if doc := nextDoc(t, docs); !strings.Contains(doc["error"].(string), "revoked") {
		t.Errorf("revoked device answered %v", doc)
	}
	if n := len(query(t, "watch-stranger")); n != 0 {
		t.Errorf("unknown device's sample stored (%d fields)", n)
	}
	srv.stop()
	assertNoPHI(t, srv.logs.String(), "p-bad", "watch-bad", "watch-stranger", "Test Patient")
}

// assertNoPHI checks that serve's log names none of the patients, devices,
// names or tokens a test used, while it does log (so the check is not
// vacuous).
func assertNoPHI(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if !strings.Contains(logs, "rejected") && !strings.Contains(logs, "refused") {
		t.Errorf("serve logged no rejection at all:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("serve's log mentions %q:\n%s", s, logs)
		}
	}
}

func TestHTTPIngestStatuses(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-http", "app-http")
	revoked := strings.TrimSpace(cli(t, dir, "devices", "enroll", "--patient", "p-http", "--device", "app-old"))
	cli(t, dir, "devices", "revoke", "--device", "app-old")
	srv := startServe(t, dir, "t-http", "--max-body-bytes", "4096", "--log-level", "debug")

	now := time.Now().UTC().Truncate(time.Second)
	good := []byte(fmt.Sprintf(`{"seq": 5, "samples": [{"type": "vitals", "time": %q, "weight_kg": 68.2, "systolic": 121, "diastolic": 79}]}`, ts(now)))
	mixed := []byte(fmt.Sprintf(`{"seq": 6, "samples": [{"type": "vitals", "time": %q, "weight_kg": 68.4},
		{"type": "vitals", "time": %q, "systolic": 80, "diastolic": 120}]}`, ts(now.Add(time.Second)), ts(now.Add(2*time.Second))))
	allBad := []byte(fmt.Sprintf(`{"seq": 7, "samples": [{"type": "teleport", "time": %q}]}`, ts(now)))
	huge := []byte(`{"seq": 8, "samples": [` + strings.Repeat(`{"type":"heart_rate","time":"2026-01-01T00:00:00Z","bpm":60},`, 100) + `]}`)
	tests := []struct {
		name        string
		token       string
		contentType string
		body        []byte
		want        int
		check       func(t *testing.T, doc map[string]any, h http.Header)
	}{
		{name: "stored", token: token, body: good, want: 202, check: accepted(1)},
		{name: "partly stored", token: token, body: mixed, want: 202, check: func(t *testing.T, doc map[string]any, _ http.Header) {
			accepted(1)(t, doc, nil)
			if details, _ := doc["details"].([]any); len(details) == 0 || doc["seq"] != 6.0 {
				t.Errorf("202 body %v lacks the rejected sample's details", doc)
			}
		}},
		{name: "nothing valid", token: token, body: allBad, want: 400, check: func(t *testing.T, doc map[string]any, _ http.Header) {
			details, _ := doc["details"].([]any)
			if len(details) != 1 || details[0].(map[string]any)["field"] != "type" {
				t.Errorf("400 body %v, want one detail on field type", doc)
			}
		}},
		{name: "no token", token: "", body: good, want: 401},
		{name: "wrong token", token: "ppd_not-a-token", body: good, want: 401},
		{name: "revoked device", token: revoked, body: good, want: 403},
		{name: "not JSON", token: token, contentType: "text/plain", body: good, want: 415},
		{name: "too large", token: token, body: huge, want: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			status, doc, h := post(t, srv.url, tc.token, ct, tc.body)
			if status != tc.want {
				t.Fatalf("status %d (%v), want %d", status, doc, tc.want)
			}
			if _, ok := doc["error"]; !ok && status >= 400 {
				t.Errorf("%d body %v has no error", status, doc)
			}
			if tc.check != nil {
				tc.check(t, doc, h)
			}
		})
	}
	// 202 means stored: the points are there at once, no waiting.
	rows := query(t, "app-http")
	var weights []any
	for _, r := range rows {
		if r.Field == "weight_kg" {
			weights = append(weights, r.Value)
		}
	}
	if fmt.Sprint(weights) != "[68.2 68.4]" {
		t.Errorf("stored weights %v, want [68.2 68.4]", weights)
	}
	srv.stop()
	assertNoPHI(t, srv.logs.String(), "p-http", "app-http", "app-old", "Test Patient", token, revoked)
}

func accepted(n int) func(t *testing.T, doc map[string]any, _ http.Header) {
	return func(t *testing.T, doc map[string]any, _ http.Header) {
		t.Helper()
		if doc["accepted"] != float64(n) {
			t.Errorf("202 body %v, want accepted %d", doc, n)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-metrics", "app-metrics")
	srv := startServe(t, dir, "t-metrics")
	now := time.Now().UTC().Truncate(time.Second)
	post(t, srv.url, token, "application/json", []byte(fmt.Sprintf(`{"seq": 1, "samples": [
		{"type": "heart_rate", "time": %q, "bpm": 61}, {"type": "heart_rate", "time": %q, "bpm": 999}]}`, ts(now), ts(now))))

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nowhere": 404} {
		resp, err := http.Get(srv.url + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
		for header, value := range map[string]string{
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Referrer-Policy":           "no-referrer",
			"Strict-Transport-Security": "", // plain HTTP: no HSTS
		} {
			if got := resp.Header.Get(header); got != value {
				t.Errorf("GET %s: %s %q, want %q", path, header, got, value)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	resp, _ := http.Get(srv.url + "/metrics")
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	metrics := body.String()
	for _, want := range []string{
		`patientpulse_ingest_messages_total{transport="http"} 1`,
		`patientpulse_ingest_samples_accepted_total{transport="http",type="heart_rate"} 1`,
		`patientpulse_ingest_samples_rejected_total{reason="out_of_range",transport="http"} 1`,
		`patientpulse_writer_points_written_total 1`,
		`patientpulse_mqtt_connected 1`,
		`patientpulse_writer_write_duration_seconds_count`,
		`patientpulse_writer_batch_points_bucket`,
		`patientpulse_ingest_messages_in_flight{transport="http"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"p-metrics", "app-metrics", token} {
		if strings.Contains(metrics, leak) {
			t.Errorf("metrics mention %q", leak)
		}
	}
}

// Each rejected message is answered once: a device must not see the same
// answer twice.
func TestMQTTAnswersOnce(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-once", "watch-once")
	srv := startServe(t, dir, "t-once")
	listener := mqttClient(t, "listener-once")
	docs := subscribeErrors(t, listener, "watch-once")
	watch := mqttClient(t, "watch-once")
	const n = 10
	for seq := 1; seq <= n; seq++ {
		body := fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": 400}]}`, seq, ts(time.Now()))
		watch.Send(t, "pp/v1/devices/watch-once/data", body)
	}
	seen := map[float64]int{}
	for range n {
		seen[nextDoc(t, docs)["seq"].(float64)]++
	}
	// A repeated answer would be sent by a retry (a second after the
	// first), before its message is acknowledged. Once serve holds none of
	// the messages, no answer of theirs can be sent any more; the answer
	// to one more message is sent after any such repeat, by the same
	// client, and the broker delivers them in order.
	waitUntil(t, 10*time.Second, "every message handled and acknowledged", func() bool {
		return metric(t, srv.url, "patientpulse_ingest_messages_total") >= n &&
			metric(t, srv.url, "patientpulse_ingest_messages_in_flight") == 0
	})
	last := fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": 400}]}`, n+1, ts(time.Now()))
	watch.Send(t, "pp/v1/devices/watch-once/data", last)
	for doc := nextDoc(t, docs); doc["seq"] != float64(n+1); doc = nextDoc(t, docs) {
		t.Errorf("the answer to seq %v came again", doc["seq"])
	}
	if len(seen) != n {
		t.Errorf("answers by seq %v, want each of 1..%d once", seen, n)
	}
}
