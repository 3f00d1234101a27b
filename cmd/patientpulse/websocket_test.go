package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn is a staff console's websocket, as a test reads it.
type wsConn struct {
	t        testing.TB
	conn     *websocket.Conn
	msgs     chan map[string]any // closed when the connection ends
	closeErr error               // why it ended; read after msgs is closed
}

// dialWS opens /v1/ws with a staff token and, when origin is not empty,
// an Origin header; it returns the HTTP status of a refusal.
func dialWS(t testing.TB, base, token, origin string, dialer *websocket.Dialer) (*wsConn, int) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	conn, resp, err := dialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/ws", h)
	if err != nil {
		if resp != nil {
			return nil, resp.StatusCode
		}
		t.Fatalf("dial /v1/ws: %v", err)
	}
	c := &wsConn{t: t, conn: conn, msgs: make(chan map[string]any, 100000)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(c.msgs)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.closeErr = err
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				c.msgs <- m
			}
		}
	}()
	return c, http.StatusSwitchingProtocols
}

// next returns the next message of the type, skipping others, or fails
// after 20s.
func (c *wsConn) next(typ string) map[string]any {
	c.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("websocket closed while waiting for %q", typ)
			}
			if m["type"] == typ {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %q message within 20s", typ)
		}
	}
}

// alertChange waits for an alert message with the change.
func (c *wsConn) alertChange(change string) map[string]any {
	c.t.Helper()
	for {
		m := c.next("alert")
		if m["change"] == change {
			return m
		}
	}
}

func (c *wsConn) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatalf("websocket write: %v", err)
	}
}

