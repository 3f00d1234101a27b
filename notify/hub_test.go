package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// hubRig is a hub behind auth on a real websocket server, over a registry
// with admin alice, clinician bob (care team p-1, p-2) and patients p-1
// to p-3.
type hubRig struct {
	t      *testing.T
	writes atomic.Int64 // writes to the server's connections
	path   string       // the registry's file
	reg    *registry.Registry
	hub    *Hub
	srv    *httptest.Server
	tokens map[string]string
}

func newHubRig(t *testing.T, cfg HubConfig) *hubRig {
	t.Helper()
	ctx := t.Context()
	path := testservices.RegistryDSN(t)
	reg, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	for _, p := range []string{"p-1", "p-2", "p-3"} {
		if err := reg.AddPatient(ctx, registry.Patient{ID: p}); err != nil {
			t.Fatal(err)
		}
	}
	r := &hubRig{t: t, path: path, reg: reg, tokens: map[string]string{}}
	for name, role := range map[string]registry.Role{"alice": registry.RoleAdmin, "bob": registry.RoleClinician} {
		if err := reg.AddStaff(ctx, name, role, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		if r.tokens[name], err = reg.IssueStaffToken(ctx, name, "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"p-1", "p-2"} {
		if err := reg.AssignPatient(ctx, "bob", p); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := auth.New(reg, auth.DefaultConfig(), reg, log, nil)
	r.hub = NewHub(cfg, a, alerts.NewManager(alerts.DefaultConfig(), reg, log, nil), log, nil)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", a.Authenticate(r.hub))
	r.srv = httptest.NewUnstartedServer(mux)
	r.srv.Listener = countingListener{r.srv.Listener, &r.writes}
	r.srv.Start()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.hub.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done; r.hub.Close(); r.srv.Close() })
	return r
}

// dial opens a console as username; it returns the HTTP status of a refusal.
func (r *hubRig) dial(username, origin string) (*hubConn, int) {
	r.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + r.tokens[username]}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/v1/ws", h)
	if err != nil {
		if resp != nil {
			return nil, resp.StatusCode
		}
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	c := &hubConn{t: r.t, conn: conn}
	c.next("hello")
	c.next("snapshot")
	return c, http.StatusSwitchingProtocols
}

func (r *hubRig) audit(f registry.AuditFilter) []registry.AuditEntry {
	r.t.Helper()
	es, err := r.reg.AuditEntries(r.t.Context(), f)
	if err != nil {
		r.t.Fatal(err)
	}
	return es
}

type hubConn struct {
	t    *testing.T
	conn *websocket.Conn
}

func (c *hubConn) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message, whatever its type.
func (c *hubConn) read() map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m map[string]any
	if err := c.conn.ReadJSON(&m); err != nil {
		c.t.Fatalf("websocket read: %v", err)
	}
	return m
}

// next returns the next message, which must be of the type.
func (c *hubConn) next(typ string) map[string]any {
	c.t.Helper()
	m := c.read()
	if m["type"] != typ {
		c.t.Fatalf("message %v, want type %q", m, typ)
	}
	return m
}

func heartRate(bpm float64) []ingest.Point {
	return []ingest.Point{{Measurement: "heart_rate", Time: time.Now().UTC(), Fields: []ingest.Field{{Key: "bpm", Value: bpm}}}}
}

