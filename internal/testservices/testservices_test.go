package testservices

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// keepDirs reports whether KEEP_TEST_SERVICES=1 asks to keep the directories.
func keepDirs() bool { return os.Getenv("KEEP_TEST_SERVICES") == "1" }

// fakeTB records what Require asks of a test. Only the methods Require may
// call are implemented; any other call panics on the nil embedded TB.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()              {}
func (f *fakeTB) Skipf(string, ...any) { f.skipped = true }
func (f *fakeTB) Fatal(...any)         { f.failed = true }

func TestRequire(t *testing.T) {
	missing := fmt.Errorf("%w: mosquitto not found", ErrMissingBinary)
	tests := []struct {
		name        string
		err         error
		ci          string
		wantSkipped bool
		wantFailed  bool
	}{
		{name: "no error", err: nil, ci: "true"},
		{name: "missing binary on a developer machine", err: missing, ci: "", wantSkipped: true},
		{name: "missing binary with CI=false", err: missing, ci: "false", wantSkipped: true},
		{name: "missing binary under CI", err: missing, ci: "true", wantFailed: true},
		{name: "missing binary wrapped twice under CI", err: fmt.Errorf("setup: %w", missing), ci: "true", wantFailed: true},
		{name: "other error", err: errors.New("mosquitto not ready within 10s"), ci: "", wantFailed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			tb := &fakeTB{}
			Require(tb, tt.err)
			if tb.skipped != tt.wantSkipped || tb.failed != tt.wantFailed {
				t.Errorf("Require(%v) with CI=%q: skipped=%v failed=%v, want skipped=%v failed=%v",
					tt.err, tt.ci, tb.skipped, tb.failed, tt.wantSkipped, tt.wantFailed)
			}
		})
	}
}

func TestMosquitto(t *testing.T) {
	t.Parallel()
	m, err := StartMosquitto()
	Require(t, err)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if !strings.HasPrefix(m.Addr, "127.0.0.1:") || m.URL != "tcp://"+m.Addr {
		t.Fatalf("Addr %q, URL %q: want 127.0.0.1:port and tcp://Addr", m.Addr, m.URL)
	}

	if err := mqttConnect(m.Addr); err != nil {
		t.Fatalf("MQTT CONNECT to a started broker: %v", err)
	}

	t.Run("restart keeps queued messages of a persistent session", func(t *testing.T) {
		testPersistentSessionSurvivesRestart(t, m)
	})

	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", m.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("broker at %s still accepts connections after Stop", m.Addr)
	}
	if _, err := os.Stat(m.Dir); !keepDirs() && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, %s: %v; want it removed", m.Dir, err)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
	if err := m.Restart(); err == nil {
		t.Errorf("Restart after Stop succeeded, want an error")
	}
}

// mqttConnect sends a hand-made MQTT 3.1.1 CONNECT (clean session, anonymous)
// and checks for a CONNACK that accepts it.
func mqttConnect(addr string) error {
	code, err := mqttConnectCode(addr)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("CONNACK return code %d, want 0 (accepted)", code)
	}
	return nil
}

// mqttConnectCode sends a hand-made MQTT 3.1.1 CONNECT (clean session,
// anonymous) and returns the CONNACK's return code.
func mqttConnectCode(addr string) (byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, err
	}
	clientID := "pp-testservices-raw"
	varHeader := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60} // protocol, level 4, clean session, keepalive 60s
	payload := append([]byte{0, byte(len(clientID))}, clientID...)
	packet := append([]byte{0x10, byte(len(varHeader) + len(payload))}, varHeader...)
	packet = append(packet, payload...)
	if _, err := conn.Write(packet); err != nil {
		return 0, err
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(conn, connack); err != nil {
		return 0, fmt.Errorf("read CONNACK: %w", err)
	}
	if connack[0] != 0x20 || connack[1] != 2 {
		return 0, fmt.Errorf("% x is no CONNACK", connack)
	}
	return connack[3], nil
}

