package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// Topic layout of the wire contract.
const (
	topicPrefix   = "pp/v1/devices/"
	dataSuffix    = "/data"
	errorSuffix   = "/errors"
	summarySuffix = "/summary"
)

// DataTopic, ErrorTopic and SummaryTopic name a device's topics.
func DataTopic(device string) string    { return topicPrefix + device + dataSuffix }
func ErrorTopic(device string) string   { return topicPrefix + device + errorSuffix }
func SummaryTopic(device string) string { return topicPrefix + device + summarySuffix }

// MQTTConfig sets up the MQTT collector.
type MQTTConfig struct {
	URL      string // tcp://, mqtt://, ssl://, tls:// or mqtts://
	Username string
	Password string
	CAFile   string // PEM bundle to verify the broker with TLS; empty: the system roots
	ClientID string // fixed per instance, so that its persistent session survives restarts
	// ShareGroup, when set, makes the instances in one group share the
	// devices' messages ($share/group/...). Empty: a plain subscription,
	// which Mosquitto keeps across its restart; it forgets shared ones
	// (see the README, "Broker restarts").
	ShareGroup   string
	MaxInFlight  int   // messages received and not yet acknowledged
	MaxBytes     int64 // payload size limit
	MaxReconnect time.Duration
	DeviceRate   float64 // messages per second per device, on average; above it refused and answered (0: no limit)
	DeviceBurst  int     // messages a device may send at once above DeviceRate
}

