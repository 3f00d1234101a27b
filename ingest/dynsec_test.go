package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// The tests of BrokerAccounts run a real Mosquitto with the dynamic
// security plugin and check what the broker then lets each client do.

func startDynSec(t *testing.T) *testservices.Mosquitto {
	t.Helper()
	m, err := testservices.StartMosquittoWith(testservices.MosquittoOptions{DynSec: true})
	testservices.Require(t, err)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
	})
	return m
}

func adminConfig(m *testservices.Mosquitto) BrokerAdminConfig {
	return BrokerAdminConfig{URL: m.URL, Username: m.AdminUser, Password: m.AdminPassword, Timeout: 5 * time.Second}
}

func dialAccounts(t *testing.T, m *testservices.Mosquitto) *BrokerAccounts {
	t.Helper()
	b, err := DialBrokerAccounts(context.Background(), adminConfig(m))
	if err != nil {
		t.Fatalf("DialBrokerAccounts: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func login(t *testing.T, m *testservices.Mosquitto, clientID, username, password string) (*testservices.Conn, error) {
	t.Helper()
	return m.Connect(t, clientID, username, password)
}

func mustLogin(t *testing.T, m *testservices.Mosquitto, clientID, username, password string) *testservices.Conn {
	t.Helper()
	c, err := m.Connect(t, clientID, username, password)
	if err != nil {
		t.Fatalf("connect as %s: %v", username, err)
	}
	return c
}

// next returns the next message, or fails after 5 seconds.
func next(t *testing.T, msgs <-chan mqtt.Message, what string) mqtt.Message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing delivered within 5s", what)
		return nil
	}
}

func TestBrokerAccountsConfineDevices(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	for _, dev := range []string{"watch-a", "watch-b"} {
		if err := b.AddDevice(ctx, dev, "ppd_token-of-"+dev); err != nil {
			t.Fatalf("AddDevice: %v", err)
		}
	}
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "pipeline-secret"); err != nil {
		t.Fatalf("EnsurePipelineAccount: %v", err)
	}
	pipeline := mustLogin(t, m, "pipeline-1", "pipeline", "pipeline-secret")
	code, data := pipeline.Listen(t, "$share/g/"+DataTopic("+"))
	if code != 1 {
		t.Fatalf("pipeline's shared subscription: SUBACK %#x, want QoS 1 granted", code)
	}
	// A device may connect under its own client id only: with the
	// pipeline's it would take over the pipeline's session and its
	// subscription to every device's data.
	if _, err := login(t, m, "pipeline-1", "watch-a", "ppd_token-of-watch-a"); err == nil {
		t.Fatal("a device connected under the pipeline's client id")
	}
	watchA := mustLogin(t, m, "watch-a", "watch-a", "ppd_token-of-watch-a")

	// Its own data topic: delivered.
	watchA.Send(t, DataTopic("watch-a"), "own")
	if msg := next(t, data, "own data"); msg.Topic() != DataTopic("watch-a") || string(msg.Payload()) != "own" {
		t.Errorf("pipeline got %q on %s, want \"own\" on watch-a's topic", msg.Payload(), msg.Topic())
	}
	// Another device's data topic: dropped by the broker. The message sent
	// after it arrives; had the first passed, it would have come before.
	watchA.Send(t, DataTopic("watch-b"), "forged")
	watchA.Send(t, DataTopic("watch-a"), "after")
	if msg := next(t, data, "data after the forged message"); string(msg.Payload()) != "after" {
		t.Errorf("pipeline got %q on %s: a device published on another device's topic", msg.Payload(), msg.Topic())
	}

	// Subscriptions: its own errors topic only.
	for _, tc := range []struct {
		name   string
		filter string
		want   byte
	}{
		{"own errors topic", ErrorTopic("watch-a"), 1},
		{"another device's errors topic", ErrorTopic("watch-b"), 0x80},
		{"every device's errors", ErrorTopic("+"), 0x80},
		{"another device's data", DataTopic("watch-b"), 0x80},
		{"everything", "#", 0x80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := watchA.Listen(t, tc.filter); code != tc.want {
				t.Errorf("SUBACK %#x, want %#x", code, tc.want)
			}
		})
	}
	_, answers := watchA.Listen(t, ErrorTopic("watch-a"))
	pipeline.Send(t, ErrorTopic("watch-a"), `{"seq": 1, "error": "x"}`)
	if msg := next(t, answers, "answer on the errors topic"); string(msg.Payload()) != `{"seq": 1, "error": "x"}` {
		t.Errorf("device got %q on its errors topic", msg.Payload())
	}
	// A device cannot forge the pipeline's answers, not even to itself.
	watchA.Send(t, ErrorTopic("watch-a"), "forged answer")
	pipeline.Send(t, ErrorTopic("watch-a"), "real answer")
	if msg := next(t, answers, "answer after a forged one"); string(msg.Payload()) != "real answer" {
		t.Errorf("device got %q: it published on its errors topic", msg.Payload())
	}
}

