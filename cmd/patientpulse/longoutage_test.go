package main

import (
	"net/http"
	"os"
	"testing"
	"time"
)

// longOutage is how long InfluxDB stays down in
// TestLongOutageAndBrokerRestart: 240 s, as issue 13 asks, shorter with
// PP_TEST_LONG_OUTAGE=30s for quick runs (never under CI).
func longOutage(t *testing.T) time.Duration {
	d, err := time.ParseDuration(os.Getenv("PP_TEST_LONG_OUTAGE"))
	if err != nil || d <= 0 || os.Getenv("CI") == "true" {
		return 240 * time.Second
	}
	t.Logf("outage shortened to %v by PP_TEST_LONG_OUTAGE", d)
	return d
}

// TestLongOutageAndBrokerRestart: six devices publish about 500 messages a
// second; InfluxDB goes down for 240 s, and halfway through the broker is
// restarted (SIGTERM) with the backlog queued for serve. Every message the
// broker acknowledged to a device must be in InfluxDB once both are back.
// serve subscribes without $share, which Mosquitto keeps across its
// restart (plainSubscription, as TestBrokerRestartLosesNothing).
func TestLongOutageAndBrokerRestart(t *testing.T) {
	needServices(t)
	m := ownBroker(t)
	dir := newDataDir(t)
	devices := fleetDevices(t, dir, "lo", 6)
	srv := startServe(t, dir, "t-longoutage", append([]string{"--mqtt-url", m.URL, "--device-rate", "0"}, plainSubscription(t, dir)...)...)
	waitSubscribed(t, srv)
	f := startFleet(t, m.URL, devices, 10*time.Millisecond)
	waitUntil(t, 20*time.Second, "messages acknowledged before the outage", func() bool { n, _ := f.count(time.Time{}); return n > 1000 })

	down := longOutage(t)
	if err := influx.Stop(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	defer func() {
		if t.Failed() {
			_ = influx.Start() // for the tests after this one
		}
	}()
	time.Sleep(down / 2)
	if resp, err := http.Get(srv.url + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %v %v, want 503", err, resp)
	} else {
		resp.Body.Close()
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	time.Sleep(down - time.Since(began))
	if err := influx.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	time.Sleep(5 * time.Second)
	f.finish()

	all, _ := f.count(time.Time{})
	_, duringOutage := f.count(began)
	_, afterRestart := f.count(restarted)
	_, afterOutage := f.count(back)
	duringOutage -= afterOutage
	if rate := float64(duringOutage) / down.Seconds(); rate < 300 {
		t.Errorf("only %.0f messages a second acknowledged during the outage: the load did not keep up", rate)
	}
	acked, missing := f.lost(t)
	t.Logf("%v outage, broker restarted after %v: %d messages acknowledged to devices (%d during the outage, %.0f a second; %d after the broker restart), %d not in InfluxDB",
		down, restarted.Sub(began).Round(time.Second), acked, duringOutage, float64(duringOutage)/down.Seconds(), afterRestart, missing)
	if acked != all {
		t.Errorf("counted %d then %d acknowledged", all, acked)
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged messages lost; serve's log: %s", missing, acked, srv.logs)
	}
}