// TestSubscribeAuditBounded: 21 subscribes of 1000 ids (half of them
// repeats) write one audit entry per subscribe accepted, a client that
// subscribes too often is refused, and more than MaxSubscribe ids are
// refused.
func TestSubscribeAuditBounded(t *testing.T) {
	t.Parallel()
	r := newHubRig(t, DefaultHubConfig())
	c, _ := r.dial("alice", "")
	ids := make([]string, 1000) // short ids, as in the report: 1000 fit in a small message
	for i := range ids {
		ids[i] = fmt.Sprint(i % 500)
	}
	for range 21 {
		c.send(map[string]any{"type": "subscribe", "patients": ids})
	}
	subscribed, refused := 0, 0
	for range 21 {
		switch m := c.read(); m["type"] {
		case "subscribed":
			subscribed++
			if n := len(m["patients"].([]any)); n != 500 {
				t.Errorf("subscribed to %d patients, want the 500 distinct ones", n)
			}
		case "error":
			refused++
			if !strings.Contains(fmt.Sprint(m["error"]), "too many subscribe requests") {
				t.Errorf("refusal %v", m)
			}
		default:
			t.Fatalf("answer %v", m)
		}
	}
	if subscribed < 1 || subscribed > DefaultHubConfig().SubscribeBurst+1 || subscribed+refused != 21 {
		t.Errorf("%d subscribed, %d refused; want at most %d subscribed, the rest refused", subscribed, refused, DefaultHubConfig().SubscribeBurst+1)
	}
	reads := r.audit(registry.AuditFilter{Action: registry.ActionPatientRead, Actor: "alice"})
	if len(reads) != subscribed {
		t.Errorf("%d subscribes accepted wrote %d patient.read entries, want one each", subscribed, len(reads))
	}
	for _, e := range reads {
		if e.Address != "127.0.0.1" || !strings.HasPrefix(e.Target, "websocket samples of 500 patients: 0,1,10,100,") {
			t.Errorf("entry %+v, want from 127.0.0.1 naming the 500 patients once", e)
		}
	}
	if all := r.audit(registry.AuditFilter{}); len(all) > 100 {
		t.Errorf("the audit log holds %d entries after 21 subscribes", len(all))
	}

	// Over the cap, on a fresh connection (its own rate).
	c2, _ := r.dial("alice", "")
	big := make([]string, 1001)
	for i := range big {
		big[i] = fmt.Sprintf("q-%04d", i)
	}
	c2.send(map[string]any{"type": "subscribe", "patients": big})
	if m := c2.next("error"); !strings.Contains(fmt.Sprint(m["error"]), "at most 1000 patients") {
		t.Errorf("1001 patients: %v", m)
	}
	es := r.audit(registry.AuditFilter{Action: registry.ActionAccessDenied, Limit: 1})
	if len(es) != 1 || es[0].Target != "websocket subscribe: 1001 patients" || es[0].Address != "127.0.0.1" {
		t.Errorf("refusal entry %+v", es)
	}
}

// TestUnassignStopsSamples: once a patient is taken from a clinician's
// care team, no sample of theirs reaches the clinician's console, while
// another patient's later sample does.
func TestUnassignStopsSamples(t *testing.T) {
	t.Parallel()
	r := newHubRig(t, DefaultHubConfig()) // Refresh 30s: the timer plays no part
	c, _ := r.dial("bob", "")
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-1", "p-2"}})
	c.next("subscribed")
	r.hub.Sample("p-1", heartRate(71))
	if m := c.next("sample"); m["patient"] != "p-1" {
		t.Fatalf("samples %v, want p-1's", m)
	}
	// What the API's DELETE /v1/staff/bob/patients/p-1 does.
	if err := r.reg.UnassignPatient(registry.WithActor(t.Context(), registry.Actor{Name: "alice"}), "bob", "p-1"); err != nil {
		t.Fatal(err)
	}
	r.hub.Sample("p-1", heartRate(72))
	r.hub.Sample("p-2", heartRate(73))
	if m := c.next("sample"); m["patient"] != "p-2" {
		t.Fatalf("after the unassignment, samples %v reached bob; want p-2's only", m)
	}
}

// TestSamplesOneMessage: a stored device message's points reach a console
// that subscribed with batch as one samples message, and one that did not
// as a sample message a point, in order, with their measurement, time,
// tags and fields; a console not subscribed to the patient gets none.
func TestSamplesOneMessage(t *testing.T) {
	t.Parallel()
	r := newHubRig(t, DefaultHubConfig())
	bob, _ := r.dial("bob", "")
	bob.send(map[string]any{"type": "subscribe", "patients": []string{"p-1"}})
	bob.next("subscribed")
	alice, _ := r.dial("alice", "")
	alice.send(map[string]any{"type": "subscribe", "patients": []string{"p-1", "p-3"}, "batch": true})
	alice.next("subscribed")
	other, _ := r.dial("alice", "")
	other.send(map[string]any{"type": "subscribe", "patients": []string{"p-3"}, "batch": true})
	other.next("subscribed")

	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	r.hub.Sample("p-1", []ingest.Point{
		{Measurement: "heart_rate", Time: at, Tags: []ingest.Tag{{Key: "device", Value: "w-1"}}, Fields: []ingest.Field{{Key: "bpm", Value: 61}}},
		{Measurement: "heart_rate", Time: at.Add(time.Second), Fields: []ingest.Field{{Key: "bpm", Value: 62}}},
		{Measurement: "vitals", Time: at.Add(2 * time.Second), Fields: []ingest.Field{{Key: "systolic", Value: 121}, {Key: "diastolic", Value: 79}}},
	})
	r.hub.Sample("p-3", heartRate(70))
	points := []string{
		`map[fields:map[bpm:61] measurement:heart_rate tags:map[device:w-1] time:2026-12-03T10:00:00Z]`,
		`map[fields:map[bpm:62] measurement:heart_rate time:2026-12-03T10:00:01Z]`,
		`map[fields:map[diastolic:79 systolic:121] measurement:vitals time:2026-12-03T10:00:02Z]`,
	}
	if m := alice.next("samples"); m["patient"] != "p-1" || fmt.Sprint(m["samples"]) != "["+strings.Join(points, " ")+"]" {
		t.Errorf("alice's samples: %v, want p-1's %s", m, points)
	}
	for i, want := range points {
		m := bob.next("sample")
		patient := m["patient"]
		delete(m, "type")
		delete(m, "patient")
		if patient != "p-1" || fmt.Sprint(m) != want {
			t.Errorf("bob's sample %d: %v of %v, want p-1's %s", i, m, patient, want)
		}
	}
	if m := alice.next("samples"); m["patient"] != "p-3" || len(m["samples"].([]any)) != 1 {
		t.Errorf("alice's second samples: %v, want p-3's one", m)
	}
	if m := other.next("samples"); m["patient"] != "p-3" {
		t.Errorf("a console subscribed to p-3 only got %v first", m)
	}
}