// TestAlertsReachWebsockets runs the whole pipeline: a heart rate
// published over MQTT breaks the patient's plan; the subscribed clinician
// gets the sample and the alert on their websocket, and so does on-call
// staff; an acknowledgement from one console reaches the other; a
// reconnecting console gets the snapshot; a console that cannot keep up
// is disconnected while the others keep receiving; strangers, foreign
// origins and another clinician's patient are refused.
func TestAlertsReachWebsockets(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-ws", "w-ws")
	cli(t, dir, "patients", "add", "--id", "p-else")
	clinician := staffToken(t, dir, "dr-ws", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "dr-ws", "--patient", "p-ws")
	oncall := staffToken(t, dir, "on-ws", "oncall")
	srv := startServe(t, dir, "t-ws", "--alert-fire-after", "0s", "--analysis-interval", "100ms",
		"--analysis-min-wear-hours", "1", "--ws-send-queue", "8", "--ws-origins", "https://console.clinic.example")
	plan := map[string]any{"effective": ts(time.Now().Add(-48 * time.Hour)), "rules": []any{map[string]any{
		"id": "hr-high", "kind": "threshold", "metric": "heart_rate.bpm", "over": "1d", "aggregate": "max",
		"above": 120, "min_days": 1, "severity": "critical"}}}
	if st, doc := call(t, http.DefaultClient, srv.url, clinician, "PUT", "/v1/patients/p-ws/plan", plan); st != http.StatusCreated {
		t.Fatalf("PUT plan: %d %v", st, doc)
	}

	// Refusals.
	if _, st := dialWS(t, srv.url, "", "", nil); st != http.StatusUnauthorized {
		t.Errorf("websocket without credentials: %d, want 401", st)
	}
	if _, st := dialWS(t, srv.url, clinician, "https://evil.example", nil); st != http.StatusForbidden {
		t.Errorf("websocket from a foreign origin: %d, want 403", st)
	}
	if c, st := dialWS(t, srv.url, clinician, "https://console.clinic.example", nil); st != http.StatusSwitchingProtocols {
		t.Errorf("websocket from an allowed origin: %d, want 101", st)
	} else {
		c.conn.Close()
	}

	doc := dialAndGreet(t, srv.url, clinician)
	dr, hello := doc.conn, doc.hello
	if hello["username"] != "dr-ws" || fmt.Sprint(hello["patients"]) != "[p-ws]" {
		t.Errorf("hello: %v", hello)
	}
	dr.send(map[string]any{"type": "subscribe", "patients": []string{"p-ws", "p-else"}})
	if e := dr.next("error"); !strings.Contains(fmt.Sprint(e["error"]), "p-else is not in your care") {
		t.Errorf("subscribing to another clinician's patient: %v", e)
	}
	dr.send(map[string]any{"type": "subscribe", "patients": []string{"p-ws"}, "batch": true}) // as the web app does
	dr.next("subscribed")
	on := dialAndGreet(t, srv.url, oncall).conn

	// The sample that breaks the plan.
	heard := time.Now().Add(-time.Minute)
	mosquittoPub(t, "w-ws", fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, ts(heard)))
	if s := dr.next("samples"); s["patient"] != "p-ws" || fmt.Sprint(s["samples"]) != "[map[fields:map[bpm:150] measurement:heart_rate time:"+ts(heard)+"]]" {
		t.Errorf("samples on the clinician's websocket: %v", s)
	}
	opened := dr.alertChange("opened")
	alert := opened["alert"].(map[string]any)
	if alert["severity"] != "critical" || alert["patient"] != "p-ws" ||
		!strings.HasPrefix(fmt.Sprint(alert["sentence"]), "1-day max heart rate 150 bpm is above the plan's 120 bpm") {
		t.Errorf("alert on the clinician's websocket: %v", alert)
	}
	if a := on.alertChange("opened")["alert"].(map[string]any); a["id"] != alert["id"] {
		t.Errorf("on-call's alert %v, the clinician's %v", a["id"], alert["id"])
	}
	if st := on.next("patient_status"); st["status"] != "critical" {
		t.Errorf("patient status: %v", st)
	}

	// The clinician acknowledges; on-call's console hears of it.
	dr.send(map[string]any{"type": "ack", "alert_id": alert["id"], "note": "calling her now"})
	dr.next("acked")
	acked := on.alertChange("acknowledged")
	if acked["actor"] != "dr-ws" || acked["note"] != "calling her now" || acked["alert"].(map[string]any)["state"] != "acknowledged" {
		t.Errorf("the acknowledgement on on-call's console: %v", acked)
	}

	// A reconnecting console gets the snapshot.
	on.conn.Close()
	again := dialAndGreet(t, srv.url, oncall)
	snap := again.snapshot["alerts"].([]any)
	if len(snap) != 1 || snap[0].(map[string]any)["id"] != alert["id"] || snap[0].(map[string]any)["state"] != "acknowledged" {
		t.Errorf("snapshot after reconnecting: %v", snap)
	}

	// A console that reads nothing, behind a small receive window, is
	// disconnected once its queue fills; the others go on.
	small := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}, ReadBufferSize: 1024}
	h := http.Header{"Authorization": {"Bearer " + clinician}}
	slow, _, err := small.Dial("ws"+strings.TrimPrefix(srv.url, "http")+"/v1/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"type": "subscribe", "patients": []string{"p-ws"}}); err != nil {
		t.Fatal(err)
	}
	var samples atomic.Int64
	go func() { // the clinician's own console keeps reading
		for m := range dr.msgs {
			if m["type"] == "samples" {
				samples.Add(int64(len(m["samples"].([]any))))
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the subscription is in
	evictions := func() float64 { return metric(t, srv.url, "patientpulse_ws_evictions_total") }
	before := evictions()
	for i := range 300 { // a message of 500 samples is one websocket message: the socket's buffers hold about 100
		var b strings.Builder
		for j := range 500 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"type": "heart_rate", "time": %q, "bpm": 70}`, ts(time.Now().Add(-time.Duration(i*500+j+120)*time.Second)))
		}
		mosquittoPub(t, "w-ws", fmt.Sprintf(`{"seq": %d, "samples": [%s]}`, i+2, b.String()))
		if evictions() > before {
			break
		}
	}
	waitUntil(t, 20*time.Second, "the slow console evicted", func() bool { return evictions() > before })
	waitUntil(t, 20*time.Second, "the clinician's console still receiving", func() bool { return samples.Load() >= 500 })

	// on-call resolves through the API; the clinician's console hears.
	if st, doc := call(t, http.DefaultClient, srv.url, oncall, "POST", fmt.Sprintf("/v1/alerts/%v/resolve", alert["id"]),
		map[string]string{"note": "rate back to normal"}); st != http.StatusOK {
		t.Fatalf("resolve: %d %v", st, doc)
	}
	if r := again.conn.alertChange("resolved"); r["actor"] != "on-ws" {
		t.Errorf("resolution on on-call's console: %v", r)
	}

	// Shutting down says goodbye to the consoles.
	srv.stop()
	for range again.conn.msgs {
	}
	if !websocket.IsCloseError(again.conn.closeErr, websocket.CloseGoingAway) {
		t.Errorf("the console's connection ended with %v, want a close frame 1001 (going away)", again.conn.closeErr)
	}
	for _, s := range []string{"p-ws", "w-ws", clinician, oncall} {
		if strings.Contains(srv.logs.String(), s) {
			t.Errorf("serve's log mentions %q", s)
		}
	}
}

// greeted is a console after its hello and snapshot.
type greeted struct {
	conn            *wsConn
	hello, snapshot map[string]any
}

func dialAndGreet(t *testing.T, base, token string) greeted {
	t.Helper()
	c, st := dialWS(t, base, token, "", nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("dial /v1/ws: %d", st)
	}
	return greeted{conn: c, hello: c.next("hello"), snapshot: c.next("snapshot")}
}

// metric reads a counter or gauge from /metrics, summed over its labels
// (0 when absent).
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSuffix(line, "\n")
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		var v float64
		fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v)
		sum += v
	}
	return sum
}

// TestWebsocketEndsWithCredentials: a console whose API token is revoked
// (or whose session ends, or whose account is disabled) is closed at its
// next request, with nothing more sent to it.
func TestWebsocketEndsWithCredentials(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-rev")
	token := staffToken(t, dir, "dr-rev", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "dr-rev", "--patient", "p-rev")
	srv := startServe(t, dir, "t-ws-rev", "--mqtt=false", "--cluster=false")
	c := dialAndGreet(t, srv.url, token).conn
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-rev"}})
	c.next("subscribed")

	mustStaff(t, dir, "", "staff", "revoke-tokens", "--username", "dr-rev")
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-rev"}})
	for m := range c.msgs {
		if m["type"] == "subscribed" {
			t.Fatalf("a console with a revoked token was answered: %v", m)
		}
	}
	if !websocket.IsCloseError(c.closeErr, websocket.ClosePolicyViolation) {
		t.Errorf("the console ended with %v, want close 1008 (signed out)", c.closeErr)
	}
}

// TestWebsocketCareTeamAndAuditFlood: taking a patient from a clinician's
// care team through the API stops that patient's samples on the
// clinician's open console at once (a later sample of another patient
// arrives, the first patient's does not); and 21 subscribes of 1000 ids
// write a bounded number of audit entries.
func TestWebsocketCareTeamAndAuditFlood(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	tokA := enroll(t, dir, "p-ct-a", "w-ct-a")
	tokB := enroll(t, dir, "p-ct-b", "w-ct-b")
	clinician := staffToken(t, dir, "dr-ct", "clinician")
	admin := staffToken(t, dir, "ad-ct", "admin")
	for _, p := range []string{"p-ct-a", "p-ct-b"} {
		mustStaff(t, dir, "", "staff", "assign", "--username", "dr-ct", "--patient", p)
	}
	srv := startServe(t, dir, "t-ws-ct", "--mqtt=false", "--cluster=false")
	sample := func(token string, seq, bpm int) {
		t.Helper()
		body := fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`, seq, ts(time.Now().Add(-time.Minute)), bpm)
		if st, doc, _ := post(t, srv.url, token, "application/json", []byte(body)); st != http.StatusAccepted {
			t.Fatalf("ingest: %d %v", st, doc)
		}
	}
	dr := dialAndGreet(t, srv.url, clinician).conn
	dr.send(map[string]any{"type": "subscribe", "patients": []string{"p-ct-a", "p-ct-b"}})
	dr.next("subscribed")
	sample(tokA, 1, 61)
	if s := dr.next("sample"); s["patient"] != "p-ct-a" {
		t.Fatalf("sample %v, want p-ct-a's", s)
	}
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "DELETE", "/v1/staff/dr-ct/patients/p-ct-a", nil); st != http.StatusNoContent {
		t.Fatalf("unassign: %d %v", st, doc)
	}
	sample(tokA, 2, 62)
	sample(tokB, 1, 63)
	if s := dr.next("sample"); s["patient"] != "p-ct-b" {
		t.Fatalf("after the unassignment the console got %v; want p-ct-b's samples only", s)
	}
	sample(tokB, 2, 64) // however the stored messages are handed on, p-ct-a's is not behind
	if s := dr.next("sample"); s["patient"] != "p-ct-b" {
		t.Fatalf("after the unassignment the console got %v; want p-ct-b's samples only", s)
	}

	// The audit flood of a websocket subscribe.
	before := len(auditEntries(t, srv.url, admin, "?action=patient.read&actor=ad-ct"))
	ad := dialAndGreet(t, srv.url, admin).conn
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("p-flood-%d", i%300)
	}
	for range 21 {
		ad.send(map[string]any{"type": "subscribe", "patients": ids})
	}
	answers := 0
	for answers < 21 {
		m := <-ad.msgs
		if m["type"] == "subscribed" || m["type"] == "error" {
			answers++
		}
	}
	reads := len(auditEntries(t, srv.url, admin, "?action=patient.read&actor=ad-ct")) - before
	denied := len(auditEntries(t, srv.url, admin, "?action=access.denied&actor=ad-ct"))
	if reads < 1 || reads > 6 || denied > 21 {
		t.Errorf("21 subscribes of 1000 ids wrote %d patient.read and %d access.denied entries; want 1 to 6 and at most 21", reads, denied)
	}
}
