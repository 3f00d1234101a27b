package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// The broker-restart tests restart a Mosquitto of their own, so that the
// other tests' broker is never interrupted. Mosquitto's facts they rely on
// are measured by TestMosquittoKeepsAcrossRestart.

// ownBroker starts a broker for one test, stopped when the test ends.
func ownBroker(t *testing.T) *testservices.Mosquitto {
	t.Helper()
	needServices(t)
	m, err := testservices.StartMosquitto()
	testservices.Require(t, err)
	t.Cleanup(func() { m.Stop() })
	return m
}

// session connects to m with a persistent session as id, and subscribes
// to filter unless it is empty; handler takes the messages.
func session(t *testing.T, m *testservices.Mosquitto, id, filter string, handler mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID(id).SetCleanSession(false).
		SetDefaultPublishHandler(handler))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	if filter != "" {
		if tok := c.Subscribe(filter, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
	}
	return c
}

// TestMosquittoKeepsAcrossRestart measures what the test broker keeps of
// two persistent sessions, one with a plain subscription and one with a
// shared one, across a SIGTERM restart while both are offline: the
// messages queued before it, and whether messages published after it
// still reach the session (that is, whether the subscription itself was
// kept). The plain one must be kept (one instance relies on it); the
// shared one is reported, so that a run says whether this broker can
// serve several instances without loss.
func TestMosquittoKeepsAcrossRestart(t *testing.T) {
	m := ownBroker(t)
	filters := map[string]string{"plain": "pp/v1/devices/+/data", "shared": "$share/g/pp/v1/devices/+/data"}
	for id, filter := range filters {
		session(t, m, id, filter, func(mqtt.Client, mqtt.Message) {}).Disconnect(100)
	}
	pub := session(t, m, "publisher", "", nil)
	publish := func(what string) {
		for i := range 5 {
			if tok := pub.Publish("pp/v1/devices/d/data", 1, false, fmt.Sprintf("%s-%d", what, i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	publish("before")
	pub.Disconnect(100)
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	pub = session(t, m, "publisher", "", nil)
	publish("after")
	pub.Disconnect(100)

	got := map[string]map[string]int{}
	for id := range filters {
		var mu sync.Mutex
		counts := map[string]int{}
		// Connect without subscribing: only what the session kept arrives.
		c := session(t, m, id, "", func(_ mqtt.Client, msg mqtt.Message) {
			mu.Lock()
			counts[strings.Split(string(msg.Payload()), "-")[0]]++
			mu.Unlock()
		})
		waitUntil(t, 10*time.Second, id+"'s queued messages", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return counts["before"] == 5
		})
		time.Sleep(500 * time.Millisecond) // any "after" messages are queued behind the "before" ones
		c.Disconnect(100)
		mu.Lock()
		got[id] = counts
		mu.Unlock()
	}
	t.Logf("%s, persistence true, SIGTERM restart: plain session got %d+%d of 5+5 (queued before + published after), shared session %d+%d",
		m.Version(), got["plain"]["before"], got["plain"]["after"], got["shared"]["before"], got["shared"]["after"])
	if got["plain"]["after"] != 5 {
		t.Errorf("the plain subscription was not kept across the restart: %d of 5 published after it arrived", got["plain"]["after"])
	}
	if got["shared"]["after"] != 5 {
		t.Logf("this broker forgets shared subscriptions when it restarts: several instances (--mqtt-share-group) lose what devices publish until they subscribe again; see the README, \"Broker restarts\"")
	}
}

// fleet is devices publishing heart rates at QoS 1 through one broker,
// each keeping the seqs the broker acknowledged (PUBACK).
type fleet struct {
	devices []string
	mu      sync.Mutex
	acked   map[string]map[int64]time.Time // device → seq → when acknowledged
	stop    chan struct{}
	done    sync.WaitGroup
}

func startFleet(t *testing.T, brokerURL string, devices []string, every time.Duration) *fleet {
	f := &fleet{devices: devices, acked: map[string]map[int64]time.Time{}, stop: make(chan struct{})}
	// One sample a second, as RFC 3339 here has no fraction: 12 h of seqs
	// (a device at 100 messages a second for 7 minutes) stay in the past.
	base := time.Now().UTC().Add(-12 * time.Hour).Truncate(time.Second)
	for _, dev := range devices {
		f.acked[dev] = map[int64]time.Time{}
	}
	for _, dev := range devices {
		// Persistent, reconnecting, as a device is: what it sent before a
		// restart and was not acknowledged it sends again after.
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(dev).SetCleanSession(false).
			SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(250 * time.Millisecond))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("device connect: %v", tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		f.done.Go(func() {
			for seq := int64(1); ; seq++ {
				select {
				case <-f.stop:
					return
				default:
				}
				payload := fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`,
					seq, ts(base.Add(time.Duration(seq)*time.Second)), 50+seq%50)
				tok := c.Publish("pp/v1/devices/"+dev+"/data", 1, false, payload)
				if tok.WaitTimeout(15*time.Second) && tok.Error() == nil {
					f.mu.Lock()
					f.acked[dev][seq] = time.Now()
					f.mu.Unlock()
				}
				time.Sleep(every)
			}
		})
	}
	return f
}

// count is the messages acknowledged so far, and those acknowledged after
// since.
func (f *fleet) count(since time.Time) (all, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, seqs := range f.acked {
		for _, at := range seqs {
			all++
			if at.After(since) {
				after++
			}
		}
	}
	return all, after
}

func (f *fleet) finish() {
	close(f.stop)
	f.done.Wait()
}

// lost waits up to three minutes for every acknowledged message to be
// stored and returns the acknowledged and the missing counts.
func (f *fleet) lost(t *testing.T) (acked, missing int) {
	t.Helper()
	// Generous: a backlog of minutes drains in well under a minute alone,
	// but make test runs the packages side by side on two cores.
	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	defer func() {
		t.Logf("waited %v for the acknowledged messages to be stored", time.Since(start).Round(time.Second))
	}()
	for {
		acked, missing = 0, 0
		for _, dev := range f.devices {
			stored := storedSeqs(t, dev)
			for seq := range f.acked[dev] {
				acked++
				if !stored[seq] {
					missing++
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return acked, missing
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitSubscribed waits until srv's MQTT sessions are subscribed: with a
// Postgres registry /readyz answers once the partition feed is, and the
// session connects once this instance holds its lease. What devices send
// before a session first subscribes, the broker keeps for no one.
func waitSubscribed(t *testing.T, srv *instance) {
	t.Helper()
	waitUntil(t, 30*time.Second, "serve's MQTT sessions subscribed", func() bool {
		return strings.Contains(metricsText(t, srv.url), "\npatientpulse_mqtt_connected 1\n")
	})
}

func fleetDevices(t *testing.T, dir, prefix string, n int) []string {
	var devices []string
	for i := range n {
		dev := fmt.Sprintf("%s-%d", prefix, i)
		enroll(t, dir, "p-"+dev, dev)
		devices = append(devices, dev)
	}
	return devices
}

// TestBrokerRestartLosesNothing restarts a real Mosquitto (SIGTERM, as
// systemd and docker do) under about 400 messages a second from five
// devices, both ways issue 13 saw messages lost: while serve is connected,
// and while serve is stopped with devices publishing before it returns.
// Every message the broker acknowledged to a device must be in InfluxDB.
// serve subscribes without $share, which Mosquitto keeps across its
// restart (plainSubscription: on Postgres, one clustered session).
func TestBrokerRestartLosesNothing(t *testing.T) {
	m := ownBroker(t)
	dir := newDataDir(t)
	serveArgs := append([]string{"--mqtt-url", m.URL, "--device-rate", "0"}, plainSubscription(t, dir)...)

	t.Run("while serve is connected", func(t *testing.T) {
		devices := fleetDevices(t, dir, "rs-live", 5)
		srv := startServe(t, dir, "t-brokerrestart", serveArgs...)
		waitSubscribed(t, srv)
		f := startFleet(t, m.URL, devices, 10*time.Millisecond)
		waitUntil(t, 20*time.Second, "messages acknowledged before the restart", func() bool { n, _ := f.count(time.Time{}); return n > 500 })
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		waitUntil(t, 20*time.Second, "messages acknowledged in the second after the restart",
			func() bool { _, n := f.count(restarted); return n > 100 })
		time.Sleep(2 * time.Second)
		f.finish()
		_, afterRestart := f.count(restarted)
		acked, missing := f.lost(t)
		t.Logf("broker restarted under load with serve connected: %d acknowledged to devices (%d after the restart), %d not in InfluxDB",
			acked, afterRestart, missing)
		if missing > 0 {
			t.Errorf("%d of %d acknowledged messages lost; serve's log: %s", missing, acked, srv.logs)
		}
		srv.stop()
	})

	t.Run("while serve is stopped", func(t *testing.T) {
		devices := fleetDevices(t, dir, "rs-down", 5)
		srv := startServe(t, dir, "t-brokerrestart", serveArgs...)
		waitSubscribed(t, srv)
		f := startFleet(t, m.URL, devices, 10*time.Millisecond)
		waitUntil(t, 20*time.Second, "messages acknowledged before serve stops", func() bool { n, _ := f.count(time.Time{}); return n > 200 })
		srv.stop()
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		time.Sleep(5 * time.Second) // devices publish while serve is away
		_, whileAway := f.count(restarted)
		srv = startServe(t, dir, "t-brokerrestart", serveArgs...)
		time.Sleep(2 * time.Second)
		f.finish()
		acked, missing := f.lost(t)
		t.Logf("broker restarted while serve was stopped: %d acknowledged to devices (%d while serve was away after the restart), %d not in InfluxDB",
			acked, whileAway, missing)
		if whileAway < 100 {
			t.Fatalf("only %d messages acknowledged while serve was away: the test tried nothing", whileAway)
		}
		if missing > 0 {
			t.Errorf("%d of %d acknowledged messages lost; serve's log: %s", missing, acked, srv.logs)
		}
	})
}

// TestResubscribesSoonAfterBrokerReturns stops the broker for 17 s, long
// enough for a doubling back-off from 1 s to reach 16 s, then starts it:
// serve must be subscribed again (/readyz 200) within a few seconds.
func TestResubscribesSoonAfterBrokerReturns(t *testing.T) {
	m := ownBroker(t)
	dir := newDataDir(t)
	srv := startServe(t, dir, "t-resubscribe", append([]string{"--mqtt-url", m.URL}, plainSubscription(t, dir)...)...)
	ready := func() bool { status, _ := getJSON(srv.url+"/readyz", ""); return status == http.StatusOK }
	if err := m.Down(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/readyz failing while the broker is down", func() bool { return !ready() })
	time.Sleep(17 * time.Second)
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	for !ready() {
		if time.Since(up) > 40*time.Second {
			t.Fatal("not subscribed again within 40s of the broker's return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(up)
	t.Logf("subscribed again %v after the broker returned (down 17s)", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("subscribed again only %v after the broker returned, want under 10s", took.Round(10*time.Millisecond))
	}
}

// TestMQTTDeviceRateLimit: 1,000 messages from one device in a burst are
// stored up to its burst and rate, and every other one is answered "rate
// limited" on its errors topic; another device sending meanwhile keeps
// being stored.
func TestMQTTDeviceRateLimit(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	enroll(t, dir, "p-flood", "watch-flood")
	enroll(t, dir, "p-calm", "watch-calm")
	srv := startServe(t, dir, "t-ratelimit", "--device-rate", "5", "--device-burst", "60")
	listener := mqttClient(t, "rl-listener")
	answers := subscribeErrors(t, listener, "watch-flood")
	calmAnswers := subscribeErrors(t, listener, "watch-calm")

	flood, calm := mqttClient(t, "watch-flood"), mqttClient(t, "watch-calm")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	msg := func(seq int) string {
		return fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": 70}]}`, seq, ts(base.Add(time.Duration(seq)*time.Second)))
	}
	start := time.Now()
	var toks []mqtt.Token
	for seq := 1; seq <= 1000; seq++ {
		toks = append(toks, flood.Publish("pp/v1/devices/watch-flood/data", 1, false, msg(seq)))
	}
	for seq := 1; seq <= 5; seq++ {
		toks = append(toks, calm.Publish("pp/v1/devices/watch-calm/data", 1, false, msg(seq)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	limited := 0
	var stored map[int64]bool
	waitUntil(t, 60*time.Second, "every flood message stored or answered", func() bool {
		for drained := false; !drained; {
			select {
			case m := <-answers:
				if strings.Contains(string(m.Payload()), `"error":"rate limited`) {
					limited++
				}
			default:
				drained = true
			}
		}
		stored = storedSeqs(t, "watch-flood")
		return len(stored)+limited >= 1000
	})
	elapsed := time.Since(start)
	upper := 60 + int(5*elapsed.Seconds()) + 1
	t.Logf("1,000 messages from one device: %d stored, %d answered \"rate limited\" (burst 60, 5/s, %v)", len(stored), limited, elapsed.Round(time.Millisecond))
	if len(stored) < 60 || len(stored) > upper || len(stored)+limited != 1000 {
		t.Errorf("stored %d and answered %d, want 60 to %d stored and the rest answered", len(stored), limited, upper)
	}
	waitUntil(t, 20*time.Second, "the other device's messages stored", func() bool { return len(storedSeqs(t, "watch-calm")) == 5 })
	select {
	case m := <-calmAnswers:
		t.Errorf("the other device was answered %s", m.Payload())
	default:
	}
	metrics := metricsText(t, srv.url)
	if !strings.Contains(metrics, fmt.Sprintf(`patientpulse_ingest_messages_rejected_total{reason="rate_limited",transport="mqtt"} %d`, limited)) {
		t.Errorf("metrics do not count %d rate-limited MQTT messages", limited)
	}
}