func TestMosquittoDynSec(t *testing.T) {
	t.Parallel()
	m, err := StartMosquittoWith(MosquittoOptions{DynSec: true})
	Require(t, err)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if m.AdminUser == "" || len(m.AdminPassword) < 16 {
		t.Fatalf("AdminUser %q, AdminPassword of %d characters: want an admin with a long password", m.AdminUser, len(m.AdminPassword))
	}
	if code, err := mqttConnectCode(m.Addr); err != nil || code != 5 {
		t.Errorf("anonymous CONNECT: return code %d, %v; want 5 (not authorised)", code, err)
	}
	if info, err := os.Stat(filepath.Join(m.Dir, "dynamic-security.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("dynsec file: %v, %v; want mode 0600", info, err)
	}

	// The admin may use the plugin: it answers a command on its response topic.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("pp-testservices-admin").
		SetUsername(m.AdminUser).SetPassword(m.AdminPassword))
	waitToken(t, "admin connect", c.Connect())
	defer c.Disconnect(250)
	answers := make(chan string, 1)
	waitToken(t, "subscribe", c.Subscribe("$CONTROL/dynamic-security/v1/response", 1, func(_ mqtt.Client, msg mqtt.Message) {
		answers <- string(msg.Payload())
	}))
	waitToken(t, "publish", c.Publish("$CONTROL/dynamic-security/v1", 1, false,
		`{"commands": [{"command": "getDefaultACLAccess", "correlationData": "x"}]}`))
	select {
	case got := <-answers:
		if !strings.Contains(got, `"correlationData":"x"`) || strings.Contains(got, `"error"`) {
			t.Errorf("plugin answered %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the dynamic security plugin")
	}

	// A restart keeps the plugin and its accounts.
	if err := m.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if code, err := mqttConnectCode(m.Addr); err != nil || code != 5 {
		t.Errorf("anonymous CONNECT after Restart: return code %d, %v; want 5", code, err)
	}
}

// testPersistentSessionSurvivesRestart queues a QoS 1 message for an offline
// persistent session, restarts the broker, and expects the message on
// reconnect: what the pipeline relies on across a broker restart.
func testPersistentSessionSurvivesRestart(t *testing.T, m *Mosquitto) {
	const topic, body = "pp/test/persist", "kept across restart"
	received := make(chan string, 1)
	subscriber := func() mqtt.Client {
		opts := mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("pp-testservices-sub").
			SetCleanSession(false).SetAutoReconnect(false).
			SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
				select {
				case received <- string(msg.Payload()):
				default:
				}
			})
		c := mqtt.NewClient(opts)
		waitToken(t, "subscriber connect", c.Connect())
		return c
	}

	sub := subscriber()
	waitToken(t, "subscribe", sub.Subscribe(topic, 1, nil))
	sub.Disconnect(250)

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID("pp-testservices-pub"))
	waitToken(t, "publisher connect", pub.Connect())
	waitToken(t, "publish", pub.Publish(topic, 1, false, body))
	pub.Disconnect(250)

	if err := m.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := mqttConnect(m.Addr); err != nil {
		t.Fatalf("MQTT CONNECT after Restart: %v", err)
	}

	sub = subscriber()
	defer sub.Disconnect(250)
	select {
	case got := <-received:
		if got != body {
			t.Errorf("received %q, want %q", got, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("queued QoS 1 message not delivered after Restart")
	}
}

func waitToken(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestInflux(t *testing.T) {
	t.Parallel()
	i, err := StartInflux()
	Require(t, err)
	t.Cleanup(func() {
		if err := i.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if !strings.HasPrefix(i.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q, want http://127.0.0.1:port", i.URL)
	}
	c := &influxClient{url: i.URL, http: &http.Client{Timeout: 10 * time.Second}}

	if err := c.ping(); err != nil {
		t.Fatalf("started: %v", err)
	}
	c.mustDo(t, http.MethodPost, "/query", "application/x-www-form-urlencoded",
		url.Values{"q": {"CREATE DATABASE x"}}.Encode(), http.StatusOK)
	c.mustDo(t, http.MethodPost, "/write?db=x", "text/plain",
		"m,t=a v=1 1700000000000000000\n", http.StatusNoContent)
	if got := c.queryV(t); got != 1 {
		t.Fatalf("before Stop, v = %v, want 1", got)
	}
	flux := `from(bucket: "x/autogen") |> range(start: 0) |> filter(fn: (r) => r._measurement == "m")`
	csv := c.mustDo(t, http.MethodPost, "/api/v2/query", "application/vnd.flux", flux, http.StatusOK)
	if !strings.Contains(csv, ",1,v,m,a") {
		t.Errorf("Flux query answered %q, want the row with v=1", csv)
	}

	if err := i.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.ping(); err == nil {
		t.Fatal("influxd still answers /ping after Stop")
	}
	if err := i.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}

	if err := i.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if err := c.ping(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	if got := c.queryV(t); got != 1 {
		t.Errorf("after Stop and Start, v = %v, want 1 (data kept)", got)
	}

	if err := i.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(i.Dir); !keepDirs() && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", i.Dir, err)
	}
	if err := i.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if err := i.Start(); err == nil {
		t.Error("Start after Close succeeded, want an error")
	}
}

type influxClient struct {
	url  string
	http *http.Client
}

func (c *influxClient) ping() error {
	resp, err := c.http.Get(c.url + "/ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("GET /ping: %s, want 204", resp.Status)
	}
	return nil
}

// mustDo sends body to path and returns the answer, failing the test unless
// the status is want.
func (c *influxClient) mustDo(t *testing.T, method, path, contentType, body string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, answer, want)
	}
	return string(answer)
}

// queryV returns the value of field v of the one point in x.m.
func (c *influxClient) queryV(t *testing.T) float64 {
	t.Helper()
	q := url.Values{"db": {"x"}, "q": {"SELECT v FROM m"}}.Encode()
	answer := c.mustDo(t, http.MethodPost, "/query", "application/x-www-form-urlencoded", q, http.StatusOK)
	var doc struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(answer), &doc); err != nil {
		t.Fatalf("decode %q: %v", answer, err)
	}
	if len(doc.Results) != 1 || doc.Results[0].Error != "" || len(doc.Results[0].Series) != 1 ||
		len(doc.Results[0].Series[0].Values) != 1 || len(doc.Results[0].Series[0].Values[0]) != 2 {
		t.Fatalf("SELECT v FROM m answered %s, want one point", answer)
	}
	v, ok := doc.Results[0].Series[0].Values[0][1].(float64)
	if !ok {
		t.Fatalf("SELECT v FROM m answered %s, want a number", answer)
	}
	return v
}