// TestUnassignByAnotherProcess: a change made through another handle on
// the registry (the admin command, in its own process) is found by Run's
// poll, and from then on no sample of the patient reaches the console.
func TestUnassignByAnotherProcess(t *testing.T) {
	t.Parallel()
	cfg := DefaultHubConfig()
	cfg.ChangePoll = 20 * time.Millisecond
	r := newHubRig(t, cfg)
	c, _ := r.dial("bob", "")
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-1", "p-2"}})
	c.next("subscribed")

	other, err := registry.Open(t.Context(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.UnassignPatient(registry.WithActor(t.Context(), registry.Actor{Name: "cli:root"}), "bob", "p-1"); err != nil {
		t.Fatal(err)
	}
	// Each round sends p-1's sample, then p-2's: until the poll finds the
	// change p-1's arrives first; from then on it never does.
	deadline := time.Now().Add(5 * time.Second)
	gone := false
	for round := 0; ; round++ {
		r.hub.Sample("p-1", heartRate(80))
		r.hub.Sample("p-2", heartRate(81))
		m := c.next("sample")
		if m["patient"] == "p-1" {
			if gone {
				t.Fatalf("round %d: p-1's sample reached bob after an earlier round had none", round)
			}
			c.next("sample") // p-2's
			if time.Now().After(deadline) {
				t.Fatal("the change made by another process was not found within 5s")
			}
			time.Sleep(cfg.ChangePoll)
			continue
		}
		if !gone {
			gone = true
			continue // a few more rounds, to see it stays gone
		}
		if round > 20 {
			break
		}
	}
}

// TestWebsocketRefusalsAudited: a refused origin and a refused
// subscription are in the audit log with the client's address, and so is
// an accepted subscription.
func TestWebsocketRefusalsAudited(t *testing.T) {
	t.Parallel()
	r := newHubRig(t, DefaultHubConfig())
	if _, st := r.dial("bob", "https://evil.example"); st != http.StatusForbidden {
		t.Fatalf("foreign origin: %d, want 403", st)
	}
	es := r.audit(registry.AuditFilter{Action: registry.ActionAccessDenied, Limit: 1})
	if len(es) != 1 || es[0].Actor != "bob" || es[0].Address != "127.0.0.1" || es[0].Target != `GET /v1/ws: origin "https://evil.example"` {
		t.Errorf("origin refusal entry %+v", es)
	}
	c, _ := r.dial("bob", "")
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-3"}})
	c.next("error")
	es = r.audit(registry.AuditFilter{Action: registry.ActionAccessDenied, Limit: 1})
	if len(es) != 1 || es[0].Patient != "p-3" || es[0].Address != "127.0.0.1" || es[0].Target != "websocket subscribe" {
		t.Errorf("subscribe refusal entry %+v", es)
	}
	c.send(map[string]any{"type": "subscribe", "patients": []string{"p-1"}})
	c.next("subscribed")
	es = r.audit(registry.AuditFilter{Action: registry.ActionPatientRead, Actor: "bob", Limit: 1})
	if len(es) != 1 || es[0].Patient != "p-1" || es[0].Address != "127.0.0.1" {
		t.Errorf("subscribe entry %+v", es)
	}
}

// TestSamplesQueuedTogether: the batches queued at once go out a patient
// at a time, each patient's points in the order they came, and the
// callers' arrays are left as they were.
func TestSamplesQueuedTogether(t *testing.T) {
	h := &Hub{cfg: HubConfig{Samples: 4}, samples: make(chan sampleBatch, 8)}
	first := slices.Grow(heartRate(1), 4) // room after its point, which appending must not take
	for i, p := range []string{"p-2", "p-1", "p-2", "p-2", "p-3"} {
		h.samples <- sampleBatch{p, heartRate(float64(i + 2))}
	}
	var got []string
	for _, b := range h.queued(sampleBatch{"p-1", first}) {
		var bpm []string
		for _, p := range b.points {
			bpm = append(bpm, fmt.Sprint(p.Fields[0].Value))
		}
		got = append(got, b.patient+":"+strings.Join(bpm, ","))
	}
	// Samples is 4: the fourth batch queued and the fifth wait for the next round.
	if want := "[p-1:1,3 p-2:2,4]"; fmt.Sprint(got) != want {
		t.Errorf("batches %v, want %s", got, want)
	}
	if after := first[:2][1]; after.Measurement != "" {
		t.Errorf("the caller's array was appended into: %v", after)
	}
	if len(h.samples) != 2 {
		t.Errorf("%d batches left queued, want 2", len(h.samples))
	}
}

// countingListener counts the writes to the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return countingConn{c, l.writes}, err
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestLiveSamplesWrittenTogether: samples that reach a console's writer
// within SampleLinger of each other go out in one write.
func TestLiveSamplesWrittenTogether(t *testing.T) {
	t.Parallel()
	cfg := DefaultHubConfig()
	cfg.SampleLinger = 300 * time.Millisecond
	r := newHubRig(t, cfg)
	alice, _ := r.dial("alice", "")
	alice.send(map[string]any{"type": "subscribe", "patients": []string{"p-1", "p-3"}, "batch": true})
	alice.next("subscribed")
	before := r.writes.Load()
	for i := range 10 {
		r.hub.Sample("p-1", heartRate(float64(60+i)))
		r.hub.Sample("p-3", heartRate(float64(60+i)))
		time.Sleep(5 * time.Millisecond) // not queued together: each its own message
	}
	messages := 0
	for points := 0; points < 20; messages++ {
		points += len(alice.next("samples")["samples"].([]any))
	}
	if n := r.writes.Load() - before; n > 3 || messages < 10 {
		t.Errorf("%d messages in %d writes, want at least 10 in at most 3", messages, n)
	}
}

// TestJoiningConsoleMissesNoChange: an alert opened after a console's
// snapshot was read, and pushed to the consoles before that one joined
// the hub, still reaches it, after its snapshot.
func TestJoiningConsoleMissesNoChange(t *testing.T) {
	r := newHubRig(t, DefaultHubConfig())
	first, _ := r.dial("alice", "")
	read, proceed := make(chan struct{}), make(chan struct{})
	r.hub.afterSnapshot = func() { close(read); <-proceed }
	type dialed struct {
		conn *websocket.Conn
		err  error
	}
	second := make(chan dialed, 1)
	go func() {
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/v1/ws",
			http.Header{"Authorization": {"Bearer " + r.tokens["alice"]}})
		second <- dialed{conn, err}
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the second console's snapshot was not read within 10s")
	}
	now := time.Now().UTC()
	body, err := json.Marshal(alerts.Event{Change: alerts.ChangeOpened, At: now,
		Alert: alerts.Alert{Patient: "p-1", Rule: "hr-high", Severity: "critical", State: registry.AlertFiring, OpenedAt: now}})
	if err != nil {
		t.Fatal(err)
	}
	row := registry.AlertRow{Patient: "p-1", Key: "hr-high", State: registry.AlertFiring, Severity: "critical",
		OpenedAt: now, UpdatedAt: now, Tier: -1, Body: body}
	_, err = r.reg.OpenAlert(t.Context(), row, registry.AlertEvent{At: now, Kind: alerts.ChangeOpened, Body: body},
		&registry.Outbox{Kind: alerts.ChangeOpened, At: now, Body: body})
	if err != nil {
		close(proceed)
		t.Fatal(err)
	}
	r.hub.Wake()
	err = first.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m map[string]any
	for err == nil && m["type"] != "alert" {
		err = first.conn.ReadJSON(&m)
	}
	close(proceed) // the second console joins
	if err != nil {
		t.Fatalf("the first console: %v, want the alert opened", err)
	}
	d := <-second
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Cleanup(func() { d.conn.Close() })
	c := &hubConn{t: t, conn: d.conn}
	c.next("hello")
	if snap := c.next("snapshot"); len(snap["alerts"].([]any)) != 0 {
		t.Fatalf("snapshot %v, want none: it was read before the alert opened", snap)
	}
	m = c.next("alert")
	if a, _ := m["alert"].(map[string]any); m["change"] != alerts.ChangeOpened || a["patient"] != "p-1" {
		t.Fatalf("after the snapshot: %v, want p-1's alert opened", m)
	}
}
