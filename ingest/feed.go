package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// The partition feed carries stored points from the instance that took
// them to every instance, over the broker: one topic per partition of
// patients, FeedTopic(partition). The partition's owner feeds its
// evaluator from it; every instance passes the samples to its own
// consoles. Devices may neither publish nor subscribe there (see
// pipelineACLs and deviceACLs).
const (
	feedPrefix = "pp/v1/internal/feed/"
	feedFilter = feedPrefix + "+"
)

// FeedTopic is the partition's feed topic: pp/v1/internal/feed/<partition>.
func FeedTopic(partition int) string { return feedPrefix + strconv.Itoa(partition) }

// FeedClientID is the client id of an instance's feed subscription; its
// publishing connection adds "-pub". Both are per instance (not leased):
// instance is the cluster's id of this process.
func FeedClientID(base, instance string) string { return base + "-feed-" + instance }

// ErrFeedUnavailable: the broker did not acknowledge a feed message (not
// connected, no PUBACK in time, or the caller's context ended). The
// message it was for must not be acknowledged.
var ErrFeedUnavailable = errors.New("partition feed unavailable")

// defaultFeedPublishWait bounds Publish's wait for the broker's PUBACK
// when the caller's context does not end sooner.
const defaultFeedPublishWait = 10 * time.Second

// Feed is an instance's end of the partition feed: Publish sends a
// patient's stored points to the patient's partition topic and Run
// delivers every partition's messages to a function.
//
// It holds two connections, both with clean sessions under per-instance
// client ids: one publishes, one subscribes to the whole feed. They are
// apart so that a slow receiving function, which holds up paho's reading
// of its connection, never holds up the PUBACKs that ingest waits for.
// Paho reconnects both itself (at once, then after 1 s, doubling up to
// MQTTConfig.MaxReconnect: paho 1.5's own back-off, which the collector's
// resembles; no lease gates these connections), and the subscription is
// made again on every connect. A clean session loses what was published while this instance
// was away from the broker: the owner of a partition makes that up by
// loading its patients from InfluxDB in bulk once its subscription is up
// (Evaluator.Load), and the repeats this causes are dropped downstream
// (a series ignores a repeated timestamp).
type Feed struct {
	cfg         MQTTConfig
	instance    string
	partitionOf func(patient string) int
	log         *slog.Logger
	publishWait time.Duration

	newClient    func(*mqtt.ClientOptions) mqtt.Client
	pub          mqtt.Client // set by Run before it connects; guarded by mu
	mu           sync.Mutex
	connected    chan struct{} // the subscribing connection is up (again)
	subscribed   atomic.Bool   // the whole feed is subscribed on a connection that is up
	onSubscribed func()        // see OnSubscribed

	published, publishFailures, received, malformed prometheus.Counter
}

// NewFeed returns a feed that connects when Run is called, with cfg's
// broker, credentials and reconnect bound, and client ids made from
// cfg.ClientID (the clinic-wide base) and instance. partitionOf maps a
// patient to its partition. Its counters are registered with reg (nil:
// not registered).
func NewFeed(cfg MQTTConfig, instance string, partitionOf func(patient string) int, reg prometheus.Registerer, log *slog.Logger) *Feed {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "patientpulse_feed_" + name, Help: help})
		if reg != nil {
			reg.MustRegister(c)
		}
		return c
	}
	return &Feed{
		cfg:         cfg,
		instance:    instance,
		partitionOf: partitionOf,
		log:         log.With("component", "feed"),
		publishWait: defaultFeedPublishWait,
		newClient:   mqtt.NewClient,
		connected:   make(chan struct{}, 1),
		published:   counter("published_total", "Messages of stored points the broker acknowledged on the partition feed."),
		publishFailures: counter("publish_failures_total",
			"Messages of stored points not acknowledged on the partition feed (their source is not acknowledged either)."),
		received:  counter("received_total", "Partition feed messages received."),
		malformed: counter("malformed_total", "Partition feed messages that did not decode, dropped."),
	}
}

// OnSubscribed makes Run call fn each time the feed's subscription is
// made, the first time and after every reconnect, from Run's goroutine:
// fn must not block. What was published while the subscription was down
// is lost (clean session), so the owner reloads its partitions' patients
// from InfluxDB then (Evaluator.Load), as when it gains a partition. Call
// it before Run.
func (f *Feed) OnSubscribed(fn func()) { f.onSubscribed = fn }

// Subscribed reports whether the feed is subscribed on a connection that
// is up: a partition gained meanwhile may be loaded, and nothing
// published after its load is missed.
func (f *Feed) Subscribed() bool { return f.subscribed.Load() }

