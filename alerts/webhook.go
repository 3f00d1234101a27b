package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/registry"
)

// Headers of a webhook request. The signature covers the timestamp and the
// body only: receivers trust the body, not the other headers.
const (
	WebhookEventHeader     = "X-Patientpulse-Event"
	WebhookDeliveryHeader  = "X-Patientpulse-Delivery"
	WebhookTimestampHeader = "X-Patientpulse-Timestamp"
	WebhookSignatureHeader = "X-Patientpulse-Signature"
)

// Errors returned by VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("webhook signature does not verify")
	ErrWebhookTimestamp = errors.New("webhook timestamp missing or too far from now")
)

const (
	whUserAgent      = "patientpulse-webhook/1"
	whRecordTimeout  = 5 * time.Second  // one write to the delivery log
	whShutdownBudget = 10 * time.Second // every write to the delivery log at shutdown
	whDefaultSkew    = 5 * time.Minute
	whMaxError       = 200 // bytes of a recorded error
	// Events refused by the full queue and waiting to be recorded as
	// such (about 100 bytes each): the delivery log is far faster than
	// Notify's callers, who store each change first.
	whMaxOverflow = 10000
)

// Delivery outcomes, as recorded.
const (
	whDelivered = "delivered"
	whRetrying  = "retrying"
	whFailed    = "failed"
)

// Errors recorded for events never sent.
const (
	whQueueFull    = "queue full"
	whShuttingDown = "shutting down"
)

// WebhookConfig sets where and how alert events are posted.
type WebhookConfig struct {
	URL         string        // https:// (http:// only to a loopback address, for tests and local relays); "" disables the webhook
	Secret      string        // HMAC key, at least 16 bytes
	Timeout     time.Duration // one attempt (default 10s)
	MaxAttempts int           // default 8
	// Waits between attempts: exponential from MinBackoff with full jitter,
	// at most MaxBackoff (defaults 1s and 5m). A Retry-After answer
	// (seconds or an HTTP date) replaces the wait, capped at MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	QueueSize              int      // events waiting to be sent (default 1000)
	Events                 []string // the Event.Change values to send; empty sends every change
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.Timeout, 10 * time.Second}, {&c.MinBackoff, time.Second}, {&c.MaxBackoff, 5 * time.Minute}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.QueueSize == 0 {
		c.QueueSize = 1000
	}
	return c
}

// Validate reports every problem at once. An empty URL disables the
// webhook and is valid whatever the other settings.
func (c WebhookConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if err := whCheckURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	if len(c.Secret) < 16 {
		errs = append(errs, errors.New("webhook secret must be at least 16 bytes"))
	}
	if c.Timeout < 0 || c.Timeout > 5*time.Minute {
		errs = append(errs, errors.New("webhook timeout must be above 0 and at most 5m (0 for the default 10s)"))
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > 100 {
		errs = append(errs, errors.New("webhook attempts must be between 1 and 100 (0 for the default 8)"))
	}
	d := c.withDefaults()
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || d.MaxBackoff < d.MinBackoff {
		errs = append(errs, errors.New("webhook backoffs must not be negative, the maximum at least the minimum"))
	}
	if c.QueueSize < 0 || c.QueueSize > 1000000 {
		errs = append(errs, errors.New("webhook queue size must be between 1 and 1000000 (0 for the default 1000)"))
	}
	for _, e := range c.Events {
		if !whKnownChange(e) {
			errs = append(errs, fmt.Errorf("webhook event %q is not a change of an alert", e))
		}
	}
	return errors.Join(errs...)
}

// whCheckURL never echoes the URL: it may carry credentials.
func whCheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("webhook URL does not parse")
	}
	if u.Host == "" {
		return errors.New("webhook URL has no host")
	}
	if u.Scheme == "https" || u.Scheme == "http" && whLoopback(u.Hostname()) {
		return nil
	}
	return errors.New("webhook URL must be https:// (http:// only to a loopback address)")
}

func whLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func whKnownChange(c string) bool {
	switch c {
	case ChangeOpened, ChangeUpdated, ChangeSeverityRaised, ChangeAcknowledged, ChangeResolved,
		ChangeSnoozed, ChangeEscalated, ChangeSuppressed, ChangeUnsuppressed:
		return true
	}
	return false
}

// DeliveryLog records delivery attempts. *registry.Registry is the real
// one.
type DeliveryLog interface {
	RecordDelivery(ctx context.Context, d registry.Delivery) error
}

var (
	_ DeliveryLog = (*registry.Registry)(nil)
	_ Notifier    = (*Webhook)(nil)
)

