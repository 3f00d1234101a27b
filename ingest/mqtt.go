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
		if _, err := os.Stat(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("mqtt-ca-file: %w", err))
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
// errors topic. At most MaxInFlight messages are unacknowledged: beyond
// that the paho callback blocks, paho stops reading, and the broker keeps
// the rest queued.
type MQTT struct {
	cfg     MQTTConfig
	intake  *Intake
	writer  *Writer
	metrics *Metrics
	log     *slog.Logger

	slots     chan struct{} // one per unacknowledged message
	running   sync.WaitGroup
	connected atomic.Bool
	client    mqtt.Client // set by Run before it connects
}

// NewMQTT returns a collector; it connects when Run is called.
func NewMQTT(cfg MQTTConfig, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *MQTT {
	return &MQTT{
		cfg:     cfg,
		intake:  intake,
		writer:  w,
		metrics: m,
		log:     log.With("component", "mqtt"),
		slots:   make(chan struct{}, cfg.MaxInFlight),
	}
}

// Connected reports whether the broker connection is up.
func (c *MQTT) Connected() bool { return c.connected.Load() }

// Run connects, keeps the connection (paho reconnects with capped
// backoff and the collector subscribes again each time), and returns
// once ctx ends and the messages in hand are finished, within a bound.
func (c *MQTT) Run(ctx context.Context) error {
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	c.client = mqtt.NewClient(opts)
	c.client.Connect() // with ConnectRetry it keeps trying in the background
	<-ctx.Done()

	// Messages in hand finish while the connection is still up, so that
	// their acknowledgements and answers go out; bounded, as the writer
	// may be failing. Unfinished ones are redelivered by the broker.
	done := make(chan struct{})
	go func() { c.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.log.Warn("stopping with messages unacknowledged; the broker will redeliver them")
	}
	c.client.Disconnect(500)
	c.setConnected(false)
	return nil
}

func (c *MQTT) options(ctx context.Context) (*mqtt.ClientOptions, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(c.cfg.URL).
		SetClientID(c.cfg.ClientID).
		SetUsername(c.cfg.Username).
		SetPassword(c.cfg.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true). // the callback blocks for a free slot: backpressure
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(c.cfg.MaxReconnect).
		SetKeepAlive(30 * time.Second).
		SetResumeSubs(false) // subscribed afresh on every connect instead
	if c.cfg.CAFile != "" {
		pem, err := os.ReadFile(c.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("mqtt ca file holds no PEM certificate")
		}
		opts.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	handler := func(_ mqtt.Client, msg mqtt.Message) { c.receive(ctx, msg) }
	// A persistent session may deliver queued messages before the
	// subscription below is made again: the default handler takes them.
	opts.SetDefaultPublishHandler(handler)
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		c.setConnected(true)
		topic := "$share/" + c.cfg.ShareGroup + "/" + DataTopic("+")
		tok := cl.Subscribe(topic, 1, handler)
		go func() {
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				c.log.Info("subscribed", "topic", topic)
				return
			}
			c.log.Error("subscribe failed; reconnecting", "topic", topic, "err", tok.Error())
			cl.Disconnect(0) // a forced reconnect subscribes again
		}()
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.setConnected(false)
		c.metrics.BrokerConnLost.Inc()
		c.log.Warn("broker connection lost; reconnecting", "err", err)
	})
	return opts, nil
}

func (c *MQTT) setConnected(up bool) {
	c.connected.Store(up)
	if up {
		c.metrics.BrokerConnected.Set(1)
	} else {
		c.metrics.BrokerConnected.Set(0)
	}
}

// receive runs on paho's single dispatch goroutine: it waits for a free
// slot, then handles the message in its own goroutine.
func (c *MQTT) receive(ctx context.Context, msg mqtt.Message) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return // not acknowledged: redelivered after the restart
	}
	c.metrics.Messages.WithLabelValues(TransportMQTT).Inc()
	c.metrics.InFlight.WithLabelValues(TransportMQTT).Inc()
	c.running.Add(1)
	go func() {
		defer func() {
			<-c.slots
			c.metrics.InFlight.WithLabelValues(TransportMQTT).Dec()
			c.running.Done()
		}()
		if c.handle(ctx, msg) {
			msg.Ack()
		}
	}()
}

// handle processes one message and reports whether to acknowledge it.
func (c *MQTT) handle(ctx context.Context, msg mqtt.Message) bool {
	device, ok := strings.CutPrefix(msg.Topic(), topicPrefix)
	device, ok2 := strings.CutSuffix(device, dataSuffix)
	if !ok || !ok2 || !registry.ValidID(device) {
		// No device to answer: count it, and drop it from the broker.
		c.metrics.MessagesRejected.WithLabelValues(TransportMQTT, ReasonBadTopic).Inc()
		c.log.Warn("message on an unexpected topic acknowledged and dropped")
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
		c.metrics.MessagesRejected.WithLabelValues(TransportMQTT, ReasonTooLarge).Inc()
		return Outcome{Answer: refusal(fmt.Sprintf("message of %d bytes exceeds the limit of %d", len(payload), c.cfg.MaxBytes))}, nil
	}
	dev, err := c.lookup(ctx, device)
	reason, answer, err := deviceRefusal(dev, err)
	if err != nil {
		return Outcome{}, err
	}
	if answer != nil {
		c.metrics.MessagesRejected.WithLabelValues(TransportMQTT, reason).Inc()
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
		c.log.Warn("device lookup failed; retrying", "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return dev, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// answer publishes doc on the device's errors topic (QoS 1) and reports
// whether the broker took it; if not, the message stays unacknowledged
// and comes again, so that no rejection goes unanswered.
func (c *MQTT) answer(ctx context.Context, device string, doc *ErrorDoc) bool {
	body, err := json.Marshal(doc)
	if err != nil {
		c.log.Error("encode error document", "err", err)
		return true
	}
	tok := c.client.Publish(ErrorTopic(device), 1, false, body)
	select {
	case <-tok.Done():
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	if !tok.WaitTimeout(0) || tok.Error() != nil {
		c.metrics.AnswerFailures.Inc()
		c.log.Warn("error answer not taken by the broker; message left for redelivery", "err", tok.Error())
		return false
	}
	c.metrics.ErrorAnswers.WithLabelValues(TransportMQTT).Inc()
	return true
}
