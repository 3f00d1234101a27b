package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// The integration tests of this package share one real Mosquitto and one
// real influxd, started by TestMain; each test uses its own patients,
// devices, registry and MQTT session.
var (
	broker     *testservices.Mosquitto
	influx     *testservices.Influx
	servicesOK error
)

func TestMain(m *testing.M) {
	var err error
	if broker, err = testservices.StartMosquitto(); err != nil {
		servicesOK = err
	} else if influx, err = testservices.StartInflux(); err != nil {
		servicesOK = err
	}
	code := m.Run()
	if broker != nil {
		broker.Stop()
	}
	if influx != nil {
		influx.Close()
	}
	os.Exit(code)
}

func needServices(t *testing.T) {
	t.Helper()
	testservices.Require(t, servicesOK)
}

// cli runs one patientpulse command in process and returns its stdout.
// The first command on dataDir creates its registry (--init).
func cli(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = initArgs(t, dataDir, append(args, "--data-dir", dataDir))
	if code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("patientpulse %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// initArgs is args with dataDir's registry (registryArgs), and --init
// when there is no registry yet: a test's first admin command creates its
// registry, as an operator's does, and every later one must find it there
// like any admin command.
func initArgs(tb testing.TB, dataDir string, args []string) []string {
	tb.Helper()
	args = append(args, registryArgs(tb, dataDir)...)
	if !hasRegistry(tb, dataDir) {
		return append(args, "--init")
	}
	return args
}

// instance is a running `patientpulse serve`.
type instance struct {
	url     string // http://127.0.0.1:port
	dataDir string
	group   string // its MQTT share group and client id
	logs    *testservices.LogBuffer
	stop    func()
}

// startServe is startServeOver with plain HTTP.
func startServe(t *testing.T, dataDir, group string, extra ...string) *instance {
	t.Helper()
	return startServeOver(t, http.DefaultClient, "http", dataDir, group, extra...)
}

// startServeOver runs serve in process against the shared services, with
// the MQTT session named group (a fresh one unless an earlier instance
// used it), and waits until /readyz answers 200 to client over scheme.
// The session is cleared once the test is over, so that the broker queues
// nothing more for it. serve runs under the pprof label role=serve, so
// that a CPU profile can tell the pipeline from the test's own clients.
func startServeOver(tb testing.TB, client *http.Client, scheme, dataDir, group string, extra ...string) *instance {
	tb.Helper()
	tb.Cleanup(func() { // runs after the instance's own cleanup has stopped it
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(group).SetCleanSession(true))
		if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
		}
	})
	return runServe(tb, client, scheme, dataDir, group, "/readyz", 30*time.Second, extra...)
}

// runServe runs serve in process with the MQTT session named group and
// waits until path (/readyz, or /healthz: listening) answers 200 over
// scheme within wait. Flags in extra override the defaults (the last one
// wins); an --http-addr among them is where it is waited for.
func runServe(tb testing.TB, client *http.Client, scheme, dataDir, group, path string, wait time.Duration, extra ...string) *instance {
	tb.Helper()
	port, err := testservices.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if i := slices.Index(extra, "--http-addr"); i >= 0 && i+1 < len(extra) {
		addr = extra[i+1] // the test's own, such as a stopped instance's
	}
	in := &instance{url: scheme + "://" + addr, dataDir: dataDir, group: group, logs: &testservices.LogBuffer{}}
	args := append([]string{"serve",
		"--data-dir", dataDir,
		"--http-addr", addr,
		"--mqtt-url", broker.URL,
		"--mqtt-client-id", group,
		"--mqtt-share-group", group,
		"--influx-url", influx.URL,
		"--influx-bucket", "patientpulse",
	}, registryArgs(tb, dataDir)...)
	args = append(args, extra...) // after registryArgs: a test's own --db wins
	ctx, cancel := context.WithCancel(context.Background())
	var code int
	exited := make(chan struct{})
	go pprof.Do(ctx, pprof.Labels("role", "serve"), func(ctx context.Context) {
		code = run(ctx, args, nil, io.Discard, in.logs, func(string) string { return "" })
		close(exited)
	})
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			<-exited
			if code != 0 {
				tb.Errorf("serve exited %d: %s", code, in.logs.String())
			}
		})
	}
	tb.Cleanup(in.stop)
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			tb.Fatalf("serve exited %d before it was ready: %s", code, in.logs.String())
		default:
		}
		if resp, err := client.Get(in.url + path); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return in
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("serve: %s not 200 over %s within %v: %s", path, scheme, wait, in.logs.String())
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// enroll adds a patient and a device and returns the device's token.
func enroll(t *testing.T, dataDir, patient, device string) string {
	t.Helper()
	cli(t, dataDir, "patients", "add", "--id", patient, "--name", "Test Patient")
	token := strings.TrimSpace(cli(t, dataDir, "devices", "enroll", "--patient", patient, "--device", device))
	if !strings.HasPrefix(token, "ppd_") || strings.ContainsAny(token, " \n") {
		t.Fatalf("enroll printed %q, want the token alone", token)
	}
	return token
}