func TestBrokerAccountsRefuseStrangers(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	for dev, token := range map[string]string{"watch-c": "ppd_right", "watch-y": "ppd_y"} {
		if err := b.AddDevice(context.Background(), dev, token); err != nil {
			t.Fatalf("AddDevice: %v", err)
		}
	}
	for _, tc := range []struct{ name, username, password string }{
		{"anonymous", "", ""},
		{"wrong password", "watch-c", "ppd_wrong"},
		{"no password", "watch-c", ""},
		{"unknown device", "watch-z", "ppd_right"},
		{"another device's token", "watch-c", "ppd_y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := login(t, m, "stranger", tc.username, tc.password); err == nil {
				t.Error("connection accepted")
			}
		})
	}
	wrong := adminConfig(m)
	wrong.Password = "not-the-admin-password"
	if _, err := DialBrokerAccounts(context.Background(), wrong); !errors.Is(err, ErrBrokerRefused) ||
		strings.Contains(err.Error(), wrong.Password) {
		t.Errorf("DialBrokerAccounts with a wrong admin password: %v, want ErrBrokerRefused without the password", err)
	}
}

func TestBrokerAccountsRevokeAndRenew(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	if err := b.AddDevice(ctx, "watch-d", "ppd_first"); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	// Enrolling again replaces the token and drops the old token's
	// connections.
	old := mustLogin(t, m, "watch-d", "watch-d", "ppd_first")
	if err := b.AddDevice(ctx, "watch-d", "ppd_second"); err != nil {
		t.Fatalf("AddDevice again: %v", err)
	}
	old.WaitLost(t, "connection with the replaced token")
	if _, err := login(t, m, "watch-d", "watch-d", "ppd_first"); err == nil {
		t.Error("replaced token still accepted")
	}
	conn := mustLogin(t, m, "watch-d", "watch-d", "ppd_second")
	if code, _ := conn.Listen(t, ErrorTopic("watch-d")); code != 1 {
		t.Errorf("after AddDevice again, own errors topic: SUBACK %#x, want 1", code)
	}

	// Revoking disconnects the device at once and refuses it after.
	if err := b.RemoveDevice(ctx, "watch-d"); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	conn.WaitLost(t, "connection of the removed device")
	if _, err := login(t, m, "watch-d", "watch-d", "ppd_second"); err == nil {
		t.Error("removed device's token still accepted")
	}
	if err := b.RemoveDevice(ctx, "watch-d"); err != nil {
		t.Errorf("RemoveDevice of a removed device: %v, want nil", err)
	}
	if err := b.RemoveDevice(ctx, "never-added"); err != nil {
		t.Errorf("RemoveDevice of an unknown device: %v, want nil", err)
	}
}

func TestBrokerAccountsLeaveForeignClientsAlone(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "pipeline-secret"); err != nil {
		t.Fatalf("EnsurePipelineAccount: %v", err)
	}
	if err := b.AddDevice(ctx, "watch-e", "ppd_e"); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"enrol a device named like the admin", func() error { return b.AddDevice(ctx, m.AdminUser, "ppd_takeover") }},
		{"enrol a device named like the pipeline", func() error { return b.AddDevice(ctx, "pipeline", "ppd_takeover") }},
		{"revoke a device named like the admin", func() error { return b.RemoveDevice(ctx, m.AdminUser) }},
		{"pipeline account named like the admin", func() error { return b.EnsurePipelineAccount(ctx, m.AdminUser, "ppd_takeover") }},
		{"pipeline account named like a device", func() error { return b.EnsurePipelineAccount(ctx, "watch-e", "ppd_takeover") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, ErrForeignAccount) || strings.Contains(err.Error(), "ppd_takeover") {
				t.Errorf("got %v, want ErrForeignAccount without the password", err)
			}
		})
	}
	mustLogin(t, m, "admin-check", m.AdminUser, m.AdminPassword)
	mustLogin(t, m, "pipeline-check", "pipeline", "pipeline-secret")
	mustLogin(t, m, "watch-e", "watch-e", "ppd_e")
}

func TestEnsurePipelineAccount(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "first"); err != nil {
		t.Fatalf("EnsurePipelineAccount: %v", err)
	}
	running := mustLogin(t, m, "instance-1", "pipeline", "first")
	// Another instance starting with the same settings disconnects nobody.
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "first"); err != nil {
		t.Fatalf("EnsurePipelineAccount again: %v", err)
	}
	// The broker kicks a client while it carries out the plugin's command,
	// before it answers; a round trip on the running connection after the
	// answer therefore fails if the instance was disconnected.
	tok := running.Subscribe("pp/v1/devices/+/data", 1, func(mqtt.Client, mqtt.Message) {})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !running.IsConnectionOpen() {
		t.Errorf("ensuring an unchanged account disconnected the running instance: %v", tok.Error())
	}
	// A new password in the settings replaces the old one.
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "second"); err != nil {
		t.Fatalf("EnsurePipelineAccount with a new password: %v", err)
	}
	if _, err := login(t, m, "instance-2", "pipeline", "first"); err == nil {
		t.Error("old pipeline password still accepted")
	}
	mustLogin(t, m, "instance-2", "pipeline", "second")
}

