package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// launchServe runs serve in process like startServe, with the MQTT
// session named group, but waits only until it listens (/healthz 200):
// the degraded-start tests need it before InfluxDB or the broker answer.
// Flags in extra override startServe's (the last one wins). It is a lone
// instance (--cluster=false, also on a Postgres registry): with several,
// HTTPS ingest waits for the broker too, which hands the samples over.
func launchServe(t *testing.T, dataDir, group string, extra ...string) *instance {
	t.Helper()
	return runServe(t, http.DefaultClient, "http", dataDir, group, "/healthz", 10*time.Second,
		append([]string{"--cluster=false"}, extra...)...)
}

// getJSON GETs url (with a staff token when given) and decodes the
// body; status 0 when the request failed.
func getJSON(url, token string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	return resp.StatusCode, doc
}

// holdSession makes the broker keep group's shared subscription in a
// persistent session, as a serve that ran before leaves it, so that what
// devices publish while serve is not connected waits for it.
func holdSession(t *testing.T, brokerURL, group string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(group).SetCleanSession(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("session connect: %v", tok.Error())
	}
	if tok := c.Subscribe("$share/"+group+"/pp/v1/devices/+/data", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("session subscribe: %v", tok.Error())
	}
	c.Disconnect(100)
}

func hrMessage(seq int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`, seq, ts(at), 60+seq%30)
}

// TestServeStartsWhileInfluxDown starts serve with InfluxDB stopped: it
// must listen at once, say what is missing, refuse HTTPS ingest with 503
// and Retry-After, leave MQTT messages with the broker, serve the staff
// API (series 503), and take everything in within seconds of InfluxDB
// starting.
func TestServeStartsWhileInfluxDown(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-degraded", "app-degraded")
	enroll(t, dir, "p-degraded2", "watch-degraded")
	staff := staffToken(t, dir, "admin-degraded", "admin")
	group := "t-degraded-influx"
	holdSession(t, broker.URL, group)

	if err := influx.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = influx.Start() }) // a no-op error when it is running again
	started := time.Now()
	srv := launchServe(t, dir, group)
	t.Logf("serve listened %v after it was started with InfluxDB down", time.Since(started).Round(time.Millisecond))

	status, doc := getJSON(srv.url+"/readyz", "")
	if status != http.StatusServiceUnavailable || doc["influxdb"] != "down" || doc["mqtt"] != "waiting for influxdb" || doc["registry"] != "up" {
		t.Errorf("/readyz with InfluxDB down: %d %v, want 503 influxdb down, mqtt waiting for influxdb, registry up", status, doc)
	}
	now := time.Now().UTC().Truncate(time.Second)
	waitUntil(t, 5*time.Second, "HTTPS ingest answering 503 at once", func() bool {
		t0 := time.Now()
		status, _, h, err := tryPost(srv.url, token, "application/json", hrMessage(1, now))
		return err == nil && status == http.StatusServiceUnavailable && h.Get("Retry-After") != "" && time.Since(t0) < time.Second
	})
	if status, doc := getJSON(srv.url+"/v1/patients", staff); status != http.StatusOK {
		t.Errorf("GET /v1/patients with InfluxDB down: %d %v, want 200", status, doc)
	}
	if status, _ := getJSON(srv.url+"/v1/patients/p-degraded/series?type=heart_rate", staff); status != http.StatusServiceUnavailable {
		t.Errorf("GET series with InfluxDB down: %d, want 503", status)
	}
	if status, _ := getJSON(srv.url+"/", ""); status == 0 || status >= 500 {
		t.Errorf("GET / (console) with InfluxDB down: %d", status)
	}

	// Devices publish while InfluxDB is down: the broker keeps the
	// messages, since serve has not connected.
	dev := mqttClient(t, "watch-degraded")
	const published = 20
	for seq := 1; seq <= published; seq++ {
		dev.Send(t, "pp/v1/devices/watch-degraded/data", string(hrMessage(seq, now.Add(-time.Duration(seq)*time.Second))))
	}
	if body := metricsText(t, srv.url); !strings.Contains(body, "patientpulse_mqtt_connected 0") {
		t.Error("serve connected to the broker while InfluxDB was down")
	}

	if err := influx.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	var httpAfter, mqttAfter, readyAfter time.Duration
	waitUntil(t, 15*time.Second, "HTTPS ingest accepted after InfluxDB returned", func() bool {
		status, _, _, err := tryPost(srv.url, token, "application/json", hrMessage(2, now))
		return err == nil && status == http.StatusAccepted
	})
	httpAfter = time.Since(back)
	waitUntil(t, 15*time.Second, "the broker's queued messages stored", func() bool {
		return len(storedSeqs(t, "watch-degraded")) == published
	})
	mqttAfter = time.Since(back)
	waitUntil(t, 15*time.Second, "/readyz 200", func() bool {
		status, _ := getJSON(srv.url+"/readyz", "")
		return status == http.StatusOK
	})
	readyAfter = time.Since(back)
	t.Logf("after InfluxDB answered: HTTPS ingest accepted in %v, the %d queued MQTT messages stored in %v, /readyz 200 in %v",
		httpAfter.Round(time.Millisecond), published, mqttAfter.Round(time.Millisecond), readyAfter.Round(time.Millisecond))
	if mqttAfter > 5*time.Second {
		t.Errorf("queued messages stored %v after InfluxDB returned, want within 5s", mqttAfter)
	}
	if status, _ := getJSON(srv.url+"/v1/patients/p-degraded/series?type=heart_rate", staff); status != http.StatusOK {
		t.Errorf("GET series after InfluxDB returned: %d, want 200", status)
	}
}

// metricsText returns serve's /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// startMosquittoOn runs a plain Mosquitto (no configuration file: loopback
// only, anonymous) on port until the test ends: the broker-down test
// needs a broker that starts on an address serve already uses.
func startMosquittoOn(t *testing.T, port int) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			testservices.Require(t, fmt.Errorf("mosquitto: %w", testservices.ErrMissingBinary))
		}
	}
	cmd := exec.Command(bin, "-p", fmt.Sprint(port))
	out := &testservices.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// TestServeStartsWhileBrokerDown starts serve with the broker down: it
// must listen, say the broker is down, take HTTPS ingest, and subscribe
// once the broker starts.
func TestServeStartsWhileBrokerDown(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-nobroker", "app-nobroker")
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	brokerURL := fmt.Sprintf("tcp://127.0.0.1:%d", port)

	// With --broker-accounts, serve used to wait for the broker to make
	// its own account before it listened at all.
	accounts := launchServe(t, dir, "t-degraded-accounts", "--mqtt-url", brokerURL, "--broker-accounts",
		"--broker-admin-username", "pp-admin", "--broker-admin-password", "Xq3v-admin-secret-9fK2",
		"--mqtt-username", "pp-pipeline", "--mqtt-password", "Zt7w-pipeline-secret-4mR8")
	waitUntil(t, 5*time.Second, "/readyz naming the broker (--broker-accounts)", func() bool {
		status, doc := getJSON(accounts.url+"/readyz", "")
		return status == http.StatusServiceUnavailable && doc["mqtt"] == "down" && doc["influxdb"] == "up"
	})
	accounts.stop()

	srv := launchServe(t, dir, "t-degraded-broker", "--mqtt-url", brokerURL)

	waitUntil(t, 5*time.Second, "/readyz naming the broker", func() bool {
		status, doc := getJSON(srv.url+"/readyz", "")
		return status == http.StatusServiceUnavailable && doc["mqtt"] == "down" && doc["influxdb"] == "up"
	})
	now := time.Now().UTC().Truncate(time.Second)
	if status, doc, _ := post(t, srv.url, token, "application/json", hrMessage(1, now)); status != http.StatusAccepted {
		t.Errorf("HTTPS ingest with the broker down: %d %v, want 202", status, doc)
	}

	startMosquittoOn(t, port)
	back := time.Now()
	waitUntil(t, 40*time.Second, "/readyz 200 once the broker runs", func() bool {
		status, _ := getJSON(srv.url+"/readyz", "")
		return status == http.StatusOK
	})
	t.Logf("serve subscribed %v after the broker started", time.Since(back).Round(time.Millisecond))
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("watch-nobroker"))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(100)
	addDevice(t, dir, "p-nobroker", "watch-nobroker")
	if tok := dev.Publish("pp/v1/devices/watch-nobroker/data", 1, false, hrMessage(1, now)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitUntil(t, 10*time.Second, "the MQTT message stored", func() bool { return len(storedSeqs(t, "watch-nobroker")) == 1 })
}

// addDevice enrolls one more device for an existing patient.
func addDevice(t *testing.T, dir, patient, device string) {
	t.Helper()
	cli(t, dir, "devices", "enroll", "--patient", patient, "--device", device)
}

// TestReadyzRegistryCannotWrite fills the registry as a full disk would
// (SQLite's max_page_count limits serve's connections while the test's
// own connection fills the file) and checks that /readyz says so, then
// recovers once there is room.
func TestReadyzRegistryCannotWrite(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	keepSQLite(t, dir) // the test is about SQLite's own limit on its file
	staff := staffToken(t, dir, "admin-full", "admin")
	path := filepath.Join(dir, "patientpulse.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("file:%s?_pragma=max_page_count(%d)", path, pages+64)
	srv := startServe(t, dir, "t-registry-full", "--db", dsn)

	if _, err := db.Exec(`CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
		INSERT INTO filler SELECT zeroblob(4096) FROM n`); err != nil {
		t.Fatal(err)
	}
	// Audit rows still fit in the pages' free room for a while, as on a
	// full disk; then every staff read answers 503.
	reads := 0
	waitUntil(t, 20*time.Second, "a staff read answering 503 (its audit row cannot be written)", func() bool {
		reads++
		status, _ := getJSON(srv.url+"/v1/patients", staff)
		return status == http.StatusServiceUnavailable
	})
	t.Logf("the registry refused the audit row of staff read %d", reads)
	var doc map[string]any
	waitUntil(t, 10*time.Second, "/readyz 503 naming the registry", func() bool {
		var status int
		status, doc = getJSON(srv.url+"/readyz", "")
		return status == http.StatusServiceUnavailable && doc["registry"] == "down"
	})
	if doc["influxdb"] != "up" || doc["mqtt"] != "up" {
		t.Errorf("/readyz with the registry full: %v, want InfluxDB and the broker up", doc)
	}
	if _, err := db.Exec(`DROP TABLE filler`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "/readyz 200 once the registry has room", func() bool {
		status, _ := getJSON(srv.url+"/readyz", "")
		return status == http.StatusOK
	})
	if status, _ := getJSON(srv.url+"/v1/patients", staff); status != http.StatusOK {
		t.Errorf("a staff read once the registry has room: %d, want 200", status)
	}
}

// TestDebugAddr checks that --debug-addr refuses an address beyond
// loopback, and serves the profiles on its own listener, not on the
// clinic-facing one.
func TestDebugAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "[::]:6060", "10.1.2.3:6060", "example.com:6060"} {
		var stderr strings.Builder
		dir := newDataDir(t)
		code := run(context.Background(), append(append([]string{"serve", "--data-dir", dir}, registryArgs(t, dir)...), "--debug-addr", addr),
			nil, io.Discard, &stderr, func(string) string { return "" })
		if code == 0 || !strings.Contains(stderr.String(), "debug-addr") {
			t.Errorf("--debug-addr %s: exit %d, %q; want refused naming debug-addr", addr, code, stderr.String())
		}
	}

	needServices(t)
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := startServe(t, newDataDir(t), "t-debug", "--debug-addr", debugAddr)
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Errorf("GET /debug/pprof/heap on --debug-addr: %d %.80q", resp.StatusCode, body)
	}
	if status, _ := getJSON(srv.url+"/debug/pprof/", ""); status == http.StatusOK {
		t.Error("the profiles are served on the clinic-facing address too")
	}
}
