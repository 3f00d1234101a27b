package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// The tests of Sessions run two runners (two instances) against a real
// Mosquitto; the points are stored by a real Writer into a recording sink.

// slotsHeld is a membership's view of the session slots: held answers
// from it.
type slotsHeld struct {
	mu   sync.Mutex
	held map[int]bool
}

func (h *slotsHeld) set(slot int, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[int]bool{}
	}
	h.held[slot] = held
}

func (h *slotsHeld) is(slot int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[slot]
}

type testSessions struct {
	*Sessions
	metrics *Metrics
	sink    *fakeSink
	slots   *slotsHeld
	intake  *Intake
}

// startSessions runs a Sessions on m, with base client id pp-test, until
// the test ends; every slot is held until the test says otherwise.
func startSessions(t *testing.T, m *testservices.Mosquitto, shareGroup string) *testSessions {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := NewMetrics(nil)
	sink := &fakeSink{}
	w := startWriter(t, testWriterConfig(), sink)
	intake := NewIntake(fakeDevices{}, 0, DefaultLimits(), metrics, log)
	cfg := MQTTConfig{URL: m.URL, ClientID: "pp-test", ShareGroup: shareGroup, MaxInFlight: 4, MaxBytes: 1 << 16,
		MaxReconnect: time.Second}
	ts := &testSessions{metrics: metrics, sink: sink, slots: &slotsHeld{}, intake: intake}
	for k := range 8 {
		ts.slots.set(k, true)
	}
	ts.Sessions = NewSessions(cfg, ts.slots.is, intake, w, metrics, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Sessions.Run: %v", err)
		}
	})
	return ts
}

// seqs are the seqs of the points stored, in the order stored, less the
// probes' (seq 0), which each test sends until its first collector is up.
func (ts *testSessions) seqs() []int {
	var out []int
	for _, l := range ts.sink.stored() {
		_, rest, _ := strings.Cut(l, ",seq=")
		var seq int
		fmt.Sscanf(rest, "%di", &seq)
		if seq != 0 {
			out = append(out, seq)
		}
	}
	return out
}