// Webhook posts alert events, signed, to a clinic's own paging system. It
// queues what Notify hands it and sends it in order from Run, one event at
// a time, retrying with backoff; every attempt, and every event it could
// not send (queue full, shutting down), is recorded in the delivery log.
// Its logs carry the change, attempt and HTTP status, never the body, the
// patient or the secret.
type Webhook struct {
	cfg        WebhookConfig // with defaults
	deliveries DeliveryLog
	log        *slog.Logger
	client     *http.Client
	events     map[string]bool // nil: every change
	queue      chan whItem
	redactions []string // parts of the URL kept out of recorded errors

	outcomes       *prometheus.CounterVec
	queued         prometheus.Gauge
	attemptSeconds prometheus.Histogram

	mu       sync.Mutex
	stopped  bool                // Run has drained the queue; guarded by mu
	overflow []registry.Delivery // refused by the full queue, to record; guarded by mu
	unlogged int                 // refused and not even kept for recording; guarded by mu
	full     bool                // the last event was refused; guarded by mu
	wake     chan struct{}       // buffered: wakes the recorder of overflow

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool // false when ctx ended first
}

type whItem struct {
	id string // the delivery id
	ev Event
}

type whResult struct {
	status     int
	err        string // recorded: no body, no URL credentials
	retry      bool
	retryAfter time.Duration
	hasAfter   bool // the answer carried a usable Retry-After
}

// NewWebhook returns a webhook that sends nothing until Run is called.
// cfg should have passed Validate. deliveries may be nil (nothing
// recorded), and reg (the metrics' registerer) too.
func NewWebhook(cfg WebhookConfig, deliveries DeliveryLog, log *slog.Logger, reg prometheus.Registerer) *Webhook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	w := &Webhook{
		cfg:        cfg,
		deliveries: deliveries,
		log:        log.With("component", "webhook"),
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect could carry the body elsewhere
		}},
		queue: make(chan whItem, cfg.QueueSize),
		wake:  make(chan struct{}, 1),
		now:   time.Now,
		sleep: whSleep,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_webhook_deliveries_total",
			Help: "Alert events the webhook finished with, by outcome: delivered, failed (refused or out of attempts), queue_full or shutting_down (never sent).",
		}, []string{"outcome"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_webhook_queue",
			Help: "Alert events waiting to be sent by the webhook.",
		}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patientpulse_webhook_attempt_seconds",
			Help:    "Time of one webhook request, answered or not.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
	if len(cfg.Events) > 0 {
		w.events = map[string]bool{}
		for _, e := range cfg.Events {
			w.events[e] = true
		}
	}
	if u, err := url.Parse(cfg.URL); err == nil {
		if u.User != nil {
			p, _ := u.User.Password()
			w.redactions = append(w.redactions, u.User.String(), p)
		}
		w.redactions = append(w.redactions, u.RawQuery)
	}
	if reg != nil {
		reg.MustRegister(w.outcomes, w.queued, w.attemptSeconds)
	}
	return w
}

// Notify queues ev to be sent; it never blocks. When the queue is full
// the event is counted and recorded as a failed delivery ("queue full").
// After Run has returned it is recorded as failed ("shutting down") at
// once, with a short write to the delivery log. Changes the webhook does
// not send, and every event while it is disabled, are ignored.
func (w *Webhook) Notify(ev Event) {
	if w.cfg.URL == "" || w.events != nil && !w.events[ev.Change] {
		return
	}
	it := whItem{id: crand.Text(), ev: ev}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		w.whRefuseStopped(it)
		return
	}
	select {
	case w.queue <- it:
		w.full = false
		w.queued.Set(float64(len(w.queue)))
		w.mu.Unlock()
		return
	default:
	}
	first := !w.full
	w.full = true
	if len(w.overflow) < whMaxOverflow {
		w.overflow = append(w.overflow, w.whDelivery(it, 0, w.now(), 0, whFailed, whQueueFull))
	} else {
		w.unlogged++
	}
	w.mu.Unlock()
	w.outcomes.WithLabelValues("queue_full").Inc()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	if first {
		w.log.Warn("webhook queue full; events recorded as failed", "change", ev.Change, "queue", w.cfg.QueueSize)
	}
}

func (w *Webhook) whRefuseStopped(it whItem) {
	w.outcomes.WithLabelValues("shutting_down").Inc()
	w.log.Warn("webhook event after shutdown recorded as failed", "change", it.ev.Change)
	w.whRecordOrLog(context.Background(), w.whDelivery(it, 0, w.now(), 0, whFailed, whShuttingDown))
}

