package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeToken is a paho token that completes when done is closed.
type fakeToken struct {
	done  chan struct{}
	err   error
	codes map[string]byte // a SUBSCRIBE's answer
}

func doneToken(err error, codes map[string]byte) *fakeToken {
	t := &fakeToken{done: make(chan struct{}), err: err, codes: codes}
	close(t.done)
	return t
}

func (t *fakeToken) Wait() bool                       { <-t.done; return true }
func (t *fakeToken) WaitTimeout(d time.Duration) bool { return waitClosed(t.done, d) }
func (t *fakeToken) Done() <-chan struct{}            { return t.done }
func (t *fakeToken) Error() error                     { return t.err }
func (t *fakeToken) Result() map[string]byte          { return t.codes }

func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// fakeMessage records its acknowledgement.
type fakeMessage struct {
	topic   string
	payload []byte
	events  *eventLog
	acked   chan struct{}
	once    sync.Once
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return 1 }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return 1 }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack() {
	m.once.Do(func() {
		m.events.add("ack " + m.topic)
		close(m.acked)
	})
}

func (m *fakeMessage) isAcked() bool {
	select {
	case <-m.acked:
		return true
	default:
		return false
	}
}

// eventLog is what the fake broker saw, in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *eventLog) count(prefix string) int {
	n := 0
	for _, e := range l.all() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// fakeClient is a broker connection: Connect fails with connectErrs in
// turn, then succeeds; Subscribe answers subCodes in turn, then QoS 1;
// Publish records the answers. deliver and lose play the broker's part.
type fakeClient struct {
	opts    *mqtt.ClientOptions
	events  eventLog
	version string // "$SYS/... answer": the one $SYS topic answered, with what; "" none

	mu          sync.Mutex
	connectErrs []error
	subCodes    []byte
	published   []fakePublish
	connected   chan struct{} // a Connect succeeded
	subscribed  chan string   // a filter was subscribed to
}

type fakePublish struct {
	topic string
	doc   ErrorDoc
}

var _ mqttClient = (*fakeClient)(nil)

func newFakeClient() *fakeClient {
	return &fakeClient{connected: make(chan struct{}, 16), subscribed: make(chan string, 16)}
}

func (f *fakeClient) Connect() mqtt.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.connectErrs) > 0 {
		err := f.connectErrs[0]
		f.connectErrs = f.connectErrs[1:]
		f.events.add("connect failed")
		return doneToken(err, nil)
	}
	f.events.add("connect")
	f.connected <- struct{}{}
	return doneToken(nil, nil)
}

func (f *fakeClient) Disconnect(uint) { f.events.add("disconnect") }

func (f *fakeClient) Subscribe(topic string, _ byte, cb mqtt.MessageHandler) mqtt.Token {
	if strings.HasPrefix(topic, "$SYS/") {
		f.events.add("subscribe " + topic)
		answer, _ := strings.CutPrefix(f.version, topic+" ")
		if f.version == "" || answer == f.version {
			return doneToken(nil, map[string]byte{topic: 0x80})
		}
		go cb(nil, f.message(topic, answer))
		return doneToken(nil, map[string]byte{topic: 0})
	}
	f.mu.Lock()
	code := byte(1)
	if len(f.subCodes) > 0 {
		code, f.subCodes = f.subCodes[0], f.subCodes[1:]
	}
	f.mu.Unlock()
	f.events.add(fmt.Sprintf("subscribe %s %#x", topic, code))
	if code <= 2 {
		f.subscribed <- topic
	}
	return doneToken(nil, map[string]byte{topic: code})
}

func (f *fakeClient) Unsubscribe(topics ...string) mqtt.Token {
	f.events.add("unsubscribe " + strings.Join(topics, " "))
	return doneToken(nil, nil)
}

func (f *fakeClient) Publish(topic string, _ byte, _ bool, payload interface{}) mqtt.Token {
	var doc ErrorDoc
	if err := json.Unmarshal(payload.([]byte), &doc); err != nil {
		panic(err)
	}
	f.mu.Lock()
	f.published = append(f.published, fakePublish{topic, doc})
	f.mu.Unlock()
	f.events.add("publish " + topic)
	return doneToken(nil, nil)
}

func (f *fakeClient) answers() []fakePublish {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePublish(nil), f.published...)
}

