package testservices

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Conn is a test's MQTT connection to a Mosquitto, as a device or any
// other account.
type Conn struct {
	mqtt.Client
	lost chan struct{} // closed when the broker drops the connection
}

// Connect connects with clientID, username and password (all may be
// empty), without reconnecting; the error is the broker's refusal, if any.
// The connection is closed when the test ends.
func (m *Mosquitto) Connect(tb testing.TB, clientID, username, password string) (*Conn, error) {
	tb.Helper()
	c := &Conn{lost: make(chan struct{})}
	c.Client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID(clientID).
		SetUsername(username).SetPassword(password).SetAutoReconnect(false).
		SetConnectionLostHandler(func(mqtt.Client, error) { close(c.lost) }))
	tok := c.Client.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		tb.Fatalf("connect as %q: no CONNACK within 10s", username)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// Send publishes payload to topic with QoS 1 and waits for the broker's
// PUBACK. (A broker acknowledges a publish its ACLs drop, too.)
func (c *Conn) Send(tb testing.TB, topic, payload string) {
	tb.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// Listen subscribes to filter with QoS 1 and returns the broker's SUBACK
// code (the granted QoS, or 0x80 for a refusal) and the messages delivered.
func (c *Conn) Listen(tb testing.TB, filter string) (byte, <-chan mqtt.Message) {
	tb.Helper()
	msgs := make(chan mqtt.Message, 100)
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m }).(*mqtt.SubscribeToken)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	code := byte(0x80)
	for _, c := range tok.Result() { // one filter: paho keys it without any $share/group/ prefix
		code = c
	}
	return code, msgs
}

// WaitLost fails the test unless the broker drops the connection within 5s.
func (c *Conn) WaitLost(tb testing.TB, what string) {
	tb.Helper()
	select {
	case <-c.lost:
	case <-time.After(5 * time.Second):
		tb.Fatalf("%s: still connected after 5s", what)
	}
}