// probe sends seq 0 until ts stored one: its collector is subscribed.
func (ts *testSessions) probe(t *testing.T, dev device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(ts.sink.stored()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the collector took nothing within 10s")
		}
		dev.send(t, 0)
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitSeqs waits until the runner stored exactly want (in any order).
func (ts *testSessions) awaitSeqs(t *testing.T, what string, want ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !sameSet(ts.seqs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stored seqs %v, want %v", what, ts.seqs(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ts *testSessions) awaitStopped(t *testing.T) {
	t.Helper()
	waitFor(t, func() bool { return len(ts.Active()) == 0 })
}

func sameSet(got, want []int) bool {
	seen := map[int]int{}
	for _, s := range got {
		seen[s]++
	}
	for _, s := range want {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func seqRange(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// device publishes app-1's messages.
type device struct{ *testservices.Conn }

func newDevice(t *testing.T, m *testservices.Mosquitto) device {
	t.Helper()
	c, err := m.Connect(t, "app-1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return device{c}
}

func (d device) send(t *testing.T, seqs ...int) {
	t.Helper()
	for _, seq := range seqs {
		d.Send(t, DataTopic("app-1"), heartRate(seq, 60))
	}
}

// stillStored checks, for a while, that ts stored exactly want.
func stillStored(t *testing.T, ts *testSessions, what string, want ...int) {
	t.Helper()
	time.Sleep(700 * time.Millisecond)
	if got := ts.seqs(); !sameSet(got, want) {
		t.Fatalf("%s: stored seqs %v, want %v", what, got, want)
	}
}

// TestSessionsTakeOverBacklog: what the broker queued for slot 3's client
// id while no instance held the slot is drained by the instance that
// takes it; once that instance lets it go, its client is gone and the
// backlog builds up again, for the next holder.
func TestSessionsTakeOverBacklog(t *testing.T) {
	m := startMosquitto(t)
	a, b := startSessions(t, m, "patientpulse"), startSessions(t, m, "patientpulse")
	dev := newDevice(t, m)

	// a makes slot 3's persistent session, with its shared subscription.
	a.Set(map[int]int64{3: 1})
	a.probe(t, dev)
	a.Set(map[int]int64{})
	a.awaitStopped(t)

	dev.send(t, seqRange(1, 10)...)
	stillStored(t, a, "a after letting slot 3 go")
	stillStored(t, b, "b holding nothing")

	b.Set(map[int]int64{3: 2})
	b.awaitSeqs(t, "b after taking slot 3", seqRange(1, 10)...)
	if got := b.Active(); len(got) != 1 || got[0] != 3 {
		t.Errorf("b's active slots %v, want [3]", got)
	}

	b.Set(map[int]int64{})
	b.awaitStopped(t)
	dev.send(t, seqRange(11, 15)...)
	stillStored(t, b, "b after letting slot 3 go", seqRange(1, 10)...)
	a.Set(map[int]int64{3: 3})
	a.awaitSeqs(t, "a after taking slot 3 back", seqRange(11, 15)...)
}

// TestSessionsLeaseGated: a collector whose slot is not held does not
// connect, neither at its start nor after losing its connection, and
// connects (draining the backlog) once the slot is held again. A plain
// subscription, which Mosquitto keeps across a restart, carries the
// backlog over the restart that cuts the connection.
func TestSessionsLeaseGated(t *testing.T) {
	m := startMosquitto(t)
	a := startSessions(t, m, "")
	dev := newDevice(t, m)

	// Make the session, then let the slot go.
	a.Set(map[int]int64{5: 1})
	a.probe(t, dev)
	a.Set(map[int]int64{})
	a.awaitStopped(t)

	// Set lists the slot, but the membership's view has dropped it.
	a.slots.set(5, false)
	a.Set(map[int]int64{5: 2})
	dev.send(t, 1, 2, 3)
	stillStored(t, a, "slot 5 not held, at start")
	a.slots.set(5, true)
	a.awaitSeqs(t, "slot 5 held again", 1, 2, 3)

	// Connected; the lease lapses, then the connection is lost.
	a.slots.set(5, false)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	dev = newDevice(t, m)
	dev.send(t, 4, 5)
	stillStored(t, a, "slot 5 not held, after a lost connection", 1, 2, 3)
	a.slots.set(5, true)
	a.awaitSeqs(t, "slot 5 held again after the loss", seqRange(1, 5)...)
}

// TestSessionsConnectedGauge: patientpulse_mqtt_connected says whether
// every session the instance holds is connected, whichever of them
// changed last: one session that lost its connection (and, its lease
// lapsed, stays away) keeps it at 0 while another reconnects.
func TestSessionsConnectedGauge(t *testing.T) {
	m := startMosquitto(t)
	a := startSessions(t, m, "patientpulse")
	gauge := func() float64 {
		var m dto.Metric
		if err := a.metrics.BrokerConnected.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	gaugeIs := func(what string, want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gauge() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: patientpulse_mqtt_connected %v, want %v", what, gauge(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// kick takes slot's client id for a moment: the broker ends the
	// collector's connection (a session taken over).
	kick := func(slot int) {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID(SessionClientID("pp-test", slot)).SetCleanSession(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect as slot %d: %v", slot, tok.Error())
		}
		c.Disconnect(0)
	}
	connected := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		n := 0
		for _, c := range a.running {
			if c.Connected() {
				n++
			}
		}
		return n
	}
	a.Set(map[int]int64{1: 1, 2: 1})
	waitFor(t, func() bool { return connected() == 2 })
	if g := gauge(); g != 1 {
		t.Fatalf("patientpulse_mqtt_connected %v with both sessions up, want 1", g)
	}
	a.slots.set(2, false) // slot 2's lease lapsed: it does not reconnect
	kick(2)
	gaugeIs("slot 2 lost", 0)
	lost := func() float64 { return counterValue(a.metrics.BrokerConnLost) }
	before := lost()
	kick(1) // slot 1 reconnects; slot 2 is still down
	waitFor(t, func() bool { return lost() > before })
	deadline := time.Now().Add(10 * time.Second)
	for connected() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("slot 1 did not reconnect within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g := gauge(); g != 0 {
		t.Errorf("patientpulse_mqtt_connected %v after slot 1 reconnected while slot 2 is down, want 0", g)
	}
	a.slots.set(2, true)
	gaugeIs("slot 2 held again", 1)
	a.slots.set(2, false)
	kick(2)
	gaugeIs("slot 2 lost again", 0)
	a.Set(map[int]int64{1: 1})
	waitFor(t, func() bool { return slices.Equal(a.Active(), []int{1}) })
	if g := gauge(); g != 1 {
		t.Errorf("patientpulse_mqtt_connected %v after slot 2 was let go, want 1", g)
	}
}

// TestSessionToFeed: a device's message taken by one instance's session
// collector is stored there and handed, through the partition feed, to
// every instance (as serve wires it in cluster mode).
func TestSessionToFeed(t *testing.T) {
	m := startMosquitto(t)
	feedA, feedB := startFeed(t, m, "a"), startFeed(t, m, "b")
	awaitFeedUp(t, feedA, feedA, feedB)
	a := startSessions(t, m, "patientpulse")
	a.intake.OnStored(feedA.Publish)
	a.Set(map[int]int64{0: 1})
	dev := newDevice(t, m)
	a.probe(t, dev)
	dev.send(t, 7) // heart rate 60, as the probes
	dev.Send(t, DataTopic("app-1"), heartRate(8, 61))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-feedB.got:
			if len(msg.points) != 1 || msg.points[0].Fields[0].Value != 61 {
				continue // a probe, or seq 7
			}
			if msg.patient != "p-1" || msg.points[0].Measurement != "heart_rate" {
				t.Errorf("instance b got patient %q, %+v", msg.patient, msg.points)
			}
			if !slices.Contains(a.seqs(), 8) {
				t.Error("handed on before it was stored")
			}
			return
		case <-deadline:
			t.Fatal("instance b did not get the message's points within 10s")
		}
	}
}