// Publish sends patient's points to the patient's partition topic at QoS
// 1 and returns once the broker acknowledged them. It fails with an error
// wrapping ErrFeedUnavailable when the publishing connection is down, the
// broker does not answer within 10 s or ctx ends first: the caller must
// then not acknowledge its source. It names no patient in its errors.
func (f *Feed) Publish(ctx context.Context, patient string, points []Point) error {
	f.mu.Lock()
	pub := f.pub
	f.mu.Unlock()
	// Not queued by paho while disconnected: an outage must not pile up
	// messages that their sources will send again anyway.
	if pub == nil || !pub.IsConnectionOpen() {
		f.publishFailures.Inc()
		return fmt.Errorf("%w: not connected to the broker", ErrFeedUnavailable)
	}
	tok := pub.Publish(FeedTopic(f.partitionOf(patient)), 1, false, appendFeed(nil, patient, points))
	timer := time.NewTimer(f.publishWait)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			f.publishFailures.Inc()
			return fmt.Errorf("%w: %v", ErrFeedUnavailable, err)
		}
		f.published.Inc()
		return nil
	case <-timer.C:
		f.publishFailures.Inc()
		return fmt.Errorf("%w: no acknowledgement within %s", ErrFeedUnavailable, f.publishWait)
	case <-ctx.Done():
		f.publishFailures.Inc()
		return fmt.Errorf("%w: %w", ErrFeedUnavailable, ctx.Err())
	}
}

// Run connects both connections and subscribes to the whole feed at QoS
// 1, calling fn for each message decoded, from one goroutine, in the
// order the broker sent them (so in order per partition); the message is
// acknowledged once fn returns. fn must not block for long: while it
// runs, nothing else of the feed is received. A message that does not
// decode is counted, logged without its content, and dropped. Run returns
// once ctx ends and both connections are closed; it fails only when the
// TLS settings cannot be loaded.
func (f *Feed) Run(ctx context.Context, fn func(patient string, points []Point)) error {
	subOpts, err := f.options(FeedClientID(f.cfg.ClientID, f.instance))
	if err != nil {
		return err
	}
	pubOpts, err := f.options(FeedClientID(f.cfg.ClientID, f.instance) + "-pub")
	if err != nil {
		return err
	}
	subOpts.SetConnectionLostHandler(func(mqtt.Client, error) { f.subscribed.Store(false) })
	subOpts.SetOnConnectHandler(func(mqtt.Client) {
		select {
		case f.connected <- struct{}{}:
		default:
		}
	})
	// The publishing connection is not reconnected by paho but replaced
	// by a new client once lost: on reconnecting, paho 1.5 resends what
	// its store holds while new publishes go out, and marks a new
	// publish as a resend (sets its DUP flag) as it is being written,
	// a data race (eclipse-paho/paho.mqtt.golang#703). A new client
	// with a clean session starts with an empty store.
	lostPub := make(chan struct{}, 1)
	pubOpts.SetAutoReconnect(false).SetConnectRetryInterval(time.Second).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			select {
			case lostPub <- struct{}{}:
			default:
			}
		})
	newPub := func() mqtt.Client {
		pub := f.newClient(pubOpts)
		f.mu.Lock()
		f.pub = pub
		f.mu.Unlock()
		pub.Connect() // with ConnectRetry, completes only once connected: not waited for
		return pub
	}
	sub := f.newClient(subOpts)
	sub.Connect()
	pub := newPub()
	handler := func(_ mqtt.Client, msg mqtt.Message) { f.receive(msg, fn) }
	for {
		select {
		case <-f.connected:
			f.subscribe(ctx, sub, handler)
		case <-lostPub:
			pub.Disconnect(0) // lost already: this ends its goroutines
			pub = newPub()
		case <-ctx.Done():
			f.subscribed.Store(false)
			sub.Disconnect(250)
			pub.Disconnect(250)
			return nil
		}
	}
}

// subscribe subscribes to the whole feed, retrying while the connection
// is up and the broker refuses or does not answer, until ctx ends.
func (f *Feed) subscribe(ctx context.Context, sub mqtt.Client, handler mqtt.MessageHandler) {
	for wait := minReconnect; sub.IsConnectionOpen(); wait = min(2*wait, f.cfg.MaxReconnect) {
		tok := sub.Subscribe(feedFilter, 1, handler)
		select {
		case <-tok.Done():
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return
		}
		if st, ok := tok.(*mqtt.SubscribeToken); ok && tok.Error() == nil && subackCode(st) <= 2 {
			f.log.Info("subscribed", "topic", feedFilter)
			f.subscribed.Store(true)
			if f.onSubscribed != nil {
				f.onSubscribed()
			}
			return
		}
		f.log.Error("feed subscription failed; retrying", "err", tok.Error(), "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

func (f *Feed) receive(msg mqtt.Message, fn func(string, []Point)) {
	f.received.Inc()
	patient, points, err := decodeFeed(msg.Payload())
	if err != nil {
		f.malformed.Inc()
		f.log.Warn("feed message dropped", "err", err, "topic", msg.Topic(), "bytes", len(msg.Payload()))
		return
	}
	fn(patient, points)
}

// options are a feed connection's: clean session, paho's own reconnection
// (which Run turns off for the publishing one).
func (f *Feed) options(clientID string) (*mqtt.ClientOptions, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(f.cfg.URL).
		SetClientID(clientID).
		SetUsername(f.cfg.Username).
		SetPassword(f.cfg.Password).
		SetCleanSession(true).
		SetOrderMatters(true). // one message after the other, as the broker sent them
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(minReconnect).
		SetMaxReconnectInterval(f.cfg.MaxReconnect).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetResumeSubs(false).
		SetCustomOpenConnectionFn(openBrokerConn)
	if f.cfg.CAFile != "" {
		tlsCfg, err := brokerTLS(f.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tlsCfg)
	}
	return opts, nil
}
