package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// The tests of --broker-accounts run their own Mosquitto with the dynamic
// security plugin and no anonymous access; TestMain's shared broker has
// neither.

// dynsecBroker starts a broker with the plugin and returns it with the
// flags that point the admin commands and serve at it.
func dynsecBroker(t *testing.T) (*testservices.Mosquitto, []string) {
	t.Helper()
	m, err := testservices.StartMosquittoWith(testservices.MosquittoOptions{DynSec: true})
	testservices.Require(t, err)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
	})
	return m, []string{"--mqtt-url", m.URL, "--broker-accounts",
		"--broker-admin-username", m.AdminUser, "--broker-admin-password", m.AdminPassword}
}

// cliRun runs one patientpulse command in process with stdin and returns
// its exit code, stdout and stderr.
func cliRun(t *testing.T, dataDir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append(args, "--data-dir", dataDir), registryArgs(t, dataDir)...)
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

func connectDevice(t *testing.T, m *testservices.Mosquitto, clientID, username, password string) (*testservices.Conn, error) {
	t.Helper()
	return m.Connect(t, clientID, username, password)
}

func heartRate(seq int, at time.Time, bpm int) string {
	return fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`, seq, ts(at), bpm)
}

func TestBrokerAccountsEndToEnd(t *testing.T) {
	needServices(t)
	m, brokerFlags := dynsecBroker(t)
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-dyn")
	tokens := map[string]string{}
	for _, dev := range []string{"watch-dyn", "watch-dyn2"} {
		code, out, errOut := cliRun(t, dir, "", append([]string{"devices", "enroll", "--patient", "p-dyn", "--device", dev}, brokerFlags...)...)
		if code != 0 || !strings.Contains(errOut, "broker account") {
			t.Fatalf("enroll %s: exit %d: %s", dev, code, errOut)
		}
		tokens[dev] = strings.TrimSpace(out)
	}
	// Ready means connected and subscribed with the pipeline's own account,
	// which serve made with the admin account.
	srv := startServe(t, dir, "t-dyn", append(brokerFlags, "--mqtt-username", "pipeline",
		"--mqtt-password", "pipeline-secret-of-the-tests", "--device-cache-ttl", "0")...)

	watch, err := connectDevice(t, m, "watch-dyn", "watch-dyn", tokens["watch-dyn"])
	if err != nil {
		t.Fatalf("enrolled device refused: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	watch.Send(t, "pp/v1/devices/watch-dyn/data", heartRate(1, now.Add(-3*time.Minute), 70))
	waitUntil(t, 5*time.Second, "the device's sample stored", func() bool { return len(query(t, "watch-dyn")) == 2 })

	// Another device's topics are closed to it. The broker's admin reads
	// every device's data: the broker hands one publisher's messages to
	// a subscriber in order, so a message that passed the ACL would reach
	// it before the device's next one.
	monitor, err := m.Connect(t, "monitor-dyn", m.AdminUser, m.AdminPassword)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	code, seen := monitor.Listen(t, "pp/v1/devices/+/data")
	if code != 1 {
		t.Fatalf("admin subscription to every device's data: SUBACK %#x, want 1", code)
	}
	watch.Send(t, "pp/v1/devices/watch-dyn2/data", heartRate(1, now.Add(-2*time.Minute), 71))
	watch.Send(t, "pp/v1/devices/watch-dyn/data", heartRate(2, now.Add(-time.Minute), 72))
	for next := true; next; {
		select {
		case msg := <-seen:
			if msg.Topic() == "pp/v1/devices/watch-dyn2/data" {
				t.Fatal("the broker passed a device's message on another device's topic")
			}
			next = msg.Topic() != "pp/v1/devices/watch-dyn/data"
		case <-time.After(10 * time.Second):
			t.Fatal("the device's next message did not reach the broker's admin within 10s")
		}
	}
	waitUntil(t, 5*time.Second, "the next sample stored", func() bool { return len(query(t, "watch-dyn")) == 4 })
	if rows := query(t, "watch-dyn2"); len(rows) != 0 {
		t.Errorf("a device published on another device's topic: %v stored", rows)
	}
	if code, _ := watch.Listen(t, "pp/v1/devices/watch-dyn2/errors"); code != 0x80 {
		t.Errorf("subscription to another device's errors topic: SUBACK %#x, want 0x80", code)
	}
	// Its own errors topic carries the pipeline's answers.
	code, answers := watch.Listen(t, "pp/v1/devices/watch-dyn/errors")
	if code != 1 {
		t.Fatalf("subscription to its own errors topic: SUBACK %#x, want 1", code)
	}
	watch.Send(t, "pp/v1/devices/watch-dyn/data", heartRate(3, now, 400))
	if doc := nextDoc(t, answers); doc["seq"] != 3.0 {
		t.Errorf("answer %v, want the rejection of seq 3", doc)
	}

	for _, tc := range []struct{ name, username, password string }{
		{"anonymous", "", ""},
		{"wrong password", "watch-dyn", "ppd_wrong"},
		{"another device's token", "watch-dyn", tokens["watch-dyn2"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := connectDevice(t, m, "stranger", tc.username, tc.password); err == nil {
				t.Error("connection accepted")
			}
		})
	}

	// Revoking disconnects the device at once, and it cannot come back.
	exit, _, errOut := cliRun(t, dir, "", append([]string{"devices", "revoke", "--device", "watch-dyn"}, brokerFlags...)...)
	if exit != 0 || !strings.Contains(errOut, "broker account is removed") {
		t.Fatalf("revoke: exit %d: %s", exit, errOut)
	}
	watch.WaitLost(t, "revoked device")
	if _, err := connectDevice(t, m, "watch-dyn", "watch-dyn", tokens["watch-dyn"]); err == nil {
		t.Error("revoked device's token still accepted")
	}
	srv.stop()
	logs := srv.logs.String()
	for _, secret := range []string{tokens["watch-dyn"], tokens["watch-dyn2"], m.AdminPassword, "pipeline-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("serve's log holds a token or password:\n%s", logs)
		}
	}
}

// When the broker step fails, enroll leaves the registry as it was, and
// revoke says how to finish; running revoke again does.
func TestBrokerAccountsFailures(t *testing.T) {
	m, brokerFlags := dynsecBroker(t)
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-fail")
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	deadBroker := append(append([]string{}, brokerFlags...), "--mqtt-url", fmt.Sprintf("tcp://127.0.0.1:%d", port))
	enroll := func(dev string, flags []string) (int, string, string) {
		return cliRun(t, dir, "", append([]string{"devices", "enroll", "--patient", "p-fail", "--device", dev}, flags...)...)
	}

	t.Run("enroll with the broker unreachable", func(t *testing.T) {
		code, out, errOut := enroll("watch-f1", deadBroker)
		if code != 1 || out != "" || !strings.Contains(errOut, "nothing changed") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, no token, nothing changed", code, out, errOut)
		}
		if code, _, errOut := enroll("watch-f1", brokerFlags); code != 0 {
			t.Errorf("enroll once the broker is back: exit %d: %s", code, errOut)
		}
	})
	t.Run("enroll refused by the broker", func(t *testing.T) {
		// A device named like the broker's admin would take its account over.
		code, out, errOut := enroll(m.AdminUser, brokerFlags)
		if code != 1 || out != "" || !strings.Contains(errOut, "registry entry is undone") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, no token, the enrolment undone", code, out, errOut)
		}
		if list := cli(t, dir, "devices", "list"); strings.Contains(list, m.AdminUser+" ") {
			t.Errorf("undone enrolment still listed:\n%s", list)
		}
		if _, err := connectDevice(t, m, "admin-check", m.AdminUser, m.AdminPassword); err != nil {
			t.Errorf("the admin account no longer works: %v", err)
		}
	})
	t.Run("revoke with the broker unreachable, then again", func(t *testing.T) {
		code, out, _ := enroll("watch-f2", brokerFlags)
		if code != 0 {
			t.Fatal("enroll failed")
		}
		token := strings.TrimSpace(out)
		watch, err := connectDevice(t, m, "watch-f2", "watch-f2", token)
		if err != nil {
			t.Fatalf("enrolled device refused: %v", err)
		}
		code, _, errOut := cliRun(t, dir, "", append([]string{"devices", "revoke", "--device", "watch-f2"}, deadBroker...)...)
		if code != 1 || !strings.Contains(errOut, "revoked in the registry") || !strings.Contains(errOut, "again") {
			t.Errorf("revoke with the broker down: exit %d: %s; want 1 saying to run it again", code, errOut)
		}
		if list := cli(t, dir, "devices", "list"); !strings.Contains(list, "revoked") {
			t.Errorf("device not revoked in the registry:\n%s", list)
		}
		code, _, errOut = cliRun(t, dir, "", append([]string{"devices", "revoke", "--device", "watch-f2"}, brokerFlags...)...)
		if code != 0 || !strings.Contains(errOut, "already revoked") {
			t.Errorf("revoke again: exit %d: %s; want 0", code, errOut)
		}
		watch.WaitLost(t, "revoked device")
		if _, err := connectDevice(t, m, "watch-f2", "watch-f2", token); err == nil {
			t.Error("revoked device's token still accepted")
		}
	})
	t.Run("settings missing", func(t *testing.T) {
		code, _, errOut := cliRun(t, dir, "", "devices", "enroll", "--patient", "p-fail", "--device", "watch-f3", "--broker-accounts")
		if code != 2 || !strings.Contains(errOut, "broker-admin-username") || !strings.Contains(errOut, "broker-admin-password") {
			t.Errorf("exit %d: %s; want 2 naming both admin settings", code, errOut)
		}
	})
}

// A device enrolled while the broker's accounts were not managed gets its
// account from its token.
func TestDevicesBrokerAdd(t *testing.T) {
	m, brokerFlags := dynsecBroker(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-add", "watch-add")
	other := strings.TrimSpace(cli(t, dir, "devices", "enroll", "--patient", "p-add", "--device", "watch-other"))
	if _, err := connectDevice(t, m, "watch-add", "watch-add", token); err == nil {
		t.Fatal("device enrolled without broker accounts was accepted")
	}
	brokerAdd := func(stdin string) (int, string) {
		code, _, errOut := cliRun(t, dir, stdin, append([]string{"devices", "broker-add", "--device", "watch-add"}, brokerFlags...)...)
		return code, errOut
	}
	if code, errOut := brokerAdd(other + "\n"); code != 1 || strings.Contains(errOut, other) {
		t.Errorf("broker-add with another device's token: exit %d: %s; want 1, without the token", code, errOut)
	}
	if code, errOut := brokerAdd(""); code != 2 {
		t.Errorf("broker-add without a token: exit %d: %s; want 2", code, errOut)
	}
	if code, errOut := brokerAdd(token + "\n"); code != 0 {
		t.Fatalf("broker-add: exit %d: %s", code, errOut)
	}
	if _, err := connectDevice(t, m, "watch-add", "watch-add", token); err != nil {
		t.Errorf("device refused after broker-add: %v", err)
	}
	if code, errOut := brokerAdd(token + "\n"); code != 0 {
		t.Errorf("broker-add again: exit %d: %s; want 0", code, errOut)
	}
	cli(t, dir, "devices", "revoke", "--device", "watch-add")
	if code, errOut := brokerAdd(token + "\n"); code != 1 || !strings.Contains(errOut, "revoked") {
		t.Errorf("broker-add of a revoked device: exit %d: %s; want 1", code, errOut)
	}
}

func TestBrokerAccountsServeSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		notWant string
	}{
		{name: "nothing given", args: []string{"--broker-accounts"},
			want: []string{"broker-admin-username", "broker-admin-password", "mqtt-username and mqtt-password"}},
		{name: "pipeline account is the admin", env: map[string]string{"PATIENTPULSE_BROKER_ADMIN_PASSWORD": "s3cret-admin-password-0123"},
			args:    []string{"--broker-accounts", "--broker-admin-username", "admin", "--mqtt-username", "admin", "--mqtt-password", "s3cret-pipeline-password-0123"},
			want:    []string{"mqtt-username must not be broker-admin-username"},
			notWant: "broker-admin-password", // given in the environment
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runServeConfig(t, tc.env, tc.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if tc.notWant != "" && strings.Contains(stderr, tc.notWant) {
				t.Errorf("stderr says %q:\n%s", tc.notWant, stderr)
			}
			if strings.Contains(stderr, "s3cret") {
				t.Errorf("stderr echoes a password:\n%s", stderr)
			}
		})
	}
}

// TestBrokerAccountsThroughTheAPI: with --broker-accounts, a device an
// admin enrols through the API (as the web app does) gets its broker
// account at once and its data is stored; revoking it through the API
// disconnects it for good, and so does deactivating its patient.
func TestBrokerAccountsThroughTheAPI(t *testing.T) {
	needServices(t)
	m, brokerFlags := dynsecBroker(t)
	dir := newDataDir(t)
	admin := staffToken(t, dir, "ada-dyn", "admin")
	srv := startServe(t, dir, "t-dyn-api", append(brokerFlags, "--mqtt-username", "pipeline",
		"--mqtt-password", "pipeline-secret-of-the-tests", "--device-cache-ttl", "0")...)
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/patients", map[string]string{"id": "p-dyn-api"}); st != http.StatusCreated {
		t.Fatalf("add patient: %d %v", st, doc)
	}
	enrol := func(device string) string {
		t.Helper()
		st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/patients/p-dyn-api/devices", map[string]string{"device": device})
		token, _ := doc["token"].(string)
		if st != http.StatusCreated || !strings.HasPrefix(token, "ppd_") || doc["mqtt_url"] != m.URL || doc["mqtt_topic"] != "pp/v1/devices/"+device+"/data" {
			t.Fatalf("enrol %s: %d %v", device, st, doc)
		}
		return token
	}
	watchToken := enrol("watch-api")
	watch, err := connectDevice(t, m, "watch-api", "watch-api", watchToken)
	if err != nil {
		t.Fatalf("the device enrolled through the API is refused by the broker: %v", err)
	}
	watch.Send(t, "pp/v1/devices/watch-api/data", heartRate(1, time.Now().Add(-time.Minute), 70))
	waitUntil(t, 5*time.Second, "the device's sample stored", func() bool { return len(query(t, "watch-api")) == 2 })

	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/devices/watch-api/revoke", nil); st != http.StatusOK || doc["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", st, doc)
	}
	watch.WaitLost(t, "the device revoked through the API")
	if _, err := connectDevice(t, m, "watch-api", "watch-api", watchToken); err == nil {
		t.Error("the revoked device's token is still accepted by the broker")
	}

	phoneToken := enrol("phone-api")
	phone, err := connectDevice(t, m, "phone-api", "phone-api", phoneToken)
	if err != nil {
		t.Fatalf("the second device is refused: %v", err)
	}
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/patients/p-dyn-api/deactivate", nil); st != http.StatusOK || doc["deactivated_at"] == nil {
		t.Fatalf("deactivate: %d %v", st, doc)
	}
	phone.WaitLost(t, "the deactivated patient's device")
	if _, err := connectDevice(t, m, "phone-api", "phone-api", phoneToken); err == nil {
		t.Error("the deactivated patient's device is still accepted by the broker")
	}
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "POST", "/v1/patients/p-dyn-api/devices", map[string]string{"device": "watch-api-2"}); st != http.StatusConflict {
		t.Errorf("enrolling a device for a deactivated patient: %d %v, want 409", st, doc)
	}
	srv.stop()
	for _, secret := range []string{watchToken, phoneToken, m.AdminPassword} {
		if strings.Contains(srv.logs.String(), secret) {
			t.Error("serve's log holds a device token or the broker's admin password")
		}
	}
}
