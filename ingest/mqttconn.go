package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// openBrokerConn opens the connection to the broker as paho's own dialling
// does (a proxy from the environment for TCP and TLS, websockets through
// paho), with its reads buffered and its writes gathered: paho reads each
// packet in at least three reads (its first byte, its length, byte by
// byte, and its body) and writes each in one, each a system call on a
// bare connection, and the collector reads and acknowledges tens of
// thousands of packets a second.
func openBrokerConn(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
	dialer := opts.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: opts.ConnectTimeout}
	}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // as paho does: the websocket dialer refuses URLs with credentials
		var tlsCfg *tls.Config
		if u.Scheme == "wss" {
			tlsCfg = opts.TLSConfig
		}
		conn, err = mqtt.NewWebsocket(u.String(), tlsCfg, opts.ConnectTimeout, opts.HTTPHeaders, opts.WebsocketOptions)
	case "tcp", "mqtt":
		conn, err = proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		conn, err = dialTLS(uri, opts, dialer)
	default:
		return nil, errors.New("unknown broker URL scheme")
	}
	if err != nil {
		return nil, err
	}
	return newBufferedConn(conn), nil
}

func dialTLS(uri *url.URL, opts mqtt.ClientOptions, dialer *net.Dialer) (net.Conn, error) {
	raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	cfg := opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = uri.Hostname()
	}
	conn := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), opts.ConnectTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// bufferedConn is a connection whose reads go through a buffer and whose
// writes are gathered: paho writes every packet (a PUBACK per message) in
// a write of its own, from one goroutine, which would be a system call
// each. Write appends to a pending buffer and returns; one flushing
// goroutine at a time sends what is pending, so that the packets written
// while it is in a system call go together in the next. Order is kept. A
// failed send closes the connection (paho's reads then fail, and it
// reconnects) and fails every later Write. Only paho's one reading
// goroutine reads.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	sent     sync.Cond // broadcast when a flush ends or sends what was pending
	pending  []byte    // written, not yet sent
	spare    []byte    // the buffer last sent, for reuse
	flushing bool      // a flushing goroutine runs
	err      error     // the first failed send, or net.ErrClosed after Close
}

// maxUnsent bounds the bytes pending: a Write beyond it waits for a send.
const maxUnsent = 1 << 20

func newBufferedConn(conn net.Conn) *bufferedConn {
	c := &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}
	c.sent.L = &c.mu
	return c
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) >= maxUnsent && c.err == nil {
		c.sent.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// flush sends what is pending until nothing is.
func (c *bufferedConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil && c.err == nil {
			c.err = err
			c.Conn.Close()
		}
		c.sent.Broadcast()
	}
	c.flushing = false
	c.sent.Broadcast()
}

// Close sends what is pending (paho's DISCONNECT, say), waiting at most a
// second for the peer to take it, and closes the connection.
func (c *bufferedConn) Close() error {
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.mu.Lock()
	for c.flushing {
		c.sent.Wait()
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// versionTopic is where Mosquitto (and other brokers with a $SYS tree)
// publishes its name and version, retained: a broker with retained
// messages off (retain_available false) never sends it. uptimeTopic is where Mosquitto says how long it has run,
// every sys_interval (10 s by default), not retained, as "N seconds".
const (
	versionTopic = "$SYS/broker/version"
	uptimeTopic  = "$SYS/broker/uptime"
)

// checkBroker warns, once, when the instances share their subscription
// through a broker that forgets shared subscriptions when it restarts:
// what devices publish between its restart and every instance's
// subscribing again is then lost although the broker acknowledged it.
// Mosquitto's persistence writes only plain subscriptions to its database
// (measured with 2.0.11: a SIGTERM restart keeps a persistent session's
// plain subscription and its queued messages, but not its $share one).
// It reports false when ctx ended first, to be checked again.
func (c *MQTT) checkBroker(ctx context.Context) bool {
	if c.cfg.ShareGroup == "" {
		return true
	}
	broker := c.brokerName(ctx)
	switch {
	case ctx.Err() != nil:
		return false
	case strings.HasPrefix(strings.ToLower(broker), "mosquitto"):
		c.log.Warn("this broker forgets shared subscriptions when it restarts: messages devices publish after "+
			"its restart and before the instances subscribe again are lost; see the README, \"Broker restarts\"",
			"broker", broker, "share_group", c.cfg.ShareGroup)
	case broker == "":
		c.log.Warn("could not learn which broker this is ($SYS/broker/...): if it forgets shared subscriptions "+
			"when it restarts, messages devices publish meanwhile are lost; see the README, \"Broker restarts\"",
			"share_group", c.cfg.ShareGroup)
	default:
		c.log.Info("broker", "version", broker)
	}
	return true
}

// brokerName is the broker's version from its $SYS tree ("mosquitto
// version 2.0.11"), or "mosquitto" when only its uptime came in
// Mosquitto's form, or "" when the broker said neither within
// brokerCheckWait or refused both subscriptions.
func (c *MQTT) brokerName(ctx context.Context) string {
	got := make(chan string, 2)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		m.Ack()
		name := string(m.Payload())
		if m.Topic() == uptimeTopic {
			if !strings.HasSuffix(name, " seconds") {
				return
			}
			name = "mosquitto"
		}
		select {
		case got <- name:
		default:
		}
	}
	refused := 0
	for _, topic := range []string{versionTopic, uptimeTopic} {
		if code, err := c.await(ctx, c.client.Subscribe(topic, 0, handler), c.checkWait); err != nil || code > 2 {
			refused++
		}
	}
	defer c.client.Unsubscribe(versionTopic, uptimeTopic) // not waited for: nothing depends on it
	if refused == 2 {
		return ""
	}
	select {
	case name := <-got:
		return name
	case <-time.After(c.checkWait):
	case <-ctx.Done():
	}
	return ""
}