// row is one stored field value, as read back with Flux.
type row struct {
	Measurement, Field string
	Value              any
	Time               time.Time
	Tags               map[string]string
}

// rowStrings writes rows as "measurement.field=value@time patient",
// sorted, to compare what two reads found.
func rowStrings(rows []row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s.%s=%v@%s %s", r.Measurement, r.Field, r.Value, ts(r.Time), r.Tags["patient"]))
	}
	slices.Sort(out)
	return out
}

// query reads every field stored for device.
func query(t *testing.T, device string) []row {
	t.Helper()
	client := influxdb2.NewClient(influx.URL, "")
	defer client.Close()
	flux := fmt.Sprintf(`from(bucket: "patientpulse") |> range(start: -120d, stop: 1h)
		|> filter(fn: (r) => r.device == %q)`, device)
	res, err := client.QueryAPI("").Query(context.Background(), flux)
	if err != nil {
		t.Fatalf("flux query: %v", err)
	}
	var rows []row
	for res.Next() {
		rec := res.Record()
		tags := map[string]string{}
		for k, v := range rec.Values() {
			if s, ok := v.(string); ok && !strings.HasPrefix(k, "_") && k != "result" {
				tags[k] = s
			}
		}
		rows = append(rows, row{rec.Measurement(), rec.Field(), rec.Value(), rec.Time(), tags})
	}
	if res.Err() != nil {
		t.Fatalf("flux result: %v", res.Err())
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.Measurement+a.Field < b.Measurement+b.Field
	})
	return rows
}

// mqttClient connects as a device (or any client) to the shared broker.
func mqttClient(t *testing.T, id string) *testservices.Conn {
	t.Helper()
	c, err := broker.Connect(t, id, "", "")
	if err != nil {
		t.Fatalf("mqtt connect: %v", err)
	}
	return c
}

// subscribeErrors returns the answers on device's errors topic.
func subscribeErrors(t *testing.T, c *testservices.Conn, device string) <-chan mqtt.Message {
	t.Helper()
	_, answers := c.Listen(t, "pp/v1/devices/"+device+"/errors")
	return answers
}

// nextDoc decodes the next error document, or fails after 10s.
func nextDoc(t *testing.T, answers <-chan mqtt.Message) map[string]any {
	t.Helper()
	select {
	case m := <-answers:
		var doc map[string]any
		if err := json.Unmarshal(m.Payload(), &doc); err != nil {
			t.Fatalf("error document is not JSON: %q", m.Payload())
		}
		return doc
	case <-time.After(10 * time.Second):
		t.Fatal("no error document within 10s")
		return nil
	}
}

// mosquittoPub publishes payload as device with the mosquitto_pub tool,
// as a clinic's engineer would.
func mosquittoPub(t *testing.T, device, payload string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		testservices.Require(t, fmt.Errorf("mosquitto_pub: %w", testservices.ErrMissingBinary))
	}
	out, err := exec.Command(bin, "-h", "127.0.0.1", "-p", strings.TrimPrefix(broker.Addr, "127.0.0.1:"),
		"-i", device, "-q", "1", "-t", "pp/v1/devices/"+device+"/data", "-m", payload).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func post(t *testing.T, url, token, contentType string, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	status, doc, h, err := tryPost(url, token, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, doc, h
}

// tryPost is post for goroutines other than the test's.
func tryPost(url, token, contentType string, body []byte) (int, map[string]any, http.Header, error) {
	return postWith(http.DefaultClient, url, token, contentType, body)
}

// postWith is tryPost with a given client.
func postWith(client *http.Client, url, token, contentType string, body []byte) (int, map[string]any, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/ingest", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("POST /v1/ingest: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, nil, nil, fmt.Errorf("POST /v1/ingest %d: body is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, doc, resp.Header, nil
}

func newDataDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data") }