// Against a broker without the plugin, commands go unanswered: the error
// says so instead of hanging.
func TestBrokerAccountsWithoutPlugin(t *testing.T) {
	m, err := testservices.StartMosquitto()
	testservices.Require(t, err)
	t.Cleanup(func() { _ = m.Stop() })
	b, err := DialBrokerAccounts(context.Background(), BrokerAdminConfig{URL: m.URL, Username: "admin", Password: "x", Timeout: time.Second})
	if err != nil {
		t.Fatalf("DialBrokerAccounts: %v", err)
	}
	defer b.Close()
	err = b.AddDevice(context.Background(), "watch-f", "ppd_f")
	if !errors.Is(err, ErrBrokerUnreachable) || !strings.Contains(err.Error(), "plugin") || strings.Contains(err.Error(), "ppd_f") {
		t.Errorf("AddDevice without the plugin: %v, want ErrBrokerUnreachable naming the plugin, without the token", err)
	}
}

func TestBrokerAccountsUnreachable(t *testing.T) {
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := BrokerAdminConfig{URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Username: "admin", Password: "x", Timeout: time.Second}
	if _, err := DialBrokerAccounts(context.Background(), cfg); !errors.Is(err, ErrBrokerUnreachable) {
		t.Errorf("DialBrokerAccounts to a closed port: %v, want ErrBrokerUnreachable", err)
	}
}

// TestBrokerAccountsInternalTopics: the pipeline may publish and hear the
// partition feed; a device may neither subscribe to it nor publish on it
// (points injected for any patient).
func TestBrokerAccountsInternalTopics(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	if err := b.AddDevice(ctx, "watch-g", "ppd_g"); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	if err := b.EnsurePipelineAccount(ctx, "pipeline", "pipeline-secret"); err != nil {
		t.Fatalf("EnsurePipelineAccount: %v", err)
	}
	pipeline := mustLogin(t, m, "pipeline-feed-a", "pipeline", "pipeline-secret")
	code, feed := pipeline.Listen(t, feedFilter)
	if code != 1 {
		t.Fatalf("pipeline's feed subscription: SUBACK %#x, want QoS 1 granted", code)
	}
	watch := mustLogin(t, m, "watch-g", "watch-g", "ppd_g")
	for _, filter := range []string{feedFilter, FeedTopic(1), "pp/v1/internal/#", "$share/g/" + feedFilter} {
		if code, _ := watch.Listen(t, filter); code != 0x80 {
			t.Errorf("device subscribing to %s: SUBACK %#x, want 0x80", filter, code)
		}
	}
	// Dropped by the broker: the pipeline's own message, sent after, is
	// the first to arrive.
	watch.Send(t, FeedTopic(1), "forged")
	pipeline.Send(t, FeedTopic(1), "real")
	if msg := next(t, feed, "feed message"); string(msg.Payload()) != "real" {
		t.Errorf("pipeline heard %q on %s: a device published on the feed", msg.Payload(), msg.Topic())
	}
}

// TestRefreshDeviceRoles: a device role made before the summary topic
// (set here by hand to the older rules) is brought up to date, once; a
// current one and a device without a role are left alone.
func TestRefreshDeviceRoles(t *testing.T) {
	m := startDynSec(t)
	b := dialAccounts(t, m)
	ctx := context.Background()
	for _, d := range []string{"old-1", "new-1"} {
		if err := b.AddDevice(ctx, d, "token-of-"+d); err != nil {
			t.Fatal(err)
		}
	}
	var older []acl
	for _, a := range deviceACLs("old-1") {
		if a.Topic != SummaryTopic("old-1") {
			older = append(older, a)
		}
	}
	ans, err := b.run(ctx, dynsecCommand{"command": "modifyRole", "rolename": DeviceRole("old-1"), "acls": older})
	if err != nil || answerError(ans[0]) != nil {
		t.Fatalf("set the older rules: %v %v", err, ans)
	}
	before := mustLogin(t, m, "old-1", "old-1", "token-of-old-1")
	if code, _ := before.Listen(t, SummaryTopic("old-1")); code != 0x80 {
		t.Fatalf("with the older rules, SUBACK %#x for its summary, want 0x80", code)
	}
	before.Disconnect(0)

	if n, err := b.RefreshDeviceRoles(ctx, []string{"old-1", "new-1", "never-enrolled"}); n != 1 || err != nil {
		t.Fatalf("RefreshDeviceRoles = %d, %v; want 1 changed", n, err)
	}
	if n, err := b.RefreshDeviceRoles(ctx, []string{"old-1", "new-1"}); n != 0 || err != nil {
		t.Errorf("RefreshDeviceRoles again = %d, %v; want none changed", n, err)
	}
	after := mustLogin(t, m, "old-1", "old-1", "token-of-old-1")
	if code, _ := after.Listen(t, SummaryTopic("old-1")); code != 1 {
		t.Errorf("brought up to date, SUBACK %#x for its summary, want 1", code)
	}
	if code, _ := after.Listen(t, SummaryTopic("new-1")); code != 0x80 {
		t.Errorf("SUBACK %#x for another device's summary, want 0x80", code)
	}
}