// Validate reports every problem at once.
func (c MQTTConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" || !validBrokerScheme(u.Scheme) {
		errs = append(errs, errors.New("mqtt-url must be a tcp://, mqtt://, mqtts://, ssl:// or ws(s):// URL with a host"))
	}
	if c.ClientID == "" || len(c.ClientID) > 64 {
		errs = append(errs, errors.New("mqtt-client-id must be 1 to 64 characters"))
	}
	if strings.ContainsAny(c.ShareGroup, "/+#") {
		errs = append(errs, errors.New("mqtt-share-group must be empty or without '/', '+' or '#'"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 65535 {
		errs = append(errs, errors.New("mqtt-max-inflight must be between 1 and 65535"))
	}
	if c.MaxReconnect < time.Second {
		errs = append(errs, errors.New("mqtt-max-reconnect-interval must be at least 1s"))
	}
	if c.DeviceRate < 0 || (c.DeviceRate > 0 && c.DeviceBurst < 1) {
		errs = append(errs, errors.New("device-rate must be 0 or more, and device-burst at least 1 when it is set"))
	}
	if c.CAFile != "" {
		if _, err := brokerTLS(c.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validBrokerScheme(s string) bool {
	switch s {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		return true
	}
	return false
}

// Topic is the filter the collector subscribes to.
func (c MQTTConfig) Topic() string {
	if c.ShareGroup == "" {
		return DataTopic("+")
	}
	return "$share/" + c.ShareGroup + "/" + DataTopic("+")
}

// mqttClient is the part of paho's client that the collector calls, so
// that unit tests can put a fake behind it (as Telegraf's mqtt_consumer
// does). Paho's own reconnection is off: the collector reconnects.
type mqttClient interface {
	Connect() mqtt.Token
	Disconnect(quiesce uint)
	Subscribe(topic string, qos byte, callback mqtt.MessageHandler) mqtt.Token
	Unsubscribe(topics ...string) mqtt.Token
	Publish(topic string, qos byte, retained bool, payload interface{}) mqtt.Token
}

var _ mqttClient = mqtt.Client(nil)

// minReconnect is the first wait after a failed connection attempt; each
// further failure doubles it, up to MQTTConfig.MaxReconnect.
const minReconnect = 250 * time.Millisecond

// MQTT is the MQTT collector. It subscribes with a fixed client id and a
// persistent session, and acknowledges a message only once its points
// are stored or it was answered on the device's errors topic. Paho's
// router calls the collector for each message in turn (order kept, no
// goroutine of paho's per message); the collector queues it for one of
// MaxInFlight long-lived workers and returns at once while the queue
// (MaxInFlight messages) has room. So at most 2*MaxInFlight messages are
// in hand, whatever the broker sends: when the queue is full the router
// waits, paho stops reading, and TCP holds the broker back. A broker that
// keeps its in-flight window (max_inflight_messages at most MaxInFlight)
// never fills the queue, so paho's reading (pings, acknowledgements of
// our answers) is not held up; Mosquitto 2.0.11 was measured sending
// ~20,000 unacknowledged messages while a backlog drained, which used to
// cost a parked goroutine each (its stack, and a descriptor the runtime
// never frees).
type MQTT struct {
	cfg     MQTTConfig
	intake  *Intake
	write   func(context.Context, []byte) error // the writer's blocking Write
	metrics *Metrics
	log     *slog.Logger
	limits  *deviceLimits

	newClient func(*mqtt.ClientOptions) mqttClient
	gate      func() bool       // nil, or whether the collector's session slot is held; see held
	report    func()            // nil, or what sets BrokerConnected instead of the collector (Sessions)
	work      chan mqtt.Message // to the workers; MaxInFlight buffered
	lost      chan error        // connection losses, from paho
	messages  prometheus.Counter
	inFlight  prometheus.Gauge
	connected atomic.Bool   // connected and subscribed
	client    mqttClient    // set by Run before it connects
	checked   bool          // the broker was checked; used by Run's subscribing goroutines, one at a time
	checkWait time.Duration // how long the broker check waits for the broker's $SYS tree

	mu       sync.Mutex
	stopping bool           // no message is taken any more; guarded by mu
	running  sync.WaitGroup // messages in hand; Add only under mu while !stopping
}

// NewMQTT returns a collector; it connects when Run is called.
func NewMQTT(cfg MQTTConfig, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *MQTT {
	return &MQTT{
		cfg:       cfg,
		intake:    intake,
		write:     w.Write,
		metrics:   m,
		log:       log.With("component", "mqtt"),
		limits:    newDeviceLimits(cfg.DeviceRate, cfg.DeviceBurst),
		newClient: func(o *mqtt.ClientOptions) mqttClient { return mqtt.NewClient(o) },
		checkWait: 12 * time.Second, // Mosquitto's sys_interval is 10 s by default
		work:      make(chan mqtt.Message, cfg.MaxInFlight),
		lost:      make(chan error, 1),
		messages:  m.Messages.WithLabelValues(TransportMQTT),
		inFlight:  m.InFlight.WithLabelValues(TransportMQTT),
	}
}

// Connected reports whether the collector is connected and subscribed.
func (c *MQTT) Connected() bool { return c.connected.Load() }

// Run connects, subscribes, and after every loss of the connection
// connects and subscribes again, retrying at once and then with a back-off
// that doubles from 250 ms up to MaxReconnect. It returns once ctx ends
// and the messages in hand are finished, within a bound. It fails only
// when the TLS settings cannot be loaded.
func (c *MQTT) Run(ctx context.Context) error {
	// Messages in hand outlive ctx by up to drainTimeout, so that their
	// acknowledgements and answers still go out.
	const drainTimeout = 10 * time.Second
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	opts, err := c.options(work)
	if err != nil {
		return err
	}
	var workers sync.WaitGroup
	for range c.cfg.MaxInFlight {
		workers.Go(func() { c.worker(work) })
	}
	c.client = c.newClient(opts)
	c.session(ctx)
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		c.log.Warn("stopping with messages unacknowledged; the broker will redeliver them")
		stopWork()
		c.dropQueued(done)
	}
	c.client.Disconnect(500)
	c.setConnected(false)
	stopWork()
	workers.Wait()
	return nil
}

// dropQueued takes the messages still queued for the workers, leaving
// them unacknowledged, until done is closed (every message in hand is
// finished).
func (c *MQTT) dropQueued(done <-chan struct{}) {
	for {
		select {
		case <-c.work:
			c.running.Done()
		case <-done:
			return
		}
	}
}

// session connects and subscribes, and does so again after each loss of
// the connection, until ctx ends.
func (c *MQTT) session(ctx context.Context) {
	for {
		select { // a loss reported by a connection before this one
		case <-c.lost:
		default:
		}
		if !c.connect(ctx) {
			return
		}
		subCtx, cancel := context.WithCancel(ctx)
		subscribed := make(chan struct{})
		go func() { defer close(subscribed); c.subscribe(subCtx) }()
		select {
		case err := <-c.lost:
			c.setConnected(false)
			c.metrics.BrokerConnLost.Inc()
			c.log.Warn("broker connection lost; reconnecting", "err", err)
		case <-ctx.Done():
		}
		cancel()
		<-subscribed
		if ctx.Err() != nil {
			return
		}
	}
}

// connect connects, retrying until ctx ends, and reports whether it did.
// It tries only while the collector's session slot is held (see
// Sessions).
func (c *MQTT) connect(ctx context.Context) bool {
	for wait := minReconnect; ; wait = min(2*wait, c.cfg.MaxReconnect) {
		if c.held() {
			tok := c.client.Connect()
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return false
			}
			if tok.Error() == nil {
				return true
			}
			c.log.Warn("broker connection failed; retrying", "err", tok.Error(), "in", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
}

func (c *MQTT) options(work context.Context) (*mqtt.ClientOptions, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(c.cfg.URL).
		SetClientID(c.cfg.ClientID).
		SetUsername(c.cfg.Username).
		SetPassword(c.cfg.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).   // receive only queues: see MQTT
		SetAutoReconnect(false). // Run reconnects, sooner than paho would
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetResumeSubs(false). // subscribed afresh on every connect instead
		SetCustomOpenConnectionFn(openBrokerConn)
	if c.cfg.CAFile != "" {
		tlsCfg, err := brokerTLS(c.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tlsCfg)
	}
	// A persistent session may deliver queued messages before the
	// subscription is made again: the default handler takes them.
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { c.receive(work, msg) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case c.lost <- err:
		default: // one loss is enough to reconnect
		}
	})
	return opts, nil
}

// brokerTLS trusts the CA certificates in file.
func brokerTLS(file string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mqtt ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("mqtt ca file holds no PEM certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// subscribe subscribes, retrying until ctx ends (the connection was lost
// or the collector stops): a broker that refuses or does not answer must
// not leave the collector deaf. The first time, it then checks the broker.
func (c *MQTT) subscribe(ctx context.Context) {
	topic := c.cfg.Topic()
	handler := func(_ mqtt.Client, msg mqtt.Message) { c.receive(context.WithoutCancel(ctx), msg) }
	for wait := minReconnect; ; wait = min(2*wait, c.cfg.MaxReconnect) {
		code, err := c.await(ctx, c.client.Subscribe(topic, 1, handler), 10*time.Second)
		if err == nil && code > 2 {
			err = fmt.Errorf("broker refused with code %#x", code)
		}
		if err == nil {
			c.setConnected(true)
			c.log.Info("subscribed", "topic", topic)
			if !c.checked {
				c.checked = c.checkBroker(ctx)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Error("subscribe failed; retrying", "topic", topic, "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// await waits for a one-filter SUBSCRIBE's answer, at most timeout, and
// returns the code the broker answered: the granted QoS, or 0x80 for a
// refusal. (paho keys its results by the filter less any $share/group/
// prefix, so the code is looked up by position.)
func (c *MQTT) await(ctx context.Context, tok mqtt.Token, timeout time.Duration) (byte, error) {
	select {
	case <-tok.Done():
	case <-time.After(timeout):
		return 0x80, fmt.Errorf("no answer within %s", timeout)
	case <-ctx.Done():
		return 0x80, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return 0x80, err
	}
	if r, ok := tok.(interface{ Result() map[string]byte }); ok {
		for _, code := range r.Result() {
			return code, nil
		}
	}
	return 0x80, nil // no code at all: treat as refused
}

// subackCode is the code the broker answered to a one-filter SUBSCRIBE
// whose token has completed.
func subackCode(tok *mqtt.SubscribeToken) byte {
	for _, code := range tok.Result() {
		return code
	}
	return 0x80 // no code at all: treat as refused
}

func (c *MQTT) setConnected(up bool) {
	c.connected.Store(up)
	if c.report != nil {
		c.report()
		return
	}
	if up {
		c.metrics.BrokerConnected.Set(1)
	} else {
		c.metrics.BrokerConnected.Set(0)
	}
}

// receive runs on paho's router: it queues the message for the workers,
// waiting only while the queue is full. Once the collector stops it takes
// no more: they stay unacknowledged, for the broker to deliver again.
func (c *MQTT) receive(ctx context.Context, msg mqtt.Message) {
	if strings.HasPrefix(msg.Topic(), "$SYS/") {
		msg.Ack() // the broker check's answer, late or from an earlier run
		return
	}
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return
	}
	c.running.Add(1)
	c.mu.Unlock()
	c.messages.Inc()
	select {
	case c.work <- msg: // the worker calls running.Done
	case <-ctx.Done():
		c.running.Done()
	}
}

// worker handles messages until ctx ends.
func (c *MQTT) worker(ctx context.Context) {
	for {
		select {
		case msg := <-c.work:
			c.inFlight.Inc()
			if c.handle(ctx, msg) {
				msg.Ack()
			}
			c.inFlight.Dec()
			c.running.Done()
		case <-ctx.Done():
			return
		}
	}
}
