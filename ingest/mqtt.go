package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

	"github.com/patientpulse/patientpulse/registry"
)

// Topic layout of the wire contract.
const (
	topicPrefix = "pp/v1/devices/"
	dataSuffix  = "/data"
	errorSuffix = "/errors"
)

// DataTopic and ErrorTopic name a device's topics.
func DataTopic(device string) string  { return topicPrefix + device + dataSuffix }
func ErrorTopic(device string) string { return topicPrefix + device + errorSuffix }

// MQTTConfig sets up the MQTT collector.
type MQTTConfig struct {
	URL          string // tcp://, mqtt://, ssl://, tls:// or mqtts://
	Username     string
	Password     string
	CAFile       string // PEM bundle to verify the broker with TLS; empty: the system roots
	ClientID     string // fixed per instance, so that its persistent session survives restarts
	ShareGroup   string // instances in one group share the devices' messages
	MaxInFlight  int    // messages received and not yet acknowledged
	MaxBytes     int64  // payload size limit
	MaxReconnect time.Duration
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
	if c.ShareGroup == "" || strings.ContainsAny(c.ShareGroup, "/+#") {
		errs = append(errs, errors.New("mqtt-share-group must be non-empty without '/', '+' or '#'"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 65535 {
		errs = append(errs, errors.New("mqtt-max-inflight must be between 1 and 65535"))
	}
	if c.MaxReconnect < time.Second {
		errs = append(errs, errors.New("mqtt-max-reconnect-interval must be at least 1s"))
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

// MQTT is the MQTT collector. It subscribes with a shared subscription,
// a fixed client id and a persistent session, and acknowledges a message
// only once its points are stored or it was answered on the device's
// errors topic. Paho hands each message to its own goroutine, so that its
// network loop keeps reading (pings, acknowledgements of our answers);
// that goroutine passes the message to one of MaxInFlight long-lived
// workers, waiting while all are busy. (Workers rather than the message's
// own goroutine, whose stack would grow anew for every message.) The
// broker's own in-flight window (max_inflight_messages) bounds how many it
// sends unacknowledged, and it queues the rest.
type MQTT struct {
	cfg     MQTTConfig
	intake  *Intake
	writer  *Writer
	metrics *Metrics
	log     *slog.Logger

	work      chan mqtt.Message // to the workers, unbuffered
	messages  prometheus.Counter
	inFlight  prometheus.Gauge
	connected atomic.Bool // connected and subscribed
	client    mqtt.Client // set by Run before it connects

	mu       sync.Mutex
	stopping bool           // no message is taken any more; guarded by mu
	running  sync.WaitGroup // messages in hand; Add only under mu while !stopping
}

// NewMQTT returns a collector; it connects when Run is called.
func NewMQTT(cfg MQTTConfig, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *MQTT {
	return &MQTT{
		cfg:      cfg,
		intake:   intake,
		writer:   w,
		metrics:  m,
		log:      log.With("component", "mqtt"),
		work:     make(chan mqtt.Message),
		messages: m.Messages.WithLabelValues(TransportMQTT),
		inFlight: m.InFlight.WithLabelValues(TransportMQTT),
	}
}

// Connected reports whether the collector is connected and subscribed.
func (c *MQTT) Connected() bool { return c.connected.Load() }

// Run connects (retrying with capped backoff; paho reconnects after a
// loss and the collector subscribes again each time) and returns once
// ctx ends and the messages in hand are finished, within a bound. It
// fails only when the TLS settings cannot be loaded.
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
	for range c.cfg.MaxInFlight {
		go c.worker(work)
	}
	c.client = mqtt.NewClient(opts)
	if c.connect(ctx) {
		<-ctx.Done()
	}
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
		<-done
	}
	c.client.Disconnect(500)
	c.setConnected(false)
	return nil
}

// connect makes the first connection, retrying until ctx ends; paho
// reconnects by itself after that.
func (c *MQTT) connect(ctx context.Context) bool {
	for wait := time.Second; ; wait = min(2*wait, c.cfg.MaxReconnect) {
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
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(c.cfg.MaxReconnect).
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
	handler := func(_ mqtt.Client, msg mqtt.Message) { c.receive(work, msg) }
	// A persistent session may deliver queued messages before the
	// subscription is made again: the default handler takes them.
	opts.SetDefaultPublishHandler(handler)
	opts.SetOnConnectHandler(func(cl mqtt.Client) { go c.subscribe(work, cl, handler) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.setConnected(false)
		c.metrics.BrokerConnLost.Inc()
		c.log.Warn("broker connection lost; reconnecting", "err", err)
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

// subscribe subscribes, retrying while the connection lasts: a broker that
// refuses or does not answer must not leave the collector deaf.
func (c *MQTT) subscribe(ctx context.Context, cl mqtt.Client, handler mqtt.MessageHandler) {
	topic := "$share/" + c.cfg.ShareGroup + "/" + DataTopic("+")
	for wait := time.Second; cl.IsConnectionOpen(); wait = min(2*wait, 30*time.Second) {
		tok := cl.Subscribe(topic, 1, handler).(*mqtt.SubscribeToken)
		err := errors.New("no answer within 10s")
		if tok.WaitTimeout(10 * time.Second) {
			err = tok.Error()
			if code := subackCode(tok); err == nil && code > 2 {
				err = fmt.Errorf("broker refused with code %#x", code)
			}
		}
		if err == nil {
			c.setConnected(true)
			c.log.Info("subscribed", "topic", topic)
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

// subackCode is the code the broker answered to a one-filter SUBSCRIBE:
// the granted QoS, or 0x80 for a refusal. (paho keys its results by the
// filter less any $share/group/ prefix, so look it up by position.)
func subackCode(tok *mqtt.SubscribeToken) byte {
	for _, code := range tok.Result() {
		return code
	}
	return 0x80 // no code at all: treat as refused
}

func (c *MQTT) setConnected(up bool) {
	c.connected.Store(up)
	if up {
		c.metrics.BrokerConnected.Set(1)
	} else {
		c.metrics.BrokerConnected.Set(0)
	}
}

// receive runs in a goroutine of paho's per message: it waits for a free
// worker and hands the message over. Once the collector stops it takes no
// more: they stay unacknowledged, for the broker to deliver again.
func (c *MQTT) receive(ctx context.Context, msg mqtt.Message) {
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

// handle processes one message and reports whether to acknowledge it.
func (c *MQTT) handle(ctx context.Context, msg mqtt.Message) bool {
	device, ok := strings.CutPrefix(msg.Topic(), topicPrefix)
	device, ok2 := strings.CutSuffix(device, dataSuffix)
	if !ok || !ok2 || !registry.ValidID(device) {
		// No device to answer: counted, logged, and acknowledged.
		c.intake.refused(TransportMQTT, ReasonBadTopic)
		return true
	}
	out, err := c.process(ctx, device, msg.Payload())
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("message left unacknowledged for redelivery", "err", err)
		}
		return false
	}
	if out.Answer == nil {
		return true
	}
	return c.answer(ctx, device, out.Answer)
}

func (c *MQTT) process(ctx context.Context, device string, payload []byte) (Outcome, error) {
	if int64(len(payload)) > c.cfg.MaxBytes {
		c.intake.refused(TransportMQTT, ReasonTooLarge)
		return Outcome{Answer: refusal(fmt.Sprintf("message of %d bytes exceeds the limit of %d", len(payload), c.cfg.MaxBytes))}, nil
	}
	dev, err := c.lookup(ctx, device)
	reason, answer, err := deviceRefusal(dev, err)
	if err != nil {
		return Outcome{}, err
	}
	if answer != nil {
		c.intake.refused(TransportMQTT, reason)
		return Outcome{Answer: answer}, nil
	}
	return c.intake.Ingest(ctx, TransportMQTT, dev, payload, c.writer.Write)
}

// lookup finds the device, retrying while the registry fails (a busy
// database, say) rather than leaving the message unacknowledged, which
// the broker would redeliver only after a reconnect.
func (c *MQTT) lookup(ctx context.Context, device string) (registry.Device, error) {
	wait := 100 * time.Millisecond
	for {
		dev, err := c.intake.devices.Device(ctx, device)
		if err == nil || errors.Is(err, registry.ErrNotFound) || ctx.Err() != nil {
			return dev, err
		}
		c.log.Warn("device lookup failed; retrying", "err", rootCause(err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return dev, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// answer publishes doc on the device's errors topic (QoS 1), retrying
// until the broker takes it, so that no rejection goes unanswered. It
// reports false when ctx ended first: the message then stays
// unacknowledged, and the broker delivers it again.
func (c *MQTT) answer(ctx context.Context, device string, doc *ErrorDoc) bool {
	body, _ := json.Marshal(doc) // an ErrorDoc always encodes
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		tok := c.client.Publish(ErrorTopic(device), 1, false, body)
		// Not tok.WaitTimeout(0) afterwards: its zero timer may win the
		// race with a completed token, and the answer would go out twice.
		taken := false
		select {
		case <-tok.Done():
			taken = tok.Error() == nil
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return false
		}
		if taken {
			c.metrics.ErrorAnswers.WithLabelValues(TransportMQTT).Inc()
			return true
		}
		c.metrics.AnswerFailures.Inc()
		c.log.Warn("error answer not taken by the broker; retrying", "err", tok.Error(), "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
}