// Run sends queued events in order until ctx ends. Then it records the
// event in flight and every queued one as failed ("shutting down"),
// taking at most a few seconds more, and returns nil. Run is not to be
// called twice. With the webhook disabled it just waits for ctx.
func (w *Webhook) Run(ctx context.Context) error {
	if w.cfg.URL == "" {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.whRecordOverflow(ctx) })
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case it := <-w.queue:
			w.mu.Lock() // so that the gauge's last value is the queue's length
			w.queued.Set(float64(len(w.queue)))
			w.mu.Unlock()
			w.whDeliver(ctx, it)
		}
	}
	wg.Wait()
	w.whDrain(ctx)
	return nil
}

// whRecordOverflow records the events the full queue refused, so that
// Notify does not wait for the delivery log, until ctx ends.
func (w *Webhook) whRecordOverflow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for ctx.Err() == nil {
			w.mu.Lock()
			if len(w.overflow) == 0 {
				unlogged := w.unlogged
				w.unlogged = 0
				w.mu.Unlock()
				w.whLogUnlogged(unlogged)
				break
			}
			d := w.overflow[0]
			w.overflow = w.overflow[1:]
			w.mu.Unlock()
			w.whRecordOrLog(ctx, d)
		}
	}
}

func (w *Webhook) whLogUnlogged(n int) {
	if n > 0 {
		w.log.Error("webhook events refused by the full queue and not recorded; the delivery log is behind", "events", n)
	}
}

// whDrain stops Notify from queueing and records what is left as failed,
// within whShutdownBudget.
func (w *Webhook) whDrain(ctx context.Context) {
	w.mu.Lock()
	w.stopped = true
	left, unlogged := w.overflow, w.unlogged
	overflow := len(left)
	w.overflow, w.unlogged = nil, 0
	w.mu.Unlock()
	w.whLogUnlogged(unlogged)
	for queued := true; queued; {
		select {
		case it := <-w.queue:
			left = append(left, w.whDelivery(it, 0, w.now(), 0, whFailed, whShuttingDown))
			w.outcomes.WithLabelValues("shutting_down").Inc()
		default:
			queued = false
		}
	}
	w.queued.Set(0)
	if n := len(left) - overflow; n > 0 {
		w.log.Warn("webhook events not sent at shutdown; recorded as failed", "events", n)
	}
	if w.deliveries == nil {
		return
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), whShutdownBudget)
	defer cancel()
	var lost int
	var last error
	for _, d := range left {
		if err := w.deliveries.RecordDelivery(bctx, d); err != nil {
			lost, last = lost+1, err
		}
	}
	if lost > 0 {
		w.log.Error("webhook deliveries not recorded at shutdown", "records", lost, "err", last)
	}
}

// whDeliver sends one event until it is delivered, refused, out of
// attempts, or ctx ends, recording each attempt.
func (w *Webhook) whDeliver(ctx context.Context, it whItem) {
	body, err := json.Marshal(it.ev)
	if err != nil { // a NaN value, say
		w.whFinish(ctx, it, 0, w.now(), whResult{err: w.whShort("encode event: " + err.Error())})
		return
	}
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil { // Run's select may pick an event after ctx ended
			w.whAbandon(ctx, it, attempt-1, w.now(), 0)
			return
		}
		at := w.now()
		res := w.whAttempt(ctx, it, body, at)
		if res.status/100 != 2 && ctx.Err() != nil {
			w.whAbandon(ctx, it, attempt, at, res.status)
			return
		}
		if res.status/100 == 2 || !res.retry || attempt >= w.cfg.MaxAttempts {
			w.whFinish(ctx, it, attempt, at, res)
			return
		}
		wait := w.whBackoff(attempt, res)
		w.log.Warn("webhook attempt failed; retrying", "change", it.ev.Change, "attempt", attempt,
			"status", res.status, "err", res.err, "wait", wait)
		w.whRecordOrLog(ctx, w.whDelivery(it, attempt, at, res.status, whRetrying, res.err))
		if !w.sleep(ctx, wait) {
			w.whAbandon(ctx, it, attempt, w.now(), 0)
			return
		}
	}
}

// whFinish records the last attempt: delivered or failed.
func (w *Webhook) whFinish(ctx context.Context, it whItem, attempt int, at time.Time, res whResult) {
	outcome := whFailed
	if res.status/100 == 2 {
		outcome = whDelivered
		w.log.Debug("webhook delivered", "change", it.ev.Change, "attempt", attempt, "status", res.status)
	} else {
		w.log.Error("webhook delivery failed", "change", it.ev.Change, "attempt", attempt,
			"status", res.status, "err", res.err)
	}
	w.outcomes.WithLabelValues(outcome).Inc()
	w.whRecordOrLog(ctx, w.whDelivery(it, attempt, at, res.status, outcome, res.err))
}