func (f *fakeClient) message(topic, payload string) *fakeMessage {
	return &fakeMessage{topic: topic, payload: []byte(payload), events: &f.events, acked: make(chan struct{})}
}

// deliver hands a message to the collector through the default handler,
// in a goroutine of its own, so that a test need not wait for it. (Paho,
// with order kept, calls the handler from its router, one message after
// the other: TestMQTTHoldsTwiceMaxInFlight plays that.)
func (f *fakeClient) deliver(topic, payload string) *fakeMessage {
	m := f.message(topic, payload)
	go f.opts.DefaultPublishHandler(nil, m)
	return m
}

// lose reports the connection lost, as paho does.
func (f *fakeClient) lose() { f.opts.OnConnectionLost(nil, errors.New("connection reset by peer")) }

// testCollector is a collector behind a fake client, running until the
// test ends; write stores nothing and returns what writeErr says.
type testCollector struct {
	*MQTT
	fake    *fakeClient
	metrics *Metrics
	logs    *testservices.LogBuffer
	stop    func() // cancels Run and waits for it
}

func startCollector(t *testing.T, cfg MQTTConfig, fake *fakeClient, write func(context.Context, []byte) error) *testCollector {
	t.Helper()
	logs := &testservices.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	m := NewMetrics(nil)
	intake := NewIntake(fakeDevices{}, 0, DefaultLimits(), m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if cfg.URL == "" {
		cfg.URL, cfg.ClientID = "tcp://127.0.0.1:1", "pp-test"
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 16
	}
	if cfg.MaxReconnect == 0 {
		cfg.MaxReconnect = 5 * time.Second
	}
	c := NewMQTT(cfg, intake, nil, m, log)
	c.write = write
	c.checkWait = 100 * time.Millisecond
	c.newClient = func(o *mqtt.ClientOptions) mqttClient { fake.opts = o; return fake }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	tc := &testCollector{MQTT: c, fake: fake, metrics: m, logs: logs, stop: stop}
	tc.awaitSubscribed(t)
	return tc
}

func (tc *testCollector) awaitSubscribed(t *testing.T) string {
	t.Helper()
	select {
	case topic := <-tc.fake.subscribed:
		return topic
	case <-time.After(10 * time.Second):
		t.Fatalf("not subscribed; the broker saw %q", tc.fake.events.all())
		return ""
	}
}

func heartRate(seq, bpm int) string {
	return fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`,
		seq, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), bpm)
}

func mustAck(t *testing.T, m *fakeMessage) {
	t.Helper()
	if !waitClosed(m.acked, 10*time.Second) {
		t.Fatalf("message on %s not acknowledged", m.topic)
	}
}

// TestMQTTAcksAfterWrite: a message is acknowledged only once the write
// of its points returned, and nothing is answered.
func TestMQTTAcksAfterWrite(t *testing.T) {
	release, called := make(chan struct{}), make(chan struct{})
	var lines []string
	write := func(_ context.Context, b []byte) error {
		lines = append(lines, string(b))
		close(called)
		<-release
		return nil
	}
	tc := startCollector(t, MQTTConfig{}, newFakeClient(), write)
	m := tc.fake.deliver(DataTopic("app-1"), heartRate(7, 61))
	if !waitClosed(called, 10*time.Second) {
		t.Fatal("the message was not written")
	}
	if waitClosed(m.acked, 100*time.Millisecond) {
		t.Fatal("acknowledged before its write returned")
	}
	close(release)
	mustAck(t, m)
	if len(lines) != 1 || !strings.Contains(lines[0], "patient=p-1") || !strings.Contains(lines[0], "bpm=61") {
		t.Errorf("wrote %q", lines)
	}
	if a := tc.fake.answers(); len(a) != 0 {
		t.Errorf("answered a stored message: %+v", a)
	}
}

// TestMQTTRejectedAnsweredThenAcked: a message with nothing to store is
// answered on the device's errors topic, then acknowledged; a message on
// a topic naming no device is acknowledged unanswered, and an oversized
// one answered.
func TestMQTTRejectedAnsweredThenAcked(t *testing.T) {
	wrote := 0
	tc := startCollector(t, MQTTConfig{MaxBytes: 2048}, newFakeClient(), func(context.Context, []byte) error { wrote++; return nil })

	bad := tc.fake.deliver(DataTopic("app-1"), heartRate(8, 900))
	mustAck(t, bad)
	events := tc.fake.events.all()
	if fmt.Sprint(events[len(events)-2:]) != fmt.Sprint([]string{"publish " + ErrorTopic("app-1"), "ack " + DataTopic("app-1")}) {
		t.Errorf("events %q: want the answer, then the acknowledgement", events)
	}
	a := tc.fake.answers()
	if len(a) != 1 || a[0].doc.Seq == nil || *a[0].doc.Seq != 8 || len(a[0].doc.Details) != 1 || a[0].doc.Details[0].Field != "bpm" {
		t.Errorf("answer %+v", a)
	}

	unknown := tc.fake.deliver(DataTopic("nobody"), heartRate(1, 60))
	mustAck(t, unknown)
	stray := tc.fake.deliver("pp/v1/devices/app-1/other", "{}")
	mustAck(t, stray)
	big := tc.fake.deliver(DataTopic("app-2"), strings.Repeat(" ", 4096))
	mustAck(t, big)

	a = tc.fake.answers()
	if len(a) != 3 || a[1].topic != ErrorTopic("nobody") || !strings.Contains(a[2].doc.Error, "exceeds the limit") {
		t.Errorf("answers %+v", a)
	}
	if wrote != 0 {
		t.Errorf("%d writes of refused messages", wrote)
	}
	for reason, want := range map[string]float64{ReasonUnknownDevice: 1, ReasonBadTopic: 1, ReasonTooLarge: 1} {
		if got := counterValue(tc.metrics.MessagesRejected.WithLabelValues(TransportMQTT, reason)); got != want {
			t.Errorf("refused %s: %v, want %v", reason, got, want)
		}
	}
}

// TestMQTTWriteFailureNotAcked: a message whose write fails stays
// unacknowledged, for the broker to deliver again.
func TestMQTTWriteFailureNotAcked(t *testing.T) {
	called := make(chan struct{})
	write := func(context.Context, []byte) error {
		close(called)
		return ErrStopped
	}
	tc := startCollector(t, MQTTConfig{}, newFakeClient(), write)
	m := tc.fake.deliver(DataTopic("app-1"), heartRate(9, 60))
	if !waitClosed(called, 10*time.Second) {
		t.Fatal("the message was not written")
	}
	tc.stop() // waits for the message in hand
	if m.isAcked() {
		t.Error("a message whose write failed was acknowledged")
	}
	if a := tc.fake.answers(); len(a) != 0 {
		t.Errorf("answered a message that was not refused: %+v", a)
	}
}

// TestMQTTReconnect: the first attempts are retried after 250 ms, then
// 500 ms; after a loss the collector connects and subscribes again at
// once, and a refused subscription is tried again.
func TestMQTTReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeClient()
		fake.connectErrs = []error{errors.New("refused"), errors.New("refused")}
		start := time.Now()
		tc := startCollector(t, MQTTConfig{ShareGroup: "g"}, fake, func(context.Context, []byte) error { return nil })
		if d := time.Since(start); d != 750*time.Millisecond {
			t.Errorf("subscribed %v after start with two failed attempts, want 750ms (250ms + 500ms)", d)
		}
		synctest.Wait()
		if !tc.Connected() {
			t.Fatal("not connected after subscribing")
		}

		fake.mu.Lock()
		fake.subCodes = []byte{0x80}
		fake.mu.Unlock()
		lostAt := time.Now()
		fake.lose()
		if topic := tc.awaitSubscribed(t); topic != "$share/g/"+DataTopic("+") {
			t.Errorf("subscribed again to %q", topic)
		}
		if d := time.Since(lostAt); d != 250*time.Millisecond {
			t.Errorf("subscribed again %v after the loss (one refusal), want 250ms", d)
		}
		synctest.Wait()
		if !tc.Connected() || counterValue(tc.metrics.BrokerConnLost) != 1 {
			t.Errorf("connected %v, losses %v", tc.Connected(), counterValue(tc.metrics.BrokerConnLost))
		}
		if n := fake.events.count("connect") - fake.events.count("connect failed"); n != 2 {
			t.Errorf("%d connections, want 2: %q", n, fake.events.all())
		}
	})
}

// TestMQTTReconnectCap: the back-off stops doubling at MaxReconnect.
func TestMQTTReconnectCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := newFakeClient()
		for range 8 {
			fake.connectErrs = append(fake.connectErrs, errors.New("refused"))
		}
		start := time.Now()
		startCollector(t, MQTTConfig{MaxReconnect: time.Second}, fake, func(context.Context, []byte) error { return nil })
		// 0.25 + 0.5 + 1 × 6
		if d := time.Since(start); d != 6750*time.Millisecond {
			t.Errorf("subscribed after %v, want 6.75s", d)
		}
	})
}

// TestMQTTHoldsTwiceMaxInFlight: paho calls the collector from its
// router, one message after the other, and starts no goroutine per
// message; the collector takes MaxInFlight messages into its workers and
// as many into its queue, then holds the router (so paho stops reading
// and the broker is held back by TCP) until a worker is free, however
// many the broker sends. A collector that stops with messages queued
// leaves them unacknowledged, for the broker to deliver again.
func TestMQTTHoldsTwiceMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool // the writes return; else the collector stops with them waiting
	}{
		{name: "writes return", release: true},
		{name: "stops while writes wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				write := func(ctx context.Context, _ []byte) error {
					select {
					case <-release:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				fake := newFakeClient()
				c := startCollector(t, MQTTConfig{MaxInFlight: 4}, fake, write)
				if !fake.opts.Order {
					t.Error("paho may start a goroutine per message: the client's options do not keep order")
				}
				const sent = 20
				var handed atomic.Int32
				msgs := make([]*fakeMessage, sent)
				for i := range msgs {
					msgs[i] = fake.message(DataTopic("app-1"), heartRate(i+1, 60))
				}
				go func() { // paho's router
					for _, m := range msgs {
						fake.opts.DefaultPublishHandler(nil, m)
						handed.Add(1)
					}
				}()
				synctest.Wait()
				if n := handed.Load(); n != 8 {
					t.Errorf("the collector took %d messages with its 4 workers busy, want 8 (4 at work, 4 queued)", n)
				}
				if tc.release {
					close(release)
					synctest.Wait()
					for _, m := range msgs {
						mustAck(t, m)
					}
					return
				}
				c.stop()
				for i, m := range msgs {
					if m.isAcked() {
						t.Errorf("message %d acknowledged although its write never returned", i+1)
					}
				}
			})
		})
	}
}

// TestMQTTShutdown: stopping waits for the messages in hand, which are
// acknowledged, takes no new ones, and disconnects.
func TestMQTTShutdown(t *testing.T) {
	release, called := make(chan struct{}), make(chan struct{})
	write := func(context.Context, []byte) error {
		close(called)
		<-release
		return nil
	}
	tc := startCollector(t, MQTTConfig{}, newFakeClient(), write)
	inHand := tc.fake.deliver(DataTopic("app-1"), heartRate(10, 60))
	if !waitClosed(called, 10*time.Second) {
		t.Fatal("the message was not written")
	}
	stopped := make(chan struct{})
	go func() { tc.stop(); close(stopped) }()
	if waitClosed(stopped, 200*time.Millisecond) {
		t.Fatal("Run returned with a message in hand")
	}
	close(release)
	if !waitClosed(stopped, 10*time.Second) {
		t.Fatal("Run did not return")
	}
	mustAck(t, inHand)
	late := tc.fake.message(DataTopic("app-1"), heartRate(11, 60))
	tc.fake.opts.DefaultPublishHandler(nil, late) // returns at once: not taken
	if late.isAcked() {
		t.Error("a message arriving after the stop was acknowledged")
	}
	if n := tc.fake.events.count("disconnect"); n != 1 {
		t.Errorf("%d disconnects", n)
	}
	if tc.Connected() {
		t.Error("still says connected")
	}
}

// TestMQTTRateLimit: over its rate, a device's messages are refused,
// answered "rate limited" with their seq, counted and acknowledged;
// another device is unaffected.
func TestMQTTRateLimit(t *testing.T) {
	var mu sync.Mutex
	stored := map[string]int{}
	write := func(_ context.Context, b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		for _, dev := range []string{"app-1", "app-2"} {
			if strings.Contains(string(b), "device="+dev) {
				stored[dev]++
			}
		}
		return nil
	}
	// A rate of one message an hour: only the burst gets through.
	tc := startCollector(t, MQTTConfig{DeviceRate: 1.0 / 3600, DeviceBurst: 5}, newFakeClient(), write)
	var msgs []*fakeMessage
	for i := range 20 {
		msgs = append(msgs, tc.fake.deliver(DataTopic("app-1"), heartRate(i, 60)))
	}
	for i := range 5 {
		msgs = append(msgs, tc.fake.deliver(DataTopic("app-2"), heartRate(i, 60)))
	}
	for _, m := range msgs {
		mustAck(t, m)
	}
	if stored["app-1"] != 5 || stored["app-2"] != 5 {
		t.Errorf("stored %v, want 5 of each", stored)
	}
	a := tc.fake.answers()
	if len(a) != 15 {
		t.Fatalf("%d answers, want 15", len(a))
	}
	for _, p := range a {
		if p.topic != ErrorTopic("app-1") || !strings.HasPrefix(p.doc.Error, "rate limited") || p.doc.Seq == nil {
			t.Errorf("answer %s %+v", p.topic, p.doc)
		}
	}
	if got := counterValue(tc.metrics.MessagesRejected.WithLabelValues(TransportMQTT, ReasonRateLimited)); got != 15 {
		t.Errorf("counted %v rate-limited messages, want 15", got)
	}
}

// TestMQTTTopic: one instance subscribes without $share, which Mosquitto
// keeps across its restart; a group shares.
func TestMQTTTopic(t *testing.T) {
	for _, tt := range []struct{ name, group, want string }{
		{"single instance", "", "pp/v1/devices/+/data"},
		{"shared", "pp", "$share/pp/pp/v1/devices/+/data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCollector(t, MQTTConfig{ShareGroup: tt.group}, newFakeClient(), func(context.Context, []byte) error { return nil })
			tc.stop()
			if got := fmt.Sprint(tc.fake.events.all()); !strings.Contains(got, "subscribe "+tt.want+" ") {
				t.Errorf("broker saw %s, want a subscription to %s", got, tt.want)
			}
		})
	}
}

// TestMQTTBrokerCheck: sharing a subscription through Mosquitto, or a
// broker that does not say what it is, is warned about once; a single
// instance does not ask.
func TestMQTTBrokerCheck(t *testing.T) {
	for _, tt := range []struct{ name, group, version, want string }{
		{"mosquitto", "g", versionTopic + " mosquitto version 2.0.11", "forgets shared subscriptions"},
		{"mosquitto without retained messages", "g", uptimeTopic + " 42 seconds", "forgets shared subscriptions"},
		{"unknown", "g", "", "could not learn which broker"},
		{"other", "g", versionTopic + " VerneMQ 2.0", "VerneMQ"},
		{"single instance", "", versionTopic + " mosquitto version 2.0.11", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeClient()
			fake.version = tt.version
			tc := startCollector(t, MQTTConfig{ShareGroup: tt.group}, fake, func(context.Context, []byte) error { return nil })
			for deadline := time.Now().Add(10 * time.Second); tt.want != "" && !strings.Contains(tc.logs.String(), tt.want); {
				if time.Now().After(deadline) {
					t.Fatalf("log %q lacks %q", tc.logs.String(), tt.want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			fake.lose()
			tc.awaitSubscribed(t)
			tc.stop()
			asked := fake.events.count("subscribe " + versionTopic)
			switch {
			case tt.want == "" && asked != 0:
				t.Errorf("asked for the version %d times", asked)
			case tt.want != "" && asked != 1:
				t.Errorf("asked for the version %d times, want once", asked)
			}
		})
	}
}

// TestMQTTValidate lists every problem at once.
func TestMQTTValidate(t *testing.T) {
	ok := MQTTConfig{URL: "tcp://b:1883", ClientID: "pp", MaxInFlight: 10, MaxReconnect: 5 * time.Second, DeviceRate: 5, DeviceBurst: 60}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := MQTTConfig{URL: "http://b", ShareGroup: "a/b", MaxReconnect: time.Millisecond, DeviceRate: 1}
	err := bad.Validate()
	for _, want := range []string{"mqtt-url", "mqtt-client-id", "mqtt-share-group", "mqtt-max-inflight", "mqtt-max-reconnect-interval", "device-burst"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not mention %s", err, want)
		}
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