// whAbandon records the event in flight as failed at shutdown.
func (w *Webhook) whAbandon(ctx context.Context, it whItem, attempt int, at time.Time, status int) {
	w.log.Warn("webhook event in flight at shutdown; recorded as failed", "change", it.ev.Change, "attempt", attempt)
	w.outcomes.WithLabelValues("shutting_down").Inc()
	w.whRecordOrLog(ctx, w.whDelivery(it, attempt, at, status, whFailed, whShuttingDown))
}

// whAttempt posts the event once.
func (w *Webhook) whAttempt(ctx context.Context, it whItem, body []byte, at time.Time) whResult {
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return whResult{err: "invalid webhook URL"}
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", whUserAgent)
	req.Header.Set(WebhookEventHeader, it.ev.Change)
	req.Header.Set(WebhookDeliveryHeader, it.id)
	req.Header.Set(WebhookTimestampHeader, ts)
	req.Header.Set(WebhookSignatureHeader, "sha256="+hex.EncodeToString(whSign([]byte(w.cfg.Secret), ts, body)))
	start := time.Now()
	defer func() { w.attemptSeconds.Observe(time.Since(start).Seconds()) }()
	resp, err := w.client.Do(req)
	if err != nil {
		return whResult{err: w.whNetError(err), retry: true}
	}
	// Read a little for the connection's reuse; what the receiver says may
	// echo the event, so it is never kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	res := whResult{status: resp.StatusCode}
	c := resp.StatusCode
	if c/100 == 2 {
		return res
	}
	res.err = fmt.Sprintf("HTTP %d", c)
	res.retry = c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
	if res.retry {
		res.retryAfter, res.hasAfter = whRetryAfter(resp.Header.Get("Retry-After"), w.now())
	}
	return res
}

func whSign(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// whNetError is a short description of a failed request, without the URL
// (it may carry credentials).
func (w *Webhook) whNetError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout after " + w.cfg.Timeout.String()
	}
	return w.whShort(err.Error())
}

func (w *Webhook) whShort(s string) string {
	for _, r := range w.redactions {
		if r != "" {
			s = strings.ReplaceAll(s, r, "***")
		}
	}
	if len(s) > whMaxError {
		s = strings.ToValidUTF8(s[:whMaxError], "")
	}
	return s
}

// whRetryAfter parses a Retry-After value: seconds or an HTTP date.
func whRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 1<<31)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// whBackoff is the wait after the attempt-th attempt failed: the
// receiver's Retry-After, or a random wait up to MinBackoff·2^(attempt-1)
// (full jitter), both at most MaxBackoff.
func (w *Webhook) whBackoff(attempt int, res whResult) time.Duration {
	if res.hasAfter {
		return min(res.retryAfter, w.cfg.MaxBackoff)
	}
	ceil := w.cfg.MinBackoff
	for i := 1; i < attempt && ceil < w.cfg.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, w.cfg.MaxBackoff)
	return rand.N(ceil + 1)
}

func whSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

func (w *Webhook) whDelivery(it whItem, attempt int, at time.Time, status int, outcome, errText string) registry.Delivery {
	return registry.Delivery{
		Delivery: it.id, AlertID: it.ev.Alert.ID, Event: it.ev.Change, Attempt: attempt,
		At: at, Status: status, Outcome: outcome, Error: errText,
	}
}

// whRecordOrLog records d, still when ctx has ended, and logs a failure.
func (w *Webhook) whRecordOrLog(ctx context.Context, d registry.Delivery) {
	if w.deliveries == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), whRecordTimeout)
	defer cancel()
	if err := w.deliveries.RecordDelivery(rctx, d); err != nil {
		w.log.Error("webhook delivery not recorded", "change", d.Event, "attempt", d.Attempt,
			"outcome", d.Outcome, "err", err)
	}
}

// VerifyWebhook checks a webhook request as a receiver should: the
// X-Patientpulse-Signature header must be the HMAC-SHA256 of the
// X-Patientpulse-Timestamp header, a dot and body under secret (compared
// in constant time), and the timestamp within maxSkew of now (5 minutes
// when maxSkew is not positive). body is the request's body as read. The
// errors wrap ErrWebhookSignature or ErrWebhookTimestamp.
func VerifyWebhook(secret []byte, r *http.Request, body []byte, maxSkew time.Duration, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret", ErrWebhookSignature)
	}
	if maxSkew <= 0 {
		maxSkew = whDefaultSkew
	}
	ts := r.Header.Get(WebhookTimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp", ErrWebhookTimestamp)
	}
	hexSig, ok := strings.CutPrefix(r.Header.Get(WebhookSignatureHeader), "sha256=")
	sig, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return fmt.Errorf("%w: malformed", ErrWebhookSignature)
	}
	if !hmac.Equal(sig, whSign(secret, ts, body)) {
		return ErrWebhookSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: %s off", ErrWebhookTimestamp, d.Round(time.Second))
	}
	return nil
}
